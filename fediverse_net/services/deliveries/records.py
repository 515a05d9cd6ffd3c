"""Recording outcomes and host health: the database side of the retry policy (`policy`).

* `record_outcomes` writes a batch of attempts in one transaction: the rows (one UPDATE per
  distinct outcome), host health, and the inboxes that answered 410 Gone.
* Per host (`HostHealth`): every counted failure adds today's UTC date to `failure_days`; seven
  distinct days without a success mark the host unavailable (its pending rows are dropped, except
  Follow requests). The circuit breaker (`policy.breaker_cooloff`) skips the host after 10
  failures in a row, with at most one probe per window (`claims.claim_due`). A success, any HTTP
  answer that proves the host is up (4xx, 410), or `revive_host` (a verified inbound activity)
  clears all of it and makes the host's pending rows due at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from fediverse_net.db.models import Actor, Delivery, Follow, HostHealth, OutgoingActivity
from fediverse_net.services.deliveries.policy import (
    UNAVAILABLE_AFTER_DAYS,
    Attempt,
    Claim,
    HostTally,
    breaker_cooloff,
    settle_batch,
)
from fediverse_net.services.recipients import safe_host

FINISHED_STATES: Final = ("delivered", "failed", "dropped")
_ROW_FIELDS: Final = ("state", "attempts", "next_attempt_at", "last_status", "last_error")


async def record_outcomes(attempts: Sequence[Attempt], now: datetime) -> None:
    """Write a batch of attempts: the rows, host health, gone inboxes; one transaction."""
    if not attempts:
        return
    now = now.astimezone(UTC)
    hosts, gone = settle_batch(attempts, now)
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


async def _host_trouble(conn: BaseDBAsyncClient, host: str, tally: HostTally, now: datetime) -> None:
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
