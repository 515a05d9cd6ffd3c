"""Delivery worker: POSTs due `Delivery` rows to remote inboxes, at least once.

`step(deps)` is pipelined rather than batch-and-wait, so a slow host never holds up the others
(benchmarks B6, B8): it tops up a pool of in-flight POSTs (kept on `deps.caches`) with newly
claimed rows, waits until some finish (at most `POLL` seconds), and records what finished in one
transaction. Rows stay leased (`claimed_until`) while in flight; a worker that dies leaves leases
that expire, and the rows are claimed and sent again (at-least-once; receivers dedupe by id).

Per batch each activity's JSON is encoded once and each actor's key parsed once (`load_private_key`
caches); the client signs once per inbox and enforces the per-host and global concurrency limits.
Rows whose local actor is deleted or suspended are dropped, except `Delete`s (an account deletion
must still reach followers). One bad row never fails the step: its error is recorded on the row.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from fediverse_net.activitypub.documents import key_id_of
from fediverse_net.activitypub.errors import UnsafeURL
from fediverse_net.activitypub.keys import SigningKey, load_private_key
from fediverse_net.db.models import Actor, OutgoingActivity
from fediverse_net.deps import Deps
from fediverse_net.services.deliveries.claims import claim_due
from fediverse_net.services.deliveries.policy import Attempt, Claim
from fediverse_net.services.deliveries.records import purge_finished, record_outcomes

log = logging.getLogger("fediverse_net.workers.delivery")

CAPACITY: Final = 256  # POSTs in flight per process (the client runs ≤ global_limit at once)
LOW_WATER: Final = 32  # claim again once this many slots are free (fewer, larger claims)
LEASE: Final = timedelta(minutes=5)
ATTEMPT_DEADLINE: Final = 240.0  # s; a safety net above the client's own 30 s deadline, below LEASE
POLL: Final = 1.0  # s to wait for a finished POST before returning (so new rows are seen)
COALESCE: Final = 0.02  # s to gather more finished POSTs into one write
PURGE_EVERY: Final = timedelta(hours=1)
KEEP_FINISHED: Final = timedelta(days=14)
STATE_KEY: Final = "delivery_inflight"
# A deleted or suspended actor's last words still go out: its Delete, and the Update that
# tells other servers about a suspension.
ALLOWED_WHEN_GONE: Final = frozenset({"Delete", "Update"})


class Poster(Protocol):
    """The part of `FederationClient` this worker uses."""

    async def post_activity(self, inbox_url: str, body: bytes, *, sign_as: SigningKey) -> Any: ...


@dataclass(slots=True)
class _InFlight:
    tasks: dict[asyncio.Task[Attempt], str] = field(default_factory=dict)  # task -> host

    def saturated(self, per_host: int) -> set[str]:
        return {host for host, n in Counter(self.tasks.values()).items() if n >= per_host}


@dataclass(frozen=True, slots=True)
class _Job:
    delivery: Claim
    body: bytes
    key: SigningKey


def _flight(deps: Deps) -> _InFlight:
    state = deps.caches.get(STATE_KEY)
    if not isinstance(state, _InFlight):
        state = deps.caches[STATE_KEY] = _InFlight()
    return state


async def step(deps: Deps) -> int:
    """Start due deliveries, record the ones that finished; 0 means idle (nothing due or in flight)."""
    client: Poster = deps.http()
    flight = _flight(deps)
    dropped = await _top_up(deps, client, flight)
    finished = await _collect(flight)
    await record_outcomes(dropped + finished, deps.clock())
    await _purge_now_and_then(deps)
    return len(dropped) + len(finished) or len(flight.tasks)


async def run_until_idle(deps: Deps, *, max_steps: int = 1000) -> int:
    """Step until nothing is due and nothing is in flight (tests, `worker --once`)."""
    total = 0
    for _ in range(max_steps):
        done = await step(deps)
        total += done
        if done == 0:
            break
    return total


async def shutdown(deps: Deps, *, grace: float = 0.0) -> int:
    """Stop: let in-flight POSTs finish for up to `grace` seconds and record them; cancel the rest
    (their leases expire and they are sent again later). Returns how many were recorded."""
    flight = _flight(deps)
    tasks = list(flight.tasks)
    flight.tasks.clear()
    if tasks and grace > 0:
        await asyncio.wait(tasks, timeout=grace)
    finished = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await record_outcomes(finished, deps.clock())
    return len(finished)


async def _top_up(deps: Deps, client: Poster, flight: _InFlight) -> list[Attempt]:
    free = CAPACITY - len(flight.tasks)
    if free < LOW_WATER and flight.tasks:
        return []
    per_host = 2 * deps.settings.delivery_per_host
    rows = await claim_due(
        free, deps.clock(), LEASE, per_host=per_host, exclude_hosts=flight.saturated(per_host)
    )
    if not rows:
        return []
    jobs, dropped = await _prepare(rows)
    for job in jobs:
        task = asyncio.create_task(_attempt(client, job), name=f"deliver {job.delivery.id}")
        flight.tasks[task] = job.delivery.host
    return dropped


async def _prepare(rows: list[Claim]) -> tuple[list[_Job], list[Attempt]]:
    """Body bytes per activity and signing key per actor, loaded once for the batch."""
    activities = {
        a["id"]: a
        for a in await OutgoingActivity.filter(id__in={r.activity_id for r in rows}).values(
            "id", "actor_id", "type", "body", "signing_key_pem"
        )
    }
    actors = {
        a["id"]: a
        for a in await Actor.filter(id__in={a["actor_id"] for a in activities.values()}).values(
            "id", "ap_id", "local", "private_key_pem", "deleted_at", "suspended"
        )
    }
    bodies: dict[int, bytes] = {}
    keys: dict[tuple[int, str | None], SigningKey | str] = {}
    jobs: list[_Job] = []
    dropped: list[Attempt] = []
    for row in rows:
        activity = activities.get(row.activity_id)
        actor = actors.get(activity["actor_id"]) if activity else None
        if activity is None or actor is None:
            dropped.append(Attempt(row, dropped="activity or actor no longer exists"))
            continue
        if activity["type"] not in ALLOWED_WHEN_GONE and (actor["deleted_at"] or actor["suspended"]):
            dropped.append(Attempt(row, dropped="the sending actor is deleted or suspended"))
            continue
        slot = (actor["id"], activity["signing_key_pem"])
        if slot not in keys:
            keys[slot] = _signing_key(actor, activity["signing_key_pem"])
        key = keys[slot]
        if isinstance(key, str):
            dropped.append(Attempt(row, dropped=key))
            continue
        if row.activity_id not in bodies:
            bodies[row.activity_id] = str(activity["body"]).encode()
        jobs.append(_Job(row, bodies[row.activity_id], key))
    return jobs, dropped


def _signing_key(actor: dict[str, Any], override_pem: str | None) -> SigningKey | str:
    """The actor's signing key (or the activity's own, e.g. the old key after a rotation), or why
    there is none."""
    pem = override_pem or actor["private_key_pem"]
    if not actor["local"] or not pem:
        return "the sending actor has no private key"
    try:
        return SigningKey(key_id_of(actor["ap_id"]), load_private_key(pem))
    except (ValueError, TypeError) as exc:
        return f"unusable private key: {exc}"[:200]


async def _attempt(client: Poster, job: _Job) -> Attempt:
    row = job.delivery
    try:
        async with asyncio.timeout(ATTEMPT_DEADLINE):
            result = await client.post_activity(row.inbox_url, job.body, sign_as=job.key)
    except UnsafeURL as exc:
        return Attempt(row, error=f"unsafe-url: {exc}", unsafe=True)
    except TimeoutError:
        return Attempt(row, error=f"timeout: no result within {ATTEMPT_DEADLINE:g} s")
    except Exception as exc:  # the client should not raise; never let one row break the batch
        log.warning("delivery raised", exc_info=True, extra={"fields": {"inbox": row.inbox_url}})
        return Attempt(row, error=f"{type(exc).__name__}: {exc}")
    return Attempt(
        row,
        status=result.status,
        error=result.error,
        retry_after=result.retry_after,
        scheme=getattr(result, "scheme_used", None),
    )


async def _collect(flight: _InFlight) -> list[Attempt]:
    if not flight.tasks:
        return []
    done, pending = await asyncio.wait(flight.tasks, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
    if done and pending:
        more, _ = await asyncio.wait(pending, timeout=COALESCE)
        done |= more
    finished: list[Attempt] = []
    for task in done:
        # Another step() on the same deps may already have taken it.
        if flight.tasks.pop(task, None) is not None and not task.cancelled():
            finished.append(task.result())
    return finished


async def _purge_now_and_then(deps: Deps) -> None:
    now: datetime = deps.clock()
    last = deps.caches.get("delivery_purged_at")
    if isinstance(last, datetime) and now - last < PURGE_EVERY:
        return
    deps.caches["delivery_purged_at"] = now
    removed = await purge_finished(now - KEEP_FINISHED)
    if removed:
        log.info("purged finished deliveries", extra={"fields": {"rows": removed}})
