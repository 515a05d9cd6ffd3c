"""Membership is not following: follows, joins (open/approval/invite), vetting, leaving — local and
federated (Mobilizon Join/Leave shapes, Mastodon Follow)."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Follow, Membership, ModLog, Vouch
from fediverse_net.services.errors import Forbidden, ServiceError
from fediverse_net.services.groups import membership
from tests.groups.conftest import follow_of, join_of, member, stored

pytestmark = pytest.mark.anyio
GROUP = "https://fedi.test/groups/hikers"


def without_context(activity):
    return {k: v for k, v in activity.items() if k != "@context"}


# --- Follow (Mastodon) -----------------------------------------------------------------------------


async def test_follow_of_open_group_is_accepted_and_makes_a_member(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob, GROUP)
    response = await fediverse.post_signed(client, "/groups/hikers/inbox", follow, as_actor=bob)
    assert response.status_code == 202
    await run_workers()
    row = await Follow.get(follower__ap_id=bob.id, followee=hikers)
    assert row.state == "accepted"
    (accept,) = [a for a in fediverse.received_json(bob.inbox) if a["type"] == "Accept"]
    assert accept["actor"] == GROUP and accept["object"] == without_context(follow)
    assert (await Membership.get(group=hikers, member__ap_id=bob.id)).state == "accepted"


async def test_follow_without_follow_is_join_makes_only_a_follower(
    client, fediverse, make_group, run_workers
):
    group = await make_group(follow_is_join=False)
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert await Follow.filter(followee=group, state="accepted").exists()
    assert not await Membership.filter(group=group, member__ap_id=bob.id).exists()


async def test_follow_of_approval_group_waits_for_a_moderator(client, fediverse, make_group, run_workers):
    group = await make_group(join_mode="approval")
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert (await Follow.get(followee=group)).state == "pending"
    assert fediverse.received_json(bob.inbox) == []
    assert await ModLog.filter(group=group, action="follow_request").exists()


async def test_undo_follow_removes_follow_and_the_membership_it_made(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    follow = follow_of(fediverse, bob, GROUP)
    await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)
    await run_workers()
    undo = {"id": f"{follow['id']}/undo", "type": "Undo", "actor": bob.id, "object": follow}
    await fediverse.post_signed(client, "/inbox", undo, as_actor=bob)
    await run_workers()
    assert not await Follow.filter(followee=hikers).exists()
    assert not await Membership.filter(group=hikers, member__ap_id=bob.id).exists()


async def test_banned_person_following_is_rejected(client, fediverse, hikers, app, run_workers):
    bob = fediverse.add_actor("bob")
    await Membership.create(group=hikers, member=await stored(app, bob), state="banned")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert [a["type"] for a in fediverse.received_json(bob.inbox)] == ["Reject"]
    assert not await Follow.filter(followee=hikers).exists()


# --- Join / Leave (Mobilizon) ----------------------------------------------------------------------


async def test_join_of_open_group_is_accepted_embedding_the_join(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP)
    assert (
        await fediverse.post_signed(client, "/groups/hikers/inbox", join, as_actor=bob)
    ).status_code == 202
    await run_workers()
    assert (await Membership.get(group=hikers, member__ap_id=bob.id)).state == "accepted"
    (accept,) = fediverse.received_json(bob.inbox)
    assert accept["type"] == "Accept" and accept["actor"] == GROUP
    assert accept["object"] == without_context(join)


async def test_join_with_approval_is_pending_with_answers_then_approved(
    client, fediverse, make_group, alice, deps, run_workers
):
    group = await make_group(join_mode="approval", questions=["Why do you want to join?"])
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP, content="I hike every weekend.")
    await fediverse.post_signed(client, "/inbox", join, as_actor=bob)
    await run_workers()
    row = await Membership.get(group=group, member__ap_id=bob.id)
    assert row.state == "pending"
    assert row.answers == [{"question": "Message", "answer": "I hike every weekend."}]
    assert fediverse.received_json(bob.inbox) == []
    (queued_row,) = await membership.pending(group)
    await membership.approve(deps, group, alice, queued_row.id)
    await run_workers()
    assert (await Membership.get(id=row.id)).state == "accepted"
    (accept,) = fediverse.received_json(bob.inbox)
    assert accept["type"] == "Accept" and accept["object"]["id"] == join["id"]


async def test_mobilizon_participation_message_is_read_as_the_answers(
    client, fediverse, make_group, run_workers
):
    group = await make_group(join_mode="approval")
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP, participationMessage="I want to join !")
    await fediverse.post_signed(client, "/inbox", join, as_actor=bob)
    await run_workers()
    row = await Membership.get(group=group, member__ap_id=bob.id)
    assert row.answers[0]["answer"] == "I want to join !"


async def test_rejected_join_gets_a_reason(client, fediverse, make_group, alice, deps, run_workers):
    group = await make_group(join_mode="approval")
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP)
    await fediverse.post_signed(client, "/inbox", join, as_actor=bob)
    await run_workers()
    row = await Membership.get(group=group, member__ap_id=bob.id)
    await membership.reject(deps, group, alice, row.id, "We only take people from the valley.")
    await run_workers()
    (reject,) = fediverse.received_json(bob.inbox)
    assert reject["type"] == "Reject" and reject["object"]["id"] == join["id"]
    assert reject["summary"] == "We only take people from the valley."
    assert not await Membership.filter(id=row.id).exists()
    assert await ModLog.filter(group=group, action="reject").exists()


async def test_join_with_100_kb_of_answers_is_refused_with_a_reason(
    client, fediverse, make_group, run_workers
):
    group = await make_group(join_mode="approval")
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP, content="x" * 100_000)
    assert (await fediverse.post_signed(client, "/inbox", join, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Membership.filter(group=group, member__ap_id=bob.id).exists()
    (reject,) = fediverse.received_json(bob.inbox)
    assert reject["type"] == "Reject" and "too long" in reject["summary"]
    assert reject["object"]["id"] == join["id"] and "content" in reject["object"]


async def test_invite_only_group_refuses_uninvited_joins(client, fediverse, make_group, run_workers):
    group = await make_group(join_mode="invite")
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", join_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert not await Membership.filter(group=group, member__ap_id=bob.id).exists()
    (reject,) = fediverse.received_json(bob.inbox)
    assert reject["type"] == "Reject" and "invitation" in reject["summary"]


async def test_invited_person_joins_an_invite_only_group(
    client, fediverse, make_group, alice, app, deps, run_workers
):
    group = await make_group(join_mode="invite")
    bob = fediverse.add_actor("bob")
    await membership.invite(deps, group, alice, await stored(app, bob))
    await run_workers()
    (invite,) = fediverse.received_json(bob.inbox)
    assert (invite["type"], invite["object"], invite["target"]) == ("Invite", GROUP, bob.id)
    await fediverse.post_signed(client, "/inbox", join_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert (await Membership.get(group=group, member__ap_id=bob.id)).state == "accepted"


async def test_trusted_instance_is_approved_without_waiting(
    client, fediverse, make_group, alice, run_workers
):
    group = await make_group(join_mode="approval")
    await membership.trust_instance(group, alice, "remote.example")
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", join_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    assert (await Membership.get(group=group, member__ap_id=bob.id)).state == "accepted"
    assert [a["type"] for a in fediverse.received_json(bob.inbox)] == ["Accept"]


async def test_leave_ends_membership_and_follow(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob, GROUP), as_actor=bob)
    await run_workers()
    leave = {
        "id": fediverse.new_id(bob, "leave"),
        "type": "Leave",
        "actor": bob.id,
        "object": GROUP,
        "to": [f"{GROUP}/members"],
        "cc": [GROUP],
    }
    await fediverse.post_signed(client, "/inbox", leave, as_actor=bob)
    await run_workers()
    assert not await Membership.filter(group=hikers, member__ap_id=bob.id).exists()
    assert not await Follow.filter(followee=hikers).exists()


async def test_undo_join_ends_membership(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    join = join_of(fediverse, bob, GROUP)
    await fediverse.post_signed(client, "/inbox", join, as_actor=bob)
    await run_workers()
    undo = {"id": f"{join['id']}/undo", "type": "Undo", "actor": bob.id, "object": join["id"]}
    await fediverse.post_signed(client, "/inbox", undo, as_actor=bob)
    await run_workers()
    assert not await Membership.filter(group=hikers, member__ap_id=bob.id).exists()


async def test_leave_does_not_lift_a_ban(client, fediverse, hikers, app, run_workers):
    bob = fediverse.add_actor("bob")
    await Membership.create(group=hikers, member=await stored(app, bob), state="banned")
    leave = {"id": fediverse.new_id(bob, "leave"), "type": "Leave", "actor": bob.id, "object": GROUP}
    await fediverse.post_signed(client, "/inbox", leave, as_actor=bob)
    await run_workers()
    assert (await Membership.get(group=hikers, member__ap_id=bob.id)).state == "banned"


# --- local members -----------------------------------------------------------------------------------


async def test_local_join_modes(settings, make_group, deps):
    carol = await member(settings, "carol")
    open_group = await make_group("open_one")
    assert (await membership.ask_to_join(deps, open_group, carol, [])).state == "accepted"
    vetted = await make_group("vetted", join_mode="approval", questions=["Where do you live?"])
    with pytest.raises(ServiceError):
        await membership.ask_to_join(deps, vetted, carol, [""])
    with pytest.raises(ServiceError):
        await membership.ask_to_join(deps, vetted, carol, ["x" * 2000])
    row = await membership.ask_to_join(deps, vetted, carol, ["Leipzig"])
    assert row.state == "pending" and row.answers == [{"question": "Where do you live?", "answer": "Leipzig"}]
    closed = await make_group("closed", join_mode="invite")
    with pytest.raises(Forbidden):
        await membership.ask_to_join(deps, closed, carol, [])


async def test_vouches_approve_a_request(settings, make_group, alice, deps):
    group = await make_group(join_mode="approval", vouches_needed=2)
    dave, erin, carol = [await member(settings, h) for h in ("dave", "erin", "carol")]
    for person in (dave, erin):
        await Membership.create(group=group, member=person, state="accepted")
    row = await membership.ask_to_join(deps, group, carol, [])
    with pytest.raises(ServiceError):
        await membership.vouch(deps, group, carol, row.id)  # not a member: cannot vouch
    assert await membership.vouch(deps, group, dave, row.id) is False
    assert await membership.vouch(deps, group, dave, row.id) is False  # twice counts once
    assert await Vouch.filter(membership_id=row.id).count() == 1
    assert await membership.vouch(deps, group, erin, row.id) is True
    assert (await Membership.get(id=row.id)).state == "accepted"


async def test_only_moderators_approve(settings, make_group, deps):
    group = await make_group(join_mode="approval")
    carol, dave = await member(settings, "carol"), await member(settings, "dave")
    await Membership.create(group=group, member=dave, state="accepted")
    row = await membership.ask_to_join(deps, group, carol, [])
    with pytest.raises(Forbidden):
        await membership.approve(deps, group, dave, row.id)
    assert (await Membership.get(id=row.id)).state == "pending"


async def test_last_admin_cannot_leave(hikers, alice, deps):
    with pytest.raises(ServiceError):
        await membership.leave(deps, hikers, alice)
