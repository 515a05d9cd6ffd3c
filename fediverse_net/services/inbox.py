"""Receiving activities: verify synchronously and persist (then 202), process later from the queue.

Flow (architecture.md B4): parse (400) → cheap drops → verify the HTTP signature (401) → signer
must be the actor (else 401, or refetch-from-origin for LD-signed forwards) → activity id on the
actor's origin (400) → insert an InboxItem whose activity id is unique (a replay is a no-op).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from fediverse_net.activitypub.errors import ProtocolError, SignatureError
from fediverse_net.activitypub.parse import JSON, get_id, get_type, host_of, loads_object, same_origin
from fediverse_net.activitypub.signatures import RequestParts, verify_request
from fediverse_net.db.models import Actor, InboxItem
from fediverse_net.deps import Deps
from fediverse_net.logs import event
from fediverse_net.services import moderation, ratelimit
from fediverse_net.services.remote_actors import key_lookup

log = logging.getLogger("fediverse_net.federation")
# Types Mastodon forwards with an LD signature while signing the request itself: we then
# refetch the object from its origin instead of trusting the body (protocol §3.7).
REFETCHABLE = frozenset({"Create", "Update", "Delete", "Announce"})

# Follow and join spam: a budget per remote domain (settings name, what the 429 says).
PER_DOMAIN_BUDGETS: Final = {
    "Follow": ("rate_limit_remote_follows", "follow requests"),
    "Join": ("rate_limit_remote_joins", "join requests"),
}


@dataclass(frozen=True, slots=True)
class Accepted:
    status: str  # "queued" | "duplicate" | "ignored"
    activity_id: str | None = None


def _shape(activity: JSON) -> tuple[str, str, str]:
    activity_id = activity.get("id")
    kind = get_type(activity)
    actor_id = get_id(activity.get("actor"))
    if not isinstance(activity_id, str) or not activity_id.startswith(("https://", "http://")):
        raise ProtocolError("activity has no usable id")
    if kind is None:
        raise ProtocolError("activity has no type")
    if actor_id is None or not actor_id.startswith(("https://", "http://")):
        raise ProtocolError("activity has no usable actor")
    if len(activity_id) > 500 or len(actor_id) > 500:
        raise ProtocolError("id too long")
    return activity_id, kind, actor_id


async def accept_inbox_request(deps: Deps, parts: RequestParts, *, recipient: str | None) -> Accepted:
    """Authenticate and persist one inbox POST. Raises ProtocolError / SignatureError / Overloaded."""
    await check_queue_depth(deps)  # before any parsing or verifying: a full queue stores nothing
    activity = loads_object(parts.body)
    activity_id, kind, actor_id = _shape(activity)
    # Blocked domains (actor's or keyId's host) and suspended actors: 403 before any key fetch or
    # write (security matrix rows 21, 35).
    await moderation.check_inbound(deps, kind, actor_id, parts.headers)
    # Mastodon sends Delete{actor} for accounts we never saw: acknowledge without fetching
    # anything (security matrix row 39, protocol §9 item 32).
    if (
        kind == "Delete"
        and get_id(activity.get("object")) == actor_id
        and not await Actor.filter(ap_id=actor_id).exists()
    ):
        return Accepted("ignored")
    if deps.urls.is_local(actor_id):
        raise SignatureError("activities of local actors are not accepted over HTTP")
    verified = await verify_request(parts, key_lookup=key_lookup(deps), now=deps.clock())
    refetch = False
    if verified.owner != actor_id:
        if kind in REFETCHABLE and isinstance(activity.get("signature"), dict):
            refetch = True  # forwarded: processed only from what the origin serves
        else:
            raise SignatureError("the signer is not the activity's actor")
    if not same_origin(activity_id, actor_id):
        raise ProtocolError("activity id is not on the actor's origin")
    # A forwarder chose the id and the actor itself: it must never occupy the real activity's
    # id in the dedupe index, or a later genuine copy would be dropped as a duplicate.
    stored_id = f"{activity_id}#forwarded-by:{verified.owner}"[:512] if refetch else activity_id
    if (budget := PER_DOMAIN_BUDGETS.get(kind)) is not None:  # ratelimit.RateLimited → 429
        ratelimit.check(deps, budget[0], host_of(actor_id), what=budget[1])
    await _note_contact(deps, actor_id)
    row = NewItem(stored_id, actor_id, kind[:32], activity, recipient, refetch)
    # Answered only once the row is committed (group commit: one statement for many requests).
    if not await _writer(deps).write(row):
        return Accepted("duplicate", activity_id)
    _depth(deps).added += 1
    event(
        log,
        "inbox accepted",
        activity=activity_id,
        type=kind,
        actor=actor_id,
        signer=verified.key_id,
        scheme=verified.scheme,
    )
    wake = deps.caches.get("wake")
    if wake is not None:
        wake.set()
    return Accepted("queued", activity_id)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An accepted activity on its way into `inbox_items` (cheaper than building a model)."""

    activity_id: str
    actor_ap_id: str
    type: str
    payload: JSON
    recipient: str | None = None
    refetch: bool = False


class InboxWriter:
    """Group commit of accepted activities: one INSERT statement per batch instead of one
    transaction per request.

    `write` queues a row and returns once its batch is committed: True if inserted, False if its
    activity id was already stored. A failed statement fails every request of its batch (none of
    its rows is written). Bound to the event loop it was created in.

    A batch goes out once MAX_ROWS rows wait, or once every request still being accepted
    (`busy`, from the admission gate) is waiting here (waiting longer would only add latency),
    or after WINDOW at most. Up to PARALLEL batches (`parallel`) are written at once: on PostgreSQL a commit
    waits for its WAL flush, and the next batch forms meanwhile instead of queueing behind it.
    """

    MAX_ROWS = 64
    WINDOW = 0.002  # seconds a batch may wait for company after its first row
    PARALLEL = 2
    GATHER_IDLE_TURNS = 6  # loop turns without a new row that end the gathering

    def __init__(
        self,
        busy: Callable[[], int] | None = None,
        clock: Callable[[], datetime] | None = None,
        parallel: int | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._busy = busy
        self._clock = clock
        self._pending: list[tuple[NewItem, asyncio.Future[bool]]] = []
        self._committing = 0  # rows in batches being written
        self._slots = asyncio.Semaphore(parallel or self.PARALLEL)
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    def _complete(self) -> bool:
        if len(self._pending) >= self.MAX_ROWS:
            return True
        return self._busy is not None and len(self._pending) + self._committing >= self._busy()

    async def write(self, row: NewItem) -> bool:
        done: asyncio.Future[bool] = self.loop.create_future()
        self._pending.append((row, done))
        if self._complete():
            self._full.set()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())
        return await done

    async def _run(self) -> None:
        try:
            while self._pending:
                if not self._complete():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.WINDOW)
                await self._slots.acquire()
                await self._gather()
                batch, self._pending = self._pending[: self.MAX_ROWS], self._pending[self.MAX_ROWS :]
                self._full.clear()
                self._committing += len(batch)
                task = self.loop.create_task(self._commit(batch))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
        except BaseException as exc:  # cancelled: fail whoever is still waiting
            for _, done in self._pending:
                if not done.done():
                    done.set_exception(exc)
            self._pending = []
            raise

    async def _gather(self) -> None:
        """Let requests already received join the batch: a few event loop turns, no waiting.

        Under load the next requests sit in socket buffers; a turn reads them and the next runs
        them up to `write`. Turns continue while they bring rows (two empty turns in a row: done).
        Without this, batches stayed ~8 rows at c32 on one core and the per-statement cost of the
        database thread was a fifth of an inbox POST (benchmark B3).
        """
        idle = 0
        while idle < self.GATHER_IDLE_TURNS and len(self._pending) < self.MAX_ROWS:
            before = len(self._pending)
            await asyncio.sleep(0)
            idle = idle + 1 if len(self._pending) == before else 0

    async def _commit(self, batch: list[tuple[NewItem, asyncio.Future[bool]]]) -> None:
        try:
            now = self._clock() if self._clock is not None else None
            inserted = await insert_new([row for row, _ in batch], now=now)
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._committing -= len(batch)
            self._slots.release()
        for (_, done), is_new in zip(batch, inserted, strict=True):
            if not done.done():
                done.set_result(is_new)


_COLUMNS: Final = (
    "activity_id",
    "actor_ap_id",
    "type",
    "payload",
    "recipient",
    "refetch",
    "state",
    "attempts",
    "received_at",
    "next_attempt_at",
)


async def insert_new(rows: list[NewItem], *, now: datetime | None = None) -> list[bool]:
    """Insert the rows whose activity id is new, in ONE statement; True for each row inserted.

    `INSERT … ON CONFLICT DO NOTHING RETURNING` (SQLite ≥ 3.35, PostgreSQL) is atomic on its own
    and tells which ids went in: a row already stored, or a second copy in the same batch, is
    not returned. Raw SQL because the ORM's bulk insert (model instances, a SELECT for existing
    ids, a transaction around both) was most of benchmark B3's database cost.
    """
    if not rows:
        return []
    conn = InboxItem._meta.db
    field = InboxItem._meta.fields_map["next_attempt_at"]
    when = field.to_db_value(now or datetime.now(UTC), InboxItem)
    postgres = conn.capabilities.dialect == "postgres"
    width = len(_COLUMNS)
    values: list[Any] = []
    groups: list[str] = []
    for n, row in enumerate(rows):
        if postgres:
            groups.append("(" + ", ".join(f"${n * width + i + 1}" for i in range(width)) + ")")
        else:
            groups.append("(" + ", ".join("?" * width) + ")")
        values += [
            row.activity_id,
            row.actor_ap_id,
            row.type,
            orjson.dumps(row.payload).decode(),
            row.recipient,
            row.refetch,
            "pending",
            0,
            when,
            when,
        ]
    sql = (
        f"INSERT INTO inbox_items ({', '.join(_COLUMNS)}) VALUES {', '.join(groups)} "
        "ON CONFLICT (activity_id) DO NOTHING RETURNING activity_id"
    )
    returned = await conn.execute_query_dict(sql, values)
    new = {str(record["activity_id"]) for record in returned}
    fresh = []
    for row in rows:  # the first copy of an id in the batch is the one that went in
        fresh.append(row.activity_id in new)
        new.discard(row.activity_id)
    return fresh


def _writer(deps: Deps) -> InboxWriter:
    found = deps.caches.get("inbox_writer")
    if not isinstance(found, InboxWriter) or found.loop is not asyncio.get_running_loop():
        gate = admission_gate(deps)
        # SQLite has one connection behind one lock: a second batch would only queue for it,
        # formed early and small. One at a time, the next batch gathers everyone who arrived
        # meanwhile (B3: a third of the statements, less time in the database thread).
        parallel = 1 if InboxItem._meta.db.capabilities.dialect == "sqlite" else None
        found = deps.caches["inbox_writer"] = InboxWriter(
            busy=lambda: gate.active, clock=deps.clock, parallel=parallel
        )
    return found


# --- overload protection (security matrix F13) --------------------------------------------------------


class Overloaded(Exception):
    """The inbox is at capacity: answered 503 with Retry-After, nothing read or stored."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class AdmissionGate:
    """At most `limit` inbox requests in flight and `backlog` more waiting; beyond that, Overloaded.

    GoToSocial's shape (8 in flight + 64 backlog per CPU → 503 + Retry-After: 30). A boost storm
    then costs bounded memory and keeps the latency of the requests we do accept; senders retry.
    Per process and per event loop.
    """

    def __init__(self, limit: int, backlog: int, retry_after: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = max(1, limit)
        self.backlog = max(0, backlog)
        self.retry_after = retry_after
        self.active = 0  # requests holding a slot
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        if len(self.waiting) >= self.backlog:
            raise Overloaded("the inbox is busy, retry later", self.retry_after)
        turn: asyncio.Future[None] = self.loop.create_future()
        self.waiting.append(turn)
        try:
            await turn  # the slot is handed over by release(): `active` already counts us
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            elif turn in self.waiting:
                self.waiting.remove(turn)
            raise

    def release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot moves to the next waiter, `active` unchanged
                return
        self.active -= 1


def admission_gate(deps: Deps) -> AdmissionGate:
    found = deps.caches.get("inbox_gate")
    if not isinstance(found, AdmissionGate) or found.loop is not asyncio.get_running_loop():
        settings = deps.settings
        found = deps.caches["inbox_gate"] = AdmissionGate(
            settings.inbox_max_in_flight, settings.inbox_max_backlog, settings.inbox_retry_after
        )
    return found


class QueueDepth:
    """How many stored activities wait for processing, counted at most every REFRESH seconds.

    Between counts the rows this process stored are added, so the estimate only errs high. The
    count stops at the cap (`LIMIT`), so it stays cheap however long the queue is.
    """

    REFRESH = 1.0

    def __init__(self) -> None:
        self.counted = 0
        self.added = 0
        self.at = -math.inf
        self._loading: asyncio.Task[None] | None = None

    async def current(self, cap: int) -> int:
        if time.monotonic() - self.at >= self.REFRESH:
            task = self._loading
            if task is None:  # one count at a time, in its own task (callers may go away)
                task = self._loading = asyncio.get_running_loop().create_task(self._count(cap))
            await asyncio.shield(task)
        return self.counted + self.added

    async def _count(self, cap: int) -> None:
        started = time.monotonic()
        try:
            self.counted = await _count_pending(cap + 1)
            self.added, self.at = 0, started
        finally:
            self._loading = None

    def forget(self) -> None:
        self.at = -math.inf


async def _count_pending(limit: int) -> int:
    conn = InboxItem._meta.db
    sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM inbox_items WHERE state = 'pending' LIMIT {int(limit)}) AS q"
    _, rows = await conn.execute_query(sql)
    return int(rows[0][0])


def _depth(deps: Deps) -> QueueDepth:
    found = deps.caches.get("inbox_depth")
    if not isinstance(found, QueueDepth):
        found = deps.caches["inbox_depth"] = QueueDepth()
    return found


def queue_changed(deps: Deps) -> None:
    """The inbox worker took rows off the queue: while POSTs are being refused, count again at
    the next one (otherwise the periodic count is soon enough, and cheaper on a long queue)."""
    depth = _depth(deps)
    cap = deps.settings.inbox_max_pending
    if cap > 0 and depth.counted + depth.added >= cap:
        depth.forget()


async def check_queue_depth(deps: Deps) -> None:
    """Overloaded once `inbox_max_pending` activities (or more) wait to be processed (0: no bound)."""
    cap = deps.settings.inbox_max_pending
    if cap > 0 and await _depth(deps).current(cap) >= cap:
        raise Overloaded("the inbox queue is full, retry later", deps.settings.inbox_retry_after)


async def _note_contact(deps: Deps, actor_id: str) -> None:
    """A verified activity from a host revives its delivery health (protocol §4.5)."""
    from fediverse_net.services.deliveries import revive_host

    # Checked at most once a minute per host: a transaction per inbox POST would dominate.
    seen = deps.cache("hosts_contacted", 60.0)
    host = host_of(actor_id)
    if seen.get(host) is None:
        await revive_host(host)
        seen.put(host, True)


MAX_ATTEMPTS = 5


def inbox_retry_delay(attempts: int) -> timedelta:
    """How long a failed inbox item waits before its next try (30 s, 2 min, 8 min, 32 min)."""
    return timedelta(seconds=min(30 * 4 ** (attempts - 1), 6 * 3600))
