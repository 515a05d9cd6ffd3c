"""Delivery bookkeeping: the retry policy, claiming due rows, recording outcomes, host health.

Policy (protocol.md §4.4–§4.5, security-matrix invariant 9; FEDERATION.md "Delivery"):

* `classify`: 2xx delivered; 410 gone (drop the follower); 501 and every 4xx except 401, 408 and
  429 permanent (Mastodon `response_error_unsalvageable?`), and so are redirects (never followed
  on POST, security matrix row 31), NXDOMAIN and invalid TLS certificates (F10, F11); anything
  else, including other network errors and timeouts (status None), is retried.
* `next_attempt_at`: 17 tries (Mastodon's `retry: 16`), the n-th retry n⁴ + 15 s after the previous
  one plus up to 25 % jitter: ≥ 49.6 h, ≤ 62 h in all. `Retry-After` is honoured but clamped: we
  never come back before our own delay, and never wait more than an hour for it.
* Per host (`HostHealth`): every counted failure adds today's UTC date to `failure_days`; seven
  distinct days without a success mark the host unavailable (its pending rows are dropped, except
  Follow requests). A circuit breaker opens after 10 failures in a row (Mastodon's Stoplight):
  the host is skipped for 60 s, doubling to at most 1 h, with at most one probe per window. A
  success, any HTTP answer that proves the host is up (4xx, 410), or `revive_host` (a verified
  inbound activity) clears all of it and makes the host's pending rows due at once.
* Not counted as outages: 429 (the host is up; its `Retry-After` pauses the whole host), SSRF
  refusals (`unsafe`, security matrix row 34), rows dropped before sending.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from fediverse_net.db.models import Actor, Delivery, Follow, HostHealth, OutgoingActivity
from fediverse_net.services.recipients import safe_host

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
DEFAULT_LEASE: Final = timedelta(minutes=5)
RETRYABLE_4XX: Final = frozenset({401, 408, 429})
PAUSING_STATUSES: Final = frozenset({429, 503})
FINISHED_STATES: Final = ("delivered", "failed", "dropped")
_ROW_FIELDS: Final = ("state", "attempts", "next_attempt_at", "last_status", "last_error")


# Network failures the client reports that retrying cannot fix (client.py error kinds; F10, F11).
PERMANENT_ERROR_KINDS: Final = ("dns-nxdomain", "tls-certificate")


class HasStatus(Protocol):
    @property
    def status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


# --- the pure policy -------------------------------------------------------------------------


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


# --- claiming --------------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r":([a-z_][a-z0-9_]*)")


def _render(sql: str, params: Mapping[str, Any], *, postgres: bool) -> tuple[str, list[Any]]:
    """Named `:name` placeholders to the dialect's positional ones ($n on PostgreSQL, ? on SQLite)."""
    values: list[Any] = []
    numbers: dict[str, int] = {}

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if not postgres:
            values.append(params[name])
            return "?"
        if name not in numbers:
            values.append(params[name])
            numbers[name] = len(values)
        return f"${numbers[name]}"

    return _PLACEHOLDER.sub(placeholder, sql), values


# One row per host while its breaker is half-open (the probe), `:per_host` otherwise. Ranking per
# host first is what keeps one host's backlog from starving the others.
_RANKED = """
    SELECT id FROM (
      SELECT d.id, d.next_attempt_at,
             ROW_NUMBER() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at, d.id) AS rn,
             CASE WHEN COALESCE(h.consecutive_failures, 0) >= :threshold THEN 1 ELSE :per_host END AS quota
      FROM deliveries d LEFT JOIN host_health h ON h.host = d.host
      WHERE d.state = 'pending' AND d.next_attempt_at <= :now
        AND (d.claimed_until IS NULL OR d.claimed_until < :now)
        AND (h.host IS NULL OR ((NOT h.unavailable OR d.bypass_availability)
                                AND (h.backoff_until IS NULL OR h.backoff_until <= :now)))
        {excluded}
    ) ranked WHERE rn <= quota ORDER BY next_attempt_at, id LIMIT :pool"""
# SQLite has one writer: a single UPDATE … RETURNING is atomic.
_RETURNED = ("id", "activity_id", "inbox_url", "host", "attempts", "bypass_availability")
_CLAIM_SQLITE = "UPDATE deliveries SET claimed_until = :until WHERE id IN ({ranked}) RETURNING " + ", ".join(
    _RETURNED
)
# PostgreSQL: concurrent workers skip each other's locked rows (from a pool twice the batch, so a
# worker racing another still finds work); the CTE runs once.
_CLAIM_POSTGRES = """
    WITH picked AS (
      SELECT id FROM deliveries
      WHERE id IN ({ranked}) AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < :now)
      ORDER BY next_attempt_at, id LIMIT :limit
      FOR UPDATE SKIP LOCKED)
    UPDATE deliveries SET claimed_until = :until FROM picked
    WHERE deliveries.id = picked.id RETURNING """ + ", ".join(f"deliveries.{name}" for name in _RETURNED)


def _claim_sql(
    *, postgres: bool, now: datetime, until: datetime, limit: int, per_host: int, exclude: list[str]
) -> tuple[str, list[Any]]:
    params: dict[str, Any] = {
        "now": now,
        "until": until,
        "limit": limit,
        "pool": 2 * limit if postgres else limit,
        "per_host": per_host,
        "threshold": BREAKER_THRESHOLD,
    }
    params.update({f"ex{i}": host for i, host in enumerate(exclude)})
    excluded = f"AND d.host NOT IN ({', '.join(f':ex{i}' for i in range(len(exclude)))})" if exclude else ""
    ranked = _RANKED.format(excluded=excluded)
    template = _CLAIM_POSTGRES if postgres else _CLAIM_SQLITE
    return _render(template.format(ranked=ranked), params, postgres=postgres)


@dataclass(slots=True)
class Claim:
    """A leased delivery: what the worker needs, and its outcome (set by `record_outcomes`)."""

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


async def claim_due(
    limit: int,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    *,
    per_host: int = 8,
    exclude_hosts: Collection[str] = (),
) -> list[Claim]:
    """Lease up to `limit` due deliveries (at most `per_host` per host) until `now + lease`.

    Skips hosts in backoff and unavailable hosts (unless the row bypasses availability) and
    `exclude_hosts` (the caller's saturated hosts). On PostgreSQL rows are locked with
    `FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same row; a crashed worker's
    rows come back when the lease ends (at-least-once delivery).
    """
    if limit <= 0:
        return []
    now = now.astimezone(UTC)
    until = now + lease
    async with in_transaction() as conn:
        sql, values = _claim_sql(
            postgres=conn.capabilities.dialect == "postgres",
            now=now,
            until=until,
            limit=limit,
            per_host=per_host,
            exclude=sorted(exclude_hosts),
        )
        rows = await conn.execute_query_dict(sql, values)
        if not rows:
            return []
        # A probe holds its host's breaker window for the lease: no second probe meanwhile.
        await (
            HostHealth.filter(
                host__in={str(row["host"]) for row in rows}, consecutive_failures__gte=BREAKER_THRESHOLD
            )
            .using_db(conn)
            .update(backoff_until=until)
        )
    claims = [
        Claim(
            id=int(row["id"]),
            activity_id=int(row["activity_id"]),
            inbox_url=str(row["inbox_url"]),
            host=str(row["host"]),
            attempts=int(row["attempts"]),
            bypass_availability=bool(row["bypass_availability"]),
            claimed_until=until,
        )
        for row in rows
    ]
    return sorted(claims, key=lambda claim: claim.id)


# --- recording -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one claimed delivery; `record_outcomes` writes a batch of them."""

    delivery: Claim
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds
    unsafe: bool = False  # refused by the SSRF guard: permanent, not a host outage
    dropped: str | None = None  # not attempted (e.g. the local actor is gone): the reason
    scheme: str | None = None  # the signature scheme the host accepted


@dataclass(slots=True)
class _HostTally:
    reachable: int = 0
    failed: int = 0
    pause_until: datetime | None = None
    scheme: str | None = None


def _short(text: str | None, status: int | None) -> str | None:
    if text:
        return text[:500]
    return None if status is None or 200 <= status < 300 else f"HTTP {status}"


def _settle(attempt: Attempt, now: datetime) -> Outcome | None:
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


def _tally(attempts: Sequence[Attempt], now: datetime) -> tuple[dict[str, _HostTally], list[str]]:
    hosts: dict[str, _HostTally] = defaultdict(_HostTally)
    gone: list[str] = []
    for attempt in attempts:
        outcome = _settle(attempt, now)
        if outcome is None:
            continue
        tally = hosts[attempt.delivery.host]
        # No HTTP answer, 5xx, 401, 408: an outage. Any other answer (429 too) proves the host is up.
        if attempt.status is None or (outcome == "retry" and attempt.status != 429):
            tally.failed += 1
        else:
            tally.reachable += 1
            tally.scheme = attempt.scheme or tally.scheme
        if outcome == "gone":
            gone.append(attempt.delivery.inbox_url)
        if attempt.status in PAUSING_STATUSES and attempt.retry_after:
            pause = now + min(timedelta(seconds=attempt.retry_after), RETRY_AFTER_CAP)
            tally.pause_until = max(pause, tally.pause_until or pause)
    return hosts, gone


async def record_outcomes(attempts: Sequence[Attempt], now: datetime) -> None:
    """Write a batch of attempts: the rows, host health, gone inboxes; one transaction."""
    if not attempts:
        return
    now = now.astimezone(UTC)
    hosts, gone = _tally(attempts, now)
    rows = [attempt.delivery for attempt in attempts]
    async with in_transaction() as conn:
        await _write_rows(conn, rows, now)
        await _hosts_reached(conn, [h for h, t in hosts.items() if t.reachable], now)
        for scheme in {t.scheme for t in hosts.values() if t.reachable and t.scheme}:
            await (
                HostHealth.filter(
                    host__in=[h for h, t in hosts.items() if t.reachable and t.scheme == scheme]
                )
                .exclude(signature_scheme=scheme)
                .using_db(conn)
                .update(signature_scheme=scheme[:16])
            )
        for host, tally in sorted(hosts.items()):
            if (tally.failed and not tally.reachable) or tally.pause_until:
                await _host_trouble(conn, host, tally, now)
        for inbox_url in dict.fromkeys(gone):
            await handle_gone_inbox(inbox_url, now, using_db=conn)


async def _write_rows(conn: BaseDBAsyncClient, rows: list[Claim], now: datetime) -> None:
    """One UPDATE per distinct outcome (a batch of deliveries is mostly identical rows)."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, name) for name in _ROW_FIELDS)].append(row.id)
    for values, ids in groups.items():
        changes = dict(zip(_ROW_FIELDS, values, strict=True))
        if changes["next_attempt_at"] is None:  # not rescheduled
            del changes["next_attempt_at"]
        await Delivery.filter(id__in=ids).using_db(conn).update(**changes, claimed_until=None, updated_at=now)


async def record_success(
    delivery: Claim, now: datetime, *, status: int = 202, scheme: str | None = None
) -> None:
    """Record one delivered row (and that its host is up)."""
    await record_outcomes([Attempt(delivery, status=status, scheme=scheme)], now)


async def record_failure(
    delivery: Claim,
    now: datetime,
    *,
    status: int | None = None,
    error: str | None = None,
    retry_after: float | None = None,
    unsafe: bool = False,
) -> None:
    """Record one failed attempt: scheduled for retry or finished, and counted for its host."""
    await record_outcomes(
        [Attempt(delivery, status=status, error=error, retry_after=retry_after, unsafe=unsafe)], now
    )


_TROUBLED = Q(consecutive_failures__gt=0) | Q(unavailable=True)


async def _hosts_reached(conn: BaseDBAsyncClient, hosts: list[str], now: datetime) -> None:
    if not hosts:
        return
    troubled = (
        await HostHealth.filter(_TROUBLED, host__in=hosts).using_db(conn).values_list("host", flat=True)
    )
    await HostHealth.filter(host__in=hosts).using_db(conn).update(last_success_at=now)
    if troubled:
        await _reset_hosts(conn, [str(h) for h in troubled], now)


async def _reset_hosts(conn: BaseDBAsyncClient, hosts: list[str], now: datetime) -> None:
    """Clear failure days, the unavailable mark and the breaker; make pending rows due now."""
    await (
        HostHealth.filter(host__in=hosts)
        .using_db(conn)
        .update(failure_days=[], unavailable=False, consecutive_failures=0, backoff_until=None)
    )
    await (
        Delivery.filter(host__in=hosts, state="pending", next_attempt_at__gt=now)
        .using_db(conn)
        .update(next_attempt_at=now)
    )


async def _host_trouble(conn: BaseDBAsyncClient, host: str, tally: _HostTally, now: datetime) -> None:
    await HostHealth.bulk_create([HostHealth(host=host)], ignore_conflicts=True, using_db=conn)
    health = await HostHealth.filter(host=host).using_db(conn).select_for_update().get()
    became_unavailable = False
    if tally.failed and not tally.reachable:
        day = now.date().isoformat()
        days = sorted({str(d) for d in health.failure_days or []} | {day})
        health.failure_days = days[-2 * UNAVAILABLE_AFTER_DAYS :]
        health.consecutive_failures += tally.failed
        health.last_failure_at = now
        cooloff = breaker_cooloff(health.consecutive_failures)
        if cooloff is not None:  # replaces the probe's hold (claim_due) with the next window
            health.backoff_until = now + cooloff
        if not health.unavailable and len(days) >= UNAVAILABLE_AFTER_DAYS:
            health.unavailable = became_unavailable = True
    if tally.pause_until is not None:
        health.backoff_until = max(tally.pause_until, health.backoff_until or tally.pause_until)
    await health.save(using_db=conn)
    if became_unavailable:  # F2: what was queued is dropped (visible to admins), Follows excepted
        await (
            Delivery.filter(host=host, state="pending", bypass_availability=False)
            .using_db(conn)
            .update(state="dropped", claimed_until=None, last_error="host unavailable: failures on 7 days")
        )


async def handle_gone_inbox(
    inbox_url: str, now: datetime, *, using_db: BaseDBAsyncClient | None = None
) -> int:
    """An inbox answered 410 Gone: its remote owner is gone (protocol.md §4.5).

    Marks the remote actor(s) with that personal inbox deleted, deletes their Follows of our
    actors, and drops pending deliveries to that inbox. Returns the number of Follows deleted.
    """
    conn = using_db or connections.get("default")
    actor_ids = (
        await Actor.filter(inbox_url=inbox_url, local=False).using_db(conn).values_list("id", flat=True)
    )
    await (
        Delivery.filter(inbox_url=inbox_url, state="pending")
        .using_db(conn)
        .update(state="dropped", claimed_until=None, last_error="inbox answered 410 Gone")
    )
    if not actor_ids:
        return 0
    follow_ids = (
        await Follow.filter(follower_id__in=actor_ids, followee__local=True)
        .using_db(conn)
        .values_list("id", flat=True)
    )
    if follow_ids:
        await Follow.filter(id__in=follow_ids).using_db(conn).delete()
    await Actor.filter(id__in=actor_ids, deleted_at=None).using_db(conn).update(deleted_at=now)
    return len(follow_ids)


async def revive_host(host_or_url: str, *, now: datetime | None = None) -> bool:
    """A host proved it is up (e.g. a verified inbound activity): clear its failure record.

    Takes `host[:port]` (as in `Delivery.host`) or any URL on that host. Returns True when the
    host had been failing or unavailable; its pending deliveries then become due at once.
    Dropped rows are not replayed.
    """
    host = safe_host(host_or_url) if "://" in host_or_url else host_or_url.lower()
    if not host:
        return False
    now = (now or datetime.now(UTC)).astimezone(UTC)
    async with in_transaction() as conn:
        if not await HostHealth.filter(_TROUBLED, host=host).using_db(conn).exists():
            return False
        await _reset_hosts(conn, [host], now)
    return True


async def purge_finished(before: datetime) -> int:
    """Delete delivered/failed/dropped rows last touched before `before`; returns the count.

    Also forgets per-activity signing keys (key rotation) once nothing is left to send with them.
    """
    removed = await Delivery.filter(state__in=FINISHED_STATES, updated_at__lt=before).delete()
    keyed = await OutgoingActivity.filter(signing_key_pem__not_isnull=True).values_list("id", flat=True)
    if keyed:
        busy = await Delivery.filter(activity_id__in=keyed, state="pending").values_list(
            "activity_id", flat=True
        )
        done = set(keyed) - set(busy)
        if done:
            await OutgoingActivity.filter(id__in=done).update(signing_key_pem=None)
    return removed
