"""Membership: asking to join, approval with answers and vouches, leaving, invitations, roles.

Join modes: `open` (accepted at once), `approval` (pending until a moderator approves, or enough
members vouch, or the person's server is on the trusted list), `invite` (only invited people).

Federation (protocol §5.11, Mobilizon shapes): a remote `Join{object: group}` is a membership
request whose answers travel in its `content` (or Mobilizon's `participationMessage`); the
group answers `Accept`/`Reject` embedding the Join (a reason in `summary`). `Leave` ends the
membership and the follow. A Mastodon `Follow` makes a follower, and also a member when the
group is open and `follow_is_join` is on. Our members join remote groups with the same `Join`.
"""

from __future__ import annotations

from typing import Final

from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON, first_string
from fediverse_net.activitypub.vocab import AS_CONTEXT
from fediverse_net.db.models import Actor, Follow, Group, JoinQuestion, Membership, TrustedInstance, Vouch
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Conflict, Forbidden, NotFound, ServiceError
from fediverse_net.services.follows import send_accept, send_reject
from fediverse_net.services.groups.core import log, membership_of, require_role, settings_of
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

MAX_ANSWER: Final = 1000
MAX_ANSWERS: Final = 5000  # all answers together, local or remote
ANSWERS_TOO_LONG: Final = f"Your answers are too long: at most {MAX_ANSWERS} characters in all."


# --- answering a request ----------------------------------------------------------------------------


async def _answer(deps: Deps, group: Actor, row: Membership, kind: str, reason: str = "") -> None:
    """Send Accept/Reject of the stored Join to a remote member (local ones need no message)."""
    member = await row.member
    if member.local or not row.join_activity:
        return
    join = dict(row.join_activity)
    build = builders.accept if kind == "Accept" else builders.reject
    activity = build(id=deps.urls.activity(new_token()), actor=group.ap_id, object=join, to=member.ap_id)
    if reason:
        activity["summary"] = reason
    if join.get("type") == "Follow":
        row_follow = await Follow.filter(follower_id=member.id, followee_id=group.id).first()
        if row_follow is None:
            return
        send = send_accept if kind == "Accept" else send_reject
        await send(deps, row_follow, member, group)
        return
    await record_outgoing(deps, actor=group, activity=activity, recipients=[member], personal=True)


async def _accept(deps: Deps, group: Actor, row: Membership, moderator: Actor | None, how: str) -> None:
    row.state = "accepted"
    row.decided_at = deps.clock()
    await row.save(update_fields=["state", "decided_at"])
    member = await row.member
    await log(group, "approve", moderator=moderator, target=member.ap_id, reason=how)
    await _answer(deps, group, row, "Accept")


def _check_answers(answers: list[dict[str, str]]) -> None:
    if any(len(a.get("answer", "")) > MAX_ANSWER for a in answers):
        raise ServiceError(f"An answer may have at most {MAX_ANSWER} characters.")
    if sum(len(a.get("answer", "")) for a in answers) > MAX_ANSWERS:
        raise ServiceError(ANSWERS_TOO_LONG)


async def _trusted(group: Actor, member: Actor) -> bool:
    return await TrustedInstance.filter(group_id=group.id, domain=member.domain.lower()).exists()


async def _request(
    deps: Deps,
    group: Actor,
    settings: Group,
    member: Actor,
    *,
    answers: list[dict[str, str]],
    join_activity: JSON | None,
) -> Membership:
    """Create or refresh a membership request and decide what the join mode allows."""
    row = await membership_of(group, member)
    if row is not None and row.state == "banned":
        raise Forbidden("You cannot join this group.")
    if row is not None and row.state == "accepted":
        if join_activity is not None:  # a repeated Join: answer again, as for follows
            row.join_activity, row.join_ap_id = (
                join_activity,
                str(join_activity.get("id") or "")[:512] or None,
            )
            await row.save(update_fields=["join_activity", "join_ap_id"])
            await _answer(deps, group, row, "Accept")
        return row
    invited = row is not None and row.state == "invited"
    if settings.join_mode == "invite" and not invited:
        raise Forbidden("This group is by invitation only.")
    async with in_transaction():
        if row is None:
            row = Membership(group=group, member=member, role="member", state="pending")
        row.answers = answers
        row.join_activity = join_activity
        row.join_ap_id = str((join_activity or {}).get("id") or "")[:512] or None
        row.state = "pending"
        await row.save()
        if settings.join_mode == "open" or invited:
            await _accept(deps, group, row, None, "invited" if invited else "open group")
        elif await _trusted(group, member):
            await _accept(deps, group, row, None, f"trusted instance {member.domain}")
        else:
            await log(group, "join_request", target=member.ap_id)
    return row


async def questions(group: Actor) -> list[JoinQuestion]:
    return await JoinQuestion.filter(group_id=group.id).order_by("position", "id")


async def ask_to_join(deps: Deps, group: Actor, member: Actor, answers: list[str]) -> Membership:
    """A local member joins (open), asks to join (approval) or takes an invitation (invite)."""
    settings = await settings_of(group)
    if settings is None:
        raise NotFound("There is no group with that name here.")
    asked = await questions(group)
    pairs = [
        {"question": q.text, "answer": (answers[i] if i < len(answers) else "").strip()}
        for i, q in enumerate(asked)
    ]
    _check_answers(pairs)
    if settings.join_mode == "approval" and any(not p["answer"] for p in pairs):
        raise ServiceError("Please answer every question.")
    return await _request(deps, group, settings, member, answers=pairs, join_activity=None)


async def leave(deps: Deps, group: Actor, member: Actor) -> None:
    """Leave (or withdraw a request). The last admin cannot leave; a ban stays a ban."""
    row = await membership_of(group, member)
    if row is None or row.state == "banned":
        raise NotFound("You are not a member of this group.")
    if row.role == "admin" and row.state == "accepted":
        admins = await Membership.filter(group_id=group.id, role="admin", state="accepted").count()
        if admins <= 1:
            raise ServiceError("You are the group's only admin: make someone else admin before leaving.")
    async with in_transaction():
        await row.delete()
        await log(group, "leave", target=member.ap_id)


async def pending(group: Actor) -> list[Membership]:
    """The approval queue, oldest first, with members and vouches."""
    rows = (
        await Membership.filter(group_id=group.id, state="pending")
        .select_related("member")
        .prefetch_related("vouches")
        .order_by("id")
    )
    return list(rows)


async def _pending_row(group: Actor, membership_id: int) -> Membership:
    row = await Membership.filter(id=membership_id, group_id=group.id, state="pending").first()
    if row is None:
        raise NotFound("That request is gone.")
    return row


async def approve(deps: Deps, group: Actor, moderator: Actor, membership_id: int) -> Membership:
    await require_role(group, moderator)
    row = await _pending_row(group, membership_id)
    async with in_transaction():
        await _accept(deps, group, row, moderator, "approved")
    return row


async def reject(deps: Deps, group: Actor, moderator: Actor, membership_id: int, reason: str) -> Actor:
    """Refuse a request, with a reason sent to the person (Reject{Join} `summary`)."""
    await require_role(group, moderator)
    row = await _pending_row(group, membership_id)
    member = await row.member
    reason = reason.strip()[:1000]
    async with in_transaction():
        await _answer(deps, group, row, "Reject", reason)
        await row.delete()
        await log(group, "reject", moderator=moderator, target=member.ap_id, reason=reason)
    return member


async def vouch(deps: Deps, group: Actor, voucher: Actor, membership_id: int) -> bool:
    """A member vouches for a pending request; True when that approved it."""
    settings = await settings_of(group)
    if settings is None or settings.vouches_needed <= 0:
        raise ServiceError("This group does not use vouching.")
    await require_role(group, voucher, ("admin", "moderator", "member"))
    row = await _pending_row(group, membership_id)
    if row.member_id == voucher.id:
        raise ServiceError("You cannot vouch for yourself.")
    async with in_transaction():
        await Vouch.get_or_create(membership=row, voucher=voucher)
        count = await Vouch.filter(membership_id=row.id).count()
        await log(group, "vouch", moderator=voucher, target=(await row.member).ap_id)
        if count >= settings.vouches_needed:
            await _accept(deps, group, row, None, f"{count} vouches")
            return True
    return False


async def trust_instance(group: Actor, moderator: Actor, domain: str) -> str:
    await require_role(group, moderator)
    domain = domain.strip().lower().removeprefix("https://").removeprefix("http://").strip("/")
    if not domain or len(domain) > 255 or "/" in domain or " " in domain or "." not in domain:
        raise ServiceError("Enter a server name like example.social.")
    await TrustedInstance.get_or_create(group_id=group.id, domain=domain)
    await log(group, "trust_instance", moderator=moderator, target=domain)
    return domain


async def distrust_instance(group: Actor, moderator: Actor, domain: str) -> None:
    await require_role(group, moderator)
    await TrustedInstance.filter(group_id=group.id, domain=domain.strip().lower()).delete()
    await log(group, "distrust_instance", moderator=moderator, target=domain[:255])


async def trusted_instances(group: Actor) -> list[str]:
    return [
        str(d)
        for d in await TrustedInstance.filter(group_id=group.id)
        .order_by("domain")
        .values_list("domain", flat=True)
    ]


async def invite(deps: Deps, group: Actor, moderator: Actor, person: Actor) -> Membership:
    """Invite someone (Mobilizon `Invite{object: group, target: person}` for remote people)."""
    await require_role(group, moderator)
    row = await membership_of(group, person)
    if row is not None and row.state in ("accepted", "banned", "invited"):
        raise Conflict("That person is already a member, invited or banned.")
    async with in_transaction():
        if row is None:
            row = await Membership.create(group=group, member=person, role="member", state="invited")
        else:
            row.state = "invited"
            await row.save(update_fields=["state"])
        await log(group, "invite", moderator=moderator, target=person.ap_id)
        if not person.local:
            activity = {
                "@context": AS_CONTEXT,
                "id": deps.urls.activity(new_token()),
                "type": "Invite",
                "actor": group.ap_id,
                "object": group.ap_id,
                "target": person.ap_id,
                "to": [person.ap_id],
            }
            await record_outgoing(deps, actor=group, activity=activity, recipients=[person], personal=True)
    return row


async def set_role(group: Actor, admin: Actor, membership_id: int, role: str) -> Membership:
    await require_role(group, admin, ("admin",))
    if role not in ("admin", "moderator", "member"):
        raise ServiceError("Unknown role.")
    row = await Membership.filter(id=membership_id, group_id=group.id, state="accepted").first()
    if row is None:
        raise NotFound("That member is gone.")
    if row.member_id == admin.id and role != "admin":
        others = await Membership.filter(group_id=group.id, role="admin", state="accepted").count()
        if others <= 1:
            raise ServiceError("A group needs at least one admin.")
    row.role = role
    await row.save(update_fields=["role"])
    await log(group, f"role_{role}", moderator=admin, target=(await row.member).ap_id)
    return row


async def members(group: Actor) -> list[Membership]:
    rows = (
        await Membership.filter(group_id=group.id, state="accepted", member__deleted_at=None)
        .select_related("member")
        .order_by("id")
        .limit(1000)
    )
    return list(rows)


# --- remote people and our groups (inbox side) -----------------------------------------------------


def remote_answers(join: JSON) -> str:
    """The answers carried by a remote Join: `content`, else Mobilizon's `participationMessage`."""
    text = first_string(join.get("content"), join.get("contentMap"))
    if not text:
        message = join.get("participationMessage")
        text = message if isinstance(message, str) else ""
    return text


async def _reject_join(deps: Deps, group: Actor, member: Actor, join: JSON, reason: str) -> None:
    activity = builders.reject(
        id=deps.urls.activity(new_token()), actor=group.ap_id, object=join, to=member.ap_id
    )
    activity["summary"] = reason
    await record_outgoing(deps, actor=group, activity=activity, recipients=[member], personal=True)


async def receive_join(deps: Deps, group: Actor, member: Actor, join: JSON) -> None:
    """A remote `Join` of one of our groups (answers in `content`; refused when too long)."""
    settings = await settings_of(group)
    if settings is None or member.local:
        return
    text = remote_answers(join)
    if len(text) > MAX_ANSWERS:
        await _reject_join(deps, group, member, _lean(join), ANSWERS_TOO_LONG)
        return
    answers = [{"question": "Message", "answer": text.strip()}] if text.strip() else []
    try:
        await _request(deps, group, settings, member, answers=answers, join_activity=_lean(join))
    except (Forbidden, ServiceError) as exc:
        await _reject_join(deps, group, member, _lean(join), str(exc))


def _lean(activity: JSON) -> JSON:
    """The received activity minus @context and signatures, to embed in our answer."""
    return {k: v for k, v in activity.items() if k not in ("@context", "signature", "proof")}


async def receive_leave(group: Actor, member: Actor) -> None:
    """`Leave` (or `Undo{Join}`): membership and follow end; a ban stays."""
    async with in_transaction():
        await Membership.filter(group_id=group.id, member_id=member.id).exclude(state="banned").delete()
        await Follow.filter(follower_id=member.id, followee_id=group.id).delete()
        await log(group, "leave", target=member.ap_id)


async def receive_follow(deps: Deps, group: Actor, follower: Actor, follow: JSON) -> None:
    """A Follow of one of our groups: auto-accepted when open (FEP-1b12), else pending for moderators.

    Banned people are refused. In open groups with `follow_is_join`, the follower is also a member.
    """
    settings = await settings_of(group)
    if settings is None:
        return
    membership = await membership_of(group, follower)
    async with in_transaction():
        row = await Follow.filter(follower_id=follower.id, followee_id=group.id).first()
        if membership is not None and membership.state == "banned":
            await send_reject(
                deps, row or Follow(ap_id=follow["id"], follower=follower, followee=group), follower, group
            )
            if row is not None:
                await row.delete()
            return
        if row is None:
            row = Follow(follower=follower, followee=group, state="pending")
        row.ap_id = str(follow["id"])
        if row.state == "pending" and settings.join_mode == "open":
            row.state = "accepted"
            row.accepted_at = deps.clock()
        await row.save()
        if row.state != "accepted":
            await log(group, "follow_request", target=follower.ap_id)
            return
        accept = builders.accept(
            id=deps.urls.activity(new_token()), actor=group.ap_id, object=_lean(follow), to=follower.ap_id
        )
        await record_outgoing(deps, actor=group, activity=accept, recipients=[follower], personal=True)
        if settings.join_mode == "open" and settings.follow_is_join and membership is None:
            await Membership.create(
                group=group,
                member=follower,
                role="member",
                state="accepted",
                join_ap_id=row.ap_id,
                join_activity={"type": "Follow", "id": row.ap_id},
                decided_at=deps.clock(),
            )
            await log(group, "join", target=follower.ap_id, reason="followed the open group")


async def receive_undo_follow(group: Actor, follower: Actor) -> None:
    """Undo{Follow}: the follow is gone (undo handler); a membership the follow made ends too."""
    row = await membership_of(group, follower)
    join = row.join_activity if row is not None else None
    if row is not None and row.role == "member" and isinstance(join, dict) and join.get("type") == "Follow":
        await row.delete()
        await log(group, "leave", target=follower.ap_id, reason="unfollowed")
