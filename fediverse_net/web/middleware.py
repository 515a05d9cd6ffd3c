"""ASGI middlewares: request log lines, security headers, request body cap."""

from __future__ import annotations

import ipaddress
import logging
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fediverse_net.logs import event
from fediverse_net.services import ratelimit

log = logging.getLogger("fediverse_net.http")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; img-src https: http: data:; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
]


def send_with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            message["headers"] = headers + [h for h in SECURITY_HEADERS if h[0] not in present]
        await send(message)

    return wrapped


def _inbox_post_ip(scope: Scope) -> str | None:
    """The client address of an inbox POST (per-IP limits), else None.

    Loopback clients are not limited per address: behind a reverse proxy that does not pass
    X-Forwarded-For every sender would share one bucket and federation would stall.
    """
    if scope.get("method") != "POST" or not str(scope.get("path", "")).endswith("/inbox"):
        return None
    client = scope.get("client")
    if not client:
        return None
    try:
        if ipaddress.ip_address(str(client[0])).is_loopback:
            return None
    except ValueError:
        pass
    return str(client[0])


def _inbox_throttle(scope: Scope, ip: str) -> ASGIApp | None:
    """A 429 answer when this address sent too many inbox POSTs or too many bad signatures.

    Checked before the body is read or any key fetched (security matrix rows 40, F13).
    """
    app = scope.get("app")
    deps = getattr(getattr(app, "state", None), "deps", None)
    if deps is None:
        return None
    wait = ratelimit.exhausted(deps, "rate_limit_inbox_failures", ip)
    if not wait:
        try:
            ratelimit.check(deps, "rate_limit_inbox", ip, what="requests")
        except ratelimit.RateLimited as exc:
            wait = exc.retry_after
    if not wait:
        return None
    body = b'{"error":"too many requests"}'
    headers = {"Retry-After": str(wait), "Content-Type": "application/json"}
    return Response(body, status_code=429, headers=headers)


class AccessLogAndHeaders:
    """One structured log line per request; security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        inbox_ip = _inbox_post_ip(scope)
        if inbox_ip is not None and (refusal := _inbox_throttle(scope, inbox_ip)) is not None:
            await refusal(scope, receive, send_with_headers(send))
            return

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
            if inbox_ip is not None and status == 401:
                # Bad signatures cost the sender: past the budget it gets 429 (row 40).
                ratelimit.charge(scope["app"].state.deps, "rate_limit_inbox_failures", inbox_ip)
        finally:
            event(
                log,
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
            )
