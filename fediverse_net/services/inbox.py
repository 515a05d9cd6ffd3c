"""Receiving activities: verify synchronously and persist (then 202), process later from the queue.

Flow (architecture.md B4): parse (400) → cheap drops → verify the HTTP signature (401) → signer
must be the actor (else 401, or refetch-from-origin for LD-signed forwards) → activity id on the
actor's origin (400) → insert an InboxItem whose activity id is unique (a replay is a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from tortoise.transactions import in_transaction

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
    """Authenticate and persist one inbox POST. Raises ProtocolError / SignatureError."""
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
    if kind == "Follow":  # follow spam: a budget per remote domain (ratelimit.RateLimited → 429)
        ratelimit.check(deps, "rate_limit_remote_follows", host_of(actor_id), what="follow requests")
    await _note_contact(deps, actor_id)
    row = InboxItem(
        activity_id=stored_id,
        actor_ap_id=actor_id,
        type=kind[:32],
        payload=activity,
        recipient=recipient,
        refetch=refetch,
        next_attempt_at=deps.clock(),
    )
    # Answered only once the row is committed (group commit: one transaction for many requests).
    if not await _writer(deps).write(row):
        return Accepted("duplicate", activity_id)
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


class InboxWriter:
    """Group commit of accepted InboxItems: one transaction per batch instead of one per request.

    `write` queues a row and returns once its batch is committed: True if inserted, False if its
    activity id was already stored. A failed transaction fails every request of the batch (none
    of its rows is written). Bound to the event loop it was created in.
    """

    MAX_ROWS = 64
    WINDOW = 0.002  # seconds a batch waits for company after its first row

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._pending: list[tuple[InboxItem, asyncio.Future[bool]]] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def write(self, row: InboxItem) -> bool:
        done: asyncio.Future[bool] = self.loop.create_future()
        self._pending.append((row, done))
        if len(self._pending) >= self.MAX_ROWS:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())
        return await done

    async def _run(self) -> None:
        while self._pending:
            if len(self._pending) < self.MAX_ROWS:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.WINDOW)
            batch, self._pending = self._pending[: self.MAX_ROWS], self._pending[self.MAX_ROWS :]
            self._full.clear()
            try:
                inserted = await insert_new([row for row, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):  # cancelled: fail whoever is still waiting
                    for _, done in self._pending:
                        if not done.done():
                            done.set_exception(exc)
                    self._pending = []
                    raise
                continue
            for (_, done), is_new in zip(batch, inserted, strict=True):
                if not done.done():
                    done.set_result(is_new)


async def insert_new(rows: list[InboxItem]) -> list[bool]:
    """Insert, in one transaction, the rows whose activity id is new; True for each row inserted."""
    async with in_transaction() as conn:
        ids = [row.activity_id for row in rows]
        stored = (
            await InboxItem.filter(activity_id__in=ids).using_db(conn).values_list("activity_id", flat=True)
        )
        seen = set(map(str, stored))
        fresh = []
        for row in rows:
            fresh.append(row.activity_id not in seen)
            seen.add(row.activity_id)
        if any(fresh):  # a concurrent writer (another process) may still win a race: ignore that row
            new = [row for row, is_new in zip(rows, fresh, strict=True) if is_new]
            await InboxItem.bulk_create(new, ignore_conflicts=True, using_db=conn)
    return fresh


def _writer(deps: Deps) -> InboxWriter:
    found = deps.caches.get("inbox_writer")
    if not isinstance(found, InboxWriter) or found.loop is not asyncio.get_running_loop():
        found = deps.caches["inbox_writer"] = InboxWriter()
    return found


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


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 4 ** (attempts - 1), 6 * 3600))
