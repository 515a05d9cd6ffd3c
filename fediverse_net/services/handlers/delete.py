"""Incoming Delete: of the actor itself, or of one of its notes (protocol §5.4; matrix row 16).

Only the owner deletes; a Delete of something we don't have still leaves a Tombstone when the id
is on the actor's origin, so a late Create of it is ignored.
"""

from __future__ import annotations

from tortoise.transactions import in_transaction

from fediverse_net.activitypub.parse import get_id, same_origin
from fediverse_net.db.models import Note, Tombstone
from fediverse_net.services.groups.moderation import remote_moderation
from fediverse_net.services.groups.posting import relay_author_change
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.remote_actors import mark_gone


async def handle(inc: Incoming) -> None:
    if inc.local:
        return
    if not inc.item.refetch and await remote_moderation(inc.deps, inc.actor, inc.activity):
        return  # a moderator removed a post in one of our groups (or a non-moderator tried)
    object_id = get_id(inc.activity.get("object"))
    if object_id is None or not same_origin(object_id, inc.actor.ap_id):
        return
    if inc.item.refetch:
        return  # forwarded deletes would need a 404/410 check at the origin; not applied inline
    if object_id == inc.actor.ap_id:
        async with in_transaction():
            await Note.filter(author=inc.actor).delete()
            await mark_gone(inc.actor, inc.deps.clock())
        return
    async with in_transaction():
        note = await Note.filter(ap_id=object_id, author=inc.actor).first()
        if note is not None:
            # Our groups carrying it tell their audience first (FEP-1b12 Announce{Delete}).
            await relay_author_change(inc.deps, note, inc.activity, as_received=True)
            await note.delete()
        if not await Tombstone.filter(ap_id=object_id).exists():
            await Tombstone.create(ap_id=object_id, former_type="Note")
