"""The transactional outbox and recipient expansion (protocol.md §4.1, §4.3; checklist 33, 34; F5)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from tortoise.transactions import in_transaction

from fediverse_net.db.models import Delivery, HostHealth, InboxItem, Note, OutgoingActivity
from fediverse_net.deps import Deps
from fediverse_net.services import outbox
from fediverse_net.services.outbox import record_outgoing, without_blind_recipients
from fediverse_net.services.recipients import (
    follower_actors,
    follower_inboxes,
    inbox_urls,
    inboxes_for,
    uses_personal_inbox,
)
from tests.services import Clock, follow, local_actor, note_activity, remote_actor

pytestmark = pytest.mark.anyio


@pytest.fixture
def deps(settings):
    return Deps(settings=settings, clock=Clock())


@pytest.fixture
async def alice(db, settings):
    return await local_actor(settings, "alice")


async def test_F5_activity_and_its_delivery_rows_are_written_together(deps, alice):
    bob, carol = await remote_actor("mastodon.example"), await remote_actor("lemmy.example", shared=False)
    activity = note_activity(alice)

    outgoing = await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob, carol])

    stored = await OutgoingActivity.get(ap_id=activity["id"])
    assert stored.id == outgoing.id and stored.actor_id == alice.id and stored.type == "Create"
    assert stored.public
    assert orjson.loads(stored.body) == activity
    rows = await Delivery.filter(activity_id=outgoing.id).order_by("inbox_url")
    assert [(r.inbox_url, r.host, r.state, r.attempts) for r in rows] == [
        (carol.inbox_url, "lemmy.example", "pending", 0),
        ("https://mastodon.example/inbox", "mastodon.example", "pending", 0),
    ]
    assert all(r.next_attempt_at == deps.clock() for r in rows)


async def test_F5_failure_in_the_callers_transaction_leaves_neither_post_nor_outbox(deps, alice):
    bob = await remote_actor()
    activity = note_activity(alice)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await Note.create(
                ap_id=activity["object"]["id"], author=alice, local=True, published=deps.clock()
            )
            await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob])
            raise RuntimeError("crash between the post and the commit")
    assert not await Note.exists()
    assert not await OutgoingActivity.exists()
    assert not await Delivery.exists()


async def test_F5_explicit_connection_joins_the_callers_transaction(deps, alice):
    bob = await remote_actor()
    with pytest.raises(RuntimeError):
        async with in_transaction() as conn:
            await record_outgoing(
                deps, actor=alice, activity=note_activity(alice), recipients=[bob], connection=conn
            )
            raise RuntimeError("rolled back")
    assert not await OutgoingActivity.exists()
    assert not await Delivery.exists()
    # …and commits with it.
    async with in_transaction() as conn:
        await record_outgoing(
            deps, actor=alice, activity=note_activity(alice), recipients=[bob], connection=conn
        )
    assert await Delivery.filter(state="pending").count() == 1


async def test_F5_failure_inside_record_outgoing_leaves_nothing(deps, alice, monkeypatch):
    local_bob = await local_actor(deps.settings, "bob")
    remote = await remote_actor()

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # The InboxItem is written last: by then the activity and its deliveries were inserted.
    monkeypatch.setattr(InboxItem, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        await record_outgoing(
            deps, actor=alice, activity=note_activity(alice), recipients=[remote, local_bob]
        )
    assert not await OutgoingActivity.exists()
    assert not await Delivery.exists()


async def test_row33_followers_collapse_to_one_delivery_per_shared_inbox(deps, alice):
    on_mastodon = [await remote_actor("mastodon.example") for _ in range(3)]
    no_shared = await remote_actor("tiny.example", shared=False)
    recipients = [*on_mastodon, no_shared, on_mastodon[0], no_shared]

    outgoing = await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=recipients)

    inboxes = (
        await Delivery.filter(activity_id=outgoing.id).order_by("id").values_list("inbox_url", flat=True)
    )
    assert inboxes == ["https://mastodon.example/inbox", no_shared.inbox_url]


@pytest.mark.parametrize(
    ("activity", "personal"),
    [
        ({"type": "Follow"}, True),
        ({"type": "Accept"}, True),
        ({"type": "Reject"}, True),
        ({"type": "Like"}, True),
        ({"type": "Block"}, True),
        ({"type": "Flag"}, True),
        ({"type": "Undo", "object": {"type": "Follow"}}, True),
        ({"type": "Undo", "object": {"type": "Like"}}, True),
        ({"type": "Undo", "object": {"type": "Announce"}}, False),
        ({"type": "Undo", "object": "https://x.example/follows/1"}, False),
        ({"type": "Create"}, False),
        ({"type": "Announce"}, False),
        ({"type": "Update"}, False),
        ({"type": "Delete"}, False),
    ],
)
def test_row33_control_activities_use_the_personal_inbox(activity, personal):
    assert uses_personal_inbox(activity) is personal


async def test_row33_follow_goes_to_the_personal_inbox_and_bypasses_availability(deps, alice):
    group = await remote_actor("lemmy.example", "news", type="Group")
    await HostHealth.create(host="lemmy.example", unavailable=True, failure_days=["2026-01-01"])
    follow_activity = {
        "id": f"{alice.ap_id}#follows/1",
        "type": "Follow",
        "actor": alice.ap_id,
        "object": group.ap_id,
    }
    outgoing = await record_outgoing(deps, actor=alice, activity=follow_activity, recipients=[group])
    (row,) = await Delivery.filter(activity_id=outgoing.id)
    assert row.inbox_url == group.inbox_url == "https://lemmy.example/users/news/inbox"
    assert row.bypass_availability
    # A Create to the same unavailable host is skipped.
    other = await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[group])
    assert not await Delivery.filter(activity_id=other.id).exists()


async def test_personal_flag_forces_personal_inboxes(deps, alice):
    bob = await remote_actor("mastodon.example")
    outgoing = await record_outgoing(
        deps, actor=alice, activity=note_activity(alice), recipients=[bob], personal=True
    )
    assert await Delivery.filter(activity_id=outgoing.id).values_list("inbox_url", flat=True) == [
        bob.inbox_url
    ]


async def test_row34_bto_and_bcc_are_stripped_but_still_recipients(deps, alice):
    bob, hidden = await remote_actor("a.example"), await remote_actor("b.example")
    activity = note_activity(alice, bto=[hidden.ap_id], bcc=[hidden.ap_id])
    activity["object"]["bcc"] = [hidden.ap_id]
    activity["object"]["bto"] = [hidden.ap_id]

    outgoing = await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob, hidden])

    body = orjson.loads(outgoing.body)
    assert not {"bto", "bcc"} & body.keys()
    assert not {"bto", "bcc"} & body["object"].keys()
    assert body["object"]["content"] == "hello"
    assert await Delivery.filter(activity_id=outgoing.id).count() == 2
    assert "bcc" in activity  # the caller's dict is untouched


def test_without_blind_recipients_keeps_everything_else():
    activity = {"id": "x", "to": ["a"], "bcc": ["b"], "object": "https://x.example/1"}
    assert without_blind_recipients(activity) == {"id": "x", "to": ["a"], "object": "https://x.example/1"}


async def test_local_recipient_gets_an_inbox_item_not_a_delivery(deps, alice):
    bob = await local_actor(deps.settings, "bob")
    remote = await remote_actor()
    activity = note_activity(alice, bcc=[bob.ap_id])

    outgoing = await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob, remote, alice])

    assert await Delivery.filter(activity_id=outgoing.id).values_list("inbox_url", flat=True) == [
        "https://mastodon.example/inbox"
    ]
    item = await InboxItem.get(activity_id=activity["id"])
    assert (item.actor_ap_id, item.type, item.state, item.recipient) == (
        alice.ap_id,
        "Create",
        "pending",
        bob.ap_id,
    )
    assert item.payload == without_blind_recipients(activity)
    assert item.next_attempt_at == deps.clock()


async def test_local_inbox_item_that_already_exists_is_ignored(deps, alice):
    bob, carol = await local_actor(deps.settings, "bob"), await local_actor(deps.settings, "carol")
    activity = note_activity(alice)
    await InboxItem.create(
        activity_id=activity["id"],
        actor_ap_id=alice.ap_id,
        type="Create",
        payload={},
        next_attempt_at=deps.clock(),
    )
    await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob, carol])
    assert await InboxItem.filter(activity_id=activity["id"]).count() == 1
    assert await OutgoingActivity.filter(ap_id=activity["id"]).exists()


async def test_inboxes_on_our_own_origin_are_never_posted_to(deps, alice):
    outgoing = await record_outgoing(
        deps,
        actor=alice,
        activity=note_activity(alice),
        recipients=[],
        inboxes=[f"{deps.settings.origin}/inbox", "https://peer.example/inbox", "https://peer.example/inbox"],
    )
    assert await Delivery.filter(activity_id=outgoing.id).values_list("inbox_url", flat=True) == [
        "https://peer.example/inbox"
    ]


async def test_record_outgoing_wakes_the_worker(deps, alice):
    wake = deps.caches["wake"] = asyncio.Event()
    await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[await remote_actor()])
    assert wake.is_set()


async def test_activity_must_have_an_id_and_be_by_the_signing_actor(deps, alice):
    bob = await remote_actor()
    with pytest.raises(ValueError, match="id"):
        await record_outgoing(deps, actor=alice, activity={"type": "Create"}, recipients=[bob])
    with pytest.raises(ValueError, match="local actor"):
        await record_outgoing(deps, actor=alice, activity=note_activity(bob), recipients=[bob])
    with pytest.raises(ValueError, match="local actor"):
        await record_outgoing(deps, actor=bob, activity=note_activity(bob), recipients=[alice])
    assert not await OutgoingActivity.exists()


async def test_followers_and_their_inboxes(deps, alice):
    shared = [await remote_actor("mastodon.example") for _ in range(2)]
    lone = await remote_actor("tiny.example", shared=False)
    pending = await remote_actor("pending.example")
    gone = await remote_actor("gone.example", deleted_at=deps.clock())
    bob = await local_actor(deps.settings, "bob")
    for actor in [*shared, lone, bob, gone]:
        await follow(actor, alice)
    await follow(pending, alice, state="pending")
    await follow(alice, lone)  # the other direction does not count

    followers = await follower_actors(alice)
    assert {a.ap_id for a in followers} == {*(a.ap_id for a in shared), lone.ap_id, bob.ap_id}
    assert sorted(await follower_inboxes(alice)) == sorted(["https://mastodon.example/inbox", lone.inbox_url])
    assert sorted(inbox_urls(followers)) == sorted(["https://mastodon.example/inbox", lone.inbox_url])
    await HostHealth.create(host="tiny.example", unavailable=True)
    assert await inboxes_for(followers) == ["https://mastodon.example/inbox"]
    assert sorted(await inboxes_for(followers, bypass_availability=True)) == sorted(
        ["https://mastodon.example/inbox", lone.inbox_url]
    )


async def test_big_fan_out_is_one_transaction_of_bulk_rows(deps, alice):
    inboxes = [f"https://host{i}.example/inbox" for i in range(1500)]
    outgoing = await record_outgoing(
        deps, actor=alice, activity=note_activity(alice), recipients=[], inboxes=inboxes
    )
    assert await Delivery.filter(activity_id=outgoing.id).count() == 1500


def test_wake_workers_ignores_missing_event(settings):
    outbox.wake_workers(Deps(settings=settings))
