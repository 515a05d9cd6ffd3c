"""Storage: tortoise-orm configuration, models and migrations."""

from __future__ import annotations

from typing import Any

MODEL_MODULES = ["fediverse_net.db.models"]
MIGRATIONS_MODULE = "fediverse_net.db.migrations"


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The tortoise config for one database URL (sqlite://path or postgres://…)."""
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _connection(database_url: str) -> str | dict[str, Any]:
    if database_url.startswith("sqlite://") and database_url != "sqlite://:memory:":
        path = database_url.removeprefix("sqlite://")
        # WAL + synchronous=NORMAL: durable across process crashes, 1.6x tortoise's default
        # (benchmarks.md); busy_timeout so concurrent writers wait instead of failing.
        return {
            "engine": "tortoise.backends.sqlite",
            "credentials": {
                "file_path": path,
                "journal_mode": "WAL",
                "synchronous": "NORMAL",
                "busy_timeout": 10000,
            },
        }
    return database_url
