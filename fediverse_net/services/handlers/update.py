"""Incoming Update: of the actor itself (profile, key rotation — protocol §5.10) or of its note."""

from __future__ import annotations

from fediverse_net.activitypub.actors import parse_actor
from fediverse_net.activitypub.errors import ProtocolError
from fediverse_net.activitypub.parse import get_id, get_type
from fediverse_net.activitypub.vocab import ACTOR_TYPES
from fediverse_net.services.groups.posting import relay_author_change
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.handlers.create import trusted_object
from fediverse_net.services.notes import NOTE_TYPES, update_remote_note
from fediverse_net.services.remote_actors import resolve_actor, upsert_remote_actor


async def handle(inc: Incoming) -> None:
    if inc.local:
        return
    obj = inc.activity.get("object")
    if get_id(obj) == inc.actor.ap_id and get_type(obj) in ACTOR_TYPES:
        if inc.item.refetch or not isinstance(obj, dict):
            await resolve_actor(inc.deps, inc.actor.ap_id, refresh=True)
            return
        # Signed by the actor with the key we knew: the embedded document is authoritative,
        # new keys included (that is how rotation is announced, §3.6).
        try:
            await upsert_remote_actor(inc.deps, parse_actor(obj, expected_id=inc.actor.ap_id))
        except ProtocolError:
            return
        return
    document = await trusted_object(inc)
    if (
        document is not None
        and get_type(document) in NOTE_TYPES
        and get_id(document.get("attributedTo")) == inc.actor.ap_id
    ):
        note = await update_remote_note(inc.actor, document)
        if note is not None and not inc.item.refetch:
            # Our groups carrying it pass the edit on (FEP-1b12 Announce{Update}).
            await relay_author_change(inc.deps, note, inc.activity, as_received=True)
