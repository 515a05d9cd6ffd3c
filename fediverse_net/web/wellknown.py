"""WebFinger, host-meta and NodeInfo (protocol.md §1). Never require a signature."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

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
from fediverse_net.web.responses import (
    CORS,
    JRDResponse,
    JSONResponse,
    PreparedResponse,
    dumps,
    json_error,
    raw_headers,
)

# host-meta only names our origin: shared caches may keep it for days.
HIT_CACHE = {"Cache-Control": "max-age=259200, public", **CORS}
MISS_CACHE = {"Cache-Control": "max-age=180, public", **CORS}
# A WebFinger answer names a member who may be deleted or renamed: a shared proxy may keep it for
# 5 minutes (it still absorbs the burst of lookups a popular post causes), not days. Fediverse
# servers cache the answer themselves and re-resolve before their own cache expires.
WEBFINGER_HEADERS = raw_headers(JRDResponse.media_type, {"Cache-Control": "max-age=300, public", **CORS})
NODEINFO_CACHE = "nodeinfo"
NODEINFO_TTL = 300.0


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
        return PreparedResponse(cached, WEBFINGER_HEADERS)
    generation = cache.generation  # a member changed while we read: do not store (TTLCache)
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
    body = dumps(document)
    cache.put(resource, body, generation=generation)
    return PreparedResponse(body, WEBFINGER_HEADERS)


def cached_answer(deps: Deps, scope: Scope) -> Response | None:
    """A cached WebFinger or NodeInfo answer, for `CachedReads` (web/middleware.py); else None.

    Exactly what `webfinger` and `nodeinfo` send on a cache hit.
    """
    path: str = scope["path"]
    if path == "/.well-known/webfinger":
        resource = QueryParams(scope["query_string"]).get("resource")  # as Request.query_params
        if not resource:
            return None
        body = deps.cache(discovery.WEBFINGER_CACHE, discovery.WEBFINGER_TTL).get(resource)
        return PreparedResponse(body, WEBFINGER_HEADERS) if body is not None else None
    if path.startswith("/nodeinfo/") and (headers := _NODEINFO_HEADERS.get(path[len("/nodeinfo/") :])):
        body = deps.cache(NODEINFO_CACHE, NODEINFO_TTL).get(path[len("/nodeinfo/") :])
        return PreparedResponse(body, headers) if body is not None else None
    return None


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
    # Counting members and posts on every probe would cost four COUNTs (Lemmy polls this URL):
    # the encoded document is kept for 5 minutes.
    cache = deps.cache(NODEINFO_CACHE, NODEINFO_TTL)
    body = cache.get(version)
    if body is None:
        document = nodeinfo_document(
            version,
            software_version=__version__,
            open_registrations=deps.settings.registration_mode != "closed",
            usage=await discovery.node_usage(),
            name=deps.settings.instance_name,
            description=deps.settings.instance_description,
        )
        body = dumps(document)
        cache.put(version, body)
    return PreparedResponse(body, _NODEINFO_HEADERS[version])


_NODEINFO_HEADERS = {
    version: raw_headers(
        f'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/{version}#"',
        {**CORS, "Cache-Control": "max-age=1800, public"},
    )
    for version in ("2.0", "2.1")
}


async def healthz(request: Request) -> Response:
    """Liveness and readiness: the database answers (503 when it does not), and the clock (F15).

    `clock` compares our clock with other servers' `Date` headers (`activitypub/clock.py`). When it
    is off by more than 5 min the answer is `"status": "degraded"` with a message, still **200**:
    a restart (liveness probe) or leaving the load balancer (readiness) cannot fix a clock and would
    take the pages down too, while they and local use still work. Monitors alert on the body
    (keyword `"status": "ok"`); the monitor itself logs a WARNING line when the offset crosses
    the threshold, so log alerts fire without anyone polling this URL.
    """
    try:
        await discovery.database_ping()
    except Exception as exc:  # any DB failure means not ready
        return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, status_code=503)
    client = deps_of(request).client
    clock = client.clock_monitor.estimate() if client is not None else None
    body: dict[str, object] = {"status": "ok"}
    if clock is not None:
        body["clock"] = clock.as_json()
        if clock.status == "skewed":
            body.update(status="degraded", message=clock.describe())
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
