"""ASGI middlewares: request log lines, security headers, request body cap."""

from __future__ import annotations

import inspect
import ipaddress
import json
import logging
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import Session, SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fediverse_net.deps import Deps
from fediverse_net.logs import request_line
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


_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus each security header the response did not set itself (a new list)."""
    result = list(headers)
    for name, _ in result:
        if name.lower() in _SECURITY_NAMES:
            present = {n.lower() for n, _ in result}
            result.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            return result
    result.extend(SECURITY_HEADERS)  # the usual case: none set, all four appended at once
    return result


def send_with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = with_security_headers(message.get("headers", ()))
        await send(message)

    return wrapped


# Client address string -> whether it is loopback. Senders repeat their address for every POST;
# parsing it with `ipaddress` each time was ~3% of an inbox POST (benchmark B3). Bounded: cleared
# when full (a flood of new addresses only costs the parse again).
_LOOPBACK: dict[str, bool] = {}
_LOOPBACK_MAX = 4096


def _is_loopback(address: str) -> bool:
    found = _LOOPBACK.get(address)
    if found is None:
        try:
            found = ipaddress.ip_address(address).is_loopback
        except ValueError:
            found = False
        if len(_LOOPBACK) >= _LOOPBACK_MAX:
            _LOOPBACK.clear()
        _LOOPBACK[address] = found
    return found


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
    address = str(client[0])
    return None if _is_loopback(address) else address


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
    """One access log line per request; security headers on every response.

    It only wraps `send`; the header list is extended in one step and the log line is
    preformatted (`logs.request_line`), so a cached actor GET costs little more than the bare
    stack (benchmark B1).
    """

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
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
            if inbox_ip is not None and status == 401:
                # Bad signatures cost the sender: past the budget it gets 429 (row 40).
                ratelimit.charge(scope["app"].state.deps, "rate_limit_inbox_failures", inbox_ip)
        finally:
            request_line(
                log, scope["method"], scope["path"], status, round((time.perf_counter() - start) * 1000, 1)
            )


class CachedReads:
    """Answers repeated federation reads from the caches their handlers filled, early.

    Actor GETs, WebFinger and NodeInfo are fetched by other servers by the thousand (benchmarks
    B1, B2). Once a handler has cached its encoded answer, each `answers` function returns that
    same answer from the request scope alone (or None), before the session, the exception layer
    and the router. It sits inside `AccessLogAndHeaders`: the log line and the security headers
    are unchanged. Anything not cached, not a plain GET, or mounted under a root path goes on.
    """

    def __init__(
        self, app: ASGIApp, /, deps: Deps, answers: Sequence[Callable[[Deps, Scope], Response | None]]
    ) -> None:
        self.app = app
        self.deps = deps
        self.answers = tuple(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            for answer in self.answers:
                if (response := answer(self.deps, scope)) is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


InboxEndpoint = Callable[[Request, Deps], Awaitable[Response]]
_FAST_PATHS_MAX = 1024


class InboxFastPath:
    """Inbox POSTs go straight to their handler, past the session, exception layer and router.

    Benchmark B3: those layers (a session per request, four nested `send` wrappers, ten route
    regexes) were a good part of an inbox POST that itself needs none of them. It sits inside
    `AccessLogAndHeaders`, so the log line, the security headers and the per-IP 429s are
    unchanged. Which route a path reaches is asked of the router itself, once per path: a POST
    whose route is `route_endpoint` gets the same scope (`endpoint`, `path_params`, `router`)
    and is handled by `endpoint(request, deps)`. Exceptions map to answers through the app's
    own exception handlers, looked up as Starlette does (by class, most derived first), so 400,
    401, 403, 413, 415, 429 and the database 503 (security matrix F6) are the same answers.
    Anything else (other routes, other methods, a root path) goes on down the stack.
    """

    def __init__(
        self,
        app: ASGIApp,
        /,
        deps: Deps,
        route_endpoint: Callable[..., Any],
        endpoint: InboxEndpoint,
        handlers: Mapping[Any, Any],
    ) -> None:
        self.app = app
        self.deps = deps
        self.route_endpoint = route_endpoint
        self.endpoint = endpoint
        self.handlers = dict(handlers)
        self._routes: dict[str, dict[str, Any] | None] = {}  # path -> child scope, None: not ours

    def _child_scope(self, scope: Scope) -> dict[str, Any] | None:
        path: str = scope["path"]
        try:
            return self._routes[path]
        except KeyError:
            pass
        found: dict[str, Any] | None = None
        router = scope["app"].router
        for route in router.routes:  # the first full match wins, exactly as Router.app decides
            match, child = route.matches(scope)
            if match is Match.FULL:
                if isinstance(route, Route) and route.endpoint is self.route_endpoint:
                    found = child
                break
        if len(self._routes) >= _FAST_PATHS_MAX:
            self._routes.clear()
        self._routes[path] = found
        return found

    def _handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]  # type: ignore[no-any-return]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("root_path")
            or not scope["path"].endswith("/inbox")
            or (child := self._child_scope(scope)) is None
        ):
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = child["endpoint"]
        scope["path_params"] = dict(child["path_params"])
        scope.setdefault("router", scope["app"].router)
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request, self.deps)
        except Exception as exc:
            # Nothing was sent yet: the handler only returns its response.
            handler = self._handler_for(exc)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:  # as Starlette runs a plain function handler
                response = await run_in_threadpool(handler, request, exc)
            exc.__traceback__ = None  # as Starlette: reused exceptions must not pile up frames
        await response(scope, receive, send)


class CookieSessionMiddleware(SessionMiddleware):
    """Starlette's signed-cookie session, without its per-request cost when there is no cookie.

    Federation reads (actor GETs, WebFinger, NodeInfo) carry no session cookie and never touch
    the session; Starlette would still parse cookies and wrap every response start in a
    MutableHeaders. Without a cookie the session starts empty, so the only thing left to do is to
    set the cookie if the handler put something in it, exactly as the parent does.
    """

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        super().__init__(app, **options)
        self._cookie_marker = self.session_cookie.encode("latin-1") + b"="

    def _has_cookie(self, scope: Scope) -> bool:
        return any(name == b"cookie" and self._cookie_marker in value for name, value in scope["headers"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._has_cookie(scope):
            await super().__call__(scope, receive, send)
            return
        session = scope["session"] = Session()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and (session.accessed or session.modified):
                headers = MutableHeaders(scope=message)
                headers.add_vary_header("Cookie")
                if session.modified and session:
                    headers.append("Set-Cookie", self._cookie_header(session))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _cookie_header(self, session: Session) -> str:
        """The Set-Cookie value the parent class writes for a new session (same format and flags)."""
        data = self.signer.sign(b64encode(json.dumps(session).encode("utf-8"))).decode("utf-8")
        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        return f"{self.session_cookie}={data}; path={self.path}; {max_age}{self.security_flags}"
