"""A suspended remote actor may still clean up after itself (security matrix B21, protocol §6.1.5).

Its Delete / Undo / Reject / Update pass the inbox's 403 on purpose; the worker then applies them:
the note is deleted, the follow ends, the account is marked gone. Everything else it sent before
the suspension is dropped when processed.
"""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Actor, Follow, InboxItem, Note, Tombstone
from fediverse_net.services import instance_admin, moderation
from fediverse_net.services.remote_actors import resolve_actor
from tests.federation.test_inbox import create_of, follow_of

pytestmark = pytest.mark.anyio


async def _suspend(app, bob) -> Actor:
    deps = app.state.deps
    stored = await resolve_actor(deps, bob.id)
    await instance_admin.sanction_actor(deps, None, stored, "suspend", "spam")
    return stored


async def test_suspended_actors_delete_of_its_note_removes_it(client, fediverse, alice, app, run_workers):
    bob = fediverse.add_actor("bob")
    create = create_of(fediverse, bob)
    note_id = create["object"]["id"]
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    assert await Note.filter(ap_id=note_id).exists()
    await _suspend(app, bob)
    delete = {"id": f"{note_id}#delete", "type": "Delete", "actor": bob.id, "object": note_id}
    assert (await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Note.filter(ap_id=note_id).exists()
    assert await Tombstone.filter(ap_id=note_id).exists()
    assert await InboxItem.filter(activity_id=delete["id"], state="done").exists()


async def test_suspended_actors_undo_follow_ends_the_follow(client, fediverse, alice, app, run_workers):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)).status_code == 202
    await run_workers()
    assert await Follow.filter(follower__ap_id=bob.id, followee=alice).exists()
    # Suspended while the follow still stands (the flag set by another process or an older
    # release, which did not end follows): its Undo must still end it.
    await Actor.filter(ap_id=bob.id).update(suspended=True)
    moderation.forget_suspended(app.state.deps)
    undo = {"id": f"{follow['id']}#undo", "type": "Undo", "actor": bob.id, "object": follow}
    assert (await fediverse.post_signed(client, "/inbox", undo, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Follow.filter(follower__ap_id=bob.id).exists()


async def test_suspended_actors_self_delete_marks_it_gone(client, fediverse, alice, app, run_workers):
    bob = fediverse.add_actor("bob")
    assert (
        await fediverse.post_signed(client, "/inbox", create_of(fediverse, bob), as_actor=bob)
    ).status_code == 202
    await run_workers()
    await _suspend(app, bob)
    delete = {"id": f"{bob.id}#delete", "type": "Delete", "actor": bob.id, "object": bob.id}
    assert (await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)).status_code == 202
    await run_workers()
    stored = await Actor.get(ap_id=bob.id)
    assert stored.deleted_at is not None
    assert not await Note.filter(author=stored).exists()


async def test_what_a_suspended_actor_queued_before_is_dropped(client, fediverse, alice, app, run_workers):
    bob = fediverse.add_actor("bob")
    await resolve_actor(app.state.deps, bob.id)
    follow = follow_of(fediverse, bob)
    create = create_of(fediverse, bob)
    for activity in (follow, create):  # accepted, then the admin suspends before they are processed
        assert (await fediverse.post_signed(client, "/inbox", activity, as_actor=bob)).status_code == 202
    await _suspend(app, bob)
    await run_workers()
    assert not await Follow.filter(follower__ap_id=bob.id).exists()
    assert not await Note.filter(ap_id=create["object"]["id"]).exists()
    assert await InboxItem.filter(state="done").count() == 2  # dropped, not retried
