"""One mapping from exceptions to HTTP answers. Never a 500 for bad input."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fediverse_net.activitypub.errors import (
    KeyFetchUnavailable,
    PayloadTooLarge,
    ProtocolError,
    SignatureError,
    UnsupportedMediaType,
)
from fediverse_net.services.moderation import Refused
from fediverse_net.services.ratelimit import RateLimited
from fediverse_net.web.responses import json_error

log = logging.getLogger("fediverse_net.web")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, exc.detail or "error", headers=dict(exc.headers or {}))


async def _protocol(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PayloadTooLarge):
        return json_error(413, str(exc) or "payload too large")
    if isinstance(exc, UnsupportedMediaType):
        return json_error(415, str(exc) or "unsupported media type")
    return json_error(400, str(exc) or "bad request")


async def _signature(request: Request, exc: Exception) -> Response:
    if isinstance(exc, KeyFetchUnavailable):
        # Mastodon ≥ 4.5.4: a temporary key-fetch failure is 503, so the sender retries.
        return json_error(503, str(exc), headers={"Retry-After": "60"})
    return json_error(401, str(exc) or "signature verification failed")


async def _refused(request: Request, exc: Exception) -> Response:
    return json_error(403, str(exc) or "refused")


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return json_error(429, str(exc), headers={"Retry-After": str(exc.retry_after)})


def exception_handlers() -> Mapping[Any, Any]:
    return {
        HTTPException: _http_exception,
        ProtocolError: _protocol,
        SignatureError: _signature,
        Refused: _refused,
        RateLimited: _rate_limited,
    }
