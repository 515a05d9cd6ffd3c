"""Inbox worker: applies stored activities in arrival order, at least once.

Rows are claimed with a lease (`claimed_until`): on PostgreSQL several workers skip each other's
rows (`FOR UPDATE SKIP LOCKED`); a worker killed mid-item leaves a lease that simply expires.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from fediverse_net.activitypub.errors import FederationError
from fediverse_net.db.models import InboxItem
from fediverse_net.deps import Deps
from fediverse_net.services.handlers import process_inbox_item
from fediverse_net.services.inbox import MAX_ATTEMPTS, retry_delay

log = logging.getLogger("fediverse_net.workers")
BATCH = 100
CONCURRENCY = 8  # items applied at once (each actor's in arrival order)
LEASE = timedelta(minutes=5)


async def claim(deps: Deps, limit: int = BATCH) -> list[InboxItem]:
    now = deps.clock()
    async with in_transaction() as conn:
        query = InboxItem.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            state="pending",
            next_attempt_at__lte=now,
        )
        rows = await query.order_by("id").limit(limit).select_for_update(skip_locked=True).using_db(conn)
        if rows:
            await (
                InboxItem.filter(id__in=[r.id for r in rows]).using_db(conn).update(claimed_until=now + LEASE)
            )
    return list(rows)


async def step(deps: Deps) -> int:
    items = await claim(deps)
    # Different actors' items run concurrently (a few at a time); one actor's stay in order.
    by_actor: dict[str, list[InboxItem]] = {}
    for item in items:
        by_actor.setdefault(item.actor_ap_id, []).append(item)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(group: list[InboxItem]) -> None:
        async with slots:
            done: list[int] = []
            for item in group:
                if not await _process(deps, item):
                    # Keep this actor's order: its later items wait for their lease to expire,
                    # after the failed one's (shorter) retry delay (a Follow before its Undo).
                    break
                done.append(item.id)
            if done:  # one UPDATE per actor group, as soon as the group is through
                await InboxItem.filter(id__in=done).update(
                    state="done", processed_at=deps.clock(), claimed_until=None, error=None
                )

    await asyncio.gather(*(run(group) for group in by_actor.values()))
    return len(items)


async def _process(deps: Deps, item: InboxItem) -> bool:
    """Apply one item; True when done, False when its failure was recorded for a retry."""
    try:
        await process_inbox_item(deps, item)
    except (FederationError, OSError) as exc:
        await _failed(deps, item, exc)
        return False
    except Exception as exc:  # a bug must not wedge the queue: record it on the row
        log.exception("inbox item failed", extra={"fields": {"activity": item.activity_id}})
        await _failed(deps, item, exc)
        return False
    return True


async def _failed(deps: Deps, item: InboxItem, exc: Exception) -> None:
    attempts = item.attempts + 1
    message = f"{type(exc).__name__}: {exc}"[:500]
    if attempts >= MAX_ATTEMPTS:
        await InboxItem.filter(id=item.id).update(
            state="failed", attempts=attempts, error=message, claimed_until=None
        )
        return
    await InboxItem.filter(id=item.id).update(
        attempts=attempts,
        error=message,
        claimed_until=None,
        next_attempt_at=deps.clock() + retry_delay(attempts),
    )
