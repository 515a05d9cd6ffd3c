"""WebFinger, host-meta and NodeInfo (protocol.md §1). Never require a signature."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fediverse_net import __version__
from fediverse_net.activitypub.documents import (
    host_meta_json,
    host_meta_xml,
    nodeinfo_document,
    nodeinfo_links,
    webfinger_document,
)
from fediverse_net.deps import Deps
from fediverse_net.services import discovery
from fediverse_net.services.errors import NotFound
from fediverse_net.web.responses import CORS, JRDResponse, JSONResponse, json_error

HIT_CACHE = {"Cache-Control": "max-age=259200, public", **CORS}
MISS_CACHE = {"Cache-Control": "max-age=180, public", **CORS}


def deps_of(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


async def webfinger(request: Request) -> Response:
    deps = deps_of(request)
    resource = request.query_params.get("resource")
    if not resource:
        return json_error(400, "missing resource parameter", headers=MISS_CACHE)
    cache = deps.cache(discovery.WEBFINGER_CACHE, discovery.WEBFINGER_TTL)
    if (cached := cache.get(resource)) is not None:
        return JRDResponse(cached, headers=HIT_CACHE)
    try:
        actor = await discovery.actor_for_resource(deps.settings, resource)
    except ValueError:
        return json_error(400, "malformed resource", headers=MISS_CACHE)
    except discovery.Gone:
        return json_error(410, "gone", headers=MISS_CACHE)
    except NotFound:
        return json_error(404, "not found", headers=MISS_CACHE)
    document = webfinger_document(
        subject=f"acct:{actor.username}@{deps.settings.domain}",
        actor_id=actor.ap_id,
        profile_url=actor.url if actor.type != "Application" else None,
        origin=deps.settings.origin,
        actor_type=actor.type,
        avatar_url=actor.avatar_url,
    )
    cache.put(resource, document)
    return JRDResponse(document, headers=HIT_CACHE)


async def host_meta(request: Request) -> Response:
    origin = deps_of(request).settings.origin
    accept = request.headers.get("accept", "")
    if request.url.path.endswith(".json") or ("json" in accept and "xml" not in accept):
        return JSONResponse(host_meta_json(origin), headers=HIT_CACHE)
    return Response(host_meta_xml(origin), media_type="application/xrd+xml; charset=utf-8", headers=HIT_CACHE)


async def nodeinfo_index(request: Request) -> Response:
    # Lemmy uses this URL as a liveness probe: it must always answer 200.
    return JSONResponse(nodeinfo_links(deps_of(request).settings.origin), headers=CORS)


async def nodeinfo(request: Request) -> Response:
    deps = deps_of(request)
    version = request.path_params["version"]
    if version not in ("2.0", "2.1"):
        return json_error(404, "unknown NodeInfo version")
    # Counting members and posts on every probe would cost four COUNTs (Lemmy polls this URL).
    usage_cache = deps.cache("nodeinfo_usage", 300.0)
    usage = usage_cache.get("usage")
    if usage is None:
        usage = await discovery.node_usage()
        usage_cache.put("usage", usage)
    document = nodeinfo_document(
        version,
        software_version=__version__,
        open_registrations=deps.settings.registration_mode != "closed",
        usage=usage,
        name=deps.settings.instance_name,
        description=deps.settings.instance_description,
    )
    profile = f'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/{version}#"'
    return JSONResponse(
        document, headers={**CORS, "Cache-Control": "max-age=1800, public"}, media_type=profile
    )


async def healthz(request: Request) -> Response:
    """Liveness and readiness: the database answers. 503 when it does not."""
    try:
        await discovery.database_ping()
    except Exception as exc:  # any DB failure means not ready
        return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})
