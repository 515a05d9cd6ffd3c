"""The transactional outbox: an outgoing activity and its delivery rows are written together.

`record_outgoing` stores the activity's JSON once (`OutgoingActivity.body`, the exact bytes every
inbox receives) and one `Delivery` row per remote inbox, in one transaction with whatever the
caller is writing (a post, a follow): either both exist or neither (architecture B3.3, security
matrix F5). The delivery worker (`workers/delivery.py`) sends them afterwards.

Local recipients are not sent over HTTP: the activity becomes an `InboxItem`, the same durable row
a verified remote activity becomes, and the inbox worker applies it.

Waking the workers: if `deps.caches["wake"]` holds an `asyncio.Event` (the composition root puts
`WorkerRunner.wake` there), it is set after the write so delivery starts at once instead of at
the next poll. Inside a caller's outer transaction the rows only become visible at its commit;
the worker then finds them at its next poll (at most `idle_sleep` later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from fediverse_net.activitypub.keys import load_private_key
from fediverse_net.activitypub.parse import as_list, get_id
from fediverse_net.activitypub.vocab import is_public
from fediverse_net.db.models import Actor, Delivery, InboxItem, OutgoingActivity
from fediverse_net.deps import Deps
from fediverse_net.services import moderation
from fediverse_net.services.recipients import (
    bypasses_availability,
    filter_available,
    inbox_urls,
    safe_host,
    uses_personal_inbox,
)

BLIND_FIELDS: Final = ("bto", "bcc")
BULK_BATCH: Final = 1000


def without_blind_recipients(activity: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without `bto`/`bcc`, on the activity and on an embedded object (§4.1, checklist 34)."""
    wire = {key: value for key, value in activity.items() if key not in BLIND_FIELDS}
    inner = wire.get("object")
    if isinstance(inner, Mapping) and any(key in inner for key in BLIND_FIELDS):
        wire["object"] = {key: value for key, value in inner.items() if key not in BLIND_FIELDS}
    return wire


def is_public_activity(activity: Mapping[str, Any]) -> bool:
    """`as:Public` in the activity's (or its object's) `to`/`cc`."""
    inner = activity.get("object")
    for document in (activity, inner if isinstance(inner, Mapping) else {}):
        if any(is_public(address) for key in ("to", "cc") for address in as_list(document.get(key))):
            return True
    return False


def wake_workers(deps: Deps) -> None:
    """Set `deps.caches["wake"]` (an asyncio.Event) so an idle worker polls now."""
    event = deps.caches.get("wake")
    if isinstance(event, asyncio.Event):
        event.set()


@contextlib.asynccontextmanager
async def _transaction(connection: BaseDBAsyncClient | None) -> AsyncIterator[BaseDBAsyncClient]:
    # Inside a caller's transaction tortoise nests a savepoint on the same connection, so our rows
    # commit or roll back with the caller's; `connection` makes that explicit.
    context = in_transaction() if connection is None else connection._in_transaction()
    async with context as conn:
        yield conn


async def _remote_inboxes(
    deps: Deps, remote: list[Actor], inboxes: Iterable[str], *, personal: bool, bypass: bool
) -> list[str]:
    urls = inbox_urls(remote, personal=personal) + [url for url in inboxes if url]
    ours = deps.urls
    available = await filter_available(
        [url for url in urls if not ours.is_local(url)], bypass_availability=bypass
    )
    # Nothing goes to a suspended domain (Mastodon: no delivery to suspended instances).
    return [url for url in available if not await moderation.is_suspended_domain(deps, url)]


async def record_outgoing(
    deps: Deps,
    *,
    actor: Actor,
    activity: Mapping[str, Any],
    recipients: Iterable[Actor],
    personal: bool = False,
    bypass_availability: bool = False,
    inboxes: Iterable[str] = (),
    signing_key_pem: str | None = None,
    connection: BaseDBAsyncClient | None = None,
) -> OutgoingActivity:
    """Store `activity` (sent by local `actor`) and a delivery row per remote inbox, atomically.

    * `recipients`: actors to deliver to. Remote ones are mapped to shared inboxes (personal
      inboxes for Follow, Accept/Reject, Undo{Follow|Like|Block}, Like, Block, Flag, or when
      `personal`), de-duplicated, minus unavailable hosts (unless `bypass_availability`, implied
      for Follow). Local ones (other than `actor`) get one `InboxItem`, processed in-process.
    * `inboxes`: extra inbox URLs already expanded (e.g. `recipients.follower_inboxes`), for
      fan-outs too big to load as actors; they are filtered the same way.
    * `bto`/`bcc` are stripped before the JSON is stored; the JSON is serialised once.
    * `signing_key_pem`: sign with this private key (same key id) instead of the actor's current
      one; key rotation signs the announcing `Update` with the old key (§3.6).
    * `connection`: the caller's transaction, if any (nested savepoint; joining also happens
      automatically when called inside `in_transaction()`).

    Raises ValueError if the activity has no `id`, names another actor than `actor`, or
    `signing_key_pem` is not a usable RSA key.
    """
    ap_id = activity.get("id")
    if not isinstance(ap_id, str) or not ap_id:
        raise ValueError("an outgoing activity needs an id")
    if not actor.local or ("actor" in activity and get_id(activity["actor"]) != actor.ap_id):
        raise ValueError("the activity must be sent by the local actor that signs it")
    if signing_key_pem is not None:
        load_private_key(signing_key_pem)  # fail now, not in the worker
    kind = str(activity.get("type") or "")[:32]
    everyone = list(recipients)
    local = list({r.ap_id: r for r in everyone if r.local and r.ap_id != actor.ap_id}.values())
    bypass = bypass_availability or bypasses_availability(activity)
    urls = await _remote_inboxes(
        deps,
        [r for r in everyone if not r.local],
        inboxes,
        personal=personal or uses_personal_inbox(activity),
        bypass=bypass,
    )
    wire = without_blind_recipients(activity)
    body = orjson.dumps(wire).decode()
    now = deps.clock()
    async with _transaction(connection) as conn:
        outgoing = await OutgoingActivity.create(
            ap_id=ap_id,
            type=kind,
            actor=actor,
            body=body,
            public=is_public_activity(wire),
            signing_key_pem=signing_key_pem,
            using_db=conn,
        )
        # `activity_id`, not `activity=`: the relation setter is the larger part of building the
        # rows of a big fan-out (benchmark B7).
        deliveries = [
            Delivery(
                activity_id=outgoing.id,
                inbox_url=url,
                host=safe_host(url),
                next_attempt_at=now,
                bypass_availability=bypass,
            )
            for url in urls
        ]
        if deliveries:
            await Delivery.bulk_create(deliveries, batch_size=BULK_BATCH, using_db=conn)
        if local:
            item = InboxItem(
                activity_id=ap_id,
                actor_ap_id=actor.ap_id,
                type=kind,
                payload=wire,
                recipient=local[0].ap_id if len(local) == 1 else None,
                next_attempt_at=now,
            )
            await InboxItem.bulk_create([item], ignore_conflicts=True, using_db=conn)
    wake_workers(deps)
    return outgoing
