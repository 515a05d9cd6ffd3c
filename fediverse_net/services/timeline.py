"""What the social pages read and do: threads, who may see a note, relationships, follow lists,
finding people, and the member-facing wrappers around `notes`, `follows` and `actor_lifecycle`.

Who may see a note (product.md, privacy by default): public and unlisted notes anyone; followers-
only notes the author, accepted followers of the author and anyone addressed in `to`/`cc`;
direct notes the author and the people addressed. Everything else answers "not found", so a
stranger cannot tell a hidden note from a missing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from tortoise import connections

from fediverse_net.db.models import Account, Actor, Follow, Note, Tombstone
from fediverse_net.deps import Deps
from fediverse_net.services import actor_lifecycle, follows, notes, remote_actors
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.services.members import verify_password

Relation = Literal["self", "none", "pending", "accepted"]
Decision = Literal["approve", "decline", "remove"]
MAX_REPLIES: Final = 200
MAX_LISTED: Final = 500
MAX_QUERY: Final = 512
OPEN_VISIBILITIES: Final = ("public", "unlisted")


class NoteGone(NotFound):
    """The note existed and was deleted (the page answers 410)."""


# --- visibility -------------------------------------------------------------------------------------


def _addressed(viewer: Actor, note: Note) -> bool:
    audience = [*(note.to or []), *(note.cc or [])]
    return viewer.ap_id in audience


async def _followed_among(viewer: Actor | None, author_ids: Iterable[int]) -> set[int]:
    """The ids among `author_ids` whose follow by `viewer` is accepted."""
    wanted = set(author_ids)
    if viewer is None or not wanted:
        return set()
    rows = await Follow.filter(follower_id=viewer.id, followee_id__in=wanted, state="accepted")
    return {row.followee_id for row in rows}


def _visible(viewer: Actor | None, note: Note, followed: set[int]) -> bool:
    if note.visibility in OPEN_VISIBILITIES:
        return True
    if viewer is None:
        return False
    if note.author_id == viewer.id or _addressed(viewer, note):
        return True
    return note.visibility == "followers" and note.author_id in followed


async def can_view(viewer: Actor | None, note: Note) -> bool:
    """Whether `viewer` (None: not logged in) may read `note` (module docstring)."""
    return _visible(viewer, note, await _followed_among(viewer, [note.author_id]))


# --- threads ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thread:
    note: Note  # with `author` fetched
    parent: Note | None  # the note it answers, when stored here and visible to the viewer
    replies: list[Note]  # oldest first, each with `author` fetched


async def _replies(viewer: Actor | None, note: Note) -> list[Note]:
    rows = (
        await Note.filter(in_reply_to=note.ap_id, author__deleted_at=None, author__suspended=False)
        .select_related("author")
        .order_by("published", "id")
        .limit(MAX_REPLIES)
    )
    followed = await _followed_among(viewer, {row.author_id for row in rows})
    return [row for row in rows if _visible(viewer, row, followed)]


async def _parent(viewer: Actor | None, note: Note) -> Note | None:
    if not note.in_reply_to:
        return None
    parent = (
        await Note.filter(ap_id=note.in_reply_to, author__deleted_at=None, author__suspended=False)
        .select_related("author")
        .first()
    )
    return parent if parent is not None and await can_view(viewer, parent) else None


async def thread(deps: Deps, viewer: Actor | None, handle: str, token: str) -> Thread:
    """A local note at `/@handle/notes/token`, its parent and its replies, as `viewer` may see them.

    NotFound when it does not exist or is hidden from the viewer; NoteGone once deleted.
    """
    ap_id = deps.urls.note(token)
    note = (
        await Note.filter(
            ap_id=ap_id,
            local=True,
            author__handle=handle.lower(),
            author__deleted_at=None,
            author__suspended=False,
        )
        .select_related("author")
        .first()
    )
    if note is None:
        if await Tombstone.filter(ap_id=ap_id).exists():
            raise NoteGone("This post was deleted.")
        raise NotFound("This post does not exist, or you cannot see it.")
    if not await can_view(viewer, note):
        raise NotFound("This post does not exist, or you cannot see it.")
    return Thread(note=note, parent=await _parent(viewer, note), replies=await _replies(viewer, note))


# --- the home timeline ------------------------------------------------------------------------------

# Which notes a member's home timeline holds (profiles.home_timeline):
#   1. the member's own notes, any visibility;
#   2. notes of actors whose follow the member has accepted, except direct messages;
#   3. public/unlisted notes that followed or joined groups carried (accepted, not members-only);
# of authors neither deleted nor suspended, newest first by (published, id).
#
# The page is the union of those sources ordered and cut. Every note on page p is among the
# newest `depth = offset + limit` notes of its own source (fewer than `depth` notes of the whole
# timeline come before it), so sources 1 and 2 read only each author's newest `depth` notes from
# the index notes(author_id, published, id, visibility): 200 followed authors cost 200 short index
# range scans and no row reads, however much they posted. One OR-query over everything read and
# sorted every followed note with all its columns (209-291 ms at benchmark B12's size).
# Source 3 is read whole: group_posts has no date of its own to cut on.
#
# PostgreSQL takes each author's newest notes with a LATERAL subquery. SQLite has no LATERAL: the
# lower bound is the `depth`-th newest note's date (one correlated index probe per author), and
# the range from it is read from the same index; ties at the bound only add candidates.
_HOME_SQLITE: Final = """
SELECT id FROM (
    SELECT n.id, n.published FROM (
        SELECT id, published, author_id FROM notes WHERE author_id = ?1
        ORDER BY published DESC, id DESC LIMIT ?2
    ) AS n JOIN actors AS a ON a.id = n.author_id AND a.deleted_at IS NULL AND a.suspended = 0
    UNION
    SELECT n.id, n.published FROM follows AS f
    JOIN actors AS a ON a.id = f.followee_id AND a.deleted_at IS NULL AND a.suspended = 0
    JOIN notes AS n ON n.author_id = f.followee_id AND n.visibility <> 'direct'
        AND n.published >= COALESCE((
            SELECT m.published FROM notes AS m
            WHERE m.author_id = f.followee_id AND m.visibility <> 'direct'
            ORDER BY m.published DESC, m.id DESC LIMIT 1 OFFSET ?2 - 1
        ), '')
    WHERE f.follower_id = ?1 AND f.state = 'accepted'
    UNION
    SELECT n.id, n.published FROM group_posts AS gp
    JOIN notes AS n ON n.id = gp.note_id AND n.visibility IN ('public', 'unlisted')
    JOIN actors AS a ON a.id = n.author_id AND a.deleted_at IS NULL AND a.suspended = 0
    WHERE gp.state = 'accepted' AND gp.members_only = 0 AND gp.group_id IN (
        SELECT followee_id FROM follows WHERE follower_id = ?1 AND state = 'accepted'
        UNION SELECT group_id FROM group_memberships WHERE member_id = ?1 AND state = 'accepted'
    )
) ORDER BY published DESC, id DESC LIMIT ?3 OFFSET ?4
"""

# ANY(ARRAY(...)) rather than IN (...) for the groups: the planner then probes group_posts by
# group instead of hashing the whole table (a sequential scan of 300,000 rows at B12's size).
_HOME_POSTGRES: Final = """
SELECT id FROM (
    SELECT n.id, n.published FROM (
        SELECT id, published, author_id FROM notes WHERE author_id = $1
        ORDER BY published DESC, id DESC LIMIT $2
    ) AS n JOIN actors AS a ON a.id = n.author_id AND a.deleted_at IS NULL AND NOT a.suspended
    UNION
    SELECT n.id, n.published FROM follows AS f
    JOIN actors AS a ON a.id = f.followee_id AND a.deleted_at IS NULL AND NOT a.suspended
    CROSS JOIN LATERAL (
        SELECT m.id, m.published FROM notes AS m
        WHERE m.author_id = f.followee_id AND m.visibility <> 'direct'
        ORDER BY m.published DESC, m.id DESC LIMIT $2
    ) AS n
    WHERE f.follower_id = $1 AND f.state = 'accepted'
    UNION
    SELECT n.id, n.published FROM group_posts AS gp
    JOIN notes AS n ON n.id = gp.note_id AND n.visibility IN ('public', 'unlisted')
    JOIN actors AS a ON a.id = n.author_id AND a.deleted_at IS NULL AND NOT a.suspended
    WHERE gp.state = 'accepted' AND NOT gp.members_only AND gp.group_id = ANY(ARRAY(
        SELECT followee_id FROM follows WHERE follower_id = $1 AND state = 'accepted'
        UNION SELECT group_id FROM group_memberships WHERE member_id = $1 AND state = 'accepted'
    ))
) AS timeline ORDER BY published DESC, id DESC LIMIT $3 OFFSET $4
"""


async def home_notes(member_id: int, *, offset: int, limit: int) -> list[Note]:
    """Notes `offset` to `offset + limit` of the home timeline of the actor `member_id` (see above),
    each with `author` fetched."""
    if limit <= 0:
        return []
    conn = connections.get("default")
    sql = _HOME_POSTGRES if conn.capabilities.dialect == "postgres" else _HOME_SQLITE
    rows = await conn.execute_query_dict(sql, [member_id, offset + limit, limit, offset])
    ids = [int(row["id"]) for row in rows]
    found = {note.id: note for note in await Note.filter(id__in=ids).select_related("author")}
    return [found[i] for i in ids if i in found]  # a note deleted in between is left out


# --- posting and deleting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    source: str  # Markdown
    visibility: str = "public"
    in_reply_to: str = ""  # the parent's database id or ActivityPub id; '' for a new post


async def find_parent(viewer: Actor, ref: str) -> Note:
    """The note `ref` (a database id or an ActivityPub id, local or remote) that `viewer` may see."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) < 19:
        query = Note.filter(id=int(ref))
    else:
        query = Note.filter(ap_id=ref[:MAX_QUERY])
    note = await query.filter(author__deleted_at=None, author__suspended=False).first()
    if note is None or not await can_view(viewer, note):
        raise NotFound("The post you are replying to is gone.")
    return note


async def post(deps: Deps, author: Actor, draft: Draft) -> Note:
    """Publish a new note or a reply (the parent's author is addressed by `notes.publish_note`)."""
    parent = await find_parent(author, draft.in_reply_to) if draft.in_reply_to.strip() else None
    return await notes.publish_note(
        deps, author, draft.source, visibility=draft.visibility, in_reply_to=parent
    )


async def delete_own_note(deps: Deps, author: Actor, token: str) -> None:
    """Delete the local note `token`: Forbidden unless `author` wrote it (NotFound if hidden)."""
    note = await Note.filter(ap_id=deps.urls.note(token), local=True).first()
    if note is None or not await can_view(author, note):
        raise NotFound("This post does not exist.")
    if note.author_id != author.id:
        raise Forbidden("You can only delete your own posts.")
    await notes.delete_note(deps, author, note)


# --- relationships ----------------------------------------------------------------------------------


async def relation(viewer: Actor | None, target: Actor) -> Relation | None:
    """How `viewer` follows `target`; None when not logged in."""
    if viewer is None:
        return None
    if viewer.id == target.id:
        return "self"
    row = await Follow.filter(follower_id=viewer.id, followee_id=target.id).first()
    if row is None:
        return "none"
    return "accepted" if row.state == "accepted" else "pending"


@dataclass(frozen=True, slots=True)
class ProfileExtras:
    followers: int
    following: int
    relation: Relation | None


async def profile_extras(viewer: Actor | None, handle: str) -> ProfileExtras | None:
    """Public follower/following counts of a local actor and how `viewer` follows it."""
    actor = await Actor.filter(handle=handle.lower(), local=True, deleted_at=None).first()
    if actor is None:
        return None
    return ProfileExtras(
        followers=await Follow.filter(followee_id=actor.id, state="accepted").count(),
        following=await Follow.filter(follower_id=actor.id, state="accepted").count(),
        relation=await relation(viewer, actor),
    )


@dataclass(frozen=True, slots=True)
class FollowLists:
    pending: list[Follow]  # requests to the owner, with `follower`
    followers: list[Follow]  # accepted, with `follower`
    following: list[Follow]  # the owner's follows (pending or accepted), with `followee`
    followers_total: int
    following_total: int


async def follow_lists(owner: Actor) -> FollowLists:
    """The owner's requests, followers and follows, newest first (at most 500 of each)."""
    mine = Follow.filter(followee_id=owner.id, follower__deleted_at=None)
    pending = await mine.filter(state="pending").select_related("follower").order_by("id").limit(MAX_LISTED)
    followers = (
        await mine.filter(state="accepted").select_related("follower").order_by("-id").limit(MAX_LISTED)
    )
    theirs = Follow.filter(follower_id=owner.id, followee__deleted_at=None)
    following = await theirs.select_related("followee").order_by("-id").limit(MAX_LISTED)
    return FollowLists(
        pending=list(pending),
        followers=list(followers),
        following=list(following),
        followers_total=await mine.filter(state="accepted").count(),
        following_total=await theirs.count(),
    )


async def _followable(actor_id: int) -> Actor:
    actor = await Actor.filter(id=actor_id, deleted_at=None, suspended=False).first()
    if actor is None:
        raise NotFound("That account does not exist any more.")
    return actor


async def follow_actor(deps: Deps, me: Actor, actor_id: int) -> Actor:
    """`me` asks to follow the actor with database id `actor_id` (ServiceError with the reason)."""
    target = await _followable(actor_id)
    await follows.follow(deps, me, target)
    return target


async def unfollow_actor(deps: Deps, me: Actor, actor_id: int) -> tuple[Actor, bool]:
    """Stop following (or withdraw the request); returns the actor and whether it was a request."""
    target = await _followable(actor_id)
    row = await Follow.filter(follower_id=me.id, followee_id=target.id).first()
    was_request = row is not None and row.state != "accepted"
    await follows.unfollow(deps, me, target)
    return target, was_request


async def decide(deps: Deps, owner: Actor, follow_id: int, decision: Decision) -> Actor:
    """Approve or decline a follow request, or remove a follower; returns the follower."""
    wanted = "accepted" if decision == "remove" else "pending"
    row = (
        await Follow.filter(id=follow_id, followee_id=owner.id, state=wanted)
        .select_related("follower")
        .first()
    )
    if row is None:
        raise NotFound("That request or follower is gone.")
    if decision == "approve":
        await follows.approve_request(deps, owner, follow_id)
    else:
        await follows.remove_follower(deps, owner, follow_id)
    return row.follower


# --- finding people ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    actor: Actor
    relation: Relation | None
    can_follow: bool  # a Person, Group, … (not our instance actor)


def _not_found(query: str) -> NotFound:
    shown = query if len(query) <= 100 else query[:100] + "…"
    return NotFound(
        f"We could not find {shown}. Check the spelling, or ask them for their full address, "
        "like @name@example.social."
    )


async def _visible_local(actor: Actor) -> bool:
    """Local members count only once approved; suspended or deleted actors never."""
    if actor.suspended or actor.deleted_at is not None:
        return False
    if actor.local and actor.type == "Person":
        return await Account.filter(actor_id=actor.id, approved=True).exists()
    return True


async def find_actor(deps: Deps, query: str) -> Actor:
    """`@name@host`, `name@host`, `acct:…`, a local `@name`, or an actor id / profile URL.

    Remote handles go through WebFinger, URLs through `resolve_actor` (known ids and profile URLs
    are answered from the database first). Failures are NotFound with a plain message.
    """
    text = query.strip()
    if not text:
        raise ServiceError("Type an address like @name@example.social.")
    if len(text) > MAX_QUERY:
        raise ServiceError("That is too long for an address.")
    try:
        if text.lower().startswith(("http://", "https://")):
            actor = await Actor.filter(ap_id=text).first() or await Actor.filter(url=text).first()
            if actor is None:
                actor = await remote_actors.resolve_actor(deps, text)
        else:
            if "@" not in text.removeprefix("acct:").lstrip("@"):
                text = f"{text.lstrip('@')}@{deps.settings.domain}"
            actor = await remote_actors.resolve_handle(deps, text)
    except NotFound:
        raise _not_found(query.strip()) from None
    if not await _visible_local(actor):
        raise _not_found(query.strip())
    return actor


async def card(deps: Deps, viewer: Actor | None, query: str) -> Card:
    """The actor `query` names, with how `viewer` follows it (see `find_actor`)."""
    actor = await find_actor(deps, query)
    return Card(actor=actor, relation=await relation(viewer, actor), can_follow=actor.type != "Application")


# --- the account ------------------------------------------------------------------------------------


async def delete_account(deps: Deps, account: Account, password: str) -> None:
    """Delete the member's account once the password is confirmed (`actor_lifecycle.delete_member`)."""
    if not await verify_password(account.password_hash, password[:1024]):
        raise ServiceError("That password is not right. Your account is not deleted.")
    await actor_lifecycle.delete_member(deps, account)
