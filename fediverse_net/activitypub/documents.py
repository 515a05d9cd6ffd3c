"""Builders for the documents we serve: actors, collections, WebFinger, host-meta, NodeInfo.

Pure functions of plain values (protocol.md §1–§2). They never read settings or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fediverse_net.activitypub.vocab import ACTIVITY_CONTENT_TYPE, ACTOR_CONTEXT, AS_CONTEXT, SECURITY_CONTEXT

JSON = dict[str, Any]
NODEINFO_REL = "http://nodeinfo.diaspora.software/ns/schema/{version}"
PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"
SUBSCRIBE_REL = "http://ostatus.org/schema/1.0/subscribe"


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """What an actor document is built from. `ap_id` is the id; the other URLs hang off it."""

    ap_id: str
    type: str
    username: str
    domain: str
    public_key_pem: str
    shared_inbox: str
    profile_url: str | None = None
    name: str = ""
    summary: str = ""
    published: datetime | None = None
    manually_approves_followers: bool = False
    discoverable: bool = False
    indexable: bool = False
    avatar_url: str | None = None
    header_url: str | None = None
    extra: JSON = field(default_factory=dict)


def key_id_of(actor_id: str) -> str:
    """The `keyId` of an actor's main key: what we sign with and publish (§3.6)."""
    return f"{actor_id}#main-key"


def image_media_type(url: str) -> str:
    """The media type of a picture, from its address's extension (PNG when it has none we know)."""
    lowered = url.lower().split("?")[0]
    if lowered.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    if lowered.endswith(".webp"):
        return "image/webp"
    if lowered.endswith(".gif"):
        return "image/gif"
    return "image/png"


def _image(url: str | None) -> JSON | None:
    if not url:
        return None
    return {"type": "Image", "mediaType": image_media_type(url), "url": url}


def actor_document(info: ActorInfo) -> JSON:
    """A Person/Group actor in Mastodon's shape (§2.3/§2.4): `publicKey` one object, no nulls."""
    doc: JSON = {
        "@context": ACTOR_CONTEXT,
        "id": info.ap_id,
        "type": info.type,
        "preferredUsername": info.username,
        "webfinger": f"{info.username}@{info.domain}",
        "name": info.name or info.username,
        "summary": info.summary,
        "inbox": f"{info.ap_id}/inbox",
        "outbox": f"{info.ap_id}/outbox",
        "followers": f"{info.ap_id}/followers",
        "following": f"{info.ap_id}/following",
        "featured": f"{info.ap_id}/collections/featured",
        "endpoints": {"sharedInbox": info.shared_inbox},
        "manuallyApprovesFollowers": info.manually_approves_followers,
        "discoverable": info.discoverable,
        "indexable": info.indexable,
        "memorial": False,
        "publicKey": {
            "id": key_id_of(info.ap_id),
            "owner": info.ap_id,
            "publicKeyPem": info.public_key_pem,
        },
        "attachment": [],
        "tag": [],
    }
    if info.profile_url:
        doc["url"] = info.profile_url
    if info.published:
        # Mastodon publishes midnight UTC of the creation day ("Joined" date only).
        doc["published"] = info.published.strftime("%Y-%m-%dT00:00:00Z")
    if icon := _image(info.avatar_url):
        doc["icon"] = icon
    if image := _image(info.header_url):
        doc["image"] = image
    doc.update(info.extra)
    return doc


def instance_actor_document(
    ap_id: str, domain: str, public_key_pem: str, shared_inbox: str, about_url: str
) -> JSON:
    """The `Application` instance actor (§2.5): fetchable unsigned, signs server-level fetches."""
    return {
        "@context": [
            AS_CONTEXT,
            SECURITY_CONTEXT,
            {"manuallyApprovesFollowers": "as:manuallyApprovesFollowers"},
        ],
        "id": ap_id,
        "type": "Application",
        "preferredUsername": domain,
        "inbox": f"{ap_id}/inbox",
        "outbox": f"{ap_id}/outbox",
        "endpoints": {"sharedInbox": shared_inbox},
        "url": about_url,
        "manuallyApprovesFollowers": True,
        "publicKey": {"id": key_id_of(ap_id), "owner": ap_id, "publicKeyPem": public_key_pem},
    }


def ordered_collection(ap_id: str, total: int, *, first: str | None) -> JSON:
    """A collection head; `first` omitted hides the items (Mastodon then shows counts as hidden)."""
    doc: JSON = {"@context": AS_CONTEXT, "id": ap_id, "type": "OrderedCollection", "totalItems": total}
    if first is not None:
        doc["first"] = first
    return doc


def ordered_collection_page(
    ap_id: str,
    part_of: str,
    total: int,
    items: list[Any],
    *,
    next_url: str | None,
    prev_url: str | None = None,
) -> JSON:
    doc: JSON = {
        "@context": AS_CONTEXT,
        "id": ap_id,
        "type": "OrderedCollectionPage",
        "partOf": part_of,
        "totalItems": total,
        "orderedItems": items,
    }
    if next_url:
        doc["next"] = next_url
    if prev_url:
        doc["prev"] = prev_url
    return doc


def webfinger_document(
    *,
    subject: str,
    actor_id: str,
    profile_url: str | None,
    origin: str,
    actor_type: str,
    avatar_url: str | None = None,
) -> JSON:
    """JRD for one actor (§1.1): exactly one AP `self` link, byte-identical to the actor id."""
    self_link: JSON = {"rel": "self", "type": ACTIVITY_CONTENT_TYPE, "href": actor_id}
    if actor_type == "Group":
        # Lemmy tells users and communities apart by this property (§1.1).
        self_link["properties"] = {"https://www.w3.org/ns/activitystreams#type": "Group"}
    links: list[JSON] = []
    if profile_url:
        links.append({"rel": PROFILE_PAGE_REL, "type": "text/html", "href": profile_url})
    links.append(self_link)
    links.append({"rel": SUBSCRIBE_REL, "template": f"{origin}/authorize_interaction?uri={{uri}}"})
    if avatar_url:
        links.append(
            {
                "rel": "http://webfinger.net/rel/avatar",
                "type": image_media_type(avatar_url),
                "href": avatar_url,
            }
        )
    aliases = [u for u in (profile_url, actor_id) if u]
    return {"subject": subject, "aliases": aliases, "links": links}


def host_meta_xml(origin: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template="{origin}/.well-known/webfinger?resource={{uri}}"/>\n'
        "</XRD>\n"
    )


def host_meta_json(origin: str) -> JSON:
    return {"links": [{"rel": "lrdd", "template": f"{origin}/.well-known/webfinger?resource={{uri}}"}]}


def nodeinfo_links(origin: str) -> JSON:
    return {
        "links": [
            {"rel": NODEINFO_REL.format(version=v), "href": f"{origin}/nodeinfo/{v}"} for v in ("2.1", "2.0")
        ]
    }


@dataclass(frozen=True, slots=True)
class NodeUsage:
    users_total: int
    active_month: int
    active_halfyear: int
    local_posts: int


def nodeinfo_document(
    version: str,
    *,
    software_version: str,
    open_registrations: bool,
    usage: NodeUsage,
    name: str,
    description: str,
) -> JSON:
    """NodeInfo 2.0/2.1 (`jhass/nodeinfo` schemas: additionalProperties false at the top level)."""
    software: JSON = {"name": "fediverse-net", "version": software_version}
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": open_registrations,
        "usage": {
            "users": {
                "total": usage.users_total,
                "activeMonth": usage.active_month,
                "activeHalfyear": usage.active_halfyear,
            },
            "localPosts": usage.local_posts,
            "localComments": 0,
        },
        "metadata": {"nodeName": name, "nodeDescription": description},
    }
