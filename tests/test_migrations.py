"""The checked-in migrations create the schema on a fresh database and match the models."""

from __future__ import annotations

import uuid

import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate
from tortoise.migrations.autodetector import MigrationAutodetector

from fediverse_net.db import tortoise_config
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL

pytestmark = pytest.mark.anyio


async def test_models_have_no_changes_missing_from_migrations():
    config = tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    assert writers == [], "models changed: run `make migrations` and commit the new migration"


@pytest.fixture
async def fresh_database_url(tmp_path):
    if not IS_POSTGRES:
        yield f"sqlite://{tmp_path / 'migrated.sqlite3'}"
        return
    import asyncpg

    base, _, _ = TEST_DATABASE_URL.rpartition("/")
    name = f"fedinet_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{base}/postgres".replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_apply_on_a_fresh_database_twice(fresh_database_url):
    config = tortoise_config(fresh_database_url)
    for _ in range(2):  # the second run is a no-op
        await migrate(config=config)
        await Tortoise.close_connections()
    await Tortoise.init(config=config)
    try:
        conn = Tortoise.get_connection("default")
        _, rows = await conn.execute_query("SELECT count(*) AS n FROM actors")
        assert rows[0]["n"] == 0
    finally:
        await Tortoise.close_connections()
