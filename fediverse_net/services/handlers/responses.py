"""Incoming Accept / Reject of our Follow requests (protocol §5.1, §6.2; security matrix row 19).

Matched by the Follow's id (string or embedded), else by (embedded Follow's actor, our followee);
only the followed actor itself may answer. A Reject of an accepted follow ends it.
"""

from __future__ import annotations

from fediverse_net.activitypub.parse import get_id, get_type
from fediverse_net.db.models import Follow
from fediverse_net.services.groups.remote import receive_join_answer
from fediverse_net.services.handlers.context import Incoming


async def _group_join_answer(inc: Incoming, *, accepted: bool) -> bool:
    """Accept/Reject{Join} from a remote group for one of our members (protocol §5.11)."""
    obj = inc.activity.get("object")
    if inc.actor.type != "Group" or (isinstance(obj, dict) and get_type(obj) != "Join"):
        return False
    member_id = get_id(obj.get("actor")) if isinstance(obj, dict) else None
    return await receive_join_answer(inc.actor, get_id(obj), member_id, accepted)


async def _our_follow(inc: Incoming) -> Follow | None:
    obj = inc.activity.get("object")
    obj_id = get_id(obj)
    row = None
    if obj_id:
        row = (
            await Follow.filter(ap_id=obj_id, follower__local=True)
            .select_related("followee", "follower")
            .first()
        )
    if row is None and isinstance(obj, dict) and get_type(obj) == "Follow":
        follower_id = get_id(obj.get("actor"))
        row = (
            await Follow.filter(follower__ap_id=follower_id or "", follower__local=True, followee=inc.actor)
            .select_related("followee", "follower")
            .first()
        )
    if row is None or row.followee_id != inc.actor.id:  # only the followee may answer
        return None
    return row


async def handle_accept(inc: Incoming) -> None:
    if await _group_join_answer(inc, accepted=True):
        return
    row = await _our_follow(inc)
    if row is None or row.state == "accepted":
        return
    row.state = "accepted"
    row.accepted_at = inc.deps.clock()
    await row.save(update_fields=["state", "accepted_at"])


async def handle_reject(inc: Incoming) -> None:
    if await _group_join_answer(inc, accepted=False):
        return
    row = await _our_follow(inc)
    if row is not None:
        await row.delete()
