"""Exact strings of the ActivityStreams / ActivityPub vocabulary we emit and accept."""

from __future__ import annotations

from typing import Any, Final

AS_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT: Final = "https://w3id.org/security/v1"
WEBFINGER_CONTEXT: Final = "https://purl.archive.org/socialweb/webfinger"
PUBLIC: Final = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES: Final = frozenset({PUBLIC, "as:Public", "Public"})

ACTIVITY_CONTENT_TYPE: Final = "application/activity+json"
LD_CONTENT_TYPE: Final = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
JRD_CONTENT_TYPE: Final = "application/jrd+json"
ACCEPT_ACTIVITY: Final = f"{ACTIVITY_CONTENT_TYPE}, {LD_CONTENT_TYPE}"

ACTOR_TYPES: Final = frozenset({"Person", "Group", "Application", "Service", "Organization"})

# The actor context of protocol.md §2.2 (Mastodon's, plus Lemmy's group term).
ACTOR_CONTEXT_TERMS: Final[dict[str, Any]] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
    "toot": "http://joinmastodon.org/ns#",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "memorial": "toot:memorial",
    "suspended": "toot:suspended",
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "lemmy": "https://join-lemmy.org/ns#",
    "postingRestrictedToMods": "lemmy:postingRestrictedToMods",
}
ACTOR_CONTEXT: Final[list[Any]] = [AS_CONTEXT, SECURITY_CONTEXT, WEBFINGER_CONTEXT, ACTOR_CONTEXT_TERMS]


def is_public(address: object) -> bool:
    """True for any spelling of the public collection (`as:Public`, `Public`, full IRI)."""
    return isinstance(address, str) and address in PUBLIC_ALIASES


def is_activitypub_media_type(content_type: str | None) -> bool:
    """True for `application/activity+json` or `application/ld+json` with the AS profile.

    Mastodon, Misskey and FEP-fe34 accept nothing else for fetched documents.
    """
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media == ACTIVITY_CONTENT_TYPE:
        return True
    return media == "application/ld+json" and AS_CONTEXT in params


def wants_activitypub(accept: str | None) -> bool:
    """Content negotiation: does this Accept header ask for the ActivityPub document?

    Fedify, Mastodon and Misskey send activity+json or ld+json; plain application/json
    is treated as JSON too (protocol.md §1.5).
    """
    if not accept:
        return False
    accept = accept.lower()
    return any(t in accept for t in ("application/activity+json", "application/ld+json", "application/json"))
