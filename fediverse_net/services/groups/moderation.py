"""Moderation inside a group: remove a post, lock or pin a thread, ban and unban, the log.

Shapes (FEP-1b12 "Group moderation", Lemmy): a removal is `Delete{object: post}` by the group
(with `Undo{Announce}` of the compatibility boost for Mastodon-family receivers, protocol §5.11);
a ban is `Block{object: person, target: group}` by the group (fixture lemmy/block_user.json), an
unban `Undo{Block}`; an edit of the group's settings is `Update{Group}` (protocol §5.10).
Moderation activities from remote actors are applied only when the actor is one of the group's
listed moderators, and are then announced by the group.
"""

from __future__ import annotations

from typing import Final

from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON, get_id
from fediverse_net.activitypub.vocab import AS_CONTEXT, PUBLIC
from fediverse_net.db.models import Actor, Follow, Group, GroupPost, Membership, ModLog, Note
from fediverse_net.deps import Deps
from fediverse_net.services import actor_lifecycle, media
from fediverse_net.services.errors import NotFound, ServiceError
from fediverse_net.services.groups.core import (
    GroupInput,
    actor_values,
    audience,
    check_input,
    is_moderator,
    log,
    membership_of,
    replace_questions,
    require_role,
    settings_values,
)
from fediverse_net.services.groups.posting import announce, undo_boost
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

POST_ACTIONS: Final = ("remove", "lock", "unlock", "pin", "unpin", "approve", "reject")
REVIEW_ACTIONS: Final = ("approve", "reject")  # for posts held for review (`posting.waits_for_review`)


def _activity_id(group: Actor) -> str:
    return f"{group.ap_id}/activities/{new_token()}"


async def _send(deps: Deps, group: Actor, activity: JSON) -> None:
    recipients = [a for a in await audience(group) if not a.local]
    await record_outgoing(deps, actor=group, activity=activity, recipients=recipients)


async def update_group(deps: Deps, group: Actor, editor: Actor, form: GroupInput) -> Actor:
    """Save new settings; only the group's admins may. Returns the refreshed actor.

    `Update{Group}` with the complete new document goes to the group's followers and remote
    members in the same transaction (`actor_lifecycle.announce_update`).
    """
    await require_role(group, editor, ("admin",))
    check_input(form)
    actor_fields = actor_values(form)
    settings_fields = settings_values(form)
    async with in_transaction():
        await Actor.filter(id=group.id).update(**actor_fields)
        await Group.filter(actor_id=group.id).update(**settings_fields)
        await replace_questions(group, form.questions)
        await ModLog.create(group=group, moderator=editor, action="edit", target=group.ap_id)
        await group.refresh_from_db()
        await actor_lifecycle.announce_update(deps, group)
    return group


async def delete_group(deps: Deps, group: Actor, admin: Actor, confirmation: str) -> None:
    """An admin deletes the group: `Delete{Group}` to everyone who knows it, then it is gone.

    As for members (`actor_lifecycle.delete_member`): followers and remote members get the Delete
    (Lemmy and Mastodon drop the community/actor), follows and memberships end, and the actor row
    stays with `deleted_at` so its id, WebFinger and handle answer 410 and are never reused. The
    key stays so the queued Deletes can still be signed.
    """
    await require_role(group, admin, ("admin",))
    if confirmation.strip().lstrip("@").lower() != group.username:
        raise ServiceError(f"Type the group's handle, {group.username}, to confirm.")
    recipients = await actor_lifecycle.reach(group)
    activity = builders.delete(id=f"{group.ap_id}#delete", actor=group.ap_id, object_id=group.ap_id)
    async with in_transaction():
        actor_lifecycle.forget_changed(deps, group)
        await record_outgoing(deps, actor=group, activity=activity, recipients=recipients)
        await log(group, "delete_group", moderator=admin, target=group.ap_id)
        await Follow.filter(followee=group).delete()
        await Follow.filter(follower=group).delete()
        await Membership.filter(group=group).delete()
        pictures = actor_lifecycle.mark_deleted(deps, group)
        await group.save(update_fields=["deleted_at", "updated_at", "avatar_url", "header_url"])
    await media.forget_unused(deps.settings, *pictures)


async def post_in_group(group: Actor, note_id: int) -> GroupPost:
    post = await GroupPost.filter(group_id=group.id, note_id=note_id).select_related("note").first()
    if post is None:
        raise NotFound("That post is not in this group.")
    return post


async def moderate_post(
    deps: Deps,
    group: Actor,
    moderator: Actor | None,
    note_id: int,
    action: str,
    reason: str = "",
    *,
    verified: bool = False,
) -> GroupPost:
    """remove | lock | unlock | pin | unpin | approve | reject by a moderator (`verified`: checked).

    approve and reject are for posts held for review: approving shares the post (the group's
    Announces go out now), rejecting removes it; nothing was shared, so nothing is taken back.
    """
    if action not in POST_ACTIONS:
        raise ServiceError("Unknown moderation action.")
    if moderator is not None and not verified:
        await require_role(group, moderator)
    post = await post_in_group(group, note_id)
    if action in REVIEW_ACTIONS and post.state != "held":
        raise ServiceError("This post is not waiting for review.")
    if action not in REVIEW_ACTIONS and post.state == "held":
        raise ServiceError("This post is waiting for review: approve or reject it first.")
    async with in_transaction():
        if action == "approve":
            post.state = "accepted"
            await post.save(update_fields=["state"])
            await announce(deps, group, post, post.note, post.activity)
        elif action == "reject":
            post.state = "removed"
            await post.save(update_fields=["state"])
        elif action == "remove":
            await _remove(deps, group, post, reason)
        else:
            field = "locked" if action in ("lock", "unlock") else "pinned"
            setattr(post, field, action in ("lock", "pin"))
            await post.save(update_fields=[field])
        await log(group, action, moderator=moderator, target=post.note.ap_id, reason=reason.strip()[:1000])
    return post


async def _remove(deps: Deps, group: Actor, post: GroupPost, reason: str) -> None:
    if post.state == "removed":
        return
    post.state = "removed"
    post.pinned = False
    await post.save(update_fields=["state", "pinned"])
    followers = group.followers_url or f"{group.ap_id}/followers"
    delete: JSON = {
        "@context": AS_CONTEXT,
        "id": _activity_id(group),
        "type": "Delete",
        "actor": group.ap_id,
        "to": [PUBLIC],
        "cc": [followers],
        "audience": group.ap_id,
        "object": post.note.ap_id,
    }
    if reason.strip():
        delete["summary"] = reason.strip()[:1000]
    await _send(deps, group, delete)
    # Mastodon-family receivers saw a boost: take it back (protocol §5.11).
    if (undo := undo_boost(group, post, post.note.ap_id)) is not None:
        await _send(deps, group, undo)


def _block(deps: Deps, group: Actor, person: Actor, reason: str) -> JSON:
    activity: JSON = {
        "@context": AS_CONTEXT,
        "id": _activity_id(group),
        "type": "Block",
        "actor": group.ap_id,
        "to": [PUBLIC],
        "cc": [group.ap_id],
        "audience": group.ap_id,
        "object": person.ap_id,
        "target": group.ap_id,
    }
    if reason:
        activity["summary"] = reason
    return activity


async def ban(
    deps: Deps,
    group: Actor,
    moderator: Actor | None,
    person: Actor,
    reason: str = "",
    *,
    verified: bool = False,
) -> None:
    """Ban: the membership becomes `banned`, the follow ends, `Block{target: group}` goes out."""
    if moderator is not None and not verified:
        await require_role(group, moderator)
        if person.id == moderator.id:
            raise ServiceError("You cannot ban yourself.")
    if await is_moderator(group, person) and moderator is not None and not verified:
        mine = await require_role(group, moderator)
        if mine.role != "admin":
            raise ServiceError("Only an admin can ban a moderator.")
    reason = reason.strip()[:1000]
    async with in_transaction():
        row = await membership_of(group, person) or Membership(group=group, member=person)
        row.state, row.role, row.reason = "banned", "member", reason
        await row.save()
        await Follow.filter(follower_id=person.id, followee_id=group.id).delete()
        block = _block(deps, group, person, reason)
        await _send(deps, group, block)
        if not person.local:
            await record_outgoing(
                deps,
                actor=group,
                activity={**block, "id": block["id"] + "#to"},
                recipients=[person],
                personal=True,
            )
        await log(
            group,
            "ban",
            moderator=moderator,
            target=person.ap_id,
            reason=reason,
            details={"block": block["id"]},
        )


async def unban(
    deps: Deps, group: Actor, moderator: Actor | None, person: Actor, *, verified: bool = False
) -> None:
    if moderator is not None and not verified:
        await require_role(group, moderator)
    row = await membership_of(group, person)
    if row is None or row.state != "banned":
        raise NotFound("That person is not banned.")
    entry = await ModLog.filter(group_id=group.id, action="ban", target=person.ap_id).order_by("-id").first()
    block_id = str(entry.details.get("block")) if entry and isinstance(entry.details, dict) else None
    async with in_transaction():
        await row.delete()
        block = _block(deps, group, person, "")
        block["id"] = block_id or block["id"]
        undo = builders.undo(id=_activity_id(group), actor=group.ap_id, object=block, to=[PUBLIC])
        await _send(deps, group, undo)
        await log(group, "unban", moderator=moderator, target=person.ap_id)


async def modlog(group: Actor, limit: int = 200) -> list[ModLog]:
    return list(
        await ModLog.filter(group_id=group.id).select_related("moderator").order_by("-id").limit(limit)
    )


# --- moderation activities from remote moderators (inbox side) --------------------------------------


async def remote_moderation(deps: Deps, actor: Actor, activity: JSON) -> bool:
    """A Delete/Block/Undo{Block} aimed at one of our groups. True when it concerned a group.

    Applied only when `actor` is a listed moderator of that group; otherwise ignored (and logged).
    """
    kind = activity.get("type")
    inner = activity.get("object") if kind == "Undo" else activity
    if not isinstance(inner, dict):
        return False
    group_ids = [get_id(inner.get("target")), get_id(inner.get("audience")), get_id(activity.get("audience"))]
    group = await Actor.filter(
        ap_id__in=[g for g in group_ids if g and deps.urls.is_local(g)], type="Group", local=True
    ).first()
    if group is None:
        return False
    object_id = get_id(inner.get("object")) or ""
    inner_kind = inner.get("type")
    if kind == "Delete":
        note = await Note.filter(ap_id=object_id).first()
        post = await GroupPost.filter(group_id=group.id, note_id=note.id).first() if note else None
        if note is None or post is None:
            return False
        if note.author_id == actor.id:  # the author deletes their own post: the group passes it on
            await moderate_post(deps, group, None, note.id, "remove", "deleted by its author", verified=True)
            return False  # the Delete handler removes the note itself
    if not await is_moderator(group, actor):
        await log(
            group,
            "mod_refused",
            target=str(activity.get("id"))[:512],
            reason=f"{kind} from {actor.ap_id[:300]}, who is not a moderator",
        )
        return True
    if inner_kind == "Block":
        person = await Actor.filter(ap_id=object_id).first()
        if person is not None and person.id != actor.id:
            if kind == "Undo":
                await unban(deps, group, actor, person, verified=True)
            else:
                await ban(deps, group, actor, person, str(inner.get("summary") or "")[:1000], verified=True)
        return True
    if kind == "Delete" and note is not None:
        await moderate_post(
            deps, group, actor, note.id, "remove", str(activity.get("summary") or ""), verified=True
        )
        return True
    return False
