"""The checked-in migrations create the schema on a fresh database and match the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

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


async def _execute(conn, sql: str, *values: object) -> None:
    marks = [f"${i + 1}" if IS_POSTGRES else "?" for i in range(len(values))]
    await conn.execute_query(sql.format(*marks), list(values))


async def test_upgrading_a_populated_database_from_0001(fresh_database_url):
    """Every later migration applies over rows written at 0001, and 0003 indexes the old groups."""
    from fediverse_net.services.groups.views import directory
    from fediverse_net.services.timeline import home_notes

    config = tortoise_config(fresh_database_url)
    await migrate(config=config, target="models.0001_initial")
    await Tortoise.close_connections()
    await Tortoise.init(config=config, _enable_global_fallback=True)
    try:
        conn = Tortoise.get_connection("default")
        now = datetime(2026, 11, 1, tzinfo=UTC)
        actor = (
            "INSERT INTO actors (id, ap_id, type, local, username, handle, domain, name, summary, inbox_url, "
            "manually_approves_followers, discoverable, indexable, created_at, updated_at, suspended) "
            "VALUES ({}, {}, {}, {}, {}, {}, 'old.test', {}, '', 'https://old.test/inbox', "
            "{}, {}, {}, {}, {}, {})"
        )
        people = ((1, "https://old.test/users/ann", "Person", "ann", "Ann"),)
        groups = ((2, "https://old.test/groups/owls", "Group", "owls", "Night Owls"),)
        for actor_id, ap_id, kind, username, name in people + groups:
            flags = (False, True, True, now, now, False)
            await _execute(conn, actor, actor_id, ap_id, kind, True, username, username, name, *flags)
        group = (
            "INSERT INTO groups (id, actor_id, join_mode, visibility, posting, follow_is_join, "
            "vouches_needed, description, rules, tags, city, area, created_at) "
            "VALUES ({}, {}, 'open', 'public', 'members', {}, 0, 'Stargazing after midnight', '', "
            """'["astronomy"]', 'Graz', '', {})"""
        )
        await _execute(conn, group, 1, 2, True, now)
        membership = (
            "INSERT INTO group_memberships (id, group_id, member_id, role, state, answers, reason, "
            "created_at) VALUES ({}, {}, {}, 'member', 'accepted', '[]', '', {})"
        )
        await _execute(conn, membership, 1, 2, 1, now)
        note = (
            'INSERT INTO notes (id, ap_id, author_id, local, content, visibility, "to", cc, published, '
            "created_at) VALUES ({}, {}, {}, {}, '<p>hi</p>', 'public', '[]', '[]', {}, {})"
        )
        await _execute(conn, note, 1, "https://old.test/notes/1", 1, True, now, now)
    finally:
        await Tortoise.close_connections()

    await migrate(config=config)
    await Tortoise.close_connections()
    await Tortoise.init(config=config, _enable_global_fallback=True)
    try:
        found = await directory("midnight", tag="astronomy", city="gra")
        assert [(e.group.name, e.members) for e in found] == [("Night Owls", 1)]
        assert [n.id for n in await home_notes(1, offset=0, limit=20)] == [1]
        # The triggers work on the upgraded database too.
        await Tortoise.get_connection("default").execute_query(
            "UPDATE actors SET name = 'Early Birds' WHERE id = 2"
        )
        assert [e.group.name for e in await directory("birds")] == ["Early Birds"]
        assert await directory("owls night") == []
    finally:
        await Tortoise.close_connections()
