"""Inbox POSTs: shared inbox, personal inboxes. Verify and persist synchronously, answer 202."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fediverse_net.activitypub.errors import PayloadTooLarge, UnsupportedMediaType
from fediverse_net.activitypub.signatures import RequestParts
from fediverse_net.services import discovery
from fediverse_net.services.errors import NotFound
from fediverse_net.services.inbox import accept_inbox_request
from fediverse_net.web.responses import json_error
from fediverse_net.web.wellknown import deps_of

ACCEPTED_MEDIA = ("application/activity+json", "application/ld+json", "application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whatever Content-Length claims (row 22)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def request_parts(request: Request, body: bytes, origin: str) -> RequestParts:
    """The request exactly as signed: raw undecoded path and query, headers joined per name."""
    scope = request.scope
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1").strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return RequestParts(method=request.method, target=target, headers=headers, body=body, origin=origin)


async def inbox(request: Request) -> Response:
    deps = deps_of(request)
    recipient = None
    if handle := request.path_params.get("handle"):
        try:
            actor = await discovery.local_actor(handle)
        except discovery.Gone:
            return json_error(410, "gone")
        except NotFound:
            return json_error(404, "no such inbox")
        recipient = actor.ap_id
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_MEDIA:
        raise UnsupportedMediaType("inbox accepts application/activity+json")
    body = await read_body(request, deps.settings.max_body_bytes)
    await accept_inbox_request(deps, request_parts(request, body, deps.settings.origin), recipient=recipient)
    return Response(status_code=202)
