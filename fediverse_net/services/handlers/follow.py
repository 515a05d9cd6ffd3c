"""Incoming Follow (protocol §5.1): accept (or keep pending for approval), re-accept repeats."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from fediverse_net.activitypub.parse import get_id
from fediverse_net.db.models import Actor, Follow
from fediverse_net.services.follows import send_accept, send_reject
from fediverse_net.services.groups.membership import receive_follow
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.moderation import needs_approval


async def handle(inc: Incoming) -> None:
    target_id = get_id(inc.activity.get("object")) or ""
    if inc.batch is not None and target_id in inc.batch.local_targets:
        target = inc.batch.local_targets[target_id]  # read once for the worker's whole batch
    else:
        target = await Actor.filter(ap_id=target_id, local=True, deleted_at=None).first()
    if target is None or target.id == inc.actor.id:
        return
    follower = inc.actor
    if target.type == "Group":  # our groups: open ones accept, others queue for moderators
        await receive_follow(inc.deps, target, follower, inc.activity)
        return
    async with in_transaction():
        row = await Follow.filter(follower=follower, followee=target).first()
        if target.type == "Application":
            # Follows of the instance actor are refused, as Mastodon does.
            row = row or Follow(ap_id=inc.item.activity_id, follower=follower, followee=target)
            await send_reject(inc.deps, row, follower, target)
            return
        if row is None:
            row = Follow(follower=follower, followee=target, state="pending")
        # A repeated Follow carries a new id: keep it, and re-send the Accept (Mastodon does).
        row.ap_id = inc.item.activity_id
        # Follows from a limited (silenced) actor or domain wait for the member's approval.
        auto = not target.manually_approves_followers and not await needs_approval(inc.deps, follower)
        if row.state == "pending" and auto:
            row.state = "accepted"
            row.accepted_at = inc.deps.clock()
        await row.save()
        if row.state == "accepted":
            await send_accept(inc.deps, row, follower, target)
