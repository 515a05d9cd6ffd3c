"""Benchmark databases: create (SQLite file or a fresh PostgreSQL database), migrate, seed, drop.

Bulk data goes in with `executemany` over explicit ids (no ORM saves); PostgreSQL sequences are
moved past the explicit ids afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

_serial = itertools.count(1)


@dataclass
class BenchDB:
    kind: str  # sqlite | postgres
    url: str
    admin_url: str | None = None
    name: str | None = None


async def create_db(kind: str, workdir: Path, pg_url: str, label: str) -> BenchDB:
    """A new empty database; raises OSError/RuntimeError when PostgreSQL cannot be reached."""
    if kind == "sqlite":
        path = workdir / f"{label}-{next(_serial)}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - setup, not timed
        return BenchDB("sqlite", f"sqlite://{path}")
    import asyncpg

    name = f"fedinet_bench_{os.getpid()}_{next(_serial)}_{label}".lower()
    conn = await asyncpg.connect(_asyncpg_dsn(pg_url), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(pg_url)
    return BenchDB("postgres", urlunsplit(parts._replace(path=f"/{name}")), admin_url=pg_url, name=name)


async def drop_db(db: BenchDB) -> None:
    if db.kind == "sqlite":
        path = db.url.removeprefix("sqlite://")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - setup, not timed
        return
    import asyncpg

    assert db.admin_url is not None
    conn = await asyncpg.connect(_asyncpg_dsn(db.admin_url), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await conn.close()


async def count(db: BenchDB, sql: str) -> int:
    """One integer from the database, without tortoise (the orchestrator keeps no ORM state)."""
    if db.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(db.url.removeprefix("sqlite://")) as conn:
            return int(conn.execute(sql).fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(db.url), timeout=5)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def _asyncpg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


async def pg_reachable(pg_url: str) -> str | None:
    """None when PostgreSQL answers and lets us create databases, else the reason."""
    try:
        import asyncpg

        conn = await asyncpg.connect(_asyncpg_dsn(pg_url), timeout=3)
    except Exception as exc:
        return f"PostgreSQL at {pg_url} unreachable: {type(exc).__name__}: {exc}"[:300]
    try:
        can = await conn.fetchval("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        if not can:
            return f"PostgreSQL user at {pg_url} may not create databases"
    finally:
        await conn.close()
    return None


async def migrate(url: str) -> None:
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as run

    from fediverse_net.db import tortoise_config

    try:
        await run(config=tortoise_config(url))
    finally:
        await Tortoise.close_connections()


async def open_orm(url: str) -> None:
    from tortoise import Tortoise

    from fediverse_net.db import tortoise_config

    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)


async def close_orm() -> None:
    from tortoise import Tortoise

    await Tortoise.close_connections()


def _conn() -> Any:
    from tortoise import connections

    return connections.get("default")


def is_postgres() -> bool:
    return _conn().capabilities.dialect == "postgres"


async def insert_rows(
    table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], batch: int = 5000
) -> int:
    """executemany INSERT in batches; JSON values must already be strings."""
    conn = _conn()
    pg = is_postgres()
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(f"${i + 1}" if pg else "?" for i in range(len(columns)))
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'
    count = 0
    chunk: list[Sequence[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            await conn.execute_many(sql, chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        await conn.execute_many(sql, chunk)
        count += len(chunk)
    return count


async def next_id(table: str) -> int:
    rows = await _conn().execute_query_dict(f'SELECT COALESCE(MAX(id), 0) + 1 AS n FROM "{table}"')
    return int(rows[0]["n"])


async def fix_sequences(*tables: str) -> None:
    if not is_postgres():
        return
    for table in tables:
        await _conn().execute_script(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"), false)'
        )


async def query(sql: str) -> list[dict[str, Any]]:
    return list(await _conn().execute_query_dict(sql))


def now() -> datetime:
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


ACTOR_COLUMNS = (
    "id",
    "ap_id",
    "type",
    "local",
    "username",
    "handle",
    "domain",
    "name",
    "summary",
    "url",
    "inbox_url",
    "shared_inbox_url",
    "outbox_url",
    "followers_url",
    "following_url",
    "manually_approves_followers",
    "discoverable",
    "indexable",
    "private_key_pem",
    "fetched_at",
    "created_at",
    "updated_at",
    "suspended",
)


@dataclass(frozen=True)
class RemoteSpec:
    """A remote actor to seed: its id's origin decides its host (a sink address, or a fake name)."""

    origin: str  # http://127.0.4.1:8123
    username: str

    @property
    def ap_id(self) -> str:
        return f"{self.origin}/users/{self.username}"

    @property
    def key_id(self) -> str:
        return f"{self.ap_id}#main-key"


async def seed_remote_actors(
    specs: Sequence[RemoteSpec], public_pems: Sequence[str] = (), *, when: datetime | None = None
) -> list[int]:
    """Insert remote actors (fresh `fetched_at`, shared inbox at `<origin>/inbox`) and their keys.

    Key i gets `public_pems[i % len]`; no keys when `public_pems` is empty. Returns the actor ids.
    """
    when = when or now()
    first = await next_id("actors")
    ids = list(range(first, first + len(specs)))
    rows = []
    for actor_id, spec in zip(ids, specs, strict=True):
        host = spec.origin.split("://", 1)[1]
        rows.append(
            (
                actor_id,
                spec.ap_id,
                "Person",
                False,
                spec.username,
                None,
                host,
                spec.username.title(),
                "",
                spec.ap_id,
                f"{spec.ap_id}/inbox",
                f"{spec.origin}/inbox",
                f"{spec.ap_id}/outbox",
                f"{spec.ap_id}/followers",
                f"{spec.ap_id}/following",
                False,
                True,
                True,
                None,
                when,
                when,
                when,
                False,
            )
        )
    await insert_rows("actors", ACTOR_COLUMNS, rows)
    if public_pems:
        key_first = await next_id("public_keys")
        await insert_rows(
            "public_keys",
            ("id", "key_id", "pem", "fetched_at", "actor_id"),
            (
                (key_first + i, spec.key_id, public_pems[i % len(public_pems)], when, actor_id)
                for i, (actor_id, spec) in enumerate(zip(ids, specs, strict=True))
            ),
        )
    await fix_sequences("actors", "public_keys")
    return ids


async def seed_follows(pairs: Iterable[tuple[int, int]], *, state: str = "accepted") -> int:
    """(follower_id, followee_id) rows, accepted."""
    when = now()
    first = await next_id("follows")
    count = await insert_rows(
        "follows",
        ("id", "ap_id", "state", "created_at", "accepted_at", "follower_id", "followee_id"),
        ((first + i, None, state, when, when, a, b) for i, (a, b) in enumerate(pairs)),
    )
    await fix_sequences("follows")
    return count


async def seed_member(settings: Any, handle: str, display_name: str = "") -> Any:
    """A real member (argon2 password, RSA key) through the service, as signup makes one."""
    from fediverse_net.db.models import Actor
    from fediverse_net.services.members import NewMember, create_member, ensure_instance_actor

    await ensure_instance_actor(settings)
    account = await create_member(
        settings, NewMember(handle=handle, password="benchmark-password", display_name=display_name)
    )
    summary = (
        "<p>Organiser of the Tuesday board-game evenings and the river clean-up group. "
        "Writes about local history, trains and community gardens. Pronouns: she/her.</p>"
    )
    await Actor.filter(id=account.actor_id).update(summary=summary)  # type: ignore[attr-defined]
    return account


async def insert_models(model: Any, rows: Iterable[dict[str, Any]], batch: int = 5000) -> int:
    """executemany INSERT of plain dicts into `model`'s table; unset columns get the model's defaults.

    Columns come from the model's current definition, so the generator follows schema changes
    (defaults, new NOT NULL columns with defaults) without being edited.
    """
    from tortoise import fields as tf

    meta = model._meta
    projection: dict[str, str] = dict(meta.fields_db_projection)
    columns = list(projection.values())
    when = now()
    plan = []
    for name, column in projection.items():
        field = meta.fields_map[name]
        plan.append((name, column, field, isinstance(field, tf.JSONField)))

    def build(values: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, column, field, is_json in plan:
            if name in values:
                value = values[name]
            elif column in values:
                value = values[column]
            elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                value = when
            elif field.default is not None:
                value = field.default() if callable(field.default) else field.default
            else:
                value = None
            if is_json and value is not None and not isinstance(value, str):
                value = dumps(value)
            out.append(value)
        return tuple(out)

    count = await insert_rows(meta.db_table, columns, (build(v) for v in rows), batch=batch)
    return count


async def child_migrate(db_url: str) -> dict[str, Any]:
    """(In a child.) Apply the migrations, then create any model table they do not create yet.

    The second step is a no-op when migrations and models agree; while they drift (models
    changed, migration not regenerated yet) it lets the benchmarks run against the current code.
    The tables it had to create are returned and reported.
    """
    from tortoise import Tortoise

    await migrate(db_url)
    await open_orm(db_url)
    try:
        before = await _tables()
        await Tortoise.generate_schemas(safe=True)
        created = sorted(await _tables() - before)
    finally:
        await close_orm()
    return {"created": created}


async def _tables() -> set[str]:
    if is_postgres():
        rows = await query("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()")
    else:
        rows = await query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r["name"]) for r in rows}
