"""The delivery retry policy as pure functions: no database, no I/O (unit-testable on its own).

* `classify`: 2xx delivered; 410 gone (drop the follower); 501 and every 4xx except 401, 408 and
  429 permanent (Mastodon `response_error_unsalvageable?`), and so are redirects (never followed
  on POST, security matrix row 31), NXDOMAIN and invalid TLS certificates (F10, F11); anything
  else, including other network errors and timeouts (status None), is retried.
* `next_attempt_at`: 17 tries (Mastodon's `retry: 16`), the n-th retry n⁴ + 15 s after the previous
  one plus up to 25 % jitter: ≥ 49.6 h, ≤ 62 h in all. `Retry-After` is honoured but clamped: we
  never come back before our own delay, and never wait more than an hour for it.
* `breaker_cooloff`: the per-host circuit breaker opens after 10 failures in a row (Mastodon's
  Stoplight): 60 s, doubling to at most 1 h.
* `settle` / `settle_batch`: what a batch of `Attempt`s does to its rows (in memory) and to each
  host's health; `records.record_outcomes` writes the result. 429 is not an outage (the host is
  up; its `Retry-After` pauses the whole host), nor are SSRF refusals or rows dropped before sending.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

Outcome = Literal["delivered", "retry", "permanent", "gone"]

MAX_ATTEMPTS: Final = 17  # the first try and 16 retries, as Mastodon's DeliveryWorker
BASE_DELAY_SECONDS: Final = 15.0
JITTER: Final = 0.25  # each delay grows by a random 0–25 %
MAX_DELAY: Final = timedelta(hours=24)
RETRY_AFTER_CAP: Final = timedelta(hours=1)
UNAVAILABLE_AFTER_DAYS: Final = 7
BREAKER_THRESHOLD: Final = 10
BREAKER_BASE: Final = timedelta(seconds=60)
BREAKER_MAX: Final = timedelta(hours=1)
RETRYABLE_4XX: Final = frozenset({401, 408, 429})
PAUSING_STATUSES: Final = frozenset({429, 503})

# Network failures the client reports that retrying cannot fix (client.py error kinds; F10, F11).
PERMANENT_ERROR_KINDS: Final = ("dns-nxdomain", "tls-certificate")


class HasStatus(Protocol):
    @property
    def status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


def retry_delay(attempts: int, *, jitter: float | None = None) -> timedelta:
    """The wait after the `attempts`-th failed try: n⁴ + 15 s with n = attempts − 1, plus 0–25 %.

    `jitter` in [0, 1] picks the fraction of the 25 % (random when None).
    """
    n = max(attempts - 1, 0)
    fraction = random.random() if jitter is None else min(max(jitter, 0.0), 1.0)
    seconds = (n**4 + BASE_DELAY_SECONDS) * (1 + JITTER * fraction)
    return min(timedelta(seconds=seconds), MAX_DELAY)


def next_attempt_at(
    attempts: int, now: datetime, *, retry_after: float | None = None, jitter: float | None = None
) -> datetime | None:
    """When to retry a delivery that has failed `attempts` times; None means give up.

    `retry_after` (seconds, from the `Retry-After` header) can postpone the retry, up to an hour.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = retry_delay(attempts, jitter=jitter)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=retry_after), RETRY_AFTER_CAP))
    return now + delay


def classify(result: HasStatus) -> Outcome:
    """What an inbox's answer means for the delivery (Mastodon's classification, plus 410).

    No answer (status None) is retried, except NXDOMAIN and invalid TLS certificates.
    """
    status = result.status
    if status is None:
        error = result.error or ""
        return "permanent" if error.startswith(PERMANENT_ERROR_KINDS) else "retry"
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    # A redirect answering a POST is not followed (security matrix row 31): permanent too.
    if 300 <= status < 400 or status == 501 or (400 <= status < 500 and status not in RETRYABLE_4XX):
        return "permanent"
    return "retry"


def breaker_cooloff(consecutive_failures: int) -> timedelta | None:
    """How long to skip a host after this many failures in a row (None: breaker closed)."""
    if consecutive_failures < BREAKER_THRESHOLD:
        return None
    doublings = min(consecutive_failures - BREAKER_THRESHOLD, 10)
    cooloff: timedelta = BREAKER_BASE * (1 << doublings)
    return min(cooloff, BREAKER_MAX)


# --- a batch of attempts, in memory ---------------------------------------------------------------


@dataclass(slots=True)
class Claim:
    """A leased delivery: what the worker needs, and its outcome (set by `settle`)."""

    id: int
    activity_id: int
    inbox_url: str
    host: str
    attempts: int
    bypass_availability: bool
    claimed_until: datetime | None
    state: str = "pending"
    next_attempt_at: datetime | None = None  # None: unchanged
    last_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one claimed delivery; `records.record_outcomes` writes a batch of them."""

    delivery: Claim
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds
    unsafe: bool = False  # refused by the SSRF guard: permanent, not a host outage
    dropped: str | None = None  # not attempted (e.g. the local actor is gone): the reason
    scheme: str | None = None  # the signature scheme the host accepted


@dataclass(slots=True)
class HostTally:
    """One host's share of a batch: answers proving it is up, outages, a requested pause."""

    reachable: int = 0
    failed: int = 0
    pause_until: datetime | None = None
    scheme: str | None = None


def _short(text: str | None, status: int | None) -> str | None:
    if text:
        return text[:500]
    return None if status is None or 200 <= status < 300 else f"HTTP {status}"


def settle(attempt: Attempt, now: datetime) -> Outcome | None:
    """Update the row in memory; return the outcome that counts for host health (None: neutral)."""
    row = attempt.delivery
    row.claimed_until = None
    if attempt.dropped is not None:
        row.state, row.last_error = "dropped", attempt.dropped[:500]
        return None
    row.attempts += 1
    row.last_status = attempt.status
    row.last_error = _short(attempt.error, attempt.status)
    if attempt.unsafe:
        row.state = "failed"
        return None
    outcome = classify(attempt)
    if outcome == "delivered":
        row.state, row.last_error = "delivered", None
    elif outcome in ("permanent", "gone"):
        row.state = "failed"
    else:
        retry_at = next_attempt_at(row.attempts, now, retry_after=attempt.retry_after)
        if retry_at is None:
            row.state = "failed"
            row.last_error = f"gave up after {row.attempts} attempts: {row.last_error or 'no answer'}"[:500]
        else:
            row.next_attempt_at = retry_at
    return outcome


def settle_batch(attempts: Sequence[Attempt], now: datetime) -> tuple[dict[str, HostTally], list[str]]:
    """`settle` every attempt; (per-host tallies, inbox URLs that answered 410 Gone)."""
    hosts: dict[str, HostTally] = defaultdict(HostTally)
    gone: list[str] = []
    for attempt in attempts:
        outcome = settle(attempt, now)
        if outcome is None:
            continue
        host = hosts[attempt.delivery.host]
        # No HTTP answer, 5xx, 401, 408: an outage. Any other answer (429 too) proves the host is up.
        if attempt.status is None or (outcome == "retry" and attempt.status != 429):
            host.failed += 1
        else:
            host.reachable += 1
            host.scheme = attempt.scheme or host.scheme
        if outcome == "gone":
            gone.append(attempt.delivery.inbox_url)
        if attempt.status in PAUSING_STATUSES and attempt.retry_after:
            pause = now + min(timedelta(seconds=attempt.retry_after), RETRY_AFTER_CAP)
            host.pause_until = max(pause, host.pause_until or pause)
    return hosts, gone
