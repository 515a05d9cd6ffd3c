"""`httpx.Auth` that HTTP-signs every outgoing server-to-server request (protocol.md §3.1, §3.5).

Signs exactly the bytes httpx will send: the body is read (`requires_request_body`), and the URL is
httpx's own normalised form (punycode host, percent-encoded path), so `Host` and
`(request-target)` match the wire. A `Content-Type` already on the request (e.g. from `json=`) is
kept and signed; otherwise `application/activity+json` is set for requests with a body.

Redirects: httpx follows redirects inside one auth flow without re-signing, but the signed `host`
and `(request-target)` change on every hop (§3.1 "re-sign every hop"). Use this auth with
`follow_redirects=False` and send a new request for each hop (the federation client does this
anyway, to re-check each hop against the SSRF guard).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime

import httpx

from fediverse_net.activitypub.keys import SigningKey
from fediverse_net.activitypub.signatures import Scheme, sign_request

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_STALE = ("signature", "signature-input", "digest", "content-digest")


class HttpSignatureAuth(httpx.Auth):
    """Sign each request with `key`, as draft-cavage (default) or RFC 9421 — never both (§3.4)."""

    requires_request_body = True

    def __init__(
        self,
        key: SigningKey,
        *,
        scheme: Scheme = "draft-cavage",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.key = key
        self.scheme: Scheme = scheme
        self.clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        method = request.method.upper()
        content = request.content
        body = content if content or method not in _BODYLESS else None
        extra: dict[str, str] = {}
        if body is not None and "content-type" in request.headers:
            extra["Content-Type"] = request.headers["content-type"]
        for name in _STALE:  # a re-sent request must carry one fresh signature only
            request.headers.pop(name, None)
        signed = sign_request(
            method,
            str(request.url),
            body,
            key=self.key,
            scheme=self.scheme,
            now=self.clock() if self.clock is not None else None,
            extra_headers=extra,
        )
        for name, value in signed.items():
            request.headers[name] = value
        yield request
