"""Group commit of accepted inbox items, and the worker's per-actor ordering under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from fediverse_net.db.models import InboxItem, Note, Tombstone
from fediverse_net.services import inbox as inbox_service
from fediverse_net.services.inbox import InboxWriter, NewItem
from fediverse_net.workers import inbox as inbox_worker
from tests.federation.test_inbox import create_of, follow_of

pytestmark = pytest.mark.anyio


def row(activity_id: str, actor: str = "https://remote.test/users/bob") -> NewItem:
    return NewItem(activity_id=activity_id, actor_ap_id=actor, type="Create", payload={"id": activity_id})


async def test_one_batch_detects_duplicates_per_row(db):
    stored = InboxItem(
        activity_id="https://remote.test/a/stored",
        actor_ap_id="https://remote.test/users/bob",
        type="Create",
        payload={},
        next_attempt_at=datetime.now(UTC),
    )
    await stored.save()
    writer = InboxWriter()
    ids = [f"https://remote.test/a/{i}" for i in range(100)]
    results = await asyncio.gather(
        *(writer.write(row(i)) for i in ids),
        writer.write(row("https://remote.test/a/stored")),
        writer.write(row("https://remote.test/a/7")),  # a second copy of a row being written
    )
    assert results[:100] == [True] * 100
    assert results[100] is False
    assert results[101] is False
    assert await InboxItem.all().count() == 101
    assert await InboxItem.filter(activity_id="https://remote.test/a/7").count() == 1
    twice = row("https://remote.test/a/twice")
    assert await asyncio.gather(writer.write(twice), writer.write(row(twice.activity_id))) == [True, False]


async def test_a_failed_batch_fails_every_request_and_writes_nothing(db):
    writer = InboxWriter()
    rows = [row(f"https://remote.test/b/{i}") for i in range(10)]
    # The database refuses one row of the batch (NOT NULL): the statement fails as a whole.
    rows[5] = NewItem(activity_id="https://remote.test/b/5", actor_ap_id=None, type="Create", payload={})  # type: ignore[arg-type]
    results = await asyncio.gather(*(writer.write(r) for r in rows), return_exceptions=True)
    assert all(isinstance(result, IntegrityError | OperationalError) for result in results)
    assert await InboxItem.all().count() == 0
    # The writer keeps working after a failed batch.
    assert await writer.write(row("https://remote.test/b/again")) is True
    stored = await InboxItem.get(activity_id="https://remote.test/b/again")
    assert (stored.state, stored.payload, stored.attempts) == (
        "pending",
        {"id": "https://remote.test/b/again"},
        0,
    )


async def test_concurrent_posts_are_each_committed_before_202(client, fediverse, alice, app):
    actors = [fediverse.add_actor(f"bob{i}") for i in range(5)]
    for actor in actors:  # first contact (key fetch, actor row) one at a time
        assert (
            await fediverse.post_signed(client, "/inbox", follow_of(fediverse, actor), as_actor=actor)
        ).status_code == 202
    activities = [(create_of(fediverse, actor), actor) for actor in actors for _ in range(4)]
    activities.append(activities[0])  # a replay in the same burst
    responses = await asyncio.gather(
        *(fediverse.post_signed(client, "/inbox", activity, as_actor=actor) for activity, actor in activities)
    )
    assert [r.status_code for r in responses] == [202] * len(activities)
    assert await InboxItem.all().count() == 25
    assert isinstance(app.state.deps.caches["inbox_writer"], InboxWriter)


async def test_a_database_failure_is_not_a_202(client, fediverse, alice, monkeypatch):
    bob = fediverse.add_actor("bob")
    assert (
        await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
    ).status_code == 202

    async def broken(rows, now=None):
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(inbox_service, "insert_new", broken)
    responses = await asyncio.gather(
        *(fediverse.post_signed(client, "/inbox", create_of(fediverse, bob), as_actor=bob) for _ in range(3))
    )
    assert [r.status_code for r in responses] == [503] * 3
    assert await InboxItem.all().count() == 1


async def test_worker_keeps_each_actors_order_and_bounds_concurrency(app, monkeypatch):
    deps = app.state.deps
    now = deps.clock()
    actors = [f"https://remote{i}.test/users/x" for i in range(12)]
    items = [
        InboxItem(
            activity_id=f"{actor}/activities/{n}",
            actor_ap_id=actor,
            type="Create",
            payload={},
            next_attempt_at=now,
        )
        for n in range(3)
        for actor in actors
    ]
    await InboxItem.bulk_create(items)
    seen: list[str] = []
    running = peak = 0

    async def record(deps, item, batch=None):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append(item.activity_id)
        running -= 1

    monkeypatch.setattr(inbox_worker, "process_inbox_item", record)
    assert await inbox_worker.step(deps) == 36
    assert 1 < peak <= inbox_worker.CONCURRENCY
    for actor in actors:
        assert [a for a in seen if a.startswith(actor)] == [f"{actor}/activities/{n}" for n in range(3)]
    assert await InboxItem.filter(state="done").count() == 36


async def test_create_then_delete_from_one_actor_in_one_batch(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    carol = fediverse.add_actor("carol")
    create = create_of(fediverse, bob)
    note_id = create["object"]["id"]
    delete = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{note_id}#delete",
        "type": "Delete",
        "actor": bob.id,
        "object": {"id": note_id, "type": "Tombstone"},
    }
    other = create_of(fediverse, carol)
    for activity, actor in ((create, bob), (other, carol), (delete, bob)):
        assert (await fediverse.post_signed(client, "/inbox", activity, as_actor=actor)).status_code == 202
    await run_workers()
    assert not await Note.filter(ap_id=note_id).exists()
    assert await Tombstone.filter(ap_id=note_id).exists()
    assert await Note.filter(ap_id=other["object"]["id"]).exists()
