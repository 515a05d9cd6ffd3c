"""Deps: the plain container of what handlers, services and workers are given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fediverse_net.config import Settings
from fediverse_net.urls import Urls

if TYPE_CHECKING:
    from fediverse_net.activitypub.client import FederationClient


def utcnow() -> datetime:
    return datetime.now(UTC)


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

    def http(self) -> FederationClient:
        if self.client is None:
            raise RuntimeError("no federation client configured")
        return self.client
