"""Group administration pages: editing the group, moderating threads, the approval queue (join
and follow requests, trusted servers), members and their roles, invitations, the moderation log.

The pages people use to browse, join and post are in `web/groups.py`; these are for a group's
admins and moderators (the members list and the log are also shown to members). Each handler:
form → one service → page.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fediverse_net.services import follows, media, timeline
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.services.groups import core, membership, moderation, views
from fediverse_net.services.media import MediaRejected
from fediverse_net.web.forms import field, flash, read_form
from fediverse_net.web.groups import group_input, handle_of, home_of, require_account, see_other, viewer_of
from fediverse_net.web.media import read_upload_form
from fediverse_net.web.social import limited
from fediverse_net.web.templating import error_page, handle_text, html_errors, render
from fediverse_net.web.wellknown import deps_of

MEMBER_ACTIONS: Final = ("ban", "unban", "admin", "moderator", "member")


@html_errors
async def edit_group(request: Request) -> Response:
    account = await require_account(request)
    group, settings = await core.local_group(handle_of(request))
    await core.require_role(group, account.actor, ("admin",))
    too_large: MediaRejected | None = None
    if request.method == "POST":
        try:
            form, upload = await read_upload_form(request, "avatar_file")
        except MediaRejected as exc:  # too large to read: the saved settings are shown again
            too_large = exc
    if request.method == "GET" or too_large is not None:
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
            review_first_posts=settings.review_first_posts,
            questions=questions,
        )
        error, status = (str(too_large), too_large.status) if too_large else (None, 200)
        context = {"values": values, "handle": group.username, "error": error}
        return await render(request, "groups_form.html", context, status=status)
    values = group_input(form)
    deps = deps_of(request)
    try:
        # An uploaded picture takes the address field's place; the replaced file goes once unused.
        async with media.replacing_avatar(deps.settings, group.avatar_url, upload) as uploaded:
            saved = replace(values, avatar_url=uploaded) if uploaded is not None else values
            await moderation.update_group(deps, group, account.actor, saved)
    except ServiceError as exc:
        if isinstance(exc, Forbidden):
            raise
        context = {"values": values, "handle": group.username, "error": str(exc)}
        status = exc.status if isinstance(exc, MediaRejected) else 400
        return await render(request, "groups_form.html", context, status=status)
    flash(request, "The group is saved.")
    return see_other(home_of(group.username))


@html_errors
async def moderate(request: Request) -> Response:
    """POST `/g/{handle}/t/{note_id}/{action}`: remove | lock | unlock | pin | unpin | approve | reject."""
    form = await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    action = request.path_params["action"]
    if action not in moderation.POST_ACTIONS:
        raise NotFound("This page does not exist.")
    try:
        await moderation.moderate_post(
            deps_of(request),
            group,
            account.actor,
            request.path_params["note_id"],
            action,
            field(form, "reason"),
        )
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:  # e.g. approving a post that is not waiting for review
        return await error_page(request, 400, str(exc))
    messages = {
        "remove": "The post is removed.",
        "lock": "The thread is locked.",
        "unlock": "The thread is open again.",
        "pin": "The thread is pinned.",
        "unpin": "The thread is no longer pinned.",
        "approve": "The post is approved and shared with the group.",
        "reject": "The post is rejected: the group does not share it.",
    }
    flash(request, messages[action])
    if action in moderation.REVIEW_ACTIONS:
        return see_other(f"{home_of(group.username)}/requests")
    return see_other(home_of(group.username))


@html_errors
async def requests_page(request: Request) -> Response:
    page = await views.require_moderator_view(handle_of(request), await viewer_of(request))
    context = {
        "page": page,
        "requests": await membership.pending(page.group),
        "follow_requests": await views.pending_follows(page.group),
        "held": await views.held_posts(page.group),
        "trusted": await membership.trusted_instances(page.group),
    }
    return await render(request, "groups_requests.html", context)


@html_errors
async def decide(request: Request) -> Response:
    """POST `/g/{handle}/requests/{id}/approve|reject|vouch`."""
    form = await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    decision, row_id = request.path_params["decision"], request.path_params["membership_id"]
    deps = deps_of(request)
    if decision == "approve":
        await membership.approve(deps, group, account.actor, row_id)
        flash(request, "The request is approved.")
    elif decision == "reject":
        person = await membership.reject(deps, group, account.actor, row_id, field(form, "reason"))
        flash(request, f"You declined the request from {handle_text(person)}.")
    elif decision == "vouch":
        try:
            done = await membership.vouch(deps, group, account.actor, row_id)
        except (NotFound, Forbidden):
            raise
        except ServiceError as exc:
            flash(request, str(exc))
            return see_other(home_of(group.username))
        flash(request, "Thank you: the request is approved." if done else "Thank you for vouching.")
        return see_other(home_of(group.username))
    else:
        raise NotFound("This page does not exist.")
    return see_other(f"{home_of(group.username)}/requests")


@html_errors
async def decide_follow(request: Request) -> Response:
    """POST `/g/{handle}/follow-requests/{id}/approve|reject` (groups that approve followers)."""
    await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
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
    return see_other(f"{home_of(group.username)}/requests")


@html_errors
async def trusted(request: Request) -> Response:
    form = await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
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
    return see_other(f"{home_of(group.username)}/requests")


@html_errors
async def members_page(request: Request) -> Response:
    page = await views.require_member_view(handle_of(request), await viewer_of(request))
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
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    action = request.path_params["action"]
    if action not in MEMBER_ACTIONS:
        raise NotFound("This page does not exist.")
    row, person = await core.membership_in(group, request.path_params["membership_id"])
    deps = deps_of(request)
    try:
        if action == "ban":
            await moderation.ban(deps, group, account.actor, person, field(form, "reason"))
            flash(request, f"{handle_text(person)} is banned from the group.")
        elif action == "unban":
            await moderation.unban(deps, group, account.actor, person)
            flash(request, f"{handle_text(person)} is no longer banned.")
        else:
            await membership.set_role(group, account.actor, row.id, action)
            flash(request, f"{handle_text(person)} is now {'an' if action == 'admin' else 'a'} {action}.")
    except (NotFound, Forbidden):
        raise
    except ServiceError as exc:
        flash(request, str(exc))
    return see_other(f"{home_of(group.username)}/members")


@html_errors
async def invite(request: Request) -> Response:
    form = await read_form(request)
    account = await require_account(request)
    group, _ = await core.local_group(handle_of(request))
    if (too_many := await limited(request, "rate_limit_invite", account, "invitations")) is not None:
        return too_many
    try:
        person = await timeline.find_actor(deps_of(request), field(form, "handle"))
        await membership.invite(deps_of(request), group, account.actor, person)
    except Forbidden:
        raise
    except ServiceError as exc:
        flash(request, str(exc))
        return see_other(f"{home_of(group.username)}/members")
    flash(request, f"{handle_text(person)} is invited.")
    return see_other(f"{home_of(group.username)}/members")


@html_errors
async def delete_group(request: Request) -> Response:
    """`/g/{handle}/delete`: the confirmation page, then the group's deletion (admins only)."""
    page = await views.require_admin_view(handle_of(request), await viewer_of(request))
    if request.method == "GET":
        return await render(request, "groups_delete.html", {"page": page, "error": None})
    form = await read_form(request)
    account = await require_account(request)
    try:
        await moderation.delete_group(
            deps_of(request), page.group, account.actor, field(form, "confirmation")
        )
    except (Forbidden, NotFound):
        raise
    except ServiceError as exc:
        return await render(request, "groups_delete.html", {"page": page, "error": str(exc)}, status=400)
    flash(request, f"The group {page.group.name or page.group.username} is deleted.")
    return see_other("/groups")


@html_errors
async def modlog(request: Request) -> Response:
    page = await views.require_member_view(handle_of(request), await viewer_of(request))
    entries = await moderation.modlog(page.group)
    return await render(request, "groups_modlog.html", {"page": page, "entries": entries})


def routes() -> list[BaseRoute]:
    return [
        Route("/g/{handle}/edit", edit_group, methods=["GET", "POST"], name="group_edit"),
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
        Route("/g/{handle}/delete", delete_group, methods=["GET", "POST"], name="group_delete"),
    ]
