"""Incoming Block of one of our members (protocol §5.7, §6.2): follows both ways end, nothing else."""

from __future__ import annotations

from fediverse_net.activitypub.parse import get_id
from fediverse_net.db.models import Actor
from fediverse_net.services.blocks import received_block
from fediverse_net.services.groups.moderation import remote_moderation
from fediverse_net.services.handlers.context import Incoming


async def handle(inc: Incoming) -> None:
    if inc.local:
        return  # our own member's Block, delivered in-process: already applied when it was made
    if await remote_moderation(inc.deps, inc.actor, inc.activity):
        return  # a ban in one of our groups (`target` = the group), by one of its moderators
    target_id = get_id(inc.activity.get("object"))
    target = await Actor.filter(ap_id=target_id or "", local=True).first()
    if target is None:
        return  # `object` must be a local actor
    await received_block(inc.deps, inc.actor, target)
