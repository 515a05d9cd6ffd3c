"""Real group payloads (tests/fixtures/{lemmy,mobilizon,mbin,guppe}, provenance in its README):
every file parses, and each flow answers in the shape the sending software expects.

Fixtures are re-hosted onto FakeFediverse actors (text replacement of their hosts and actor ids)
so that signatures are real; every other field is kept as the software sent it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fediverse_net.activitypub.actors import parse_actor
from fediverse_net.activitypub.parse import loads_object
from fediverse_net.db.models import Actor, Follow, GroupPost, Membership, ModLog, Note, OutgoingActivity
from fediverse_net.services.groups import membership, remote
from fediverse_net.services.groups.posting import publish_in_group
from tests.groups.conftest import PUBLIC, queued, stored

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parents[1] / "fixtures"
GROUP_FILES = sorted(p for p in FIXTURES.glob("*/*.json"))
GROUP = "https://fedi.test/groups/hikers"


def load(name: str, replacements: dict[str, str] | None = None) -> dict:
    text = (FIXTURES / name).read_text()
    for old, new in (replacements or {}).items():
        text = text.replace(old, new)
    return json.loads(text)


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_parses(path: Path) -> None:
    document = loads_object(path.read_bytes())
    assert isinstance(document.get("type"), str)
    if document["type"] == "Group":
        data = parse_actor(document, expected_id=document["id"])
        assert data.type == "Group" and data.inbox


def test_fixture_readme_names_every_file() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for path in GROUP_FILES:
        assert f"`{path.name}`" in readme, path


# --- Lemmy / Mbin ---------------------------------------------------------------------------------------


@pytest.fixture
def alpha(fediverse):
    return fediverse.add_actor("lemmy_alpha", "ds9.lemmy.ml")


def lemmy(name: str, alpha) -> dict:
    return load(
        f"lemmy/{name}",
        {
            "http://ds9.lemmy.ml/u/lemmy_alpha": alpha.id,
            "http://ds9.lemmy.ml": "https://ds9.lemmy.ml",
            "https://enterprise.lemmy.ml/c/main": GROUP,
            "http://enterprise.lemmy.ml/c/main": GROUP,
        },
    )


async def test_lemmy_follow_gets_lemmys_accept_shape(client, fediverse, hikers, alpha, run_workers):
    follow = lemmy("follow_group.json", alpha)
    assert (
        await fediverse.post_signed(client, "/groups/hikers/inbox", follow, as_actor=alpha)
    ).status_code == 202
    await run_workers()
    (accept,) = fediverse.received_json(alpha.inbox)
    expected = load("lemmy/accept_follow.json")
    assert set(expected) <= set(accept) | {"@context"}
    assert accept["type"] == "Accept" and accept["actor"] == GROUP and accept["to"] == [alpha.id]
    assert accept["object"] == follow  # embedded exactly as received
    undo = lemmy("undo_follow.json", alpha)
    undo["object"]["id"] = follow["id"]
    await fediverse.post_signed(client, "/inbox", undo, as_actor=alpha)
    await run_workers()
    assert not await Follow.filter(followee=hikers).exists()


async def test_mbin_follow_of_magazine_is_accepted(client, fediverse, hikers, run_workers):
    user2 = fediverse.add_actor("user2", "kbin.test")
    follow = load("mbin/follow_magazine.json", {"https://kbin.test/u/user2": user2.id})
    follow["id"], follow["object"] = f"{user2.id}/follow/1", GROUP
    await fediverse.post_signed(client, "/inbox", follow, as_actor=user2)
    await run_workers()
    (accept,) = fediverse.received_json(user2.inbox)
    expected = load("mbin/accept_follow.json")
    assert {k for k in expected if k != "@context"} <= set(accept)
    assert accept["object"]["id"] == follow["id"] and accept["object"]["type"] == "Follow"


async def test_lemmy_page_in_our_group_is_announced_as_lemmy_announces(
    client, fediverse, hikers, alpha, app, run_workers
):
    reader = fediverse.add_actor("reader", "enterprise.lemmy.example", slot=1)
    for person in (alpha, reader):
        await fediverse.post_signed(
            client,
            "/inbox",
            {
                "id": fediverse.new_id(person, "follow"),
                "type": "Follow",
                "actor": person.id,
                "object": GROUP,
            },
            as_actor=person,
        )
    await run_workers()
    fediverse.received.clear()
    page = load(
        "lemmy/page.json",
        {
            "https://enterprise.lemmy.ml/u/picard": alpha.id,
            "https://enterprise.lemmy.ml/post/55143": "https://ds9.lemmy.ml/post/55143",
            "https://enterprise.lemmy.ml/c/tenforward": GROUP,
        },
    )
    create = {
        "id": "https://ds9.lemmy.ml/activities/create/1",
        "type": "Create",
        "actor": alpha.id,
        "to": page["to"],
        "cc": [],
        "audience": GROUP,
        "object": page,
    }
    await fediverse.post_signed(client, "/groups/hikers/inbox", create, as_actor=alpha)
    await run_workers()
    assert (await Note.get(ap_id=page["id"])).name == "Post title"
    announces = [
        a
        for a in fediverse.received_json(reader.inbox.rsplit("/users", 1)[0] + "/inbox")
        if a["type"] == "Announce"
    ]
    wrapped = next(a for a in announces if isinstance(a["object"], dict))
    lemmy_shape = load("lemmy/announce_create_page.json")
    assert {k for k in lemmy_shape if k != "@context"} <= set(wrapped)
    assert wrapped["to"] == [PUBLIC] and wrapped["cc"][0] == f"{GROUP}/followers"
    assert wrapped["object"] == create
    mbin_shape = load("mbin/announce_create_page.json")
    assert wrapped["audience"] == GROUP and "audience" in mbin_shape
    bare = next(a for a in announces if isinstance(a["object"], str))
    assert {k for k in load("mbin/announce_boost_bare.json") if k != "@context"} <= set(bare)


async def test_lemmy_comment_reply_in_a_thread_is_announced(
    client, fediverse, hikers, alice, alpha, deps, run_workers
):
    await Membership.create(group=hikers, member=await stored(deps_app(deps), alpha), state="accepted")
    thread = await publish_in_group(deps, hikers, alice, "Ridge walk")
    create = lemmy("create_comment_note.json", alpha)
    create["object"]["inReplyTo"] = thread.ap_id
    await fediverse.post_signed(client, "/inbox", create, as_actor=alpha)
    await run_workers()
    post = await GroupPost.get(note__ap_id=create["object"]["id"])
    assert post.thread_root == thread.ap_id
    assert await OutgoingActivity.filter(type="Announce").count() == 4


def deps_app(deps):
    class _App:
        state = type("S", (), {"deps": deps})

    return _App()


async def test_lemmy_block_from_a_moderator_bans_and_from_others_is_ignored(
    client, fediverse, hikers, alpha, app, run_workers
):
    beta = fediverse.add_actor("lemmy_beta", "enterprise.lemmy.ml", slot=1)
    victim = fediverse.add_actor("victim", "victim.example", slot=2)
    await stored(app, victim)
    replacements = {
        "http://enterprise.lemmy.ml/u/lemmy_beta": beta.id,
        "http://ds9.lemmy.ml/u/lemmy_alpha": victim.id,
        "http://enterprise.lemmy.ml/u/main": GROUP,
        "http://enterprise.lemmy.ml/c/main": GROUP,
        "http://enterprise.lemmy.ml": "https://enterprise.lemmy.ml",
    }
    block = load("lemmy/block_user.json", replacements)
    await fediverse.post_signed(client, "/inbox", block, as_actor=beta)
    await run_workers()
    assert not await Membership.filter(member__ap_id=victim.id, state="banned").exists()
    assert await ModLog.filter(action="mod_refused").exists()
    await Membership.create(group=hikers, member=await stored(app, beta), role="moderator", state="accepted")
    block["id"] += "2"
    await fediverse.post_signed(client, "/inbox", block, as_actor=beta)
    await run_workers()
    banned = await Membership.get(member__ap_id=victim.id)
    assert banned.state == "banned" and banned.reason == "spam post"
    ours = [a for a, _ in await queued("Block")]
    lemmy_shape = {k for k in load("lemmy/block_user.json") if k not in ("removeData", "endTime")}
    assert lemmy_shape <= set(ours[0]) and ours[0]["target"] == GROUP and ours[0]["object"] == victim.id
    undo = load("lemmy/undo_block_user.json", replacements)
    undo["object"]["id"] = block["id"]
    await fediverse.post_signed(client, "/inbox", undo, as_actor=beta)
    await run_workers()
    assert not await Membership.filter(member__ap_id=victim.id).exists()


async def test_lemmy_removal_by_moderator_and_deletion_by_author(
    client, fediverse, hikers, alice, alpha, app, deps, run_workers
):
    beta = fediverse.add_actor("lemmy_beta", "enterprise.lemmy.ml", slot=1)
    await Membership.create(group=hikers, member=await stored(app, alpha), state="accepted")
    posts = []
    for n in (1, 2):
        create = lemmy("create_comment_note.json", alpha)
        create["id"] += str(n)
        create["object"].pop("inReplyTo")
        create["object"]["id"] = f"https://ds9.lemmy.ml/comment/{n}"
        await fediverse.post_signed(client, "/inbox", create, as_actor=alpha)
        posts.append(create["object"]["id"])
    await run_workers()
    assert await GroupPost.filter(group=hikers).count() == 2
    remove = load(
        "lemmy/remove_note_by_mod.json",
        {
            "http://enterprise.lemmy.ml/u/lemmy_beta": beta.id,
            "http://ds9.lemmy.ml/comment/1": posts[0],
            "https://enterprise.lemmy.ml/c/main": GROUP,
            "http://enterprise.lemmy.ml/c/main": GROUP,
            "http://enterprise.lemmy.ml": "https://enterprise.lemmy.ml",
        },
    )
    await fediverse.post_signed(client, "/inbox", remove, as_actor=beta)  # not a moderator yet
    await run_workers()
    assert (await GroupPost.get(note__ap_id=posts[0])).state == "accepted"
    await Membership.create(group=hikers, member=await stored(app, beta), role="moderator", state="accepted")
    remove["id"] += "b"
    await fediverse.post_signed(client, "/inbox", remove, as_actor=beta)
    await run_workers()
    assert (await GroupPost.get(note__ap_id=posts[0])).state == "removed"
    delete = lemmy("delete_page.json", alpha)
    delete["object"] = posts[1]
    await fediverse.post_signed(client, "/inbox", delete, as_actor=alpha)
    await run_workers()
    assert not await Note.filter(ap_id=posts[1]).exists()
    deletes = [a for a, _ in await queued("Delete")]
    assert {d["object"] for d in deletes} == set(posts) and all(d["actor"] == GROUP for d in deletes)


# --- Mobilizon ----------------------------------------------------------------------------------------------


async def test_mobilizon_join_with_participation_message_and_leave(
    client, fediverse, make_group, alice, deps, run_workers
):
    group = await make_group(join_mode="approval")
    admin = fediverse.add_actor("admin", "mobilizon2.test")
    replacements = {
        "http://mobilizon2.test/@admin": admin.id,
        "http://mobilizon.test/events/some-uuid": GROUP,
        "http://mobilizon2.test": "https://mobilizon2.test",
    }
    join = load("mobilizon/join_with_participation_message.json", replacements)
    await fediverse.post_signed(client, "/inbox", join, as_actor=admin)
    await run_workers()
    row = await Membership.get(group=group, member__ap_id=admin.id)
    assert row.state == "pending" and row.answers[0]["answer"] == join["participationMessage"]
    await membership.approve(deps, group, alice, row.id)
    await run_workers()
    (accept,) = fediverse.received_json(admin.inbox)
    shape = load("mobilizon/accept_join_event.json")
    assert {k for k in shape if k != "@context"} <= set(accept)
    assert accept["object"]["type"] == "Join" and accept["object"]["id"] == join["id"]
    assert accept["object"]["participationMessage"] == join["participationMessage"]
    leave = load("mobilizon/leave_event.json", replacements)
    leave["id"] = f"{admin.id}/leave/1"
    del leave["signature"]
    await fediverse.post_signed(client, "/inbox", leave, as_actor=admin)
    await run_workers()
    assert not await Membership.filter(group=group, member__ap_id=admin.id).exists()


async def test_mobilizon_join_with_null_message_joins_an_open_group(client, fediverse, hikers, run_workers):
    tcit = fediverse.add_actor("tcit", "mobilizon.org")
    join = load(
        "mobilizon/join_event.json",
        {
            "https://mobilizon.org/@tcit": tcit.id,
            "https://pleroma.mkljczk.pl/objects/b800bdb9-2cbb-40b6-9b29-196cfbd42398": GROUP,
            "https://mobilizon.mkljczk.pl/join/event/": "https://mobilizon.org/join/group/",
        },
    )
    await fediverse.post_signed(client, "/inbox", join, as_actor=tcit)
    await run_workers()
    assert (await Membership.get(group=hikers, member__ap_id=tcit.id)).state == "accepted"
    (accept,) = fediverse.received_json(tcit.inbox)
    assert accept["type"] == "Accept" and accept["object"]["participationMessage"] is None


async def test_mobilizon_accept_of_our_members_join(client, fediverse, alice, app, deps, run_workers):
    tcit = fediverse.add_actor("tcit", "mobilizon.org", type="Group")
    group = await stored(app, tcit)
    row = await remote.join_remote(deps, alice, group)
    accept = load(
        "mobilizon/accept_join_event.json",
        {
            "https://mobilizon.org/@tcit": tcit.id,
            "https://pleroma.mkljczk.pl/users/mkljczk": alice.ap_id,
            "https://pleroma.mkljczk.pl/activities/7d1f3986-8b2c-48c2-b89e-d27ba8459777": row.join_ap_id,
            "https://mobilizon.mkljczk.pl/events/d9d08e46-81af-4ee9-91e5-1298f49beea9": tcit.id,
            "https://mobilizon.mkljczk.pl/accept/": "https://mobilizon.org/accept/",
        },
    )
    await fediverse.post_signed(client, "/users/alice/inbox", accept, as_actor=tcit)
    await run_workers()
    assert (await Membership.get(id=row.id)).state == "accepted"


async def test_our_members_collection_resembles_mobilizons_for_members(client, hikers, alice):
    shape = load("mobilizon/group_members_collection.json")
    ours = (
        await client.get("/groups/hikers/members", headers={"accept": "application/activity+json"})
    ).json()
    assert ours["type"] == shape["type"] and ours["totalItems"] == 1


# --- Guppe / remote Lemmy groups we follow ---------------------------------------------


async def test_guppe_style_group_announce_reaches_our_follower(client, fediverse, alice, run_workers, app):
    guppe = load("guppe/group_actor.json")
    group = fediverse.add_actor("bernie2020", "gup.pe", type="Group", slot=3)
    assert parse_actor(guppe).type == "Group"
    actor = await stored(app, group)
    await Follow.create(follower=alice, followee=actor, state="accepted", ap_id="https://fedi.test/f/g")
    carol = fediverse.add_actor("carol", "mastodon.example", slot=1)
    note = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{carol.id}/statuses/9",
        "type": "Note",
        "attributedTo": carol.id,
        "content": "<p>Hi group</p>",
        "to": [PUBLIC],
        "cc": [group.id],
        "published": "2026-11-01T10:00:00Z",
    }
    fediverse.documents[note["id"]] = note
    announce = {
        "id": f"{group.id}/announce/1",
        "type": "Announce",
        "actor": group.id,
        "to": [f"{group.id}/followers", PUBLIC],
        "cc": [carol.id],
        "object": note["id"],
    }
    await fediverse.post_signed(client, "/inbox", announce, as_actor=group)
    await run_workers()
    assert await GroupPost.filter(group=actor, note__ap_id=note["id"]).exists()


async def test_lemmy_wrapped_announce_from_a_followed_community(client, fediverse, alice, run_workers, app):
    community = fediverse.add_actor("main", "enterprise.lemmy.ml", type="Group", slot=3)
    beta = fediverse.add_actor("lemmy_beta", "enterprise.lemmy.ml", slot=1)
    actor = await stored(app, community)
    await Follow.create(follower=alice, followee=actor, state="accepted", ap_id="https://fedi.test/f/l")
    announce = load(
        "lemmy/announce_create_page.json",
        {
            "http://enterprise.lemmy.ml/c/main": community.id,
            "http://enterprise.lemmy.ml/u/lemmy_beta": beta.id,
            "http://enterprise.lemmy.ml": "https://enterprise.lemmy.ml",
        },
    )
    page = announce["object"]["object"]
    origin_copy = {
        "@context": "https://www.w3.org/ns/activitystreams",
        **page,
        "content": "<p>from origin</p>",
    }
    fediverse.documents[page["id"]] = origin_copy
    await fediverse.post_signed(client, "/inbox", announce, as_actor=community)
    await run_workers()
    note = await Note.get(ap_id=page["id"])
    assert note.name == "post 4" and "from origin" in note.content
    assert await GroupPost.filter(group=actor, note=note).exists()
    assert not await Actor.filter(ap_id=beta.id, local=True).exists()
