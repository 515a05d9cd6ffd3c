"""What the group pages read: the group page, threads, the directory, the Atom feed.

Who sees what (product.md, privacy by default): public threads anyone; members-only threads
members; the member list and the moderation log members; the approval queue moderators.
Removed posts are hidden from everyone but moderators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from xml.sax.saxutils import escape

import orjson
from tortoise import connections

from fediverse_net.activitypub.sanitize import plain_text, truncate
from fediverse_net.db import group_search
from fediverse_net.db.models import Actor, Follow, Group, GroupPost, JoinQuestion, Membership, Note
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Forbidden, NotFound
from fediverse_net.services.groups.core import (
    MODERATOR_ROLES,
    follower_count,
    local_group,
    member_count,
    membership_of,
)

MAX_THREADS: Final = 100
MAX_REPLIES: Final = 300
MAX_LISTED: Final = 200


@dataclass(slots=True)
class Viewer:
    """The viewer's relation to a group."""

    actor: Actor | None
    membership: Membership | None
    follow_state: str | None  # None | "pending" | "accepted"

    @property
    def is_member(self) -> bool:
        return self.membership is not None and self.membership.state == "accepted"

    @property
    def is_moderator(self) -> bool:
        return self.is_member and self.membership is not None and self.membership.role in MODERATOR_ROLES

    @property
    def is_admin(self) -> bool:
        return self.is_member and self.membership is not None and self.membership.role == "admin"

    @property
    def state(self) -> str:
        """none | pending | accepted | banned | invited."""
        return self.membership.state if self.membership is not None else "none"


async def viewer_of(group: Actor, actor: Actor | None) -> Viewer:
    row = await membership_of(group, actor)
    follow = (
        await Follow.filter(follower_id=actor.id, followee_id=group.id).first() if actor is not None else None
    )
    return Viewer(actor=actor, membership=row, follow_state=follow.state if follow else None)


@dataclass(slots=True)
class GroupPage:
    group: Actor
    settings: Group
    viewer: Viewer
    members: int
    followers: int
    threads: list[GroupPost] = field(default_factory=list)
    questions: list[JoinQuestion] = field(default_factory=list)
    pending: int = 0


def _visible_posts(viewer: Viewer, query):  # type: ignore[no-untyped-def]
    if not viewer.is_member:
        query = query.filter(members_only=False)
    if not viewer.is_moderator:
        query = query.filter(state="accepted")
    return query


async def group_page(handle: str, actor: Actor | None) -> GroupPage:
    group, settings = await local_group(handle)
    viewer = await viewer_of(group, actor)
    query = _visible_posts(viewer, GroupPost.filter(group_id=group.id, thread_root=None))
    threads = await query.select_related("note__author").order_by("-pinned", "-id").limit(MAX_THREADS)
    pending = 0
    if viewer.is_moderator:
        pending = await Membership.filter(group_id=group.id, state="pending").count()
        pending += await Follow.filter(followee_id=group.id, state="pending").count()
        pending += await GroupPost.filter(group_id=group.id, state="held").count()
    return GroupPage(
        group=group,
        settings=settings,
        viewer=viewer,
        members=await member_count(group),
        followers=await follower_count(group),
        threads=list(threads),
        questions=list(await JoinQuestion.filter(group_id=group.id).order_by("position", "id")),
        pending=pending,
    )


@dataclass(slots=True)
class ThreadPage:
    page: GroupPage
    post: GroupPost
    replies: list[GroupPost]


async def thread_page(handle: str, actor: Actor | None, note_id: int) -> ThreadPage:
    page = await group_page(handle, actor)
    query = _visible_posts(page.viewer, GroupPost.filter(group_id=page.group.id, note_id=note_id))
    post = await query.select_related("note__author").first()
    if post is None:
        raise NotFound("This post does not exist, or you cannot see it.")
    root = post.note.ap_id if post.thread_root is None else post.thread_root
    replies = await (
        _visible_posts(page.viewer, GroupPost.filter(group_id=page.group.id, thread_root=root))
        .select_related("note__author")
        .order_by("id")
        .limit(MAX_REPLIES)
    )
    return ThreadPage(page=page, post=post, replies=[r for r in replies if r.id != post.id])


async def require_member_view(handle: str, actor: Actor | None) -> GroupPage:
    page = await group_page(handle, actor)
    if not page.viewer.is_member:
        raise Forbidden("Only members of this group can see this.")
    return page


async def require_moderator_view(handle: str, actor: Actor | None) -> GroupPage:
    page = await group_page(handle, actor)
    if not page.viewer.is_moderator:
        raise Forbidden("Only the group's moderators can see this.")
    return page


async def require_admin_view(handle: str, actor: Actor | None) -> GroupPage:
    page = await group_page(handle, actor)
    if not page.viewer.is_admin:
        raise Forbidden("Only the group's admins can do this.")
    return page


async def pending_follows(group: Actor) -> list[Follow]:
    return list(
        await Follow.filter(followee_id=group.id, state="pending").select_related("follower").order_by("id")
    )


async def held_posts(group: Actor) -> list[GroupPost]:
    """Posts waiting for a moderator's review, oldest first."""
    query = GroupPost.filter(group_id=group.id, state="held").select_related("note__author")
    return list(await query.order_by("id").limit(MAX_THREADS))


async def banned(group: Actor) -> list[Membership]:
    return list(await Membership.filter(group_id=group.id, state="banned").select_related("member"))


async def note_of(note_id: int) -> Note:
    note = await Note.filter(id=note_id).first()
    if note is None:
        raise NotFound("That post is gone.")
    return note


# --- the directory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedGroup:
    """What the directory shows of a group's actor (the attributes of `Actor` it reads)."""

    ap_id: str
    username: str
    domain: str
    name: str
    url: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class ListedSettings:
    """What the directory shows of a group's settings (the attributes of `Group` it reads)."""

    tags: list[str]
    city: str
    area: str
    join_mode: str


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    group: ListedGroup
    settings: ListedSettings
    members: int


def _tags(raw: object) -> list[str]:
    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return [str(tag) for tag in value] if isinstance(value, list) else []


async def directory(text: str = "", tag: str = "", city: str = "") -> list[DirectoryEntry]:
    """Public groups matching all given filters, by name (at most 200).

    `text` anywhere in the name, handle or description and `city` anywhere in the city, both
    case-insensitive; `tag` one of the group's tags. The matching runs on the trigram index
    `group_search` (db/group_search.py), so every group is searched, not a first slice. One
    query reads only the columns shown (a page of full models cost more than the search).
    """
    words = text.strip().lower()[:200]
    wanted_tag = tag.strip().lstrip("#").lower()[:40]
    if "|" in wanted_tag:  # the index separates tags with '|'; no tag contains one (TAG_RE)
        return []
    rows = await group_search.listed_groups(
        connections.get("default"),
        text=words,
        city=city.strip().lower()[:128],
        tag=wanted_tag,
        limit=MAX_LISTED,
    )
    return [
        DirectoryEntry(
            group=ListedGroup(
                ap_id=str(row["ap_id"]),
                username=str(row["username"]),
                domain=str(row["domain"]),
                name=str(row["name"] or ""),
                url=row["url"],
                summary=str(row["summary"] or ""),
            ),
            settings=ListedSettings(
                tags=_tags(row["tags"]),
                city=str(row["city"]),
                area=str(row["area"]),
                join_mode=str(row["join_mode"]),
            ),
            members=int(row["members"]),
        )
        for row in rows
    ]


def directory_json(entries: list[DirectoryEntry]) -> list[dict[str, object]]:
    return [
        {
            "id": e.group.ap_id,
            "handle": f"@{e.group.username}@{e.group.domain}",
            "name": e.group.name,
            "url": e.group.url,
            "summary": truncate(plain_text(e.group.summary), 300),
            "tags": list(e.settings.tags),
            "city": e.settings.city,
            "area": e.settings.area,
            "joinMode": e.settings.join_mode,
            "memberCount": e.members,
        }
        for e in entries
    ]


# --- the Atom feed ----------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def atom_feed(deps: Deps, handle: str) -> str:
    """The group's public threads as Atom (RFC 4287), newest first."""
    group, _ = await local_group(handle)
    posts = (
        await GroupPost.filter(group_id=group.id, thread_root=None, members_only=False, state="accepted")
        .select_related("note__author")
        .order_by("-id")
        .limit(50)
    )
    updated = posts[0].note.published if posts else group.created_at
    page = group.url or group.ap_id
    entries = []
    for post in posts:
        note = post.note
        title = note.name or truncate(plain_text(note.content), 80) or "Post"
        link = f"{page}/t/{note.id}"
        entries.append(
            "  <entry>\n"
            f"    <id>{escape(note.ap_id)}</id>\n"
            f"    <title>{escape(title)}</title>\n"
            f'    <link rel="alternate" type="text/html" href="{escape(link)}"/>\n'
            f"    <published>{_iso(note.published)}</published>\n"
            f"    <updated>{_iso(note.updated or note.published)}</updated>\n"
            f"    <author><name>{escape(note.author.name or note.author.username)}</name>"
            f"<uri>{escape(note.author.url or note.author.ap_id)}</uri></author>\n"
            f'    <content type="html">{escape(note.content)}</content>\n'
            "  </entry>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"  <id>{escape(group.ap_id)}</id>\n"
        f"  <title>{escape(group.name or group.username)}</title>\n"
        f"  <subtitle>{escape(truncate(plain_text(group.summary), 300))}</subtitle>\n"
        f'  <link rel="alternate" type="text/html" href="{escape(page)}"/>\n'
        f'  <link rel="self" type="application/atom+xml" href="{escape(page)}/feed.atom"/>\n'
        f"  <updated>{_iso(updated)}</updated>\n" + "".join(entries) + "</feed>\n"
    )
