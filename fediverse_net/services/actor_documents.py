"""Actor documents and collections of local actors, built from rows by the pure builders."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.documents import (
    JSON,
    ActorInfo,
    actor_document,
    instance_actor_document,
    ordered_collection,
    ordered_collection_page,
)
from fediverse_net.db.models import Actor, Follow, Note, PublicKey, Tombstone
from fediverse_net.deps import Deps
from fediverse_net.services.notes import note_object
from fediverse_net.urls import Urls

PAGE_SIZE = 40


async def main_key_pem(actor: Actor) -> str:
    key = await PublicKey.filter(actor=actor, key_id=f"{actor.ap_id}#main-key").first()
    if key is None:
        raise LookupError(f"local actor {actor.ap_id} has no main key")
    return key.pem


async def document_for(actor: Actor, urls: Urls) -> JSON:
    """The JSON document served at a local actor's id."""
    pem = await main_key_pem(actor)
    if actor.type == "Application":
        return instance_actor_document(actor.ap_id, actor.domain, pem, urls.shared_inbox, actor.url or "")
    info = ActorInfo(
        ap_id=actor.ap_id,
        type=actor.type,
        username=actor.username,
        domain=actor.domain,
        public_key_pem=pem,
        shared_inbox=urls.shared_inbox,
        profile_url=actor.url,
        name=actor.name,
        summary=actor.summary,
        published=actor.created_at,
        manually_approves_followers=actor.manually_approves_followers,
        discoverable=actor.discoverable,
        indexable=actor.indexable,
        avatar_url=actor.avatar_url,
        header_url=actor.header_url,
    )
    document = actor_document(info)
    if actor.suspended:
        document["suspended"] = True  # toot:suspended, Mastodon's reversible suspension flag
    return document


async def follow_collection(actor: Actor, which: str, page: int | None, *, show_items: bool) -> JSON:
    """followers/following as a paged OrderedCollection; items only where the owner shows them.

    Privacy by default (product.md): lists of people are not published in full; the count is.
    """
    collection_id = f"{actor.ap_id}/{which}"
    if which == "followers":
        query = Follow.filter(followee=actor, state="accepted")
    else:
        query = Follow.filter(follower=actor, state="accepted")
    total = await query.count()
    if page is None or not show_items:
        return ordered_collection(
            collection_id, total, first=f"{collection_id}?page=1" if show_items else None
        )
    related = "follower" if which == "followers" else "followee"
    rows = await query.order_by("-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE).select_related(related)
    items = [getattr(row, related).ap_id for row in rows]
    next_url = f"{collection_id}?page={page + 1}" if page * PAGE_SIZE < total else None
    prev_url = f"{collection_id}?page={page - 1}" if page > 1 else None
    return ordered_collection_page(
        f"{collection_id}?page={page}", collection_id, total, items, next_url=next_url, prev_url=prev_url
    )


async def outbox(actor: Actor, page: int | None, urls: Urls) -> JSON:
    """Public Creates of the actor's notes, newest first (Mastodon reads `totalItems`)."""
    collection_id = f"{actor.ap_id}/outbox"
    query = Note.filter(author=actor, local=True, visibility__in=["public", "unlisted"])
    total = await query.count()
    if page is None:
        return ordered_collection(collection_id, total, first=f"{collection_id}?page=1")
    notes = await query.order_by("-published").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    items = [builders.strip_context(create_of(note, actor, urls)) for note in notes]
    next_url = f"{collection_id}?page={page + 1}" if page * PAGE_SIZE < total else None
    return ordered_collection_page(
        f"{collection_id}?page={page}", collection_id, total, items, next_url=next_url
    )


def create_of(note: Note, author: Actor, urls: Urls) -> JSON:
    """The Create of a local note, with the same id it was delivered with (ids are stable)."""
    token = note.ap_id.rsplit("/", 1)[-1]
    return builders.create(id=urls.activity(token), actor=author.ap_id, object=note_object(note, author))


async def public_note(ap_id: str) -> tuple[Note, Actor] | None:
    """A local public/unlisted note and its author; None for anything else (404, as Mastodon)."""
    note = await Note.filter(
        ap_id=ap_id, local=True, visibility__in=["public", "unlisted"], author__deleted_at__isnull=True
    ).first()
    if note is None:
        return None
    return note, await note.author


async def tombstone_for(ap_id: str) -> JSON | None:
    row = await Tombstone.filter(ap_id=ap_id).first()
    if row is None:
        return None
    return builders.tombstone(id=ap_id, former_type=row.former_type, deleted=row.deleted_at)


async def local_author_handle(note_ap_id: str) -> str | None:
    note = await Note.filter(ap_id=note_ap_id, local=True).select_related("author").first()
    return note.author.handle if note is not None else None


# Served actor documents by handle, for 60 s: an actor GET then costs no query and no JSON
# encoding (benchmark B1). Every change to a local actor goes through `actor_lifecycle` (Update or
# Delete), which forgets it.
DOCUMENT_CACHE = "actor_documents"
DOCUMENT_TTL = 60.0


@dataclass(frozen=True, slots=True)
class ServedDocument:
    """A local actor's document and its JSON encoding, built once per cache lifetime."""

    document: JSON
    body: bytes


async def member_document(deps: Deps, handle: str) -> ServedDocument:
    """The Person document of a local member (cached); raises discovery's NotFound/Gone.

    Only live members are cached: a deleted one raises Gone before anything is stored, and a
    document read while the member was being changed is not stored (`TTLCache.generation`).
    """
    if (served := cached_member_document(deps, handle)) is not None:
        return served
    from fediverse_net.services import discovery

    cache = deps.cache(DOCUMENT_CACHE, DOCUMENT_TTL)
    generation = cache.generation
    actor = await discovery.local_actor(handle, type_="Person")
    document = await document_for(actor, deps.urls)
    served = ServedDocument(document, orjson.dumps(document))
    cache.put(handle, served, generation=generation)
    return served


def cached_member_document(deps: Deps, handle: str) -> ServedDocument | None:
    """The cached Person document of `handle` (lower-case), or None: no query."""
    served: ServedDocument | None = deps.cache(DOCUMENT_CACHE, DOCUMENT_TTL).get(handle)
    return served


def forget_document(deps: Deps, actor: Actor) -> None:
    """Drop what is cached about a local actor that changed (document, WebFinger answers).

    Call it after the change is committed (`actor_lifecycle` does, and also before): a reader
    that read the old rows in between cannot store them, and one that reads afterwards sees the
    change.
    """
    from fediverse_net.services import discovery

    if actor.handle:
        deps.cache(DOCUMENT_CACHE, DOCUMENT_TTL).pop(actor.handle)
    deps.cache(discovery.WEBFINGER_CACHE, discovery.WEBFINGER_TTL).clear()
