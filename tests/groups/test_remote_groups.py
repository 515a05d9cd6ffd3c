"""Our members and remote groups: Join/Leave sent, Accept{Join} received, the group's Announces
(both forms) shown to our members and followers, never trusting the inner object inline."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Account, Follow, GroupPost, Membership, Note
from fediverse_net.services import profiles
from fediverse_net.services.groups import remote
from fediverse_net.services.groups.posting import publish_in_group
from tests.groups.conftest import AS, PUBLIC, queued, stored

pytestmark = pytest.mark.anyio


@pytest.fixture
def climbers(fediverse):
    return fediverse.add_actor("climbers", "mobilizon.example", type="Group", slot=3)


async def test_member_joins_a_remote_group_and_is_accepted(
    client, fediverse, climbers, alice, app, deps, run_workers
):
    group = await stored(app, climbers)
    row = await remote.join_remote(deps, alice, group)
    ((join, inboxes),) = await queued("Join")
    assert (join["type"], join["actor"], join["object"], join["to"]) == (
        "Join",
        alice.ap_id,
        climbers.id,
        [climbers.id],
    )
    assert inboxes == [climbers.inbox]
    accept = {
        "@context": AS,
        "id": f"{climbers.id}/accept/1",
        "type": "Accept",
        "actor": climbers.id,
        "object": {k: v for k, v in join.items() if k != "@context"},
    }
    assert (
        await fediverse.post_signed(client, "/users/alice/inbox", accept, as_actor=climbers)
    ).status_code == 202
    await run_workers()
    assert (await Membership.get(id=row.id)).state == "accepted"


async def test_reject_of_join_drops_the_request(client, fediverse, climbers, alice, app, deps, run_workers):
    group = await stored(app, climbers)
    row = await remote.join_remote(deps, alice, group)
    reject = {
        "id": f"{climbers.id}/reject/1",
        "type": "Reject",
        "actor": climbers.id,
        "object": row.join_ap_id,
    }
    await fediverse.post_signed(client, "/inbox", reject, as_actor=climbers)
    await run_workers()
    assert not await Membership.filter(id=row.id).exists()


async def test_accept_of_join_from_another_actor_is_ignored(
    client, fediverse, climbers, alice, app, deps, run_workers
):
    group = await stored(app, climbers)
    row = await remote.join_remote(deps, alice, group)
    mallory = fediverse.add_actor("mallory", "mobilizon.example", type="Group", slot=1)
    accept = {"id": f"{mallory.id}/accept/1", "type": "Accept", "actor": mallory.id, "object": row.join_ap_id}
    await fediverse.post_signed(client, "/inbox", accept, as_actor=mallory)
    await run_workers()
    assert (await Membership.get(id=row.id)).state == "pending"


async def test_leave_remote_sends_leave(climbers, alice, app, deps):
    group = await stored(app, climbers)
    await remote.join_remote(deps, alice, group)
    await remote.leave_remote(deps, alice, group)
    ((leave, _),) = await queued("Leave")
    assert (leave["actor"], leave["object"]) == (alice.ap_id, climbers.id)
    assert not await Membership.filter(member=alice).exists()


async def test_announce_from_followed_group_reaches_the_home_timeline(
    client, fediverse, climbers, alice, app, run_workers
):
    group = await stored(app, climbers)
    await Follow.create(follower=alice, followee=group, state="accepted", ap_id="https://fedi.test/f/1")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    note = {
        "@context": AS,
        "id": f"{carol.id}/statuses/1",
        "type": "Note",
        "attributedTo": carol.id,
        "content": "<p>Bouldering tonight</p>",
        "to": [PUBLIC],
        "cc": [climbers.id],
        "published": "2026-11-01T10:00:00Z",
    }
    fediverse.documents[note["id"]] = note
    create = {
        "id": f"{carol.id}/statuses/1/activity",
        "type": "Create",
        "actor": carol.id,
        "object": {**note, "content": "<p>FORGED inline copy</p>"},
    }
    for obj in (note["id"], create):
        announce = {
            "@context": AS,
            "id": fediverse.new_id(climbers, "announce"),
            "type": "Announce",
            "actor": climbers.id,
            "to": [PUBLIC],
            "object": obj,
        }
        assert (await fediverse.post_signed(client, "/inbox", announce, as_actor=climbers)).status_code == 202
    await run_workers()
    stored_note = await Note.get(ap_id=note["id"])
    assert "Bouldering tonight" in stored_note.content  # fetched from its origin, not the inline copy
    assert await GroupPost.filter(group=group, note=stored_note).count() == 1
    account = await Account.get(actor=alice)
    timeline = await profiles.home_timeline(account)
    assert [n.ap_id for n in timeline.notes] == [note["id"]]


async def test_announce_from_a_group_nobody_follows_is_ignored(
    client, fediverse, climbers, alice, run_workers
):
    announce = {
        "id": fediverse.new_id(climbers, "announce"),
        "type": "Announce",
        "actor": climbers.id,
        "object": "https://other.example/users/carol/statuses/1",
    }
    await fediverse.post_signed(client, "/inbox", announce, as_actor=climbers)
    await run_workers()
    assert not await GroupPost.exists()
    assert fediverse.fetched == [climbers.id]


async def test_member_posts_into_a_remote_group(fediverse, climbers, alice, app, deps):
    group = await stored(app, climbers)
    await Membership.create(group=group, member=alice, state="accepted")
    note = await publish_in_group(deps, group, alice, "Anyone for Sunday?")
    ((create, inboxes),) = await queued("Create")
    assert climbers.inbox.rsplit("/users", 1)[0] + "/inbox" in inboxes  # the group's shared inbox
    assert create["object"]["audience"] == climbers.id and climbers.id in create["object"]["cc"]
    assert note.name == "Anyone for Sunday?"
    assert not await GroupPost.exists()  # the remote group decides and announces
