"""The social pages: compose and reply, a note's thread, find and follow people, followers, and
deleting one's account. Each handler: form → one service (`services.timeline`) → page.

Every POST goes through `forms.read_form` (size caps + CSRF); pages work without JavaScript.
After a POST the browser goes back to the page it came from (`back`, a local path only).
"""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.db.models import Account
from fediverse_net.services import blocks, profiles, ratelimit, timeline
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.web import moderation, pages
from fediverse_net.web.forms import current_account, field, flash, logout, read_form
from fediverse_net.web.templating import error_page, handle_text, html_errors, render
from fediverse_net.web.wellknown import deps_of

NOTE_PAGE: Final = re.compile(r"/@([a-z0-9_]{1,64})/notes/([0-9a-f]{1,64})")
VISIBILITY_LABELS: Final = {"public": "Public", "unlisted": "Unlisted", "followers": "Followers only"}
DECISIONS: Final = ("approve", "decline", "remove")


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _local_path(raw: str, default: str = "/") -> str:
    """`raw` when it is a path on this site (never `//host` or a scheme), else `default`."""
    if (
        not raw.startswith("/")
        or raw.startswith(("//", "/\\"))
        or len(raw) > 1000
        or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in raw)
    ):
        return default
    return raw


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _member(request: Request) -> Account:
    """The logged-in account, for POSTs: 403 otherwise."""
    account = await current_account(request)
    if account is None:
        raise Forbidden("Please log in first.")
    return account


async def limited(request: Request, setting: str, account: Account, what: str) -> Response | None:
    """429 page when the member used up `settings.<setting>` (anti-spam), else None."""
    try:
        ratelimit.check(deps_of(request), setting, f"account:{account.id}", what=what)
    except ratelimit.RateLimited as exc:
        return await moderation.too_many(request, exc)
    return None


def _int(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("That account does not exist any more.")
    return int(raw)


# --- compose, reply, delete -------------------------------------------------------------------------


async def _home_with_error(request: Request, account: Account, draft: timeline.Draft, error: str) -> Response:
    found = await profiles.home_timeline(account)
    context = {"timeline": found, "error": error, "draft": draft}
    return await render(request, "home.html", context, status=400)


async def _note_page(
    request: Request,
    handle: str,
    token: str,
    *,
    error: str | None = None,
    draft: timeline.Draft | None = None,
    status: int = 200,
) -> Response:
    account = await current_account(request)
    viewer = account.actor if account is not None else None
    try:
        found = await timeline.thread(deps_of(request), viewer, handle, token)
    except timeline.NoteGone as exc:
        return await error_page(request, 410, str(exc))
    context: dict[str, Any] = {
        "thread": found,
        "labels": VISIBILITY_LABELS,
        "error": error,
        "draft": draft,
        "back": _here(request) if request.method == "GET" else f"/@{handle}/notes/{token}",
    }
    return await render(request, "social_note.html", context, status=status)


@html_errors
async def compose(request: Request) -> Response:
    """POST `/notes`: a new post from the home page, or a reply (`in_reply_to`) from a thread."""
    form = await read_form(request, max_field=20_000)
    account = await _member(request)
    if (too_many := await limited(request, "rate_limit_post", account, "posts")) is not None:
        return too_many
    draft = timeline.Draft(
        source=field(form, "content"),
        visibility=field(form, "visibility") or "public",
        in_reply_to=field(form, "in_reply_to"),
    )
    back = _local_path(field(form, "back"))
    try:
        await timeline.post(deps_of(request), account.actor, draft)
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:
        if (match := NOTE_PAGE.fullmatch(back)) is not None:
            return await _note_page(request, *match.groups(), error=str(exc), draft=draft, status=400)
        return await _home_with_error(request, account, draft, str(exc))
    flash(request, "Your reply is posted." if draft.in_reply_to else "Your post is published.")
    return _see_other(back)


@html_errors
async def note_page(request: Request) -> Response:
    """`/@handle/notes/{token}`: a local note, its replies, and forms to reply or delete."""
    return await _note_page(request, request.path_params["handle"], request.path_params["token"])


@html_errors
async def delete_note(request: Request) -> Response:
    """POST `/notes/{token}/delete`: only the author may delete."""
    form = await read_form(request)
    account = await _member(request)
    token = request.path_params["token"]
    await timeline.delete_own_note(deps_of(request), account.actor, token)
    flash(request, "Your post is deleted.")
    back = _local_path(field(form, "back"))
    match = NOTE_PAGE.fullmatch(back)
    return _see_other("/" if match is not None and match.group(2) == token else back)


# --- find and follow --------------------------------------------------------------------------------


async def _card_page(request: Request, query: str, *, title: str) -> Response:
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    context: dict[str, Any] = {
        "query": query,
        "card": None,
        "error": None,
        "title": title,
        "back": _here(request),
    }
    if not query.strip():
        return await render(request, "social_search.html", context)
    try:
        context["card"] = await timeline.card(deps_of(request), account.actor, query)
        context["safety"] = await blocks.relation(account.actor, context["card"].actor)
    except ServiceError as exc:
        context["error"] = str(exc)
        status = 404 if isinstance(exc, NotFound) else 400
        return await render(request, "social_search.html", context, status=status)
    return await render(request, "social_search.html", context)


@html_errors
async def search(request: Request) -> Response:
    """`/search?q=@name@host` (or a profile URL / actor id): the person's card with Follow."""
    return await _card_page(request, request.query_params.get("q", ""), title="Find people")


@html_errors
async def authorize_interaction(request: Request) -> Response:
    """`/authorize_interaction?uri=…`: the remote-follow template our WebFinger advertises."""
    return await _card_page(request, request.query_params.get("uri", ""), title="Follow")


@html_errors
async def follow(request: Request) -> Response:
    """POST `/follow` with `actor_id`: send a follow request."""
    form = await read_form(request)
    account = await _member(request)
    if (too_many := await limited(request, "rate_limit_follow", account, "follow requests")) is not None:
        return too_many
    back = _local_path(field(form, "back"))
    try:
        target = await timeline.follow_actor(deps_of(request), account.actor, _int(field(form, "actor_id")))
    except ServiceError as exc:
        flash(request, str(exc))
        return _see_other(back)
    flash(request, f"Follow request sent to {handle_text(target)}.")
    return _see_other(back)


@html_errors
async def unfollow(request: Request) -> Response:
    """POST `/unfollow` with `actor_id`: stop following, or withdraw a request."""
    form = await read_form(request)
    account = await _member(request)
    back = _local_path(field(form, "back"))
    try:
        target, was_request = await timeline.unfollow_actor(
            deps_of(request), account.actor, _int(field(form, "actor_id"))
        )
    except ServiceError as exc:
        flash(request, str(exc))
        return _see_other(back)
    if was_request:
        flash(request, f"Your follow request to {handle_text(target)} is withdrawn.")
    else:
        flash(request, f"You no longer follow {handle_text(target)}.")
    return _see_other(back)


@html_errors
async def profile(request: Request) -> Response:
    """`/@handle`: `pages.profile`, with the follower counts and the viewer's Follow state.

    The extras ride on `request.state.profile_extras` (profile.html reads them when present).
    """
    if not wants_activitypub(request.headers.get("accept")):
        account = await current_account(request)
        viewer = account.actor if account is not None else None
        request.state.profile_extras = await timeline.profile_extras(viewer, request.path_params["handle"])
    return await pages.profile(request)


# --- followers and requests -------------------------------------------------------------------------


@html_errors
async def followers(request: Request) -> Response:
    """`/settings/followers`: requests to approve, followers, and the accounts one follows."""
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    lists = await timeline.follow_lists(account.actor)
    return await render(request, "social_followers.html", {"lists": lists})


@html_errors
async def decide(request: Request) -> Response:
    """POST `/settings/followers/{id}/approve|decline|remove`."""
    await read_form(request)
    account = await _member(request)
    decision = request.path_params["decision"]
    if decision not in DECISIONS:
        raise NotFound("This page does not exist.")
    follower = await timeline.decide(
        deps_of(request), account.actor, request.path_params["follow_id"], decision
    )
    messages = {
        "approve": f"{handle_text(follower)} now follows you.",
        "decline": f"You declined the request from {handle_text(follower)}.",
        "remove": f"{handle_text(follower)} no longer follows you.",
    }
    flash(request, messages[decision])
    return _see_other("/settings/followers")


# --- deleting the account ---------------------------------------------------------------------------


@html_errors
async def delete_account(request: Request) -> Response:
    """`/settings/delete`: confirm with the password, then the account is gone for good."""
    if request.method == "GET":
        if await current_account(request) is None:
            return _see_other("/login")
        return await render(request, "social_delete.html", {"error": None})
    form = await read_form(request, max_field=2_000)
    account = await _member(request)
    try:
        await timeline.delete_account(deps_of(request), account, field(form, "password"))
    except ServiceError as exc:
        return await render(request, "social_delete.html", {"error": str(exc)}, status=400)
    logout(request)
    flash(request, "Your account is deleted.")
    return _see_other("/")


def routes() -> list[BaseRoute]:
    """Listed before `pages.routes()`: `/@{handle}` here wraps `pages.profile`."""
    return [
        Route("/@{handle}", profile, name="social_profile"),
        Route("/@{handle}/notes/{token}", note_page, name="note_page"),
        Route("/notes", compose, methods=["POST"], name="compose"),
        Route("/notes/{token}/delete", delete_note, methods=["POST"], name="delete_note"),
        Route("/search", search, name="search"),
        Route("/authorize_interaction", authorize_interaction, name="authorize_interaction"),
        Route("/follow", follow, methods=["POST"], name="follow"),
        Route("/unfollow", unfollow, methods=["POST"], name="unfollow"),
        Route("/settings/followers", followers, name="settings_followers"),
        Route(
            "/settings/followers/{follow_id:int}/{decision:str}",
            decide,
            methods=["POST"],
            name="settings_followers_decide",
        ),
        Route("/settings/delete", delete_account, methods=["GET", "POST"], name="settings_delete"),
    ]
