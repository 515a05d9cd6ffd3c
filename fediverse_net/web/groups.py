"""Group pages: directory, creating a group, the group page and threads, posting, joining (with
questions) and leaving, the Atom feed, groups on other servers. Editing, moderation, the approval
queue, members and the log are in `web/group_admin.py`.

Each handler: form → one service → page. Every POST goes through `forms.read_form`. Plain words:
"Join", "Ask to join", "Waiting for approval", "Leave". Pages work without JavaScript.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.db.models import Account, Actor
from fediverse_net.services import timeline
from fediverse_net.services.errors import Conflict, Forbidden, NotFound, ServiceError
from fediverse_net.services.groups import core, documents, membership, posting, remote, views
from fediverse_net.web.forms import current_account, field, flash, read_form
from fediverse_net.web.responses import ActivityJSONResponse, JSONResponse
from fediverse_net.web.social import limited
from fediverse_net.web.templating import html_errors, render
from fediverse_net.web.wellknown import deps_of

JOIN_LABELS: Final = {"open": "Join", "approval": "Ask to join", "invite": "Join (invited people only)"}


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def require_account(request: Request) -> Account:
    account = await current_account(request)
    if account is None:
        raise Forbidden("Please log in first.")
    return account


async def viewer_of(request: Request) -> Actor | None:
    account = await current_account(request)
    return account.actor if account is not None else None


def handle_of(request: Request) -> str:
    return str(request.path_params["handle"])


def home_of(handle: str) -> str:
    return f"/g/{handle}"


def _small_number(form: Any, name: str) -> int:
    """A form's small non-negative number; -1 (refused by `core.check_input`) when it is not one."""
    raw = field(form, name).strip() or "0"
    return int(raw) if raw.isdigit() and len(raw) < 4 else -1


def group_input(form: Any) -> core.GroupInput:
    return core.GroupInput(
        name=field(form, "name"),
        description=field(form, "description"),
        rules=field(form, "rules"),
        tags=field(form, "tags"),
        city=field(form, "city"),
        area=field(form, "area"),
        avatar_url=field(form, "avatar_url"),
        banner_url=field(form, "banner_url"),
        join_mode=field(form, "join_mode") or "open",
        visibility=field(form, "visibility") or "public",
        posting=field(form, "posting") or "members",
        follow_is_join=field(form, "follow_is_join") == "yes",
        vouches_needed=_small_number(form, "vouches_needed"),
        review_first_posts=_small_number(form, "review_first_posts"),
        questions=[field(form, f"question_{i}") for i in range(core.MAX_QUESTIONS)],
    )


# --- directory, create, edit ------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "")[:200] for k in ("q", "tag", "city")}


@html_errors
async def directory(request: Request) -> Response:
    """`/groups`: public groups, searchable by text, tag and city; JSON for JSON clients."""
    filters = _filters(request)
    entries = await views.directory(filters["q"], filters["tag"], filters["city"])
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(views.directory_json(entries))
    return await render(request, "groups_directory.html", {"entries": entries, "filters": filters})


async def directory_json(request: Request) -> Response:
    filters = _filters(request)
    entries = await views.directory(filters["q"], filters["tag"], filters["city"])
    return JSONResponse(views.directory_json(entries))


@html_errors
async def new_group(request: Request) -> Response:
    account = await current_account(request)
    if account is None:
        return see_other("/login")
    if request.method == "GET":
        return await render(request, "groups_form.html", {"values": None, "handle": "", "error": None})
    form = await read_form(request)
    values = group_input(form)
    handle = field(form, "handle")
    try:
        group = await core.create_group(deps_of(request).settings, handle, account.actor, values)
    except ServiceError as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        context = {"values": values, "handle": handle, "error": str(exc)}
        return await render(request, "groups_form.html", context, status=status)
    flash(request, "Your group is ready.")
    return see_other(home_of(group.username))


# --- the group page and threads -----------------------------------------------------------------------


@html_errors
async def group_home(request: Request) -> Response:
    """`/g/{handle}`: the group page (or the Group actor when ActivityPub is asked for)."""
    if wants_activitypub(request.headers.get("accept")):
        group, _ = await core.local_group(handle_of(request))
        return ActivityJSONResponse(await documents.group_document(group, deps_of(request).urls))
    page = await views.group_page(handle_of(request), await viewer_of(request))
    link = f'<{page.group.ap_id}>; rel="alternate"; type="application/activity+json"'
    context = {"page": page, "join_label": JOIN_LABELS.get(page.settings.join_mode, "Join")}
    return await render(request, "groups_page.html", context, headers={"Link": link, "Vary": "Accept"})


@html_errors
async def thread(request: Request) -> Response:
    found = await views.thread_page(
        handle_of(request), await viewer_of(request), request.path_params["note_id"]
    )
    return await render(request, "groups_thread.html", {"thread": found, "page": found.page})


@html_errors
async def post(request: Request) -> Response:
    """POST `/g/{handle}/post`: a new thread, or a reply (`in_reply_to` = the note's database id)."""
    form = await read_form(request, max_field=20_000)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    if (too_many := await limited(request, "rate_limit_post", account, "posts")) is not None:
        return too_many
    parent_ref = field(form, "in_reply_to")
    parent = await views.note_of(int(parent_ref)) if parent_ref.isdigit() and len(parent_ref) < 19 else None
    try:
        note = await posting.publish_in_group(
            deps_of(request),
            group,
            account.actor,
            field(form, "content"),
            title=field(form, "title"),
            members_only=field(form, "members_only") == "yes",
            parent=parent,
        )
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return see_other(home_of(group.username))
    if await posting.is_held(group, note):
        flash(request, "Thank you: a moderator reviews your first posts before the group shares them.")
        return see_other(home_of(group.username))
    flash(request, "Your reply is posted." if parent else "Your post is published in the group.")
    return see_other(f"{home_of(group.username)}/t/{parent.id if parent else note.id}")


# --- joining and leaving --------------------------------------------------------------------------------


@html_errors
async def join(request: Request) -> Response:
    """`/g/{handle}/join`: the questions (approval groups), then Join / Ask to join."""
    account = await require_account(request)
    group, settings = await core.local_group(handle_of(request))
    questions = await membership.questions(group)
    if request.method == "GET":
        context = {
            "group": group,
            "group_settings": settings,
            "questions": questions,
            "error": None,
            "answers": [],
        }
        return await render(request, "groups_join.html", context)
    form = await read_form(request, max_field=5_000)
    answers = [field(form, f"answer_{i}") for i in range(len(questions))]
    try:
        row = await membership.ask_to_join(deps_of(request), group, account.actor, answers)
    except ServiceError as exc:
        context = {
            "group": group,
            "settings": settings,
            "questions": questions,
            "error": str(exc),
            "answers": answers,
        }
        return await render(
            request, "groups_join.html", context, status=403 if isinstance(exc, Forbidden) else 400
        )
    if row.state == "accepted":
        flash(request, f"Welcome to {group.name or group.username}!")
    else:
        flash(request, "Your request is sent. Waiting for approval.")
    return see_other(home_of(group.username))


@html_errors
async def leave(request: Request) -> Response:
    await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    try:
        await membership.leave(deps_of(request), group, account.actor)
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return see_other(home_of(group.username))
    flash(request, "You left the group.")
    return see_other(home_of(group.username))


# --- the Atom feed ------------------------------------------------------------------------------------------


async def feed(request: Request) -> Response:
    try:
        body = await views.atom_feed(deps_of(request), handle_of(request))
    except NotFound:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(body, media_type="application/atom+xml; charset=utf-8")


# --- groups on other servers ----------------------------------------------------------------------------


@html_errors
async def find_remote(request: Request) -> Response:
    """`/groups/find?q=@group@host`: a group on another server, with Join / Leave and a post form."""
    account = await current_account(request)
    if account is None:
        return see_other("/login")
    query = request.query_params.get("q", "")[:512]
    context: dict[str, Any] = {"query": query, "group": None, "state": "none", "error": None}
    if query.strip():
        try:
            group = await timeline.find_actor(deps_of(request), query)
        except ServiceError as exc:
            context["error"] = str(exc)
            return await render(request, "groups_remote.html", context, status=404)
        if group.local and group.type == "Group":
            return see_other(home_of(group.username))
        if group.type != "Group":
            context["error"] = "That is a person, not a group."
            return await render(request, "groups_remote.html", context, status=400)
        row = await core.membership_of(group, account.actor)
        context.update(group=group, state=row.state if row else "none")
    return await render(request, "groups_remote.html", context)


@html_errors
async def remote_action(request: Request) -> Response:
    """POST `/groups/remote/join|leave|post` with `actor_id` (a remote group's database id)."""
    form = await read_form(request, max_field=20_000)
    account = await require_account(request)
    group = await core.remote_group_by_id(field(form, "actor_id"))
    back = f"/groups/find?q={group.ap_id}"
    deps = deps_of(request)
    action = request.path_params["action"]
    try:
        if action == "join":
            await remote.join_remote(deps, account.actor, group)
            flash(request, "Your request is sent. Waiting for approval.")
        elif action == "leave":
            await remote.leave_remote(deps, account.actor, group)
            flash(request, "You left the group.")
        elif action == "post":
            await posting.publish_in_group(
                deps, group, account.actor, field(form, "content"), title=field(form, "title")
            )
            flash(request, "Your post is sent to the group.")
        else:
            raise NotFound("This page does not exist.")
    except NotFound:
        raise
    except ServiceError as exc:
        flash(request, str(exc))
    return see_other(back)


def routes() -> list[BaseRoute]:
    return [
        Route("/groups", directory, name="groups_directory"),
        Route("/groups.json", directory_json, name="groups_directory_json"),
        Route("/groups/new", new_group, methods=["GET", "POST"], name="groups_new"),
        Route("/groups/find", find_remote, name="groups_find"),
        Route("/groups/remote/{action:str}", remote_action, methods=["POST"], name="groups_remote_action"),
        Route("/g/{handle}", group_home, name="group_home"),
        Route("/g/{handle}/feed.atom", feed, name="group_feed"),
        Route("/g/{handle}/join", join, methods=["GET", "POST"], name="group_join"),
        Route("/g/{handle}/leave", leave, methods=["POST"], name="group_leave"),
        Route("/g/{handle}/post", post, methods=["POST"], name="group_post"),
        Route("/g/{handle}/t/{note_id:int}", thread, name="group_thread"),
    ]
