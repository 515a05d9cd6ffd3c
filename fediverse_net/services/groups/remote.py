"""Our members in groups on other servers (Mobilizon, Lemmy-style, another fediverse-net).

* `join_remote` sends `Join{group}` and keeps a pending membership until the group answers;
* `receive_join_answer` applies the group's `Accept`/`Reject` of that Join;
* `leave_remote` sends `Leave{group}` and forgets the membership.

Remote people joining OUR groups are handled in `membership` (inbox side).
"""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from fediverse_net.activitypub.vocab import AS_CONTEXT
from fediverse_net.db.models import Actor, Membership
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Conflict, NotFound, ServiceError
from fediverse_net.services.groups.core import membership_of
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token


async def join_remote(deps: Deps, member: Actor, group: Actor) -> Membership:
    """Our member sends `Join` to a remote group (Mobilizon, or another fediverse-net)."""
    if group.local or group.type != "Group":
        raise ServiceError("That is not a group on another server.")
    row = await membership_of(group, member)
    if row is not None and row.state in ("accepted", "pending"):
        raise Conflict("You already asked to join this group.")
    activity_id = deps.urls.activity(new_token())
    join = {
        "@context": AS_CONTEXT,
        "id": activity_id,
        "type": "Join",
        "actor": member.ap_id,
        "object": group.ap_id,
        "to": [group.ap_id],
    }
    async with in_transaction():
        if row is None:
            row = Membership(group=group, member=member, role="member")
        row.state, row.join_ap_id = "pending", activity_id
        row.join_activity = {k: v for k, v in join.items() if k != "@context"}
        await row.save()
        await record_outgoing(deps, actor=member, activity=join, recipients=[group], personal=True)
    return row


async def leave_remote(deps: Deps, member: Actor, group: Actor) -> None:
    row = await membership_of(group, member)
    if row is None:
        raise NotFound("You are not a member of this group.")
    leave_activity: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": deps.urls.activity(new_token()),
        "type": "Leave",
        "actor": member.ap_id,
        "object": group.ap_id,
        "to": [group.ap_id],
    }
    async with in_transaction():
        await row.delete()
        await record_outgoing(deps, actor=member, activity=leave_activity, recipients=[group], personal=True)


async def receive_join_answer(
    group: Actor, join_id: str | None, member_id: str | None, accepted: bool
) -> bool:
    """Accept/Reject{Join} from a remote group for one of our members; True when it matched."""
    query = Membership.filter(group_id=group.id, member__local=True, state="pending")
    row = await query.filter(join_ap_id=join_id).first() if join_id else None
    if row is None and member_id:
        row = await query.filter(member__ap_id=member_id).first()
    if row is None:
        return False
    if accepted:
        row.state = "accepted"
        await row.save(update_fields=["state"])
    else:
        await row.delete()
    return True
