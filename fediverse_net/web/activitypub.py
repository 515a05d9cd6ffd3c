"""ActivityPub GETs of local actors and their collections (content-negotiated with the HTML pages)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fediverse_net.activitypub.vocab import wants_activitypub
from fediverse_net.services import actor_documents, discovery
from fediverse_net.services.errors import NotFound
from fediverse_net.web.responses import ActivityJSONResponse, json_error
from fediverse_net.web.wellknown import deps_of


def _page(request: Request) -> int | None:
    raw = request.query_params.get("page")
    if raw is None:
        return None
    try:
        page = int(raw)
    except ValueError:
        return 1
    return min(max(page, 1), 10_000)


async def member(request: Request) -> Response:
    """`/users/{handle}`: the Person document, or a redirect to the HTML profile for browsers."""
    deps = deps_of(request)
    handle = request.path_params["handle"]
    try:
        actor = await discovery.local_actor(handle, type_="Person")
    except discovery.Gone:
        return json_error(410, "gone")
    except NotFound:
        return json_error(404, "not found")
    if not wants_activitypub(request.headers.get("accept")):
        return RedirectResponse(actor.url or "/", status_code=302, headers={"Vary": "Accept"})
    return ActivityJSONResponse(await actor_documents.document_for(actor, deps.urls))


async def instance_actor(request: Request) -> Response:
    """`/actor`: served to anyone, never requiring a signature (protocol §2.5)."""
    deps = deps_of(request)
    actor = await discovery.actor_for_resource(deps.settings, deps.urls.instance_actor)
    return ActivityJSONResponse(await actor_documents.document_for(actor, deps.urls))


async def collection(request: Request) -> Response:
    """followers / following of a local member."""
    handle = request.path_params["handle"]
    which = request.path_params["which"]
    try:
        actor = await discovery.local_actor(handle)
    except discovery.Gone:
        return json_error(410, "gone")
    except NotFound:
        return json_error(404, "not found")
    document = await actor_documents.follow_collection(
        actor, which, _page(request), show_items=actor.type == "Person"
    )
    return ActivityJSONResponse(document)
