"""Inbox worker: applies stored activities in arrival order, at least once.

Rows are claimed with a lease (`claimed_until`): on PostgreSQL several workers skip each other's
rows (`FOR UPDATE SKIP LOCKED`); a worker killed mid-item leaves a lease that simply expires.

Each actor's activities apply in arrival order, also across failures: while an actor has an
item waiting for its retry, none of its later items is claimed (a Follow before its Undo, a
Create before its Delete), until that item succeeds or is given up (state `failed`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from fediverse_net.activitypub.errors import FederationError
from fediverse_net.db.models import InboxItem
from fediverse_net.deps import Deps
from fediverse_net.services.handlers import process_inbox_item
from fediverse_net.services.handlers.context import Batch, preload
from fediverse_net.services.inbox import MAX_ATTEMPTS, inbox_retry_delay, queue_changed

log = logging.getLogger("fediverse_net.workers")
BATCH = 100
CONCURRENCY = 8  # items applied at once (each actor's in arrival order)
LEASE = timedelta(minutes=5)


async def claim(deps: Deps, limit: int = BATCH) -> list[InboxItem]:
    now = deps.clock()
    # Actors with an item waiting for a retry: their later items wait behind it.
    waiting = InboxItem.filter(state="pending", next_attempt_at__gt=now).values("actor_ap_id")
    async with in_transaction() as conn:
        query = InboxItem.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            state="pending",
            next_attempt_at__lte=now,
        ).exclude(actor_ap_id__in=Subquery(waiting))
        rows = await query.order_by("id").limit(limit).select_for_update(skip_locked=True).using_db(conn)
        if rows:
            await (
                InboxItem.filter(id__in=[r.id for r in rows]).using_db(conn).update(claimed_until=now + LEASE)
            )
    return list(rows)


class _DoneMarks:
    """Marks processed items done in batches: one UPDATE for whatever finished meanwhile.

    A mark is written as soon as the previous one is through (no timer), so a crash loses at
    most the marks of one round trip: those items are applied again (handlers are idempotent).
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.ids: list[int] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, ids: list[int]) -> None:
        self.ids += ids
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.ids:
            await asyncio.sleep(0)  # let the groups finishing now join this UPDATE
            ids, self.ids = self.ids, []
            await InboxItem.filter(id__in=ids).update(
                state="done", processed_at=self.deps.clock(), claimed_until=None, error=None
            )

    async def wait(self) -> None:
        while self.task is not None and not self.task.done():
            await self.task
        if self.task is not None:
            self.task.result()  # a failed UPDATE fails the step (the leases expire: retried)


async def step(deps: Deps) -> int:
    items = await claim(deps)
    if not items:
        return 0
    batch = await preload(deps, items)
    # Different actors' items run concurrently (a few at a time); one actor's stay in order.
    by_actor: dict[str, list[InboxItem]] = {}
    for item in items:
        by_actor.setdefault(item.actor_ap_id, []).append(item)
    slots = asyncio.Semaphore(CONCURRENCY)
    marks = _DoneMarks(deps)

    async def run(group: list[InboxItem]) -> None:
        async with slots:
            done: list[int] = []
            for n, item in enumerate(group):
                if not await _process(deps, item, batch):
                    # Keep this actor's order: its later items go back to the queue, where
                    # `claim` holds them until the failed one is through.
                    rest = [later.id for later in group[n + 1 :]]
                    if rest:
                        await InboxItem.filter(id__in=rest).update(claimed_until=None)
                    break
                done.append(item.id)
            if done:
                marks.add(done)

    try:
        await asyncio.gather(*(run(group) for group in by_actor.values()))
    finally:
        await marks.wait()
    queue_changed(deps)
    return len(items)


async def _process(deps: Deps, item: InboxItem, batch: Batch) -> bool:
    """Apply one item; True when done, False when its failure was recorded for a retry."""
    try:
        await process_inbox_item(deps, item, batch)
    except (FederationError, OSError) as exc:
        await _failed(deps, item, exc)
        return False
    except Exception as exc:  # a bug must not wedge the queue: record it on the row
        log.exception("inbox item failed", extra={"fields": {"activity": item.activity_id}})
        await _failed(deps, item, exc)
        return False
    finally:
        batch.applied(item)
    return True


async def _failed(deps: Deps, item: InboxItem, exc: Exception) -> None:
    attempts = item.attempts + 1
    message = f"{type(exc).__name__}: {exc}"[:500]
    if attempts >= MAX_ATTEMPTS:  # given up: the actor's later items are no longer held
        await InboxItem.filter(id=item.id).update(
            state="failed", attempts=attempts, error=message, claimed_until=None
        )
        return
    await InboxItem.filter(id=item.id).update(
        attempts=attempts,
        error=message,
        claimed_until=None,
        next_attempt_at=deps.clock() + inbox_retry_delay(attempts),
    )
