"""New members' first posts held for review (issue 5 §4): a group that asks for it keeps each member's
first N posts to itself until a moderator approves them; only then do its Announces go out."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Group, GroupPost, Membership, ModLog, Note, OutgoingActivity
from fediverse_net.services.errors import ServiceError
from fediverse_net.services.groups.moderation import moderate_post
from tests.groups.conftest import member, post_form
from tests.groups.test_posting import follow_group, mastodon_mention

pytestmark = pytest.mark.anyio


async def carol_in(settings, group):
    carol = await member(settings, "carol")
    await Membership.create(group=group, member=carol, state="accepted")
    return carol


async def test_first_post_of_a_new_member_waits_and_is_shared_when_approved(
    settings,
    alice,
    make_group,
    browsers,
):
    group = await make_group(review_first_posts=1)
    carol_actor = await carol_in(settings, group)
    carol = await browsers("carol")
    answer = await post_form(carol, "/g/hikers/post", {"content": "Hello hikers, I am new"})
    assert answer.status_code == 303 and answer.headers["location"] == "/g/hikers"
    assert "a moderator reviews your first posts" in (await carol.get("/g/hikers")).text
    note = await Note.get(author=carol_actor)
    assert (await GroupPost.get(note=note)).state == "held"
    assert not await OutgoingActivity.filter(type="Announce").exists()  # the group shares nothing yet
    assert "I am new" not in (await (await browsers()).get("/g/hikers")).text
    assert (await carol.get(f"/g/hikers/t/{note.id}")).status_code == 404
    assert (await post_form(carol, f"/g/hikers/t/{note.id}/approve", {})).status_code == 403
    assert (await ModLog.get(action="post_held")).details["author"] == carol_actor.ap_id

    admin = await browsers("alice")
    queue = await admin.get("/g/hikers/requests")
    assert "Posts waiting for review" in queue.text and "I am new" in queue.text
    approved = await post_form(admin, f"/g/hikers/t/{note.id}/approve", {})
    assert approved.status_code == 303 and approved.headers["location"] == "/g/hikers/requests"
    assert (await GroupPost.get(note=note)).state == "accepted"
    assert await OutgoingActivity.filter(type="Announce").count() == 2  # both forms, now
    assert "I am new" in (await (await browsers()).get("/g/hikers")).text
    assert await ModLog.filter(action="approve", target=note.ap_id).exists()

    # One reviewed post was asked for: the second is shared at once.
    await post_form(carol, "/g/hikers/post", {"content": "Second post"})
    second = await Note.get(author=carol_actor, source="Second post")
    assert (await GroupPost.get(note=second)).state == "accepted"


async def test_rejected_post_is_never_shared(settings, alice, make_group, browsers, deps):
    group = await make_group(review_first_posts=2)
    carol_actor = await carol_in(settings, group)
    carol = await browsers("carol")
    await post_form(carol, "/g/hikers/post", {"content": "Buy cheap boots"})
    note = await Note.get(author=carol_actor)
    admin = await browsers("alice")
    assert (await post_form(admin, f"/g/hikers/t/{note.id}/reject", {})).status_code == 303
    assert (await GroupPost.get(note=note)).state == "removed"
    assert not await OutgoingActivity.filter(type__in=["Announce", "Delete", "Undo"]).exists()
    with pytest.raises(ServiceError):  # decided once
        await moderate_post(deps, group, alice, note.id, "approve")
    # Rejected posts do not count: the next post still waits.
    await post_form(carol, "/g/hikers/post", {"content": "Sorry, hello"})
    assert (await GroupPost.get(note__source="Sorry, hello")).state == "held"


async def test_moderators_and_groups_without_review_are_not_held(settings, alice, make_group, browsers):
    await make_group(review_first_posts=3)
    open_group = await make_group("walkers")
    admin = await browsers("alice")
    await post_form(admin, "/g/hikers/post", {"content": "Welcome everyone"})
    assert (await GroupPost.get(note__source="Welcome everyone")).state == "accepted"
    carol_actor = await carol_in(settings, open_group)
    carol = await browsers("carol")
    await post_form(carol, "/g/walkers/post", {"content": "First walk"})
    assert (await GroupPost.get(note__author=carol_actor)).state == "accepted"


async def test_review_actions_only_apply_to_held_posts(settings, alice, hikers, browsers):
    carol_actor = await carol_in(settings, hikers)
    carol = await browsers("carol")
    await post_form(carol, "/g/hikers/post", {"content": "Shared at once"})
    note = await Note.get(author=carol_actor)
    admin = await browsers("alice")
    refused = await post_form(admin, f"/g/hikers/t/{note.id}/approve", {})
    assert refused.status_code == 400 and "not waiting for review" in refused.text
    assert await OutgoingActivity.filter(type="Announce").count() == 2  # not announced twice


async def test_remote_newcomer_post_by_mention_waits_for_review(
    client, fediverse, make_group, run_workers, deps, alice
):
    group = await make_group(review_first_posts=1)
    bob = fediverse.add_actor("bob", "mastodon.example")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    for person in (bob, carol):
        await follow_group(client, fediverse, person, run_workers)
    create = mastodon_mention(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert (await GroupPost.get(group=group, note=note)).state == "held"
    assert not fediverse.received_json("https://other.example/inbox")
    await moderate_post(deps, group, alice, note.id, "approve")
    await run_workers()
    announces = [a for a in fediverse.received_json("https://other.example/inbox") if a["type"] == "Announce"]
    assert len(announces) == 2 and announces[0]["object"] in (note.ap_id, create)


async def test_settings_form_refuses_a_bad_number(alice, hikers, browsers):
    admin = await browsers("alice")
    form = {"name": "Hikers", "join_mode": "open", "posting": "members", "visibility": "public"}
    for bad in ("-1", "21", "lots"):
        answer = await post_form(
            admin, "/g/hikers/edit", {**form, "review_first_posts": bad}, "/g/hikers/edit"
        )
        assert answer.status_code == 400 and "Posts to review" in answer.text
    assert (await Group.get(actor=hikers)).review_first_posts == 0
    saved = await post_form(admin, "/g/hikers/edit", {**form, "review_first_posts": "2"}, "/g/hikers/edit")
    assert saved.status_code == 303
    assert (await Group.get(actor=hikers)).review_first_posts == 2
    assert 'value="2"' in (await admin.get("/g/hikers/edit")).text
