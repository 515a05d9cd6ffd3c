"""Reading what we receive: bounded JSON, ids, lists, origins (protocol.md §5.0, §6).

Every property may be a single value or a list; `actor`, `object`, `target`, `inReplyTo` may be
an id or an embedded object. These helpers normalise that without trusting anything.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from fediverse_net.activitypub.errors import ProtocolError
from fediverse_net.activitypub.vocab import AS_CONTEXT

JSON = dict[str, Any]
MAX_DEPTH = 64
MAX_ID_LENGTH = 2048


def _depth_ok(value: Any, limit: int) -> bool:
    """Iterative depth check: a 100 000-level document must not recurse (security matrix row 23)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return True


def loads_object(body: bytes, *, max_depth: int = MAX_DEPTH) -> JSON:
    """Parse a JSON object with a nesting limit; ProtocolError (400) for anything else.

    orjson refuses documents nested deeper than 1024 levels itself (no RecursionError);
    we then apply our own, lower limit.
    """
    try:
        value = orjson.loads(body)
    except (orjson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError("body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ProtocolError("body is not a JSON object")
    # Each level of nesting needs its own '{' or '[': a body with no more of them than the limit
    # cannot be too deep, and counting bytes is far cheaper than walking the document.
    if isinstance(body, bytes) and body.count(b"{") + body.count(b"[") <= max_depth:
        return value
    if not _depth_ok(value, max_depth):
        raise ProtocolError("JSON nested too deeply")
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def get_id(value: Any) -> str | None:
    """The id of an id-or-object value (first of a list), or None."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        return value if 0 < len(value) <= MAX_ID_LENGTH else None
    if isinstance(value, dict):
        return get_id(value.get("id"))
    return None


def ids_of(value: Any, *, limit: int = 1000) -> list[str]:
    """Ids of every entry of a single-or-list value (capped)."""
    out = []
    for entry in as_list(value)[:limit]:
        if (entry_id := get_id(entry)) is not None:
            out.append(entry_id)
    return out


def get_type(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if isinstance(k, str)), None)
        return kind if isinstance(kind, str) else None
    return None


def origin_of(url: str) -> str:
    """(scheme, lower-cased host, port) as a string: the FEP-fe34 origin."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProtocolError(f"not an http(s) URL: {url[:100]}")
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{parts.hostname.lower()}:{parts.port or default}"


# `scheme://host[:port]/` written plainly: lower-case host, no userinfo, no characters urlsplit
# would strip or treat specially. Two URLs that both start with the same such prefix have the
# same scheme, host and port whatever follows.
_PLAIN_HEAD = re.compile(r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?/")


@lru_cache(maxsize=1024)
def _cached_origin(url: str) -> str:
    return origin_of(url)


def same_origin(a: str, b: str) -> bool:
    """Whether `a` and `b` have the same FEP-fe34 origin.

    The common case (an activity id under its actor's URL, benchmark B3) is decided from the
    shared prefix and one cached parse of `b` (actor ids repeat, activity ids do not).
    """
    try:
        if (head := _PLAIN_HEAD.match(b)) is not None and a.startswith(head.group()):
            _cached_origin(b)  # `b` must still be a valid origin (port in range)
            return True
        return origin_of(a) == origin_of(b)
    except ProtocolError:
        return False


@lru_cache(maxsize=1024)  # actor ids repeat for every activity they send (benchmark B3)
def host_of(url: str) -> str:
    """host[:port] as it appears in handles (`netloc` without userinfo), lower-cased."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ProtocolError(f"URL without a host: {url[:100]}")
    return parts.hostname.lower() + (f":{parts.port}" if parts.port else "")


def first_string(value: Any, map_value: Any = None) -> str | None:
    """`content` or the first value of `contentMap` (Mastodon's `first_lang_string`)."""
    if isinstance(value, str):
        return value
    if isinstance(map_value, dict):
        return next((v for v in map_value.values() if isinstance(v, str)), None)
    return None


def has_as_context(document: JSON) -> bool:
    context = document.get("@context")
    return context == AS_CONTEXT or (isinstance(context, list) and AS_CONTEXT in context)
