"""Group pages: directory, create/edit, the group page and threads, joining (with questions),
the approval queue, members, moderation, the moderation log, the Atom feed, remote groups.

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
from fediverse_net.services import follows, timeline
from fediverse_net.services.errors import Conflict, Forbidden, NotFound, ServiceError
from fediverse_net.services.groups import core, documents, membership, moderation, posting, views
from fediverse_net.web.forms import current_account, field, flash, read_form
from fediverse_net.web.responses import ActivityJSONResponse, JSONResponse
from fediverse_net.web.templating import html_errors, render
from fediverse_net.web.wellknown import deps_of

MEMBER_ACTIONS: Final = ("ban", "unban", "admin", "moderator", "member")
JOIN_LABELS: Final = {"open": "Join", "approval": "Ask to join", "invite": "Join (invited people only)"}


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def _account(request: Request) -> Account:
    account = await current_account(request)
    if account is None:
        raise Forbidden("Please log in first.")
    return account


async def _viewer(request: Request) -> Actor | None:
    account = await current_account(request)
    return account.actor if account is not None else None


def _handle(request: Request) -> str:
    return str(request.path_params["handle"])


def _home(handle: str) -> str:
    return f"/g/{handle}"


def _group_input(form: Any) -> core.GroupInput:
    vouches = field(form, "vouches_needed").strip() or "0"
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
        vouches_needed=int(vouches) if vouches.isdigit() and len(vouches) < 4 else -1,
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
        return _see_other("/login")
    if request.method == "GET":
        return await render(request, "groups_form.html", {"values": None, "handle": "", "error": None})
    form = await read_form(request)
    values = _group_input(form)
    handle = field(form, "handle")
    try:
        group = await core.create_group(deps_of(request).settings, handle, account.actor, values)
    except ServiceError as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        context = {"values": values, "handle": handle, "error": str(exc)}
        return await render(request, "groups_form.html", context, status=status)
    flash(request, "Your group is ready.")
    return _see_other(_home(group.username))


@html_errors
async def edit_group(request: Request) -> Response:
    account = await _account(request)
    group, settings = await core.local_group(_handle(request))
    await core.require_role(group, account.actor, ("admin",))
    if request.method == "GET":
        questions = [q.text for q in await membership.questions(group)]
        values = core.GroupInput(
            name=group.name,
            description=settings.description,
            rules=settings.rules,
            tags=" ".join(settings.tags),
            city=settings.city,
            area=settings.area,
            avatar_url=group.avatar_url or "",
            banner_url=group.header_url or "",
            join_mode=settings.join_mode,
            visibility=settings.visibility,
            posting=settings.posting,
            follow_is_join=settings.follow_is_join,
            vouches_needed=settings.vouches_needed,
            questions=questions,
        )
        return await render(
            request, "groups_form.html", {"values": values, "handle": group.username, "error": None}
        )
    form = await read_form(request)
    values = _group_input(form)
    try:
        await core.update_group(group, account.actor, values)
    except ServiceError as exc:
        if isinstance(exc, Forbidden):
            raise
        context = {"values": values, "handle": group.username, "error": str(exc)}
        return await render(request, "groups_form.html", context, status=400)
    flash(request, "The group is saved.")
    return _see_other(_home(group.username))


# --- the group page and threads -----------------------------------------------------------------------


@html_errors
async def group_home(request: Request) -> Response:
    """`/g/{handle}`: the group page (or the Group actor when ActivityPub is asked for)."""
    if wants_activitypub(request.headers.get("accept")):
        group, _ = await core.local_group(_handle(request))
        return ActivityJSONResponse(await documents.group_document(group, deps_of(request).urls))
    page = await views.group_page(_handle(request), await _viewer(request))
    link = f'<{page.group.ap_id}>; rel="alternate"; type="application/activity+json"'
    context = {"page": page, "join_label": JOIN_LABELS.get(page.settings.join_mode, "Join")}
    return await render(request, "groups_page.html", context, headers={"Link": link, "Vary": "Accept"})


@html_errors
async def thread(request: Request) -> Response:
    found = await views.thread_page(_handle(request), await _viewer(request), request.path_params["note_id"])
    return await render(request, "groups_thread.html", {"thread": found, "page": found.page})


@html_errors
async def post(request: Request) -> Response:
    """POST `/g/{handle}/post`: a new thread, or a reply (`in_reply_to` = the note's database id)."""
    form = await read_form(request, max_field=20_000)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
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
        return _see_other(_home(group.username))
    flash(request, "Your reply is posted." if parent else "Your post is published in the group.")
    return _see_other(f"{_home(group.username)}/t/{parent.id if parent else note.id}")


@html_errors
async def moderate(request: Request) -> Response:
    """POST `/g/{handle}/t/{note_id}/{action}`: remove | lock | unlock | pin | unpin."""
    form = await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    action = request.path_params["action"]
    if action not in moderation.POST_ACTIONS:
        raise NotFound("This page does not exist.")
    await moderation.moderate_post(
        deps_of(request), group, account.actor, request.path_params["note_id"], action, field(form, "reason")
    )
    messages = {
        "remove": "The post is removed.",
        "lock": "The thread is locked.",
        "unlock": "The thread is open again.",
        "pin": "The thread is pinned.",
        "unpin": "The thread is no longer pinned.",
    }
    flash(request, messages[action])
    return _see_other(_home(group.username))


# --- joining and leaving --------------------------------------------------------------------------------


@html_errors
async def join(request: Request) -> Response:
    """`/g/{handle}/join`: the questions (approval groups), then Join / Ask to join."""
    account = await _account(request)
    group, settings = await core.local_group(_handle(request))
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
    return _see_other(_home(group.username))


@html_errors
async def leave(request: Request) -> Response:
    await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    try:
        await membership.leave(deps_of(request), group, account.actor)
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return _see_other(_home(group.username))
    flash(request, "You left the group.")
    return _see_other(_home(group.username))


# --- approval queue, members, moderation log --------------------------------------------------------------


@html_errors
async def requests_page(request: Request) -> Response:
    page = await views.require_moderator_view(_handle(request), await _viewer(request))
    context = {
        "page": page,
        "requests": await membership.pending(page.group),
        "follow_requests": await views.pending_follows(page.group),
        "trusted": await membership.trusted_instances(page.group),
    }
    return await render(request, "groups_requests.html", context)


@html_errors
async def decide(request: Request) -> Response:
    """POST `/g/{handle}/requests/{id}/approve|reject|vouch`."""
    form = await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    decision, row_id = request.path_params["decision"], request.path_params["membership_id"]
    deps = deps_of(request)
    if decision == "approve":
        await membership.approve(deps, group, account.actor, row_id)
        flash(request, "The request is approved.")
    elif decision == "reject":
        person = await membership.reject(deps, group, account.actor, row_id, field(form, "reason"))
        flash(request, f"You declined the request from @{person.acct}.")
    elif decision == "vouch":
        try:
            done = await membership.vouch(deps, group, account.actor, row_id)
        except (NotFound, Forbidden):
            raise
        except ServiceError as exc:
            flash(request, str(exc))
            return _see_other(_home(group.username))
        flash(request, "Thank you: the request is approved." if done else "Thank you for vouching.")
        return _see_other(_home(group.username))
    else:
        raise NotFound("This page does not exist.")
    return _see_other(f"{_home(group.username)}/requests")


@html_errors
async def decide_follow(request: Request) -> Response:
    """POST `/g/{handle}/follow-requests/{id}/approve|reject` (groups that approve followers)."""
    await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    await core.require_role(group, account.actor)
    decision, follow_id = request.path_params["decision"], request.path_params["follow_id"]
    if decision == "approve":
        await follows.approve_request(deps_of(request), group, follow_id)
        flash(request, "The follow request is approved.")
    elif decision == "reject":
        await follows.remove_follower(deps_of(request), group, follow_id)
        flash(request, "The follow request is declined.")
    else:
        raise NotFound("This page does not exist.")
    return _see_other(f"{_home(group.username)}/requests")


@html_errors
async def trusted(request: Request) -> Response:
    form = await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    domain = field(form, "domain")
    try:
        if field(form, "action") == "remove":
            await membership.distrust_instance(group, account.actor, domain)
            flash(request, f"{domain} is no longer trusted.")
        else:
            domain = await membership.trust_instance(group, account.actor, domain)
            flash(request, f"Requests from {domain} are now approved at once.")
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
    return _see_other(f"{_home(group.username)}/requests")


@html_errors
async def members_page(request: Request) -> Response:
    page = await views.require_member_view(_handle(request), await _viewer(request))
    context = {
        "page": page,
        "members": await membership.members(page.group),
        "banned": await views.banned(page.group) if page.viewer.is_moderator else [],
    }
    return await render(request, "groups_members.html", context)


@html_errors
async def member_action(request: Request) -> Response:
    """POST `/g/{handle}/members/{membership_id}/ban|unban|admin|moderator|member`."""
    form = await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    action = request.path_params["action"]
    if action not in MEMBER_ACTIONS:
        raise NotFound("This page does not exist.")
    row, person = await core.membership_in(group, request.path_params["membership_id"])
    deps = deps_of(request)
    try:
        if action == "ban":
            await moderation.ban(deps, group, account.actor, person, field(form, "reason"))
            flash(request, f"@{person.acct} is banned from the group.")
        elif action == "unban":
            await moderation.unban(deps, group, account.actor, person)
            flash(request, f"@{person.acct} is no longer banned.")
        else:
            await membership.set_role(group, account.actor, row.id, action)
            flash(request, f"@{person.acct} is now {'an' if action == 'admin' else 'a'} {action}.")
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
    return _see_other(f"{_home(group.username)}/members")


@html_errors
async def invite(request: Request) -> Response:
    form = await read_form(request)
    account = await _account(request)
    group, _ = await core.local_group(_handle(request))
    try:
        person = await timeline.find_actor(deps_of(request), field(form, "handle"))
        await membership.invite(deps_of(request), group, account.actor, person)
    except Forbidden:
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return _see_other(f"{_home(group.username)}/members")
    flash(request, f"@{person.acct} is invited.")
    return _see_other(f"{_home(group.username)}/members")


@html_errors
async def modlog(request: Request) -> Response:
    page = await views.require_member_view(_handle(request), await _viewer(request))
    entries = await moderation.modlog(page.group)
    return await render(request, "groups_modlog.html", {"page": page, "entries": entries})


async def feed(request: Request) -> Response:
    try:
        body = await views.atom_feed(deps_of(request), _handle(request))
    except NotFound:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(body, media_type="application/atom+xml; charset=utf-8")


# --- groups on other servers ----------------------------------------------------------------------------


@html_errors
async def find_remote(request: Request) -> Response:
    """`/groups/find?q=@group@host`: a group on another server, with Join / Leave and a post form."""
    account = await current_account(request)
    if account is None:
        return _see_other("/login")
    query = request.query_params.get("q", "")[:512]
    context: dict[str, Any] = {"query": query, "group": None, "state": "none", "error": None}
    if query.strip():
        try:
            group = await timeline.find_actor(deps_of(request), query)
        except ServiceError as exc:
            context["error"] = str(exc)
            return await render(request, "groups_remote.html", context, status=404)
        if group.local and group.type == "Group":
            return _see_other(_home(group.username))
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
    account = await _account(request)
    group = await core.remote_group_by_id(field(form, "actor_id"))
    back = f"/groups/find?q={group.ap_id}"
    deps = deps_of(request)
    action = request.path_params["action"]
    try:
        if action == "join":
            await membership.join_remote(deps, account.actor, group)
            flash(request, "Your request is sent. Waiting for approval.")
        elif action == "leave":
            await membership.leave_remote(deps, account.actor, group)
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
    return _see_other(back)


def routes() -> list[BaseRoute]:
    return [
        Route("/groups", directory, name="groups_directory"),
        Route("/groups.json", directory_json, name="groups_directory_json"),
        Route("/groups/new", new_group, methods=["GET", "POST"], name="groups_new"),
        Route("/groups/find", find_remote, name="groups_find"),
        Route("/groups/remote/{action:str}", remote_action, methods=["POST"], name="groups_remote_action"),
        Route("/g/{handle}", group_home, name="group_home"),
        Route("/g/{handle}/feed.atom", feed, name="group_feed"),
        Route("/g/{handle}/edit", edit_group, methods=["GET", "POST"], name="group_edit"),
        Route("/g/{handle}/join", join, methods=["GET", "POST"], name="group_join"),
        Route("/g/{handle}/leave", leave, methods=["POST"], name="group_leave"),
        Route("/g/{handle}/post", post, methods=["POST"], name="group_post"),
        Route("/g/{handle}/t/{note_id:int}", thread, name="group_thread"),
        Route("/g/{handle}/t/{note_id:int}/{action:str}", moderate, methods=["POST"], name="group_moderate"),
        Route("/g/{handle}/requests", requests_page, name="group_requests"),
        Route(
            "/g/{handle}/requests/{membership_id:int}/{decision:str}",
            decide,
            methods=["POST"],
            name="group_decide",
        ),
        Route(
            "/g/{handle}/follow-requests/{follow_id:int}/{decision:str}",
            decide_follow,
            methods=["POST"],
            name="group_decide_follow",
        ),
        Route("/g/{handle}/trusted", trusted, methods=["POST"], name="group_trusted"),
        Route("/g/{handle}/members", members_page, name="group_members"),
        Route(
            "/g/{handle}/members/{membership_id:int}/{action:str}",
            member_action,
            methods=["POST"],
            name="group_member_action",
        ),
        Route("/g/{handle}/invite", invite, methods=["POST"], name="group_invite"),
        Route("/g/{handle}/modlog", modlog, name="group_modlog"),
    ]
