"""The inbox: verify synchronously, persist, 202; security-matrix rows A, B and C that apply."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.db.models import Actor, Follow, InboxItem, Note, Tombstone

pytestmark = pytest.mark.anyio
AP = {"content-type": "application/activity+json"}


def follow_of(fediverse, bob, target="https://fedi.test/users/alice"):
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": fediverse.new_id(bob, "follows"),
        "type": "Follow",
        "actor": bob.id,
        "object": target,
    }


def create_of(fediverse, bob, note_id=None, to=None, **extra):
    note_id = note_id or fediverse.new_id(bob, "statuses")
    note = {
        "id": note_id,
        "type": "Note",
        "attributedTo": bob.id,
        "content": "<p>hello <script>alert(1)</script></p>",
        "published": "2026-11-01T10:00:00Z",
        "to": to or ["https://fedi.test/users/alice"],
        "cc": [],
        **extra,
    }
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": bob.id,
        "to": note["to"],
        "object": note,
    }


@pytest.mark.parametrize("scheme", ["draft-cavage", "rfc9421"])
async def test_signed_follow_is_accepted_and_answered(client, fediverse, alice, run_workers, scheme):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    response = await fediverse.post_signed(client, "/users/alice/inbox", follow, as_actor=bob, scheme=scheme)
    assert response.status_code == 202, response.text
    assert await InboxItem.filter(activity_id=follow["id"]).exists()
    await run_workers()
    row = await Follow.get(follower__ap_id=bob.id, followee=alice)
    assert row.state == "accepted"
    assert row.ap_id == follow["id"]
    (accept,) = [a for a in fediverse.received_json(bob.inbox) if a["type"] == "Accept"]
    assert accept["actor"] == alice.ap_id
    assert accept["object"] == {k: v for k, v in follow.items() if k != "@context"}


async def test_repeated_follow_is_accepted_again(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    for _ in range(2):
        response = await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
        assert response.status_code == 202
        await run_workers()
    assert await Follow.filter(follower__ap_id=bob.id).count() == 1
    assert len([a for a in fediverse.received_json(bob.inbox) if a["type"] == "Accept"]) == 2


async def test_undo_follow_removes_the_follower(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)
    await run_workers()
    undo = {"id": f"{follow['id']}/undo", "type": "Undo", "actor": bob.id, "object": follow}
    assert (await fediverse.post_signed(client, "/inbox", undo, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Follow.filter(follower__ap_id=bob.id).exists()


async def test_undo_follow_by_bare_id(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)
    await run_workers()
    undo = {"id": f"{follow['id']}/undo", "type": "Undo", "actor": bob.id, "object": follow["id"]}
    await fediverse.post_signed(client, "/inbox", undo, as_actor=bob)
    await run_workers()
    assert not await Follow.filter(follower__ap_id=bob.id).exists()


async def test_A1_unsigned_post_is_401_and_nothing_is_fetched(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    response = await client.post("/inbox", content=json.dumps(follow_of(fediverse, bob)), headers=AP)
    assert response.status_code == 401
    assert "error" in response.json()
    assert not await InboxItem.exists()
    assert fediverse.fetched == []


async def test_A3_signer_other_than_actor_is_401(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    response = await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=mallory)
    assert response.status_code == 401
    assert not await InboxItem.exists()
    assert not await Follow.exists()


@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(hours=2)])
async def test_A4_date_outside_the_window_is_401(client, fediverse, alice, offset):
    bob = fediverse.add_actor("bob")
    body = json.dumps(follow_of(fediverse, bob)).encode()
    headers = sign_request(
        "POST", "https://fedi.test/inbox", body, key=bob.key, now=datetime.now(UTC) + offset
    )
    response = await client.post("/inbox", content=body, headers=headers)
    assert response.status_code == 401
    assert not await InboxItem.exists()


async def test_A5_replay_is_accepted_once(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    body = json.dumps(follow_of(fediverse, bob)).encode()
    headers = sign_request("POST", "https://fedi.test/inbox", body, key=bob.key)
    for _ in range(2):
        assert (await client.post("/inbox", content=body, headers=headers)).status_code == 202
    assert await InboxItem.all().count() == 1
    await run_workers()
    assert len([a for a in fediverse.received_json() if a["type"] == "Accept"]) == 1


async def test_A7_body_modified_after_signing_is_401(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    response = await fediverse.post_signed(
        client, "/inbox", follow_of(fediverse, bob), as_actor=bob, tamper=True
    )
    assert response.status_code == 401
    assert not await InboxItem.exists()


async def test_B12_embedded_note_from_another_origin_is_not_stored(client, fediverse, alice, run_workers):
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    create = create_of(fediverse, mallory, note_id="https://victim.example/notes/1")
    create["id"] = "https://evil.example/activities/1"
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=mallory)).status_code == 202
    await run_workers()
    assert not await Note.exists()
    assert "https://victim.example/notes/1" not in fediverse.fetched


async def test_activity_id_on_another_origin_is_400(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    follow["id"] = "https://elsewhere.example/follows/1"
    response = await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)
    assert response.status_code == 400
    assert not await InboxItem.exists()


async def test_create_note_addressed_to_a_member_is_stored_sanitised(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    create = create_of(fediverse, bob)
    assert (
        await fediverse.post_signed(client, "/users/alice/inbox", create, as_actor=bob)
    ).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert "<script" not in note.content
    assert "hello" in note.content
    assert note.visibility == "direct"


async def test_create_from_a_stranger_to_nobody_here_is_not_stored(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    create = create_of(fediverse, bob, to=["https://www.w3.org/ns/activitystreams#Public"])
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    assert not await Note.exists()


async def test_delete_of_a_note_by_its_owner_only(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    create = create_of(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    note_id = create["object"]["id"]
    forged = {"id": "https://evil.example/d/1", "type": "Delete", "actor": mallory.id, "object": note_id}
    await fediverse.post_signed(client, "/inbox", forged, as_actor=mallory)
    await run_workers()
    assert await Note.filter(ap_id=note_id).exists()  # row B16
    assert not await Tombstone.exists()
    delete = {
        "id": f"{note_id}#delete",
        "type": "Delete",
        "actor": bob.id,
        "object": {"id": note_id, "type": "Tombstone"},
    }
    await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)
    await run_workers()
    assert not await Note.filter(ap_id=note_id).exists()
    assert await Tombstone.filter(ap_id=note_id).exists()
    # A late Create of the deleted id is not resurrected.
    replay = create_of(fediverse, bob, note_id=note_id)
    replay["id"] = f"{note_id}/activity-again"
    await fediverse.post_signed(client, "/inbox", replay, as_actor=bob)
    await run_workers()
    assert not await Note.filter(ap_id=note_id).exists()


async def test_B39_delete_of_unknown_actor_is_202_without_fetching(client, fediverse, alice):
    body = json.dumps(
        {
            "id": "https://gone.example/users/x#delete",
            "type": "Delete",
            "actor": "https://gone.example/users/x",
            "object": "https://gone.example/users/x",
        }
    )
    response = await client.post("/inbox", content=body, headers=AP)
    assert response.status_code == 202
    assert fediverse.fetched == []
    assert not await InboxItem.exists()


async def test_delete_of_known_actor_removes_it_and_its_follows(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob), as_actor=bob)
    await run_workers()
    delete = {"id": f"{bob.id}#delete", "type": "Delete", "actor": bob.id, "object": bob.id}
    assert (await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Follow.exists()
    assert (await Actor.get(ap_id=bob.id)).deleted_at is not None


async def test_C22_body_over_one_mebibyte_is_413(client, fediverse, alice):
    response = await client.post("/inbox", content=b"{" + b" " * (1024 * 1024) + b"}", headers=AP)
    assert response.status_code == 413


async def test_C23_deeply_nested_json_is_400(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob)
    nested: dict = {}
    cursor = nested
    for _ in range(200):
        cursor["a"] = {}
        cursor = cursor["a"]
    follow["extra"] = nested
    response = await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"type": "Follow"}', b'{"id": 1, "type": "Follow", "actor": 2}']
)
async def test_malformed_activities_are_400(client, alice, body):
    response = await client.post("/inbox", content=body, headers=AP)
    assert response.status_code == 400
    assert not await InboxItem.exists()


async def test_wrong_content_type_is_415(client, alice):
    response = await client.post("/inbox", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415


async def test_unknown_activity_type_is_accepted_and_ignored(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    weird = {"id": fediverse.new_id(bob), "type": "Bite", "actor": bob.id, "object": alice.ap_id}
    assert (await fediverse.post_signed(client, "/inbox", weird, as_actor=bob)).status_code == 202
    await run_workers()
    item = await InboxItem.get(activity_id=weird["id"])
    assert item.state == "done"


async def test_inbox_of_unknown_member_is_404(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    response = await fediverse.post_signed(
        client, "/users/nobody/inbox", follow_of(fediverse, bob), as_actor=bob
    )
    assert response.status_code == 404


async def test_B19_accept_from_someone_else_is_ignored(client, fediverse, alice, run_workers, app):
    from fediverse_net.services.follows import follow
    from fediverse_net.services.remote_actors import resolve_actor

    deps = app.state.deps
    bob = fediverse.add_actor("bob")
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    bob_row = await resolve_actor(deps, bob.id)
    row = await follow(deps, alice, bob_row)
    await run_workers()
    (sent,) = [a for a in fediverse.received_json(bob.inbox) if a["type"] == "Follow"]
    assert sent["id"] == row.ap_id
    fake = {"id": "https://evil.example/a/1", "type": "Accept", "actor": mallory.id, "object": sent}
    await fediverse.post_signed(client, "/inbox", fake, as_actor=mallory)
    await run_workers()
    assert (await Follow.get(id=row.id)).state == "pending"
    real = {"id": f"{bob.id}#accepts/1", "type": "Accept", "actor": bob.id, "object": sent["id"]}
    await fediverse.post_signed(client, "/inbox", real, as_actor=bob)
    await run_workers()
    assert (await Follow.get(id=row.id)).state == "accepted"
    reject = {"id": f"{bob.id}#rejects/1", "type": "Reject", "actor": bob.id, "object": sent}
    await fediverse.post_signed(client, "/inbox", reject, as_actor=bob)
    await run_workers()
    assert not await Follow.filter(id=row.id).exists()
