"""Follow relations between actors: our side of Follow / Accept / Reject / Undo (protocol §5.1).

Every change and the activity announcing it are written in one transaction (transactional
outbox); local recipients get the activity in-process through the inbox queue.
"""

from __future__ import annotations

from typing import Protocol

from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON
from fediverse_net.db.models import Actor, Follow
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Conflict, NotFound, ServiceError
from fediverse_net.services.moderation import ensure_no_block
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token


def follow_activity(row: Follow, follower: Actor, followee: Actor) -> JSON:
    """The Follow as it was sent/received, rebuilt from the row (id, type, actor, object)."""
    return {"id": row.ap_id, "type": "Follow", "actor": follower.ap_id, "object": followee.ap_id}


async def follow(deps: Deps, follower: Actor, target: Actor) -> Follow:
    """`follower` (local) asks to follow `target`; pending until an Accept arrives."""
    if not follower.local:
        raise ServiceError("only local actors follow from here")
    if target.id == follower.id:
        raise ServiceError("You cannot follow yourself.")
    if target.type == "Application" or target.deleted_at is not None:
        raise ServiceError("That account cannot be followed.")
    if await Follow.filter(follower=follower, followee=target).exists():
        raise Conflict("You already follow (or asked to follow) that account.")
    await ensure_no_block(follower, target)
    activity_id = deps.urls.activity(new_token())
    activity = builders.follow(id=activity_id, actor=follower.ap_id, object=target.ap_id)
    async with in_transaction():
        row = await Follow.create(ap_id=activity_id, follower=follower, followee=target, state="pending")
        # Follow requests go out even to hosts marked unavailable (Mastodon's bypass_availability).
        await record_outgoing(
            deps,
            actor=follower,
            activity=activity,
            recipients=[target],
            personal=True,
            bypass_availability=True,
        )
    return row


async def unfollow(deps: Deps, follower: Actor, target: Actor) -> None:
    row = await Follow.filter(follower=follower, followee=target).first()
    if row is None:
        raise NotFound("You do not follow that account.")
    undo = builders.undo(
        id=f"{row.ap_id or deps.urls.activity(new_token())}#undo",
        actor=follower.ap_id,
        object=follow_activity(row, follower, target),
        to=[target.ap_id],
    )
    async with in_transaction():
        await row.delete()
        await record_outgoing(deps, actor=follower, activity=undo, recipients=[target], personal=True)


class _AnswerBuilder(Protocol):
    """`builders.accept` / `builders.reject`: an answer embedding the Follow it answers."""

    def __call__(self, *, id: str, actor: str, object: JSON, to: str) -> JSON: ...


async def _answer(deps: Deps, build: _AnswerBuilder, row: Follow, follower: Actor, followee: Actor) -> None:
    """Send `followee`'s answer to `follower`'s Follow (the caller's transaction, if any, covers it)."""
    answer = build(
        id=deps.urls.activity(new_token()),
        actor=followee.ap_id,
        object=follow_activity(row, follower, followee),
        to=follower.ap_id,
    )
    await record_outgoing(deps, actor=followee, activity=answer, recipients=[follower], personal=True)


async def send_accept(deps: Deps, row: Follow, follower: Actor, followee: Actor) -> None:
    await _answer(deps, builders.accept, row, follower, followee)


async def send_reject(deps: Deps, row: Follow, follower: Actor, followee: Actor) -> None:
    await _answer(deps, builders.reject, row, follower, followee)


async def approve_request(deps: Deps, followee: Actor, follow_id: int) -> None:
    """A member (or group moderator) accepts a pending follow request."""
    row = (
        await Follow.filter(id=follow_id, followee=followee, state="pending")
        .select_related("follower")
        .first()
    )
    if row is None:
        raise NotFound("That request is gone.")
    async with in_transaction():
        row.state = "accepted"
        row.accepted_at = deps.clock()
        await row.save(update_fields=["state", "accepted_at"])
        await send_accept(deps, row, row.follower, followee)


async def remove_follower(deps: Deps, followee: Actor, follow_id: int) -> None:
    """Refuse a request or remove a follower: `Reject{Follow}` ends it on the other side too."""
    row = await Follow.filter(id=follow_id, followee=followee).select_related("follower").first()
    if row is None:
        raise NotFound("That follower is gone.")
    async with in_transaction():
        await row.delete()
        await send_reject(deps, row, row.follower, followee)


async def pending_requests(followee: Actor) -> list[Follow]:
    return await Follow.filter(followee=followee, state="pending").select_related("follower").order_by("id")
