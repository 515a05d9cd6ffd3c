"""Deps: the plain container of what handlers, services and workers are given."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fediverse_net.config import Settings
from fediverse_net.urls import Urls

if TYPE_CHECKING:
    from fediverse_net.activitypub.client import FederationClient

K = TypeVar("K")
V = TypeVar("V")


def utcnow() -> datetime:
    return datetime.now(UTC)


class TTLCache(Generic[K, V]):
    """A small process-local cache: entries expire after `ttl` seconds; bounded in size.

    Used on hot federation paths (parsed keys, served documents) where a database round trip
    per request would dominate (benchmarks B1-B3). Invalidate explicitly on change.

    `generation` counts invalidations (pop, clear). A reader that built a value from the database
    passes the generation it saw before reading to `put`; if an invalidation happened meanwhile
    the value may predate the change and is not stored.
    """

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.generation = 0
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V, *, generation: int | None = None) -> None:
        """Store `value`; with `generation`, only if nothing was invalidated since it was read."""
        if generation is not None and generation != self.generation:
            return
        if len(self._data) >= self.max_size:
            self._data.clear()  # crude but bounded; a miss only costs a query
        self._data[key] = (time.monotonic() + self.ttl, value)

    def pop(self, key: K) -> None:
        self.generation += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._data.clear()


@dataclass(slots=True)
class Deps:
    settings: Settings
    client: FederationClient | None = None
    clock: Callable[[], datetime] = utcnow
    # Small process-local caches (keys, refetch throttles); never module globals.
    caches: dict[str, Any] = field(default_factory=dict)

    @property
    def urls(self) -> Urls:
        return Urls(self.settings.origin)

    def cache(self, name: str, ttl: float) -> TTLCache[Any, Any]:
        """The named TTL cache of this process (created on first use)."""
        found = self.caches.get(name)
        if not isinstance(found, TTLCache):
            found = self.caches[name] = TTLCache(ttl)
        return found

    def http(self) -> FederationClient:
        if self.client is None:
            raise RuntimeError("no federation client configured")
        return self.client
