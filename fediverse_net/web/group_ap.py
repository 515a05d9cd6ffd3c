"""ActivityPub GETs of our groups: the Group actor and its collections (protocol §2.4, §2.6).

The inbox is `web.inbox.inbox` (the `handle` path parameter names the recipient). Members-only
things (the member list, members-only posts) need a signed fetch by a member.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fediverse_net.activitypub.errors import SignatureError
from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.db.models import Actor
from fediverse_net.services import fetch_auth
from fediverse_net.services.errors import NotFound
from fediverse_net.services.groups import core, documents
from fediverse_net.web import inbox
from fediverse_net.web.activitypub import _page, fetch_denied
from fediverse_net.web.inbox import request_parts
from fediverse_net.web.responses import ActivityJSONResponse, json_error
from fediverse_net.web.wellknown import deps_of

COLLECTIONS = ("followers", "following", "outbox", "members", "moderators")


async def _group(request: Request) -> Actor | None:
    try:
        actor, _ = await core.local_group(request.path_params["handle"])
    except NotFound:
        return None
    return actor


async def _missing(request: Request) -> Response:
    """410 for a group that was deleted (its id is never reused), else 404."""
    if await core.was_deleted(request.path_params["handle"]):
        return json_error(410, "gone")
    return json_error(404, "not found")


async def signer_of(request: Request) -> str | None:
    """The actor id that signed this GET (None when unsigned); SignatureError when it is bad."""
    deps = deps_of(request)
    return await fetch_auth.signed_by(deps, request_parts(request, b"", deps.settings.origin))


async def group_actor(request: Request) -> Response:
    """`/groups/{handle}`: the Group actor; browsers go to the group page."""
    group = await _group(request)
    if group is None:
        return await _missing(request)
    if not wants_activitypub(request.headers.get("accept")):
        return RedirectResponse(group.url or "/groups", status_code=302, headers={"Vary": "Accept"})
    document = await documents.group_document(group, deps_of(request).urls)
    if await fetch_denied(request) is not None:
        document = fetch_auth.key_only(document)
    return ActivityJSONResponse(document)


async def collection(request: Request) -> Response:
    which = request.path_params["which"]
    if which not in COLLECTIONS:
        return json_error(404, "not found")
    group = await _group(request)
    if group is None:
        return await _missing(request)
    if (denied := await fetch_denied(request)) is not None:
        return denied
    if which == "followers":
        return ActivityJSONResponse(await documents.followers_collection(group))
    if which == "following":
        return ActivityJSONResponse(documents.following_collection(group))
    if which == "moderators":
        return ActivityJSONResponse(await documents.moderators_collection(group))
    if which == "outbox":
        return ActivityJSONResponse(await documents.outbox_collection(group, _page(request)))
    try:
        signer = await signer_of(request)
    except SignatureError as exc:
        return json_error(401, str(exc))
    show = await core.is_member(group, await Actor.filter(ap_id=signer).first()) if signer else False
    return ActivityJSONResponse(await documents.members_collection(group, _page(request), show_items=show))


async def featured(request: Request) -> Response:
    group = await _group(request)
    if group is None:
        return await _missing(request)
    if (denied := await fetch_denied(request)) is not None:
        return denied
    return ActivityJSONResponse(await documents.featured_collection(group))


async def activity(request: Request) -> Response:
    """`/groups/{handle}/activities/{token}`: the group's public Announces dereference."""
    group = await _group(request)
    if group is None:
        return await _missing(request)
    ap_id = f"{group.ap_id}/activities/{request.path_params['token']}"
    document = await documents.public_activity(group, ap_id)
    if document is None:
        return json_error(404, "not found")
    if (denied := await fetch_denied(request)) is not None:
        return denied
    return ActivityJSONResponse(document)


def routes() -> list[BaseRoute]:
    return [
        Route("/groups/{handle}", group_actor, name="group_actor"),
        Route("/groups/{handle}/inbox", inbox.inbox, methods=["POST"], name="group_inbox"),
        Route("/groups/{handle}/collections/featured", featured, name="group_featured"),
        Route("/groups/{handle}/activities/{token}", activity, name="group_activity"),
        Route("/groups/{handle}/{which:str}", collection, name="group_collection"),
    ]
