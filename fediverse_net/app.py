"""Composition root: create_app(settings) wires settings, database, HTTP client and workers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from tortoise import Tortoise

from fediverse_net import __version__
from fediverse_net.config import Settings
from fediverse_net.db import tortoise_config
from fediverse_net.deps import Deps
from fediverse_net.services.members import ensure_instance_actor
from fediverse_net.web.errors import exception_handlers
from fediverse_net.web.middleware import AccessLogAndHeaders
from fediverse_net.web.routes import routes

log = logging.getLogger("fediverse_net")


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

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(AccessLogAndHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="fedinet_session",
                https_only=settings.scheme == "https",
                same_site="lax",
                max_age=30 * 24 * 3600,
            ),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.deps = deps
    return app
