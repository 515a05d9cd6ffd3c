"""Server-rendered HTML pages for members and admins. Each handler: form → one service → page.

Every POST goes through `forms.read_form` (size caps + CSRF). Pages work without JavaScript.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.services import actor_documents, moderation, profiles, ratelimit
from fediverse_net.services.errors import Conflict, Forbidden, NotFound, ServiceError
from fediverse_net.services.media import MediaRejected
from fediverse_net.web.forms import current_account, field, flash, login, logout, read_form
from fediverse_net.web.media import read_upload_form
from fediverse_net.web.moderation import client_ip, too_many
from fediverse_net.web.responses import ActivityJSONResponse, json_error
from fediverse_net.web.templating import error_page, html_errors, render
from fediverse_net.web.wellknown import deps_of


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 6 else 1


def _form_status(exc: ServiceError) -> int:
    return 409 if isinstance(exc, Conflict) else 400


@html_errors
async def home(request: Request) -> Response:
    account = await current_account(request)
    if account is None:
        return await render(request, "home.html", {"timeline": None})
    timeline = await profiles.home_timeline(account, _page_number(request))
    # Blocked and muted accounts (and domains) stay out of the member's timeline.
    hidden = await moderation.hidden_author_ids(account.actor, {n.author_id for n in timeline.notes})
    if hidden:
        kept = [n for n in timeline.notes if n.author_id not in hidden]
        timeline = profiles.TimelinePage(notes=kept, page=timeline.page, has_next=timeline.has_next)
    return await render(request, "home.html", {"timeline": timeline})


@html_errors
async def signup(request: Request) -> Response:
    settings = deps_of(request).settings
    if request.method == "GET":
        status = 200 if settings.registration_mode != "closed" else 403
        return await render(request, "signup.html", {"values": {}, "error": None}, status=status)
    form = await read_form(request)
    values = {name: field(form, name) for name in ("handle", "display_name", "reason")}
    try:  # anti-spam: sign-ups per address
        if (ip := client_ip(request)) is not None:
            ratelimit.check(deps_of(request), "rate_limit_signup", f"ip:{ip}", what="sign-ups")
    except ratelimit.RateLimited as exc:
        return await too_many(request, exc)
    new = profiles.SignUp(password=field(form, "password"), **values)
    try:
        account = await profiles.sign_up(settings, new)
    except Forbidden:
        raise
    except ServiceError as exc:
        return await render(request, "signup.html", {"values": values, "error": str(exc)}, _form_status(exc))
    if not account.approved:
        return await render(request, "signup_pending.html", {"handle": account.actor.handle})
    login(request, account)
    flash(request, "Welcome! Your account is ready.")
    return _see_other("/")


@html_errors
async def login_page(request: Request) -> Response:
    if request.method == "GET":
        if await current_account(request) is not None:
            return _see_other("/")
        return await render(request, "login.html", {"handle": "", "error": None})
    form = await read_form(request, max_field=2_000)
    handle = field(form, "handle")
    try:  # password guessing: attempts per address and per handle
        deps = deps_of(request)
        if (ip := client_ip(request)) is not None:
            ratelimit.check(deps, "rate_limit_login", f"ip:{ip}", what="login attempts")
        who = handle.strip().lower()[:64]
        ratelimit.check(deps, "rate_limit_login", f"handle:{who}", what="login attempts")
    except ratelimit.RateLimited as exc:
        return await too_many(request, exc)
    try:
        account = await profiles.log_in(handle, field(form, "password"))
    except ServiceError as exc:
        return await render(request, "login.html", {"handle": handle, "error": str(exc)}, status=400)
    login(request, account)
    return _see_other("/")


@html_errors
async def logout_page(request: Request) -> Response:
    await read_form(request)
    logout(request)
    flash(request, "You are logged out.")
    return _see_other("/")


@html_errors
async def profile(request: Request) -> Response:
    """`/@handle`: the HTML profile, or the actor document when ActivityPub is asked for."""
    wants_json = wants_activitypub(request.headers.get("accept"))
    try:
        found = await profiles.public_profile(request.path_params["handle"])
    except NotFound:
        if wants_json:
            return json_error(404, "not found", headers={"Vary": "Accept"})
        raise
    link = f'<{found.actor.ap_id}>; rel="alternate"; type="application/activity+json"'
    if wants_json:
        document = await actor_documents.document_for(found.actor, deps_of(request).urls)
        return ActivityJSONResponse(document, headers={"Link": link})
    headers = {"Vary": "Accept", "Link": link}
    return await render(request, "profile.html", {"profile": found}, headers=headers)


@html_errors
async def settings_profile(request: Request) -> Response:
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    if request.method == "GET":
        saved = profiles.profile_input(account)
        return await render(request, "settings_profile.html", {"values": saved, "error": None})
    try:
        form, upload = await read_upload_form(request, "avatar_file")
    except MediaRejected as exc:  # too large to read: the saved profile is shown again
        refused = {"values": profiles.profile_input(account), "error": str(exc)}
        return await render(request, "settings_profile.html", refused, status=exc.status)
    values = profiles.ProfileInput(
        display_name=field(form, "display_name"),
        bio=field(form, "bio"),
        interests=field(form, "interests"),
        avatar_url=field(form, "avatar_url"),
        discoverable=field(form, "discoverable") == "yes",
        indexable=field(form, "indexable") == "yes",
        manually_approves_followers=field(form, "manually_approves_followers") == "yes",
        avatar_upload=upload,
    )
    try:
        await profiles.update_profile(deps_of(request), account, values)
    except ServiceError as exc:
        refused = {"values": values, "error": str(exc)}
        status = exc.status if isinstance(exc, MediaRejected) else 400
        return await render(request, "settings_profile.html", refused, status=status)
    flash(request, "Your profile is saved.")
    return _see_other("/settings/profile")


@html_errors
async def admin_accounts(request: Request) -> Response:
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    pending = await profiles.pending_accounts(account)
    return await render(request, "admin_accounts.html", {"pending": pending})


@html_errors
async def admin_decide(request: Request) -> Response:
    """POST `/admin/accounts/{id}/approve` or `/reject`."""
    account = await current_account(request)
    if account is None:
        return await error_page(request, 403, "Please log in as an admin first.")
    decision = request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise NotFound("This page does not exist.")
    await read_form(request)
    target = request.path_params["account_id"]
    if decision == "approve":
        approved = await profiles.approve_account(account, target)
        flash(request, f"@{approved.actor.handle} can now log in.")
    else:
        handle = await profiles.reject_account(account, target)
        flash(request, f"The request from @{handle} was declined and removed.")
    return _see_other("/admin/accounts")


def routes() -> list[BaseRoute]:
    return [
        Route("/", home, name="home"),
        Route("/signup", signup, methods=["GET", "POST"], name="signup"),
        Route("/login", login_page, methods=["GET", "POST"], name="login"),
        Route("/logout", logout_page, methods=["POST"], name="logout"),
        Route("/@{handle}", profile, name="profile"),
        Route("/settings/profile", settings_profile, methods=["GET", "POST"], name="settings_profile"),
        Route("/admin/accounts", admin_accounts, name="admin_accounts"),
        Route(
            "/admin/accounts/{account_id:int}/{decision:str}",
            admin_decide,
            methods=["POST"],
            name="admin_decide",
        ),
        Mount("/static", StaticFiles(packages=[("fediverse_net.web", "static")]), name="static"),
    ]
