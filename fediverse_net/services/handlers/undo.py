"""Incoming Undo: of a Follow (embedded or by bare id). Other undos are ignored for now."""

from __future__ import annotations

from fediverse_net.activitypub.parse import get_id, get_type
from fediverse_net.db.models import Follow
from fediverse_net.services.groups.moderation import remote_moderation
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.handlers.join import undo_for_groups


async def handle(inc: Incoming) -> None:
    inner = inc.activity.get("object")
    inner_id = get_id(inner)
    if isinstance(inner, dict):
        if get_id(inner.get("actor")) != inc.actor.ap_id:
            return  # the inner activity must be the undoer's own
        if get_type(inner) == "Block" and await remote_moderation(inc.deps, inc.actor, inc.activity):
            return  # an unban in one of our groups, by one of its moderators
        if get_type(inner) not in ("Follow", "Join"):
            return
    if await undo_for_groups(inc, inner, inner_id):
        return  # Undo{Join} of one of our groups (a Leave)
    deleted = 0
    if inner_id:
        deleted = await Follow.filter(ap_id=inner_id, follower=inc.actor).delete()
    if not deleted and isinstance(inner, dict):
        target_id = get_id(inner.get("object"))
        await Follow.filter(
            follower=inc.actor, followee__ap_id=target_id or "", followee__local=True
        ).delete()
