"""A remote author edits or deletes a post one of our groups carries: the group passes it on to its
audience (FEP-1b12 `Announce{Update}` / `Announce{Delete}`, as Lemmy's communities do), and takes back
its Mastodon-form boost of a deleted post (`Undo{Announce}`)."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import GroupPost, Note, Tombstone
from tests.groups.conftest import AS, PUBLIC
from tests.groups.test_posting import follow_group, mastodon_mention

pytestmark = pytest.mark.anyio
GROUP = "https://fedi.test/groups/hikers"
OTHER_INBOX = "https://other.example/inbox"


async def shared_post(client, fediverse, run_workers):
    """bob (a member) posts into the group; carol (another server) follows it. Returns bob, the Create."""
    bob = fediverse.add_actor("bob", "mastodon.example")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    for person in (bob, carol):
        await follow_group(client, fediverse, person, run_workers)
    create = mastodon_mention(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    fediverse.received.clear()
    return bob, create


async def test_authors_edit_is_announced_by_the_group(client, fediverse, hikers, run_workers):
    bob, create = await shared_post(client, fediverse, run_workers)
    edited = {
        **create["object"],
        "content": "<p>Ridge walk moved to Sunday</p>",
        "updated": "2026-11-02T08:00:00Z",
    }
    update = {
        "@context": AS,
        "id": f"{edited['id']}#updates/1",
        "type": "Update",
        "actor": bob.id,
        "object": edited,
    }
    update["to"], update["cc"] = edited["to"], edited["cc"]
    assert (await fediverse.post_signed(client, "/inbox", update, as_actor=bob)).status_code == 202
    await run_workers()
    assert "Sunday" in (await Note.get(ap_id=edited["id"])).content
    (announce,) = fediverse.received_json(OTHER_INBOX)
    assert announce["type"] == "Announce" and announce["actor"] == GROUP
    assert announce["object"] == update and announce["audience"] == GROUP
    assert announce["to"] == [PUBLIC] and announce["cc"] == [f"{GROUP}/followers"]


async def test_authors_delete_is_announced_and_the_boost_taken_back(client, fediverse, hikers, run_workers):
    bob, create = await shared_post(client, fediverse, run_workers)
    note = await Note.get(ap_id=create["object"]["id"])
    (boost_id, *_) = (await GroupPost.get(note=note)).announce_ids
    delete = {
        "@context": AS,
        "id": f"{note.ap_id}#delete",
        "type": "Delete",
        "actor": bob.id,
        "to": [PUBLIC],
        "object": {"id": note.ap_id, "type": "Tombstone"},
    }
    assert (await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Note.filter(ap_id=note.ap_id).exists()
    assert await Tombstone.filter(ap_id=note.ap_id).exists()
    received = {a["type"]: a for a in fediverse.received_json(OTHER_INBOX)}
    assert set(received) == {"Announce", "Undo"}
    assert received["Announce"]["object"] == delete
    assert received["Undo"]["object"]["id"] == boost_id and received["Undo"]["actor"] == GROUP


async def test_delete_of_a_post_no_group_carries_sends_nothing(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob", "mastodon.example")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    for person in (bob, carol):
        await follow_group(client, fediverse, person, run_workers)
    delete = {
        "@context": AS,
        "id": f"{bob.id}/statuses/404#delete",
        "type": "Delete",
        "actor": bob.id,
        "object": {"id": f"{bob.id}/statuses/404", "type": "Tombstone"},
    }
    assert (await fediverse.post_signed(client, "/inbox", delete, as_actor=bob)).status_code == 202
    await run_workers()
    assert fediverse.received_json(OTHER_INBOX) == []
