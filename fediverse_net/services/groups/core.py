"""Our groups: creating and editing them, roles, and who may do what.

A group is a local `Actor` of type `Group` with its own RSA key and a handle in the same
namespace as members (`acct:hikers@host` resolves to exactly one actor, protocol §0.2), plus a
`Group` settings row. The creator becomes its first admin. Following is not membership
(product.md): followers get public posts; members post and read members-only posts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from fediverse_net.config import Settings
from fediverse_net.db.models import Actor, Follow, Group, JoinQuestion, Membership, ModLog
from fediverse_net.services.errors import Conflict, Forbidden, NotFound, ServiceError
from fediverse_net.services.local_actors import create_local_actor, new_key_pair
from fediverse_net.services.markup import render_markdown
from fediverse_net.services.members import handle_taken, normalise_handle
from fediverse_net.urls import Urls

JOIN_MODES: Final = ("open", "approval", "invite")
VISIBILITIES: Final = ("public", "unlisted")
POSTING: Final = ("members", "followers", "moderators")
ROLES: Final = ("admin", "moderator", "member")
MODERATOR_ROLES: Final = ("admin", "moderator")
MAX_NAME: Final = 100
MAX_DESCRIPTION: Final = 5000
MAX_RULES: Final = 5000
MAX_TAGS: Final = 10
MAX_QUESTIONS: Final = 5
MAX_QUESTION: Final = 500
MAX_REVIEWED_POSTS: Final = 20
TAG_RE: Final = re.compile(r"[\w-]{1,40}")
# Paths of the group pages under /groups/ (web/groups.py) that a group handle must not shadow.
RESERVED_GROUP_HANDLES: Final = frozenset({"new", "find", "remote"})


@dataclass(frozen=True, slots=True)
class GroupInput:
    """What an organizer types into the create/edit form (plain values, validated here)."""

    name: str
    description: str = ""
    rules: str = ""
    tags: str = ""  # comma or space separated
    city: str = ""
    area: str = ""
    avatar_url: str = ""
    banner_url: str = ""
    join_mode: str = "open"
    visibility: str = "public"
    posting: str = "members"
    follow_is_join: bool = True
    vouches_needed: int = 0
    review_first_posts: int = 0
    questions: list[str] = field(default_factory=list)


def normalise_tags(raw: str) -> list[str]:
    tags: list[str] = []
    for part in re.split(r"[,\s]+", raw):
        tag = part.strip().lstrip("#").lower()
        if not tag:
            continue
        if not TAG_RE.fullmatch(tag):
            raise ServiceError(f"The tag {tag[:40]!r} may only use letters, digits, - and _.")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ServiceError(f"A group may have at most {MAX_TAGS} tags.")
    return tags


# A picture uploaded to this server (services/media.py). On an http dev instance its URL is
# http://; saving the form again must keep it, so that shape is let through as well.
_OWN_PICTURE: Final = re.compile(r"http://[^/\s]+/media/[0-9a-f]{64}\.webp")


def _image_url(raw: str, label: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if _OWN_PICTURE.fullmatch(url):
        return url
    if not url.startswith("https://") or len(url) > 500 or any(ch.isspace() for ch in url):
        raise ServiceError(f"The {label} must be an https:// address.")
    return url


def check_input(form: GroupInput) -> None:
    if not form.name.strip():
        raise ServiceError("A group needs a name.")
    if len(form.name.strip()) > MAX_NAME:
        raise ServiceError(f"A group name may have at most {MAX_NAME} characters.")
    if len(form.description) > MAX_DESCRIPTION:
        raise ServiceError(f"The description may have at most {MAX_DESCRIPTION} characters.")
    if len(form.rules) > MAX_RULES:
        raise ServiceError(f"The rules may have at most {MAX_RULES} characters.")
    if form.join_mode not in JOIN_MODES:
        raise ServiceError("Choose who can join: anyone, by approval, or by invitation.")
    if form.visibility not in VISIBILITIES:
        raise ServiceError("Choose whether the group is listed in the directory.")
    if form.posting not in POSTING:
        raise ServiceError("Choose who can post.")
    if not 0 <= form.vouches_needed <= 20:
        raise ServiceError("Vouches needed is a number from 0 (off) to 20.")
    if not 0 <= form.review_first_posts <= MAX_REVIEWED_POSTS:
        raise ServiceError(f"Posts to review is a number from 0 (off) to {MAX_REVIEWED_POSTS}.")
    if len(form.city) > 128 or len(form.area) > 128:
        raise ServiceError("City and area may have at most 128 characters each.")
    questions = [q.strip() for q in form.questions if q.strip()]
    if len(questions) > MAX_QUESTIONS:
        raise ServiceError(f"A group may ask at most {MAX_QUESTIONS} questions.")
    if any(len(q) > MAX_QUESTION for q in questions):
        raise ServiceError(f"A question may have at most {MAX_QUESTION} characters.")


def actor_values(form: GroupInput) -> dict[str, Any]:
    return {
        "name": form.name.strip()[:MAX_NAME],
        "summary": render_markdown(form.description),
        "avatar_url": _image_url(form.avatar_url, "avatar"),
        "header_url": _image_url(form.banner_url, "banner"),
        "manually_approves_followers": form.join_mode != "open",
        "discoverable": form.visibility == "public",
    }


def settings_values(form: GroupInput) -> dict[str, Any]:
    return {
        "join_mode": form.join_mode,
        "visibility": form.visibility,
        "posting": form.posting,
        "follow_is_join": form.follow_is_join,
        "vouches_needed": form.vouches_needed,
        "review_first_posts": form.review_first_posts,
        "description": form.description.strip(),
        "rules": form.rules.strip(),
        "tags": normalise_tags(form.tags),
        "city": form.city.strip(),
        "area": form.area.strip(),
    }


async def replace_questions(group: Actor, questions: list[str]) -> None:
    await JoinQuestion.filter(group=group).delete()
    texts = [q.strip() for q in questions if q.strip()]
    if texts:
        await JoinQuestion.bulk_create(
            [JoinQuestion(group=group, position=i, text=t) for i, t in enumerate(texts)]
        )


async def create_group(settings: Settings, handle: str, owner: Actor, form: GroupInput) -> Actor:
    """The Group actor, its key, its settings and the owner's admin membership, in ONE transaction."""
    handle = normalise_handle(handle)
    if handle in RESERVED_GROUP_HANDLES:
        raise ServiceError(f"The handle {handle!r} is reserved.")
    check_input(form)
    if not owner.local or owner.type != "Person" or owner.deleted_at is not None:
        raise ServiceError("Only a member of this server can create a group.")
    if await handle_taken(handle):
        raise Conflict(f"The handle {handle!r} is already taken.")
    actor_fields = actor_values(form)
    settings_fields = settings_values(form)
    keys = await new_key_pair()
    urls = Urls(settings.origin)
    ap_id = urls.group(handle)
    try:
        async with in_transaction():
            actor = await create_local_actor(
                settings,
                keys,
                ap_id=ap_id,
                type="Group",
                username=handle,
                handle=handle,
                url=urls.group_profile(handle),
                **actor_fields,
            )
            await Group.create(actor=actor, **settings_fields)
            await Membership.create(group=actor, member=owner, role="admin", state="accepted")
            await replace_questions(actor, form.questions)
            await ModLog.create(group=actor, moderator=owner, action="create", target=ap_id)
    except IntegrityError:
        raise Conflict(f"The handle {handle!r} is already taken.") from None
    return actor


# --- finding groups and roles ---------------------------------------------------------------------


async def was_deleted(handle: str) -> bool:
    """Was there a group of ours with this handle (deleted since)?"""
    query = Actor.filter(handle=handle.lower()[:64], type="Group", local=True, deleted_at__isnull=False)
    return await query.exists()


async def local_group(handle: str) -> tuple[Actor, Group]:
    """One of our groups by handle: NotFound when there is none (or it was deleted)."""
    actor = await Actor.filter(handle=handle.lower()[:64], type="Group", local=True, deleted_at=None).first()
    if actor is None:
        raise NotFound("There is no group with that name here.")
    settings = await Group.get(actor_id=actor.id)
    return actor, settings


async def settings_of(group: Actor) -> Group | None:
    """The settings row of one of our groups; None for a remote group."""
    if not group.local:
        return None
    return await Group.filter(actor_id=group.id).first()


async def membership_of(group: Actor, actor: Actor | None) -> Membership | None:
    if actor is None:
        return None
    return await Membership.filter(group_id=group.id, member_id=actor.id).first()


async def is_member(group: Actor, actor: Actor | None) -> bool:
    row = await membership_of(group, actor)
    return row is not None and row.state == "accepted"


async def is_moderator(group: Actor, actor: Actor | None) -> bool:
    row = await membership_of(group, actor)
    return row is not None and row.state == "accepted" and row.role in MODERATOR_ROLES


async def require_role(group: Actor, actor: Actor, roles: tuple[str, ...] = MODERATOR_ROLES) -> Membership:
    row = await membership_of(group, actor)
    if row is None or row.state != "accepted" or row.role not in roles:
        raise Forbidden(
            "Only the group's moderators can do this."
            if "moderator" in roles
            else "Only the group's admins can do this."
        )
    return row


async def is_follower(group: Actor, actor: Actor | None) -> bool:
    if actor is None:
        return False
    return await Follow.filter(follower_id=actor.id, followee_id=group.id, state="accepted").exists()


async def moderators(group: Actor) -> list[Actor]:
    """Admins first (the creator first of all), then moderators, as Lemmy lists them."""
    rows = (
        await Membership.filter(group_id=group.id, state="accepted", role__in=MODERATOR_ROLES)
        .select_related("member")
        .order_by("id")
    )
    rows.sort(key=lambda row: (ROLES.index(row.role), row.id))
    return [row.member for row in rows if row.member.deleted_at is None]


async def member_count(group: Actor) -> int:
    return await Membership.filter(group_id=group.id, state="accepted").count()


async def follower_count(group: Actor) -> int:
    return await Follow.filter(followee_id=group.id, state="accepted").count()


async def audience(group: Actor, *, members_only: bool = False) -> list[Actor]:
    """Who gets what the group sends: accepted members, plus accepted followers unless members-only.

    Banned members are never included, even if they still follow.
    """
    members = await Actor.filter(
        memberships__group_id=group.id, memberships__state="accepted", deleted_at=None, suspended=False
    ).distinct()
    if members_only:
        return list(members)
    banned = set(
        await Membership.filter(group_id=group.id, state="banned").values_list("member_id", flat=True)
    )
    followers = await Actor.filter(
        following_rel__followee_id=group.id, following_rel__state="accepted", deleted_at=None, suspended=False
    ).distinct()
    by_id = {a.id: a for a in [*members, *followers] if a.id not in banned}
    return list(by_id.values())


async def log(
    group: Actor,
    action: str,
    *,
    moderator: Actor | None = None,
    target: str = "",
    reason: str = "",
    details: dict[str, object] | None = None,
) -> None:
    await ModLog.create(
        group=group,
        moderator=moderator,
        action=action[:32],
        target=target[:512],
        reason=reason[:2000],
        details=details or {},
    )


async def remote_group_by_id(raw_id: str) -> Actor:
    """A remote Group actor by its database id (from a form); NotFound otherwise."""
    group = None
    if raw_id.isdigit() and len(raw_id) < 19:
        group = await Actor.filter(id=int(raw_id), type="Group", local=False, deleted_at=None).first()
    if group is None:
        raise NotFound("That group does not exist any more.")
    return group


async def membership_in(group: Actor, membership_id: int) -> tuple[Membership, Actor]:
    """A membership row of `group` and its member; NotFound otherwise."""
    row = await Membership.filter(id=membership_id, group_id=group.id).select_related("member").first()
    if row is None:
        raise NotFound("That member is gone.")
    return row, row.member
