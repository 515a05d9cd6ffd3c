"""Incoming Join / Leave of one of our groups (Mobilizon shapes, protocol §5.11).

`Join{object: group}` is a membership request (answers in `content`); `Leave{object: group}`
ends membership and follow. Joins of other things (events) are not ours to handle here.
"""

from __future__ import annotations

from fediverse_net.activitypub.parse import get_id, get_type
from fediverse_net.db.models import Actor, Follow, Membership
from fediverse_net.services.groups import membership
from fediverse_net.services.handlers.context import Incoming


async def _local_group(inc: Incoming) -> Actor | None:
    target_id = get_id(inc.activity.get("object"))
    if not target_id or not inc.is_local_id(target_id):
        return None
    return await Actor.filter(ap_id=target_id, type="Group", local=True, deleted_at=None).first()


async def handle_join(inc: Incoming) -> None:
    if inc.local:
        return
    group = await _local_group(inc)
    if group is not None:
        await membership.receive_join(inc.deps, group, inc.actor, inc.activity)


async def handle_leave(inc: Incoming) -> None:
    if inc.local:
        return
    group = await _local_group(inc)
    if group is not None:
        await membership.receive_leave(group, inc.actor)


async def undo_for_groups(inc: Incoming, inner: object, inner_id: str | None) -> bool:
    """Undo{Join} (embedded or by id) or Undo{Follow} of one of our groups.

    True when it was an Undo{Join} (fully handled here); for Undo{Follow} the membership that the
    follow made ends, and the caller still removes the follow itself.
    """
    kind = get_type(inner) if isinstance(inner, dict) else None
    if kind == "Join" and isinstance(inner, dict):
        target_id = get_id(inner.get("object")) or ""
        group = await Actor.filter(ap_id=target_id, type="Group", local=True).first()
        if group is not None:
            await membership.receive_leave(group, inc.actor)
        return True
    row = None
    if inner_id:
        row = (
            await Membership.filter(member_id=inc.actor.id, join_ap_id=inner_id, group__local=True)
            .select_related("group")
            .first()
        )
    if row is not None and isinstance(row.join_activity, dict) and row.join_activity.get("type") == "Join":
        await membership.receive_leave(row.group, inc.actor)
        return True
    group = row.group if row is not None else None
    if group is None and kind == "Follow" and isinstance(inner, dict):
        target_id = get_id(inner.get("object")) or ""
        group = await Actor.filter(ap_id=target_id, type="Group", local=True).first()
    if group is None and inner_id:
        follow = (
            await Follow.filter(ap_id=inner_id, follower_id=inc.actor.id).select_related("followee").first()
        )
        group = follow.followee if follow is not None and follow.followee.type == "Group" else None
    if group is not None and group.local:
        await membership.receive_undo_follow(group, inc.actor)
    return False
