"""Members blocking and muting accounts and whole domains (product.md: "block anyone, instantly").

Blocking an account ends follows both ways (`Undo{Follow}` for ours, `Reject{Follow}` for theirs)
and, for a remote account, sends `Block` to its personal inbox (protocol §5.7, Mastodon shape;
`Undo{Block}` embeds it). Blocking a domain ends follows with every account there; nothing is
sent. Muting only hides posts. What blocks refuse is decided in `services/moderation.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON
from fediverse_net.activitypub.vocab import AS_CONTEXT
from fediverse_net.db.models import Actor, ActorBlock, Follow
from fediverse_net.deps import Deps
from fediverse_net.services import follows, moderation
from fediverse_net.services.errors import Conflict, NotFound, ServiceError
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

KINDS: Final = ("block", "mute")
MAX_BLOCKS: Final = 5000


def block_activity(block_id: str, owner: Actor, target: Actor) -> JSON:
    return {
        "@context": AS_CONTEXT,
        "id": block_id,
        "type": "Block",
        "actor": owner.ap_id,
        "object": target.ap_id,
    }


async def _sever(deps: Deps, owner: Actor, others: list[int]) -> None:
    """End follows both ways between `owner` and the actors `others`, telling the other side."""
    ours = await Follow.filter(follower_id=owner.id, followee_id__in=others).select_related("followee")
    for row in ours:
        await follows.unfollow(deps, owner, row.followee)
    theirs = await Follow.filter(followee_id=owner.id, follower_id__in=others).values("id")
    for found in theirs:
        await follows.remove_follower(deps, owner, int(found["id"]))


async def _check_quota(owner: Actor) -> None:
    if await ActorBlock.filter(owner_id=owner.id).count() >= MAX_BLOCKS:
        raise ServiceError(f"You can block or mute at most {MAX_BLOCKS} accounts and domains.")


async def block_actor(deps: Deps, owner: Actor, target: Actor, kind: str = "block") -> ActorBlock:
    """Block or mute one account. A mute can be turned into a block (and the block stays a block)."""
    if kind not in KINDS:
        raise ServiceError("Choose block or mute.")
    if target.id == owner.id:
        raise ServiceError("You cannot block or mute yourself.")
    if target.type == "Application":
        raise ServiceError("Server accounts cannot be blocked; ask an admin to block the domain.")
    existing = await ActorBlock.filter(owner_id=owner.id, target_id=target.id).first()
    if existing is not None and (existing.kind == kind or existing.kind == "block"):
        raise Conflict("You already did that.")
    await _check_quota(owner)
    async with in_transaction():
        if existing is not None:
            await existing.delete()
        ap_id = deps.urls.activity(new_token()) if kind == "block" and not target.local else None
        row = await ActorBlock.create(owner=owner, target=target, kind=kind, ap_id=ap_id)
        if kind == "block":
            await _sever(deps, owner, [target.id])
            if ap_id is not None and deps.settings.send_blocks:
                activity = block_activity(ap_id, owner, target)
                await record_outgoing(
                    deps, actor=owner, activity=activity, recipients=[target], personal=True
                )
    return row


async def block_domain(deps: Deps, owner: Actor, raw_domain: str, kind: str = "block") -> ActorBlock:
    """Block or mute every account of a domain (and its subdomains)."""
    if kind not in KINDS:
        raise ServiceError("Choose block or mute.")
    domain = moderation.normalise_domain(raw_domain)
    if domain in moderation.domain_candidates(deps.settings.host):
        raise ServiceError("You cannot block this server itself; block the accounts instead.")
    if await ActorBlock.filter(owner_id=owner.id, target_domain=domain).exists():
        raise Conflict("You already did that.")
    await _check_quota(owner)
    async with in_transaction():
        row = await ActorBlock.create(owner=owner, target_domain=domain, kind=kind)
        if kind == "block":
            match = Q(domain=domain) | Q(domain__startswith=f"{domain}:") | Q(domain__endswith=f".{domain}")
            others = await Actor.filter(match, local=False).values("id")
            await _sever(deps, owner, [int(row["id"]) for row in others])
    return row


async def unblock(deps: Deps, owner: Actor, block_id: int) -> ActorBlock:
    """Lift a block or mute; a remote account gets `Undo{Block}` embedding the Block."""
    row = await ActorBlock.filter(id=block_id, owner_id=owner.id).select_related("target").first()
    if row is None:
        raise NotFound("That block is gone.")
    async with in_transaction():
        await row.delete()
        target = row.target
        if row.kind == "block" and row.ap_id and target is not None and deps.settings.send_blocks:
            undo = builders.undo(
                id=f"{row.ap_id}/undo",
                actor=owner.ap_id,
                object=block_activity(row.ap_id, owner, target),
                to=[target.ap_id],
            )
            await record_outgoing(deps, actor=owner, activity=undo, recipients=[target], personal=True)
    return row


@dataclass(frozen=True, slots=True)
class BlockLists:
    blocked: list[ActorBlock]
    muted: list[ActorBlock]


async def block_lists(owner: Actor) -> BlockLists:
    rows = await ActorBlock.filter(owner_id=owner.id).select_related("target").order_by("-id").limit(1000)
    return BlockLists(
        blocked=[r for r in rows if r.kind == "block"], muted=[r for r in rows if r.kind == "mute"]
    )


async def relation(viewer: Actor | None, target: Actor) -> str | None:
    """`block`, `mute` or None: how `viewer` treats `target` (the account itself)."""
    if viewer is None:
        return None
    row = await ActorBlock.filter(owner_id=viewer.id, target_id=target.id).first()
    return row.kind if row is not None else None


async def received_block(deps: Deps, blocker: Actor, target: Actor) -> None:
    """A remote actor blocked one of ours: follows both ways (and pending requests) end here."""
    await Follow.filter(
        Q(follower_id=blocker.id, followee_id=target.id) | Q(follower_id=target.id, followee_id=blocker.id)
    ).delete()
