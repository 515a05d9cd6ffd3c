"""Builders of the activities we send, in the exact shapes of protocol.md §5.

Pure functions: ids are passed in. `Accept`/`Reject`/`Undo` always embed the original activity
(Mastodon matches by the embedded id and Misskey resolves `object`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fediverse_net.activitypub.vocab import ACTOR_CONTEXT, AS_CONTEXT, PUBLIC

JSON = dict[str, Any]
NOTE_CONTEXT: list[Any] = [
    AS_CONTEXT,
    {"sensitive": "as:sensitive", "Hashtag": "as:Hashtag", "toot": "http://joinmastodon.org/ns#"},
]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def strip_context(activity: JSON) -> JSON:
    """The activity without its `@context`, for embedding in another one."""
    return {k: v for k, v in activity.items() if k != "@context"}


def follow(*, id: str, actor: str, object: str) -> JSON:
    return {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Follow",
        "actor": actor,
        "object": object,
        "to": [object],
    }


def accept(*, id: str, actor: str, object: JSON, to: str) -> JSON:
    """`Accept` embedding the received activity exactly as received (minus its @context)."""
    return {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Accept",
        "actor": actor,
        "to": [to],
        "object": strip_context(object),
    }


def reject(*, id: str, actor: str, object: JSON, to: str) -> JSON:
    return {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Reject",
        "actor": actor,
        "to": [to],
        "object": strip_context(object),
    }


def undo(*, id: str, actor: str, object: JSON, to: list[str] | None = None) -> JSON:
    activity: JSON = {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Undo",
        "actor": actor,
        "object": strip_context(object),
    }
    if to:
        activity["to"] = to
    return activity


def note(
    *,
    id: str,
    attributed_to: str,
    content: str,
    published: datetime,
    to: list[str],
    cc: list[str],
    url: str | None = None,
    in_reply_to: str | None = None,
    name: str | None = None,
    summary: str | None = None,
    tags: list[JSON] | None = None,
    audience: str | None = None,
    updated: datetime | None = None,
    source: str | None = None,
) -> JSON:
    obj: JSON = {
        "id": id,
        "type": "Note",
        "attributedTo": attributed_to,
        "content": content,
        "published": iso(published),
        "to": to,
        "cc": cc,
        "inReplyTo": in_reply_to,
        "sensitive": bool(summary),
        "tag": tags or [],
    }
    for key, value in (("url", url), ("name", name), ("summary", summary), ("audience", audience)):
        if value:
            obj[key] = value
    if updated:
        obj["updated"] = iso(updated)
    if source is not None:
        obj["source"] = {"content": source, "mediaType": "text/markdown"}
    return obj


def create(*, id: str, actor: str, object: JSON) -> JSON:
    """`Create` with the same `to`/`cc` as its object (Mastodon reads the object's, Misskey both)."""
    return {
        "@context": NOTE_CONTEXT,
        "id": id,
        "type": "Create",
        "actor": actor,
        "published": object.get("published"),
        "to": object.get("to", []),
        "cc": object.get("cc", []),
        "object": object,
    }


def update(*, id: str, actor: str, object: JSON, context: Any = None) -> JSON:
    return {
        "@context": context or NOTE_CONTEXT,
        "id": id,
        "type": "Update",
        "actor": actor,
        "to": object.get("to", [PUBLIC]),
        "cc": object.get("cc", []),
        "object": object,
    }


def update_actor(*, id: str, actor_document: JSON) -> JSON:
    """`Update` of the complete actor (§5.10); `object.id == actor`.

    The document's own `@context` (a Group adds its terms to the actor context) becomes the
    activity's, so every property of the embedded actor stays defined.
    """
    body = strip_context(actor_document)
    return {
        "@context": actor_document.get("@context") or ACTOR_CONTEXT,
        "id": id,
        "type": "Update",
        "actor": actor_document["id"],
        "to": [PUBLIC],
        "object": body,
    }


def delete(
    *, id: str, actor: str, object_id: str, former_type: str | None = None, to: list[str] | None = None
) -> JSON:
    """`Delete` of an object (as a Tombstone) or, with object_id == actor, of the actor itself."""
    obj: Any = object_id if object_id == actor else {"id": object_id, "type": "Tombstone"}
    if isinstance(obj, dict) and former_type:
        obj["formerType"] = former_type
    return {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Delete",
        "actor": actor,
        "to": to or [PUBLIC],
        "object": obj,
    }


def tombstone(*, id: str, former_type: str, deleted: datetime) -> JSON:
    return {
        "@context": AS_CONTEXT,
        "id": id,
        "type": "Tombstone",
        "formerType": former_type,
        "deleted": iso(deleted),
    }
