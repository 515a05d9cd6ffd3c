"""The Group actor document (protocol §2.4) and the group's collections (§2.6).

* `attributedTo` → the moderators collection (FEP-1b12; Lemmy puts the creator first).
* `postingRestrictedToMods`, `sensitive` (Lemmy); `members`, `memberCount`, `openness` (Mobilizon).
* followers: hidden (totalItems, no `first`), as Lemmy does for communities;
* members: the count for everyone, the list only for members (signed fetch);
* outbox: the group's public Announces, newest first; featured: pinned threads.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.documents import JSON, ordered_collection, ordered_collection_page
from fediverse_net.db.models import Actor, Follow, Group, GroupPost, Membership, OutgoingActivity
from fediverse_net.deps import Deps
from fediverse_net.services import actor_documents, moderation
from fediverse_net.services.groups.core import member_count, moderators
from fediverse_net.services.markup import render_markdown
from fediverse_net.services.notes import note_object
from fediverse_net.urls import Urls

PAGE_SIZE: Final = 40
OPENNESS: Final = {"open": "open", "approval": "moderated", "invite": "invite_only"}
GROUP_TERMS: Final[dict[str, Any]] = {
    "mz": "https://joinmobilizon.org/ns#",
    "sc": "http://schema.org#",
    "members": {"@id": "mz:members", "@type": "@id"},
    "memberCount": {"@id": "mz:memberCount", "@type": "sc:Integer"},
    "openness": {"@id": "mz:openness", "@type": "@id"},
    "location": {"@id": "sc:location", "@type": "sc:Place"},
    "PostalAddress": "sc:PostalAddress",
    "address": {"@id": "sc:address", "@type": "sc:PostalAddress"},
    "addressLocality": "sc:addressLocality",
    "addressRegion": "sc:addressRegion",
}


def _summary(actor: Actor, settings: Group, domain: str) -> str:
    parts = [actor.summary or ""]
    if settings.rules:
        parts.append("<p><strong>Rules</strong></p>" + render_markdown(settings.rules))
    parts.append(f"<p>Mention @{actor.username}@{domain} to post to the group.</p>")
    return "\n".join(p for p in parts if p)


def _location(settings: Group) -> JSON | None:
    if not settings.city and not settings.area:
        return None
    address: JSON = {"type": "PostalAddress"}
    if settings.city:
        address["addressLocality"] = settings.city
    if settings.area:
        address["addressRegion"] = settings.area
    name = ", ".join(p for p in (settings.city, settings.area) if p)
    return {"type": "Place", "name": name, "address": address}


async def group_document(actor: Actor, urls: Urls) -> JSON:
    """The Group actor as served at its id (Mastodon's actor shape plus the group extras)."""
    settings = await Group.get(actor_id=actor.id)
    doc = await actor_documents.document_for(actor, urls)
    context = doc.get("@context")
    doc["@context"] = [*(context if isinstance(context, list) else [context]), GROUP_TERMS]
    ap_id = actor.ap_id
    doc.update(
        {
            "summary": _summary(actor, settings, actor.domain),
            "attributedTo": f"{ap_id}/moderators",
            "postingRestrictedToMods": settings.posting == "moderators",
            "sensitive": False,
            "manuallyApprovesFollowers": settings.join_mode != "open",
            "discoverable": settings.visibility == "public",
            "members": f"{ap_id}/members",
            "memberCount": await member_count(actor),
            "openness": OPENNESS.get(settings.join_mode, "moderated"),
            "tag": [
                {"type": "Hashtag", "href": f"{urls.origin}/groups?tag={tag}", "name": f"#{tag}"}
                for tag in settings.tags
            ],
        }
    )
    if location := _location(settings):
        doc["location"] = location
    return doc


def _pages(collection_id: str, page: int, total: int) -> tuple[str | None, str | None]:
    next_url = f"{collection_id}?page={page + 1}" if page * PAGE_SIZE < total else None
    prev_url = f"{collection_id}?page={page - 1}" if page > 1 else None
    return next_url, prev_url


async def followers_collection(actor: Actor) -> JSON:
    """Hidden: the count only (follower lists are never published)."""
    total = await Follow.filter(followee_id=actor.id, state="accepted").count()
    return ordered_collection(f"{actor.ap_id}/followers", total, first=None)


def following_collection(actor: Actor) -> JSON:
    """Groups never follow anyone."""
    return ordered_collection(f"{actor.ap_id}/following", 0, first=None)


async def members_collection(actor: Actor, page: int | None, *, show_items: bool) -> JSON:
    """Members: the count for everyone; the actor ids for members only (privacy by default)."""
    collection_id = f"{actor.ap_id}/members"
    query = Membership.filter(group_id=actor.id, state="accepted")
    total = await query.count()
    if page is None or not show_items:
        return ordered_collection(
            collection_id, total, first=f"{collection_id}?page=1" if show_items else None
        )
    rows = await query.order_by("id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE).select_related("member")
    next_url, prev_url = _pages(collection_id, page, total)
    items = [row.member.ap_id for row in rows]
    return ordered_collection_page(
        f"{collection_id}?page={page}", collection_id, total, items, next_url=next_url, prev_url=prev_url
    )


async def moderators_collection(actor: Actor) -> JSON:
    """FEP-1b12 moderators: an OrderedCollection of actor ids, public (Lemmy's shape)."""
    items = [mod.ap_id for mod in await moderators(actor)]
    doc = ordered_collection(f"{actor.ap_id}/moderators", len(items), first=None)
    doc["orderedItems"] = items
    return doc


async def featured_collection(actor: Actor) -> JSON:
    """Pinned public threads, embedded as Notes (Mastodon embeds them too)."""
    rows = (
        await GroupPost.filter(group_id=actor.id, pinned=True, state="accepted", members_only=False)
        .select_related("note__author")
        .order_by("-id")
        .limit(PAGE_SIZE)
    )
    items = [note_object(row.note, row.note.author) for row in rows]
    doc = ordered_collection(f"{actor.ap_id}/collections/featured", len(items), first=None)
    doc["orderedItems"] = items
    return doc


async def outbox_collection(actor: Actor, page: int | None) -> JSON:
    """The group's public Announces (what followers received), newest first."""
    collection_id = f"{actor.ap_id}/outbox"
    query = OutgoingActivity.filter(actor_id=actor.id, type="Announce", public=True)
    total = await query.count()
    if page is None:
        return ordered_collection(collection_id, total, first=f"{collection_id}?page=1")
    rows = await query.order_by("-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    items = [{k: v for k, v in orjson.loads(row.body).items() if k != "@context"} for row in rows]
    next_url, prev_url = _pages(collection_id, page, total)
    return ordered_collection_page(
        f"{collection_id}?page={page}", collection_id, total, items, next_url=next_url, prev_url=prev_url
    )


async def public_activity(actor: Actor, ap_id: str) -> JSON | None:
    """One of the group's public activities by id (FEP-1b12 ids must dereference)."""
    row = await OutgoingActivity.filter(actor_id=actor.id, ap_id=ap_id, public=True).first()
    if row is None:
        return None
    document: JSON = orjson.loads(row.body)
    return document


async def members_only_note(deps: Deps, ap_id: str, signer: str | None) -> JSON | None:
    """A local members-only group post, for a signed fetch by a member of that group; else None.

    The member must be neither suspended nor deleted, and its domain not suspended.
    """
    if not signer or await moderation.is_suspended_domain(deps, signer):
        return None
    post = (
        await GroupPost.filter(note__ap_id=ap_id, note__local=True, members_only=True, state="accepted")
        .select_related("note__author", "group")
        .first()
    )
    if post is None:
        return None
    member = await Membership.filter(
        group_id=post.group_id,
        member__ap_id=signer,
        member__suspended=False,
        member__deleted_at=None,
        state="accepted",
    ).exists()
    if not member:
        return None
    return {"@context": builders.NOTE_CONTEXT, **note_object(post.note, post.note.author)}
