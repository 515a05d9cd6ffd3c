"""Row F6 of shared/security-matrix.md: when the database cannot persist, 503 + Retry-After.

Never a 202 without a durable InboxItem row, never a 500 (web/errors.py maps the database
exception classes). The failures are real driver errors: a dropped table, a closed connection.
"""

from __future__ import annotations

import pytest
from tortoise import Tortoise, connections
from tortoise.exceptions import DBConnectionError, OperationalError

from fediverse_net.db.models import Follow, InboxItem, Note
from fediverse_net.services import inbox as inbox_service
from fediverse_net.web import errors
from tests.safety.test_matrix import create_of, follow_of

pytestmark = pytest.mark.anyio


def assert_retry_later(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "30"
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json()


async def test_F6_inbox_answers_503_when_the_inbox_table_cannot_be_written(
    client, fediverse, alice, bob, run_workers
):
    # Warm the key cache first: the failure must hit the write, not the key lookup.
    first = follow_of(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", first, as_actor=bob)).status_code == 202
    await InboxItem.all().delete()
    await connections.get("default").execute_script('DROP TABLE "inbox_items"')
    try:
        create = create_of(fediverse, bob)
        response = await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
        assert_retry_later(response)
    finally:
        await Tortoise.generate_schemas(safe=True)
    assert await InboxItem.all().count() == 0
    await run_workers()
    assert not await Note.filter(ap_id=create["object"]["id"]).exists()
    assert not await Follow.exists()


async def test_F6_database_is_locked_is_503_not_500(client, fediverse, alice, bob, monkeypatch):
    async def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    # However the inbox writes its row (create, save or a group-commit bulk_create), it fails.
    for method in ("create", "bulk_create", "save"):
        monkeypatch.setattr(InboxItem, method, locked)
    monkeypatch.setattr(inbox_service, "insert_new", locked)  # the group commit's raw INSERT
    response = await fediverse.post_signed(client, "/inbox", create_of(fediverse, bob), as_actor=bob)
    assert_retry_later(response)
    monkeypatch.undo()
    assert await InboxItem.all().count() == 0


async def test_F6_lost_connection_gives_pages_the_same_503(client, alice, monkeypatch):
    from fediverse_net.services import discovery

    async def gone(*args, **kwargs):
        raise DBConnectionError("connection refused")

    monkeypatch.setattr(discovery, "local_actor", gone)
    for path, headers in (
        ("/users/alice/followers", {"Accept": "application/activity+json"}),
        ("/users/alice/outbox", {"Accept": "application/activity+json"}),
    ):
        assert_retry_later(await client.get(path, headers=headers))


def test_F6_every_database_failure_class_is_mapped():
    handlers = errors.exception_handlers()
    for cls in errors.DATABASE_UNAVAILABLE:
        assert handlers[cls] is handlers[OperationalError]
    names = {cls.__name__ for cls in errors.DATABASE_UNAVAILABLE}
    assert {"OperationalError", "DBConnectionError", "TransactionManagementError"} <= names
