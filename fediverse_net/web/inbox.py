"""Inbox POSTs: shared inbox, personal inboxes. Verify and persist synchronously, answer 202."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from fediverse_net.activitypub.errors import PayloadTooLarge, UnsupportedMediaType
from fediverse_net.activitypub.signatures import RequestParts
from fediverse_net.deps import Deps
from fediverse_net.services import discovery
from fediverse_net.services.errors import NotFound
from fediverse_net.services.inbox import Overloaded, accept_inbox_request, admission_gate
from fediverse_net.web.responses import json_error
from fediverse_net.web.wellknown import deps_of

ACCEPTED_MEDIA = ("application/activity+json", "application/ld+json", "application/json")


async def read_body(request: Request, limit: int, declared: str | None = None) -> bytes:
    """The raw body, refusing more than `limit` bytes whatever Content-Length claims (row 22).

    `declared` is the Content-Length header when the caller already has it (else it is read
    from the request). The body is taken from `receive` directly: Starlette's `stream()`
    generator costs more than the loop itself for a one-chunk activity (benchmark B3).
    """
    if declared is None:
        declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def signed_headers(scope: Scope) -> dict[str, str]:
    """The request headers as signed: names lower-cased, repeated headers joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1").strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def request_parts(
    request: Request, body: bytes, origin: str, headers: dict[str, str] | None = None
) -> RequestParts:
    """The request exactly as signed: raw undecoded path and query, headers joined per name."""
    scope = request.scope
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    if headers is None:
        headers = signed_headers(scope)
    return RequestParts(method=request.method, target=target, headers=headers, body=body, origin=origin)


async def inbox(request: Request) -> Response:
    return await handle_inbox(request, deps_of(request))


async def handle_inbox(request: Request, deps: Deps) -> Response:
    """The inbox POST itself; `middleware.InboxFastPath` calls it directly with the app's deps."""
    gate = admission_gate(deps)
    try:
        # A bounded number of inbox POSTs in flight, a bounded backlog, then 503 (matrix F13).
        await gate.acquire()
    except Overloaded as exc:
        return _overloaded(exc)
    try:
        return await _inbox(request, deps)
    except Overloaded as exc:
        return _overloaded(exc)
    finally:
        gate.release()


def _overloaded(exc: Overloaded) -> Response:
    return json_error(503, str(exc), headers={"Retry-After": str(exc.retry_after)})


async def _inbox(request: Request, deps: Deps) -> Response:
    recipient = None
    if handle := request.path_params.get("handle"):
        try:
            actor = await discovery.local_actor(handle)
        except discovery.Gone:
            return json_error(410, "gone")
        except NotFound:
            return json_error(404, "no such inbox")
        recipient = actor.ap_id
    headers = signed_headers(request.scope)  # one pass over the raw headers serves every check
    if len(headers) == len(request.scope["headers"]):
        content_type, declared = headers.get("content-type", ""), headers.get("content-length")
    else:  # a repeated header: the checks below read the first value, as they always did
        content_type = request.headers.get("content-type", "")
        declared = request.headers.get("content-length")
    media = content_type.split(";")[0].strip().lower()
    if media not in ACCEPTED_MEDIA:
        raise UnsupportedMediaType("inbox accepts application/activity+json")
    settings = deps.settings
    body = await read_body(request, settings.max_body_bytes, declared)
    parts = request_parts(request, body, settings.origin, headers)
    await accept_inbox_request(deps, parts, recipient=recipient)
    return Response(status_code=202)
