"""Shared fixtures: settings, a real database (SQLite in memory, or PostgreSQL), the app, a client.

Set FEDINET_TEST_DATABASE_URL=postgres://… to run the suite on PostgreSQL (`make test` does so
when FEDINET_TEST_POSTGRES_URL is set). Nothing is mocked below the HTTP client's transport.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from tortoise import Tortoise, connections

from fediverse_net.app import create_app
from fediverse_net.config import Settings
from fediverse_net.db import group_search, tortoise_config

TEST_DATABASE_URL = os.environ.get("FEDINET_TEST_DATABASE_URL", "sqlite://:memory:")
IS_POSTGRES = TEST_DATABASE_URL.startswith(("postgres", "asyncpg"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        domain="fedi.test",
        scheme="https",
        data_dir=tmp_path,
        database_url=TEST_DATABASE_URL,
        secret_key="test-secret-key-not-for-production",
        allow_private_addresses=True,
        run_workers=False,
    )


async def _reset_postgres() -> None:
    conn = connections.get("default")
    rows = await conn.execute_query_dict(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    tables = ", ".join(f'"{row["tablename"]}"' for row in rows if row["tablename"] != "tortoise_migrations")
    if tables:
        await conn.execute_script(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
async def db() -> AsyncIterator[None]:
    """A clean database per test: fresh in-memory SQLite, or truncated PostgreSQL tables."""
    await Tortoise.init(config=tortoise_config(TEST_DATABASE_URL), _enable_global_fallback=True)
    await Tortoise.generate_schemas(safe=True)
    await group_search.install(connections.get("default"))  # what migration 0003 adds beyond models
    if IS_POSTGRES:
        await _reset_postgres()
    try:
        yield
    finally:
        await Tortoise.close_connections()


@pytest.fixture
def fake_transport() -> httpx.AsyncBaseTransport:
    """Outbound requests fail loudly unless a test installs its own transport."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected outbound request: {request.method} {request.url}")

    return httpx.MockTransport(refuse)


@pytest.fixture
async def app(
    db: None, settings: Settings, fake_transport: httpx.AsyncBaseTransport
) -> AsyncIterator[Starlette]:
    application = create_app(settings, manage_db=False, run_workers=False, transport=fake_transport)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.origin) as http:
        yield http
