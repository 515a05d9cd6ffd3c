"""Composition root: create_app(settings) wires settings, database, HTTP client and workers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from tortoise import Tortoise

from fediverse_net import __version__
from fediverse_net.config import Settings
from fediverse_net.db import tortoise_config
from fediverse_net.deps import Deps
from fediverse_net.services.members import ensure_instance_actor
from fediverse_net.web import activitypub, inbox, wellknown
from fediverse_net.web.errors import exception_handlers
from fediverse_net.web.middleware import (
    AccessLogAndHeaders,
    CachedReads,
    CookieSessionMiddleware,
    InboxFastPath,
)
from fediverse_net.web.routes import routes

log = logging.getLogger("fediverse_net")

# Federation reads that other servers repeat by the thousand (benchmarks B1, B2). Starlette tries
# routes in order, one regex each; these paths match no other route, so trying them first only
# saves the misses.
HOT_ROUTES = ("member", "webfinger", "nodeinfo")


def _hot_first(table: list[BaseRoute]) -> list[BaseRoute]:
    def rank(route: BaseRoute) -> int:
        name = route.name if isinstance(route, Route) else None
        return HOT_ROUTES.index(name) if name in HOT_ROUTES else len(HOT_ROUTES)

    return sorted(table, key=rank)  # stable: every other route keeps its order


def build_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> Any:
    from fediverse_net.activitypub.client import FederationClient

    return FederationClient(
        user_agent=f"fediverse-net/{__version__} (+{settings.origin}/)",
        allow_private=settings.allow_private_addresses,
        transport=transport,
        per_host_limit=settings.delivery_per_host,
        global_limit=settings.delivery_concurrency,
    )


async def init_db(settings: Settings) -> None:
    await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)


def create_app(
    settings: Settings,
    *,
    manage_db: bool = True,
    run_workers: bool | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The ASGI app. Tests pass `manage_db=False` (they own the DB) and a fake `transport`."""
    deps = Deps(settings=settings)
    workers_on = settings.run_workers if run_workers is None else run_workers

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_db:
            await init_db(settings)
        deps.client = build_client(settings, transport)
        await ensure_instance_actor(settings)
        runner = None
        if workers_on:
            from fediverse_net.workers.runner import WorkerRunner

            runner = WorkerRunner(deps)
            runner.start()
        log.info("started", extra={"fields": {"origin": settings.origin, "workers": workers_on}})
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await deps.client.aclose()
            if manage_db:
                await Tortoise.close_connections()

    handlers = exception_handlers()
    app = Starlette(
        routes=_hot_first(routes()),
        middleware=[
            Middleware(AccessLogAndHeaders),
            # Inbox POSTs (benchmark B3) skip the layers below; same answers (see InboxFastPath).
            Middleware(
                InboxFastPath,
                deps=deps,
                route_endpoint=inbox.inbox,
                endpoint=inbox.handle_inbox,
                handlers=handlers,
            ),
            Middleware(
                CachedReads, deps=deps, answers=[activitypub.cached_member_answer, wellknown.cached_answer]
            ),
            Middleware(
                CookieSessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="fedinet_session",
                https_only=settings.scheme == "https",
                same_site="lax",
                max_age=30 * 24 * 3600,
            ),
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.deps = deps
    return app
