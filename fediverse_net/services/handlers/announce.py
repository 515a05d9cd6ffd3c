"""Incoming Announce from a remote group one of ours follows or belongs to (FEP-1b12, §5.11).

Both forms are understood: `Announce{object id}` and `Announce{Create{…}}`. The signer is the
group, the inner object is someone else's: it is never trusted inline (§6.3) but fetched from its
origin, unless it is one of our own notes. Boosts by people are not handled (yet).
"""

from __future__ import annotations

from fediverse_net.activitypub.errors import FetchError, ProtocolError, UnsafeURL
from fediverse_net.activitypub.parse import get_id, get_type, same_origin
from fediverse_net.db.models import Note, Tombstone
from fediverse_net.services.errors import NotFound
from fediverse_net.services.groups import posting
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.notes import NOTE_TYPES, store_remote_note
from fediverse_net.services.remote_actors import instance_signing_key, resolve_actor


def _announced_object_id(inc: Incoming) -> str | None:
    obj = inc.activity.get("object")
    if isinstance(obj, dict) and get_type(obj) == "Create":
        return get_id(obj.get("object"))
    if isinstance(obj, dict) and get_type(obj) not in NOTE_TYPES:
        return None  # Announce{Like|Delete|Update|…}: not shown (yet)
    return get_id(obj)


async def _note(inc: Incoming, object_id: str) -> Note | None:
    note = await Note.filter(ap_id=object_id).first()
    if note is not None or inc.is_local_id(object_id):
        return note
    if await Tombstone.filter(ap_id=object_id).exists():
        return None
    try:
        key = await instance_signing_key(inc.deps)
        document = await inc.deps.http().fetch_object(object_id, sign_as=key)
    except (FetchError, ProtocolError, UnsafeURL):
        return None
    author_id = get_id(document.get("attributedTo"))
    if get_type(document) not in NOTE_TYPES or not author_id or not same_origin(author_id, object_id):
        return None
    try:
        author = await resolve_actor(inc.deps, author_id)
    except NotFound:
        return None
    return await store_remote_note(inc.deps, author, document)


async def handle(inc: Incoming) -> None:
    if inc.local or inc.actor.type != "Group" or inc.item.refetch:
        return  # a forwarded Announce proves nothing about what the group shared
    if not await posting.cares_about(inc.actor):
        return
    object_id = _announced_object_id(inc)
    if not object_id:
        return
    note = await _note(inc, object_id)
    if note is not None:
        await posting.record_shared(inc.actor, note)
