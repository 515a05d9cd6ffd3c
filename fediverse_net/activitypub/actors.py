"""Validating remote actor documents (protocol.md §2.1, §3.6, §6.2; security matrix rows 13, 24, 32).

`parse_actor` turns a fetched or embedded actor document into plain, capped, checked values.
It refuses documents whose URLs leave the actor's origin or use non-http(s) schemes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fediverse_net.activitypub.errors import ProtocolError
from fediverse_net.activitypub.parse import JSON, as_list, first_string, get_id, host_of, same_origin
from fediverse_net.activitypub.vocab import ACTOR_TYPES

MAX_KEYS = 10
MAX_NAME = 256
MAX_SUMMARY = 20_000
MAX_USERNAME = 128


@dataclass(frozen=True, slots=True)
class ActorKey:
    key_id: str
    pem: str


@dataclass(frozen=True, slots=True)
class RemoteActorData:
    ap_id: str
    type: str
    username: str
    domain: str
    name: str
    summary_html: str
    url: str | None
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    followers: str | None
    following: str | None
    manually_approves_followers: bool
    discoverable: bool
    indexable: bool
    avatar_url: str | None
    header_url: str | None
    keys: tuple[ActorKey, ...]


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 512:
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            return None
        return value
    return None


def _same_origin_url(value: Any, ap_id: str) -> str | None:
    url = _http_url(value)
    return url if url and same_origin(url, ap_id) else None


def _image_url(value: Any) -> str | None:
    for entry in as_list(value)[:4]:
        if isinstance(entry, str):
            return _http_url(entry)
        if isinstance(entry, dict):
            url = entry.get("url")
            if isinstance(url, dict | list):
                url = get_id(url) if isinstance(url, list) else url.get("href")
            if (found := _http_url(url)) is not None:
                return found
    return None


def _html_url(value: Any, ap_id: str) -> str | None:
    for entry in as_list(value)[:10]:
        href = entry if isinstance(entry, str) else entry.get("href") if isinstance(entry, dict) else None
        if (url := _same_origin_url(href, ap_id)) is not None:
            return url
    return None


def actor_keys(document: JSON, ap_id: str) -> tuple[ActorKey, ...]:
    """RSA/PEM keys owned by this actor (object or array, at most 10; owner must be the actor)."""
    keys = []
    for entry in as_list(document.get("publicKey"))[:MAX_KEYS]:
        if not isinstance(entry, dict):
            continue
        key_id, owner, pem = entry.get("id"), entry.get("owner", ap_id), entry.get("publicKeyPem")
        if not (isinstance(key_id, str) and isinstance(pem, str) and owner == ap_id):
            continue
        if not same_origin(key_id, ap_id) or len(pem) > 16_384:
            continue
        keys.append(ActorKey(key_id=key_id, pem=pem))
    return tuple(keys)


def parse_actor(document: JSON, *, expected_id: str | None = None) -> RemoteActorData:
    """Check and extract an actor document; ProtocolError if it is not one we can use."""
    ap_id = document.get("id")
    if not isinstance(ap_id, str) or _http_url(ap_id) is None:
        raise ProtocolError("actor id missing or not an http(s) URL")
    if expected_id is not None and ap_id != expected_id:
        raise ProtocolError("actor id differs from the URL it was fetched from")
    kind = document.get("type")
    if kind not in ACTOR_TYPES:
        raise ProtocolError(f"not an actor type: {str(kind)[:40]}")
    inbox = _same_origin_url(document.get("inbox"), ap_id)
    if inbox is None:
        raise ProtocolError("actor inbox missing, not http(s), or on another origin")
    username = document.get("preferredUsername")
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME:
        raise ProtocolError("actor preferredUsername missing or too long")
    endpoints = document.get("endpoints") if isinstance(document.get("endpoints"), dict) else {}
    shared = _same_origin_url((endpoints or {}).get("sharedInbox") or document.get("sharedInbox"), ap_id)
    name = first_string(document.get("name"), document.get("nameMap")) or ""
    summary = first_string(document.get("summary"), document.get("summaryMap")) or ""
    return RemoteActorData(
        ap_id=ap_id,
        type=kind,
        username=username,
        domain=host_of(ap_id),
        name=name[:MAX_NAME],
        summary_html=summary[:MAX_SUMMARY],
        url=_html_url(document.get("url"), ap_id),
        inbox=inbox,
        shared_inbox=shared,
        outbox=_same_origin_url(document.get("outbox"), ap_id),
        followers=_same_origin_url(document.get("followers"), ap_id),
        following=_same_origin_url(document.get("following"), ap_id),
        manually_approves_followers=document.get("manuallyApprovesFollowers") is True,
        discoverable=document.get("discoverable") is True,
        indexable=document.get("indexable") is True,
        avatar_url=_image_url(document.get("icon")),
        header_url=_image_url(document.get("image")),
        keys=actor_keys(document, ap_id),
    )
