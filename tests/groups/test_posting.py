"""Posting into a group and the group's Announces in both forms (protocol §2.7, §5.11)."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import GroupPost, Membership, ModLog, Note, OutgoingActivity
from fediverse_net.services.errors import Forbidden
from fediverse_net.services.groups.posting import publish_in_group, title_from
from tests.groups.conftest import PUBLIC, create_of, follow_of, member, queued, stored

pytestmark = pytest.mark.anyio
GROUP = "https://fedi.test/groups/hikers"
FOLLOWERS = f"{GROUP}/followers"


async def follow_group(client, fediverse, actor, run_workers):
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, actor, GROUP), as_actor=actor)
    await run_workers()
    fediverse.received.clear()


def announces_to(fediverse, inbox):
    return [a for a in fediverse.received_json(inbox) if a["type"] == "Announce"]


def mastodon_mention(fediverse, actor, **extra):
    """Mastodon's shape for a public post mentioning a group: the group and its followers in cc."""
    create = create_of(fediverse, actor, to=[PUBLIC], cc=[f"{actor.id}/followers", GROUP, FOLLOWERS], **extra)
    create["object"]["tag"] = [{"type": "Mention", "href": GROUP, "name": "@hikers@fedi.test"}]
    create["object"]["content"] = (
        '<p><span class="h-card"><a href="https://fedi.test/g/hikers">@hikers</a></span>'
        " Ridge walk on Saturday</p><p>Who is in?</p>"
    )
    return create


async def test_member_post_by_mention_is_announced_in_both_forms(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob", "mastodon.example")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    dave = fediverse.add_actor("dave", "other.example", slot=2)  # same server as carol: one delivery
    for person in (bob, carol, dave):
        await follow_group(client, fediverse, person, run_workers)
    create = mastodon_mention(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    post = await GroupPost.get(group=hikers, note=note)
    assert note.name == "Ridge walk on Saturday"  # the title from the first line, mention removed
    forms = announces_to(fediverse, "https://other.example/inbox")
    assert len(forms) == 2  # carol and dave share an inbox: each form arrives once
    compat, wrapped = sorted(forms, key=lambda a: isinstance(a["object"], dict))
    assert compat["object"] == note.ap_id
    assert wrapped["object"] == create  # the activity exactly as received, @context included
    for announce in forms:
        assert announce["actor"] == GROUP and announce["audience"] == GROUP
        assert announce["to"] == [PUBLIC] and announce["cc"] == [FOLLOWERS, bob.id]
        assert announce["id"].startswith(f"{GROUP}/activities/")
    assert sorted(post.announce_ids) == sorted(a["id"] for a in forms)
    assert len(announces_to(fediverse, "https://mastodon.example/inbox")) == 2  # the author gets them too


async def test_announce_ids_dereference(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    await fediverse.post_signed(client, "/inbox", mastodon_mention(fediverse, bob), as_actor=bob)
    await run_workers()
    (announce, *_) = announces_to(fediverse, "https://remote.example/inbox")
    response = await client.get(
        announce["id"].removeprefix("https://fedi.test"), headers={"accept": "application/activity+json"}
    )
    assert response.status_code == 200 and response.json()["id"] == announce["id"]
    outbox = (
        await client.get("/groups/hikers/outbox?page=1", headers={"accept": "application/activity+json"})
    ).json()
    assert outbox["totalItems"] == 2 and {i["type"] for i in outbox["orderedItems"]} == {"Announce"}


async def test_post_from_non_member_is_refused_and_recorded(client, fediverse, make_group, run_workers):
    group = await make_group(follow_is_join=False)
    bob = fediverse.add_actor("bob")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    await follow_group(client, fediverse, carol, run_workers)
    await follow_group(client, fediverse, bob, run_workers)  # a follower, not a member
    create = mastodon_mention(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await Note.filter(ap_id=create["object"]["id"]).exists()
    assert not await OutgoingActivity.filter(type="Announce").exists()
    entry = await ModLog.get(group=group, action="post_refused")
    assert entry.target == create["object"]["id"] and entry.reason == "not a member of the group"
    assert entry.details["author"] == bob.id and "Ridge walk" in entry.details["excerpt"]


async def test_followers_may_post_where_the_group_allows(client, fediverse, make_group, run_workers):
    await make_group(follow_is_join=False, posting="followers")
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    await fediverse.post_signed(client, "/inbox", mastodon_mention(fediverse, bob), as_actor=bob)
    await run_workers()
    assert await OutgoingActivity.filter(type="Announce").count() == 2


async def test_banned_members_posts_are_dropped(client, fediverse, hikers, app, run_workers):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    await Membership.filter(group=hikers, member__ap_id=bob.id).update(state="banned")
    create = mastodon_mention(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    assert not await Note.filter(ap_id=create["object"]["id"]).exists()
    assert not await OutgoingActivity.filter(type="Announce").exists()
    assert (await ModLog.get(action="post_refused")).reason == "banned from the group"


async def test_followers_only_and_direct_posts_are_never_announced(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    private = create_of(fediverse, bob, to=[f"{bob.id}/followers", GROUP, FOLLOWERS])
    direct = create_of(fediverse, bob, to=[GROUP])
    for create in (private, direct):
        await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    assert not await OutgoingActivity.filter(type="Announce").exists()
    assert await ModLog.filter(action="post_refused").count() == 2


async def test_lemmy_style_post_to_group_inbox_with_audience(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob", "lemmy.example")
    await follow_group(client, fediverse, bob, run_workers)
    create = create_of(
        fediverse, bob, to=[GROUP, PUBLIC], audience=GROUP, name="Maps for the ridge", type="Page"
    )
    create["audience"] = GROUP
    await fediverse.post_signed(client, "/groups/hikers/inbox", create, as_actor=bob)
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert note.name == "Maps for the ridge"
    assert await GroupPost.filter(group=hikers, note=note).exists()


async def test_embedded_object_from_another_origin_is_not_announced(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    create = mastodon_mention(fediverse, bob)
    create["object"]["id"] = "https://victim.example/notes/1"
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    assert not await OutgoingActivity.filter(type="Announce").exists()


async def test_reply_in_a_thread_is_announced(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    for person in (bob, carol):
        await follow_group(client, fediverse, person, run_workers)
    thread = mastodon_mention(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", thread, as_actor=bob)
    await run_workers()
    reply = create_of(
        fediverse, carol, to=[PUBLIC], cc=[bob.id], audience=GROUP, inReplyTo=thread["object"]["id"]
    )
    await fediverse.post_signed(client, "/inbox", reply, as_actor=carol)
    await run_workers()
    post = await GroupPost.get(note__ap_id=reply["object"]["id"])
    assert post.thread_root == thread["object"]["id"]
    note = await Note.get(ap_id=reply["object"]["id"])
    assert note.name is None  # replies keep no title
    assert await OutgoingActivity.filter(type="Announce").count() == 4


async def test_replayed_create_is_announced_once(client, fediverse, hikers, run_workers):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    create = mastodon_mention(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await fediverse.post_signed(client, "/groups/hikers/inbox", create, as_actor=bob)
    await run_workers()
    assert await OutgoingActivity.filter(type="Announce").count() == 2


# --- local members -----------------------------------------------------------------------------------


async def test_local_member_thread_is_created_and_announced(
    client, fediverse, hikers, alice, deps, run_workers
):
    bob = fediverse.add_actor("bob")
    await follow_group(client, fediverse, bob, run_workers)
    note = await publish_in_group(deps, hikers, alice, "Meetup next **Sunday**\n\nBring water.")
    assert note.name == "Meetup next **Sunday**" or note.name == "Meetup next Sunday" or note.name
    ((create, _),) = await queued("Create")
    obj = create["object"]
    assert obj["audience"] == GROUP and obj["to"] == [PUBLIC]
    assert obj["cc"] == [GROUP, FOLLOWERS, f"{alice.ap_id}/followers"]
    assert obj["tag"] == [{"type": "Mention", "href": GROUP, "name": "@hikers@fedi.test"}]
    assert "<strong>Sunday</strong>" in obj["content"]
    announces = await queued("Announce")
    assert [inboxes for _, inboxes in announces] == [["https://remote.example/inbox"]] * 2
    assert {type(a["object"]).__name__ for a, _ in announces} == {"str", "dict"}
    wrapped = next(a for a, _ in announces if isinstance(a["object"], dict))
    assert wrapped["object"]["id"] == create["id"]
    await run_workers()
    assert len(announces_to(fediverse, "https://remote.example/inbox")) == 2
    # The note served at its id carries the group audience (Lemmy reads it when fetching).
    served = (
        await client.get(
            note.ap_id.removeprefix("https://fedi.test"), headers={"accept": "application/activity+json"}
        )
    ).json()
    assert served["audience"] == GROUP


async def test_non_member_cannot_post_locally(settings, make_group, deps):
    group = await make_group()
    carol = await member(settings, "carol")
    with pytest.raises(Forbidden):
        await publish_in_group(deps, group, carol, "hello")
    assert not await Note.exists()


async def test_members_only_post_goes_to_members_only(
    client, fediverse, hikers, alice, deps, app, run_workers
):
    bob = fediverse.add_actor("bob")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    await follow_group(client, fediverse, bob, run_workers)  # member (open group)
    await Membership.filter(member__ap_id=bob.id).update(state="accepted")
    carol_actor = await stored(app, carol)
    from fediverse_net.db.models import Follow

    await Follow.create(follower=carol_actor, followee=hikers, state="accepted", ap_id=f"{carol.id}#f")
    note = await publish_in_group(deps, hikers, alice, "The venue is 12 Main St.", members_only=True)
    assert note.to == [f"{GROUP}/members"]
    announces = await queued("Announce")
    assert all(inboxes == ["https://remote.example/inbox"] for _, inboxes in announces)
    assert all(a["to"] == [f"{GROUP}/members"] and PUBLIC not in a["cc"] for a, _ in announces)
    # not public: not in the outbox, not fetchable unsigned
    response = await client.get(
        note.ap_id.removeprefix("https://fedi.test"), headers={"accept": "application/activity+json"}
    )
    assert response.status_code == 404


def test_title_from_first_line():
    class G:
        username, domain = "hikers", "fedi.test"

    assert title_from("@hikers@fedi.test Ridge walk\nmore", G()) == "Ridge walk"  # type: ignore[arg-type]
    assert title_from("\n\n  Hello  \nworld") == "Hello"
    assert len(title_from("x" * 500)) == 200


async def test_members_only_post_is_readable_by_a_member_through_signed_fetch(
    client, fediverse, hikers, alice, deps, app, run_workers
):
    from fediverse_net.activitypub.signatures import sign_request

    bob = fediverse.add_actor("bob")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    await follow_group(client, fediverse, bob, run_workers)
    await stored(app, carol)
    note = await publish_in_group(deps, hikers, alice, "The venue is 12 Main St.", members_only=True)
    path = note.ap_id.removeprefix("https://fedi.test")
    for who, status in ((bob, 200), (carol, 404)):
        headers = sign_request("GET", note.ap_id, b"", key=who.key)
        headers["accept"] = "application/activity+json"
        response = await client.get(path, headers=headers)
        assert response.status_code == status, who.id
    assert "12 Main St." in response.text or status == 404
