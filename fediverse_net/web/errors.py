"""One mapping from exceptions to HTTP answers. Never a 500 for bad input."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from tortoise.exceptions import DBConnectionError, OperationalError, TransactionManagementError

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

#: Seconds a client should wait when the database cannot persist (security matrix row F6).
DATABASE_RETRY_AFTER = "30"


def _database_unavailable_classes() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the database cannot persist right now" (row F6).

    Tortoise translates SQLite's `database is locked` and PostgreSQL syntax/access errors into
    OperationalError; a lost connection or pool is DBConnectionError; a transaction left broken
    by either is TransactionManagementError. asyncpg's own lock-timeout, cancellation and
    connection errors are not translated by Tortoise, so they are listed when asyncpg is installed.
    """
    classes: list[type[BaseException]] = [OperationalError, DBConnectionError, TransactionManagementError]
    try:
        asyncpg_errors = importlib.import_module("asyncpg.exceptions")
    except ImportError:  # pragma: no cover - SQLite-only installs
        return tuple(classes)
    for name in (
        "LockNotAvailableError",
        "DeadlockDetectedError",
        "QueryCanceledError",
        "TooManyConnectionsError",
        "CannotConnectNowError",
        "PostgresConnectionError",
        "InterfaceError",
    ):
        found = getattr(asyncpg_errors, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            classes.append(found)
    return tuple(classes)


DATABASE_UNAVAILABLE = _database_unavailable_classes()


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


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503 + Retry-After, never 500 and never 202: the sender retries later (row F6).

    Raised before the InboxItem row is committed, so nothing was acknowledged; pages get the
    same answer.
    """
    log.warning(
        "database unavailable: %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    return json_error(
        503,
        "the database is temporarily unavailable, retry later",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def exception_handlers() -> Mapping[Any, Any]:
    handlers: dict[Any, Any] = {
        HTTPException: _http_exception,
        ProtocolError: _protocol,
        SignatureError: _signature,
        Refused: _refused,
        RateLimited: _rate_limited,
    }
    for cls in DATABASE_UNAVAILABLE:
        handlers[cls] = _database_unavailable
    return handlers
