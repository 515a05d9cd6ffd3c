"""Rate limits: in-memory token buckets on `Deps.caches` (per process), answered with 429 + Retry-After.

A limit is written `COUNT/PERIOD` with the period in seconds or with a unit: `5/1h`, `30/5m`,
`300/300`. A bucket holds COUNT tokens and refills at COUNT/PERIOD per second (GoToSocial's
300 requests / 5 min per IP is the same shape). Keys name what is limited: `signup:ip:1.2.3.4`,
`post:account:7`, `follow:domain:mastodon.example`.

Buckets are per process: several worker processes each allow the limit (documented in
deploy/env.example). The table is bounded; when full, the fullest (idle) buckets go first.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from fediverse_net.deps import Deps

MAX_BUCKETS: Final = 50_000
_RATE_RE: Final = re.compile(r"\s*(\d{1,9})\s*/\s*((?:[1-9]\d{0,8})?)\s*([smhd]?)\s*")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RateLimited(Exception):
    """Too many requests; `retry_after` whole seconds until one more is allowed."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many {what}. Please wait {retry_after} seconds and try again.")
        self.what = what
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`30/5m` → Rate(30, 300). `0/…` disables the limit. ValueError when unreadable."""
        match = _RATE_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a rate like 30/5m: {text!r}")
        count, amount, unit = match.groups()
        period = int(amount or 1) * _UNITS[unit]
        if period <= 0:
            raise ValueError(f"the period of {text!r} must be positive")
        return cls(int(count), float(period))


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(slots=True)
class RateLimiter:
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _refilled(self, key: str, rate: Rate, now: float) -> _Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self._evict(now)
            bucket = self.buckets[key] = _Bucket(tokens=float(rate.count), updated=now)
            return bucket
        refill = (now - bucket.updated) * rate.count / rate.period
        bucket.tokens = min(float(rate.count), bucket.tokens + refill)
        bucket.updated = now
        return bucket

    def _evict(self, now: float) -> None:
        # Idle buckets are the oldest-updated ones; drop the older half.
        ordered = sorted(self.buckets.items(), key=lambda item: item[1].updated)
        for key, _ in ordered[: len(ordered) // 2 + 1]:
            del self.buckets[key]

    def retry_after(self, key: str, rate: Rate, cost: float = 1.0) -> int:
        """Seconds until `cost` tokens are available (0: now), without taking any."""
        if rate.count <= 0:
            return 0
        bucket = self._refilled(key, rate, self.clock())
        missing = cost - bucket.tokens
        return 0 if missing <= 0 else max(1, math.ceil(missing * rate.period / rate.count))

    def hit(self, key: str, rate: Rate, cost: float = 1.0) -> int:
        """Take `cost` tokens: 0 when allowed, else the seconds to wait (nothing is taken)."""
        wait = self.retry_after(key, rate, cost)
        if wait == 0 and rate.count > 0:
            self.buckets[key].tokens -= cost
        return wait


def limiter(deps: Deps) -> RateLimiter:
    """The process's limiter, kept on `deps.caches`."""
    found = deps.caches.get("ratelimit")
    if not isinstance(found, RateLimiter):
        found = deps.caches["ratelimit"] = RateLimiter()
    return found


def _rate(deps: Deps, setting: str) -> Rate | None:
    if not deps.settings.rate_limits_enabled:
        return None
    rate = Rate.parse(getattr(deps.settings, setting))
    return rate if rate.count > 0 else None


def check(deps: Deps, setting: str, key: str, *, what: str) -> None:
    """Take one token from bucket `key` under the rate in `settings.<setting>`; RateLimited if empty."""
    rate = _rate(deps, setting)
    if rate is None:
        return
    wait = limiter(deps).hit(f"{setting}:{key}", rate)
    if wait:
        raise RateLimited(what, wait)


def exhausted(deps: Deps, setting: str, key: str) -> int:
    """Seconds to wait before bucket `key` has a token again (0: it has one); nothing is taken."""
    rate = _rate(deps, setting)
    return 0 if rate is None else limiter(deps).retry_after(f"{setting}:{key}", rate)


def charge(deps: Deps, setting: str, key: str) -> None:
    """Take one token if there is one (used to count failures after the fact)."""
    rate = _rate(deps, setting)
    if rate is not None:
        limiter(deps).hit(f"{setting}:{key}", rate)
