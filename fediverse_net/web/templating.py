"""Jinja2 pages: one autoescaping environment, `render()`, and HTML error pages for handlers."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from fediverse_net.activitypub.handles import display_handle, display_username
from fediverse_net.activitypub.sanitize import plain_text, sanitize_html, truncate
from fediverse_net.services.errors import Forbidden, NotFound
from fediverse_net.web import forms
from fediverse_net.web.wellknown import deps_of

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Pages carry the session's CSRF token and personal data: never stored by shared caches.
PAGE_HEADERS = {"Cache-Control": "private, no-cache"}

Handler = Callable[[Request], Awaitable[Response]]


def _safe_html(html: str | None) -> Markup:
    """Any stored HTML goes through the sanitizer again at render time (defence in depth)."""
    return Markup(sanitize_html(html or ""))


def _datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value.astimezone(UTC)
    return f"{value.day} {value:%B %Y, %H:%M} UTC"


def _http_url(url: str | None) -> str:
    """`url` when it is an http(s) URL, else '' (remote documents may carry `javascript:` URLs)."""
    if not url or any(ch.isspace() for ch in url):
        return ""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


def _handle(actor: Any) -> Markup:
    """`@user@host` of an actor, never spoofing (security matrix C28, `activitypub/handles.py`).

    IDN hosts in punycode (titled as such); a user name with look-alike, invisible or bidi
    characters gets a visible "⚠ unusual characters" marker whose title says what is unusual.
    """
    shown = display_handle(actor.username, actor.domain)
    if shown.unusual:
        why = "Unusual address: " + "; ".join(shown.warnings) + "."
        marker = Markup(' <span class="handle-warning" title="{}">⚠ unusual characters</span>')
        return Markup("{}").format(shown.text) + marker.format(why)
    if shown.idn:
        idn = '<span class="idn" title="Internationalised server name, shown as punycode">{}</span>'
        return Markup(idn).format(shown.text)
    return Markup("{}").format(shown.text)


def handle_text(actor: Any) -> str:
    """The same as plain text (for attributes and sentences): `@user@host`, `⚠` when unusual."""
    shown = display_handle(actor.username, actor.domain)
    return shown.text + (" ⚠" if shown.unusual else "")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_html"] = _safe_html
    env.filters["plain"] = plain_text
    env.filters["shorten"] = truncate
    env.filters["when"] = _datetime
    env.filters["http_url"] = _http_url
    env.filters["handle"] = _handle
    env.filters["handle_text"] = handle_text
    env.filters["username"] = display_username
    return env


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render `template` with `current`, `csrf_token()`, `settings`, `flashes` and `context`."""
    values: dict[str, Any] = {
        "request": request,
        "current": await forms.current_account(request),
        "csrf_token": functools.partial(forms.csrf_token, request),
        "settings": deps_of(request).settings,
        "flashes": forms.pop_flashes(request),
        **(context or {}),
    }
    html = environment().get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


async def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return await render(request, "error.html", {"status": status, "message": message}, status=status)


def html_errors(handler: Handler) -> Handler:
    """Turn refused forms and NotFound/Forbidden from services into HTML error pages."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except forms.FormRejected as exc:
            return await error_page(request, exc.status, exc.message)
        except NotFound as exc:
            return await error_page(request, 404, str(exc) or "This page does not exist.")
        except Forbidden as exc:
            return await error_page(request, 403, str(exc) or "You cannot do this.")

    return wrapper
