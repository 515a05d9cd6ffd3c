"""Incoming Create of a note (protocol §5.2, §6.2, §6.3; security matrix row 12).

The object must be on the actor's origin and attributed to the actor. An embedded copy is used
only when the request was signed by that actor; a forwarded one is fetched from its origin.
Notes nobody here asked for (not addressed to us, author not followed, not a reply to us) are
not stored.
"""

from __future__ import annotations

from fediverse_net.activitypub.errors import FetchError, ProtocolError, UnsafeURL
from fediverse_net.activitypub.parse import JSON, get_id, get_type, ids_of, same_origin
from fediverse_net.activitypub.vocab import is_public
from fediverse_net.db.models import Actor, Follow, Note, Tombstone
from fediverse_net.services.groups.posting import receive_create
from fediverse_net.services.handlers.context import Incoming
from fediverse_net.services.moderation import policy_for
from fediverse_net.services.notes import NOTE_TYPES, store_remote_note
from fediverse_net.services.remote_actors import instance_signing_key

# Pleroma's HellthreadPolicy: a note naming more distinct actors than this is dropped (row 25).
HELLTHREAD_THRESHOLD = 100
MEDIA_KEYS = ("attachment", "image", "icon")


def named_actors(activity: JSON, document: JSON) -> set[str]:
    """Distinct ids in to/cc (activity and object) and the object's tag hrefs, public excluded."""
    names: set[str] = set()
    for source in (activity, document):
        for field in ("to", "cc", "bto", "bcc"):
            names.update(ids_of(source.get(field), limit=1000))
    tags = document.get("tag")
    for tag in tags[:1000] if isinstance(tags, list) else []:
        if isinstance(tag, dict) and get_type(tag) == "Mention" and (href := get_id(tag.get("href"))):
            names.add(href)
    return {n for n in names if not is_public(n) and not n.endswith(("/followers", "/following"))}


async def trusted_object(inc: Incoming) -> JSON | None:
    """The activity's object as its origin vouches for it, or None."""
    obj = inc.activity.get("object")
    obj_id = get_id(obj)
    if obj_id is None or not same_origin(obj_id, inc.actor.ap_id):
        return None
    if isinstance(obj, dict) and not inc.item.refetch:
        return obj
    try:
        key = await instance_signing_key(inc.deps)
        return await inc.deps.http().fetch_object(obj_id, sign_as=key)
    except (FetchError, ProtocolError, UnsafeURL):
        return None


async def is_relevant(inc: Incoming, document: JSON) -> bool:
    """Addressed to one of ours, by someone one of ours follows, or a reply to one of ours."""
    audience = ids_of(document.get("to")) + ids_of(document.get("cc")) + ids_of(inc.activity.get("to"))
    audience += ids_of(inc.activity.get("cc")) + ids_of(document.get("audience"))
    mentions = (
        [get_id(t.get("href")) for t in document.get("tag", []) if isinstance(t, dict)][:50]
        if isinstance(document.get("tag"), list)
        else []
    )
    local_ids = [a for a in audience + [m for m in mentions if m] if inc.is_local_id(a)]
    if local_ids and await Actor.filter(ap_id__in=local_ids[:100], local=True).exists():
        return True
    followed = inc.batch.followed.get(inc.actor.ap_id) if inc.batch is not None else None
    if followed is None:
        followed = await Follow.filter(followee=inc.actor, follower__local=True, state="accepted").exists()
    if followed:
        return True
    parent = get_id(document.get("inReplyTo"))
    return bool(parent and inc.is_local_id(parent) and await Note.filter(ap_id=parent, local=True).exists())


async def _tombstoned(inc: Incoming, ap_id: str) -> bool:
    known = inc.batch.tombstoned if inc.batch is not None else None
    if known is not None and ap_id in known:
        return known[ap_id]
    return await Tombstone.filter(ap_id=ap_id).exists()


async def handle(inc: Incoming) -> None:
    if inc.local:
        return  # our own note: already stored when it was published
    document = await trusted_object(inc)
    if document is None or get_type(document) not in NOTE_TYPES:
        return
    if get_id(document.get("attributedTo")) != inc.actor.ap_id:
        return
    if await _tombstoned(inc, document["id"]):
        return
    if len(named_actors(inc.activity, document)) > HELLTHREAD_THRESHOLD:
        return  # hellthread: dropped, not stored (security matrix row C25)
    policy = await policy_for(inc.deps, inc.actor.ap_id)
    if policy is not None and policy.reject_media:  # domain policy: their media is never kept
        document = {k: v for k, v in document.items() if k not in MEDIA_KEYS}
    # Posts for our groups follow the group algorithm (protocol §2.7): accepted ones are stored
    # and announced, refused ones are only logged for the group's moderators.
    trusted = not inc.item.refetch and isinstance(inc.activity.get("object"), dict)
    verdict = await receive_create(inc.deps, inc.actor, inc.activity, document, trusted_activity=trusted)
    if verdict is not None:
        return
    if await is_relevant(inc, document):
        await store_remote_note(inc.deps, inc.actor, document)
