"""Notes (posts and replies): publishing ours, storing remote ones, deleting, serving.

Audience (protocol §4.2): public posts go `to: [Public]`, `cc: [author followers]`; followers-only
posts `to: [author followers]`. Remote HTML is sanitised once, on the way in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.parse import JSON, first_string, get_id, ids_of
from fediverse_net.activitypub.sanitize import sanitize_html
from fediverse_net.activitypub.vocab import PUBLIC, is_public
from fediverse_net.db.models import Actor, Follow, Note, Tombstone
from fediverse_net.deps import Deps
from fediverse_net.services.errors import Forbidden, ServiceError
from fediverse_net.services.markup import render_markdown
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

MAX_SOURCE = 5000
NOTE_TYPES = frozenset({"Note", "Article", "Page", "Question"})
VISIBILITIES = ("public", "unlisted", "followers")


def audience(author: Actor, visibility: str) -> tuple[list[str], list[str]]:
    followers = author.followers_url or f"{author.ap_id}/followers"
    if visibility == "public":
        return [PUBLIC], [followers]
    if visibility == "unlisted":
        return [followers], [PUBLIC]
    return [followers], []


def visibility_of(to: list[str], cc: list[str], followers_url: str | None) -> str:
    """Mastodon's rule (§4.2): Public in `to` → public, in `cc` → unlisted, followers in `to` → followers."""
    if any(is_public(a) for a in to):
        return "public"
    if any(is_public(a) for a in cc):
        return "unlisted"
    if followers_url and followers_url in to:
        return "followers"
    return "direct"


def note_object(note: Note, author: Actor) -> JSON:
    group_extras: JSON = {}
    if note.local and isinstance(note.document, dict):
        # Posts in a group keep the group's `audience` and Mention (services/groups/posting.py).
        group_extras = {k: note.document[k] for k in ("audience", "tag") if k in note.document}
    return {**_note_object(note, author), **group_extras}


def _note_object(note: Note, author: Actor) -> JSON:
    return builders.note(
        id=note.ap_id,
        attributed_to=author.ap_id,
        content=note.content,
        published=note.published,
        to=list(note.to),
        cc=list(note.cc),
        url=note.url,
        in_reply_to=note.in_reply_to,
        name=note.name,
        summary=note.summary,
        updated=note.updated,
        source=note.source,
    )


async def publish_note(
    deps: Deps, author: Actor, source: str, *, visibility: str = "public", in_reply_to: Note | None = None
) -> Note:
    """Write the note and its Create (to the author's followers) in one transaction."""
    source = source.strip()
    if not source:
        raise ServiceError("Write something first.")
    if len(source) > MAX_SOURCE:
        raise ServiceError(f"A post may have at most {MAX_SOURCE} characters.")
    if visibility not in VISIBILITIES:
        raise ServiceError("Unknown visibility.")
    token = new_token()
    to, cc = audience(author, visibility)
    recipients = await followers_of(author)
    if in_reply_to is not None:
        parent_author = await in_reply_to.author
        if parent_author.id != author.id:
            cc.append(parent_author.ap_id)
            recipients.append(parent_author)
    now = deps.clock()
    async with in_transaction():
        note = await Note.create(
            ap_id=deps.urls.note(token),
            author=author,
            local=True,
            content=render_markdown(source),
            source=source,
            url=f"{author.url or author.ap_id}/notes/{token}" if author.url else None,
            in_reply_to=in_reply_to.ap_id if in_reply_to else None,
            visibility=visibility,
            to=to,
            cc=cc,
            published=now,
        )
        activity = builders.create(
            id=deps.urls.activity(token), actor=author.ap_id, object=note_object(note, author)
        )
        await record_outgoing(deps, actor=author, activity=activity, recipients=recipients)
    return note


async def followers_of(actor: Actor) -> list[Actor]:
    rows = await Follow.filter(followee=actor, state="accepted").select_related("follower")
    return [row.follower for row in rows]


async def delete_note(deps: Deps, author: Actor, note: Note) -> None:
    """Delete our note: a Tombstone forever (the id is never reused) and a Delete to its audience."""
    if note.author_id != author.id or not note.local:
        raise Forbidden("You can only delete your own posts.")
    recipients = await followers_of(author)
    # Also everyone the note was addressed to (e.g. the author of the post it replied to).
    addressed = [a for a in list(note.to) + list(note.cc) if isinstance(a, str) and not is_public(a)]
    recipients += await Actor.filter(ap_id__in=addressed[:200], deleted_at=None)
    activity = builders.delete(
        id=f"{note.ap_id}#delete",
        actor=author.ap_id,
        object_id=note.ap_id,
        former_type="Note",
        to=list(note.to) + list(note.cc) if note.visibility != "public" else None,
    )
    async with in_transaction():
        await Tombstone.create(ap_id=note.ap_id, former_type="Note")
        await note.delete()
        await record_outgoing(deps, actor=author, activity=activity, recipients=recipients)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def store_remote_note(deps: Deps, author: Actor, document: JSON) -> Note | None:
    """Store a remote note (already checked: same origin, attributedTo == author). Idempotent."""
    ap_id = document["id"]
    if await Tombstone.filter(ap_id=ap_id).exists():
        return None  # Delete arrived first, or the id was deleted: never resurrect it
    to, cc = ids_of(document.get("to"), limit=200), ids_of(document.get("cc"), limit=200)
    content = first_string(document.get("content"), document.get("contentMap")) or ""
    name = first_string(document.get("name"), document.get("nameMap"))
    summary = first_string(document.get("summary"), document.get("summaryMap"))
    url = document.get("url") if isinstance(document.get("url"), str) else None
    values: dict[str, Any] = {
        "content": sanitize_html(content[:100_000]),
        "name": name[:256] if name else None,
        "summary": summary[:1000] if summary else None,
        "url": url if url and len(url) <= 512 else None,
        "in_reply_to": (get_id(document.get("inReplyTo")) or "")[:512] or None,
        "visibility": visibility_of(to, cc, author.followers_url),
        "to": to,
        "cc": cc,
        "published": _parse_time(document.get("published")) or deps.clock(),
        "updated": _parse_time(document.get("updated")),
        "document": document,
    }
    try:
        note, _ = await Note.get_or_create(ap_id=ap_id, defaults={"author": author, "local": False, **values})
    except IntegrityError:
        return await Note.filter(ap_id=ap_id).first()
    return note


async def update_remote_note(author: Actor, document: JSON) -> Note | None:
    """Apply an edit only from the note's owner and only if `updated` is newer (protocol §5.3).

    Returns the note when the edit was applied."""
    note = await Note.filter(ap_id=document.get("id"), author=author, local=False).first()
    if note is None:
        return None
    updated = _parse_time(document.get("updated"))
    if updated is None or (note.updated and updated <= note.updated):
        return None
    content = first_string(document.get("content"), document.get("contentMap")) or ""
    note.content = sanitize_html(content[:100_000])
    note.updated = updated
    note.document = document
    await note.save(update_fields=["content", "updated", "document"])
    return note
