"""Form posts and sessions: the one place that parses forms, caps them and checks CSRF.

Every POST handler calls `read_form` first. The CSRF token is a random value kept in the signed
session cookie and repeated in a hidden `csrf_token` field (synchronizer token); the cookie is
SameSite=Lax as well. Sessions hold only the account id and that token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from fediverse_net.db.models import Account
from fediverse_net.services import profiles

MAX_FORM_BYTES: Final = 64 * 1024
MAX_FIELDS: Final = 50
CSRF_FIELD: Final = "csrf_token"
_CSRF_KEY: Final = "csrf"
_ACCOUNT_KEY: Final = "account_id"
_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormRejected(Exception):
    """A form we refuse before looking at it; rendered as an error page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created (and the session started) on first use."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


def csrf_ok(request: Request, submitted: object) -> bool:
    expected = request.session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(submitted, str):
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


TOO_LARGE: Final = "This form is too large to be sent. Please shorten what you wrote."


async def capped_body(request: Request, limit: int, too_large: Exception | None = None) -> bytes:
    """The request body, refused (`too_large`, by default a 413 FormRejected) over `limit` bytes,
    whatever Content-Length claimed."""
    too_large = too_large or FormRejected(413, TOO_LARGE)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_form(request: Request, body: bytes, *, max_files: int = 0) -> FormData:
    """`body` (already read and capped) parsed as the request's form; 400 when it is not one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=max_files, max_fields=MAX_FIELDS)
    except HTTPException as exc:
        raise FormRejected(400, "This form could not be read. Please try again.") from exc


async def read_form(
    request: Request, *, max_field: int = 10_000, max_bytes: int = MAX_FORM_BYTES
) -> FormData:
    """The posted form, after the size caps and the CSRF check.

    413 when the body is over `max_bytes`; 400 when it is not a form or a field is longer than
    `max_field` characters; 403 ("This form expired") when the CSRF token is missing or wrong.
    Per-field limits with friendlier messages are the services' job.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _FORM_TYPES:
        raise FormRejected(400, "This page expects a form.")
    form = await parse_form(request, await capped_body(request, max_bytes))
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        raise FormRejected(403, "This form expired, please try again.")
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise FormRejected(400, "Files cannot be sent with this form.")
        if len(value) > max_field:
            raise FormRejected(400, f"The field “{name[:40]}” is too long: at most {max_field} characters.")
    return form


def field(form: FormData, name: str) -> str:
    """A text field's value, '' when absent."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- sessions ---------------------------------------------------------------------------------------


def login(request: Request, account: Account) -> None:
    """Start a fresh session for `account` (nothing of the anonymous session survives)."""
    request.session.clear()
    request.session[_ACCOUNT_KEY] = account.id
    request.session[_CSRF_KEY] = secrets.token_urlsafe(32)
    request.state.current_account = account


def logout(request: Request) -> None:
    request.session.clear()
    request.state.current_account = None


async def current_account(request: Request) -> Account | None:
    """The logged-in account (with its actor), or None; looked up once per request."""
    cached: Account | None = getattr(request.state, "current_account", None)
    if cached is not None or hasattr(request.state, "current_account"):
        return cached
    account_id = request.session.get(_ACCOUNT_KEY)
    account = await profiles.active_account(account_id) if isinstance(account_id, int) else None
    if account is None and account_id is not None:
        request.session.pop(_ACCOUNT_KEY, None)  # approval withdrawn, deleted or suspended
    request.state.current_account = account
    return account


def flash(request: Request, message: str) -> None:
    """A message shown once, on the next page rendered for this session."""
    messages = request.session.get("flash")
    request.session["flash"] = [*(messages if isinstance(messages, list) else []), message][-5:]


def pop_flashes(request: Request) -> list[str]:
    messages = request.session.pop("flash", None)
    return [m for m in messages if isinstance(m, str)] if isinstance(messages, list) else []
