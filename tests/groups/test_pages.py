"""Group pages: create, join (with questions), approval queue, posting, threads, members,
moderation, directory and feed — as browsers use them (forms with CSRF, no JavaScript)."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Actor, GroupPost, Membership, ModLog, Note
from tests.groups.conftest import PUBLIC, follow_of, member, post_form, queued, stored

pytestmark = pytest.mark.anyio


async def test_create_group_from_the_web(alice, browsers):
    web = await browsers("alice")
    form = {
        "handle": "boardgames",
        "name": "Board games Leipzig",
        "description": "We play **every** week.",
        "join_mode": "approval",
        "posting": "members",
        "visibility": "public",
        "tags": "games, leipzig",
        "city": "Leipzig",
        "question_0": "Which games do you like?",
    }
    response = await post_form(web, "/groups/new", form, "/groups/new")
    assert response.status_code == 303 and response.headers["location"] == "/g/boardgames"
    page = await web.get("/g/boardgames")
    assert "Board games Leipzig" in page.text and "You are a member (admin)" in page.text
    again = await post_form(web, "/groups/new", form, "/groups/new")
    assert again.status_code == 409 and "already taken" in again.text


async def test_join_with_questions_waits_then_moderator_approves(settings, alice, make_group, browsers):
    await make_group("boardgames", join_mode="approval", questions=["Which games do you like?"])
    await member(settings, "carol")
    carol = await browsers("carol")
    page = await carol.get("/g/boardgames")
    assert "Ask to join" in page.text
    join_page = await carol.get("/g/boardgames/join")
    assert "Which games do you like?" in join_page.text
    response = await post_form(carol, "/g/boardgames/join", {"answer_0": "Catan"}, "/g/boardgames/join")
    assert response.status_code == 303
    assert "Waiting for approval" in (await carol.get("/g/boardgames")).text
    assert (await carol.get("/g/boardgames/requests")).status_code == 403
    admin = await browsers("alice")
    queue = await admin.get("/g/boardgames/requests")
    assert "Catan" in queue.text
    row = await Membership.get(member__handle="carol")
    response = await post_form(admin, f"/g/boardgames/requests/{row.id}/approve", {})
    assert response.status_code == 303
    assert "You are a member" in (await carol.get("/g/boardgames")).text


async def test_members_post_and_reply_in_threads(settings, alice, hikers, browsers):
    web = await browsers("alice")
    response = await post_form(web, "/g/hikers/post", {"content": "Ridge walk Saturday\n\nMeet at 9."})
    assert response.status_code == 303
    note = await Note.get(author=alice)
    assert note.name == "Ridge walk Saturday"
    thread = await web.get(f"/g/hikers/t/{note.id}")
    assert "Meet at 9." in thread.text
    reply = await post_form(web, "/g/hikers/post", {"content": "I'm in", "in_reply_to": str(note.id)})
    assert reply.status_code == 303
    assert "m in<" in (await web.get(f"/g/hikers/t/{note.id}")).text
    # a stranger sees the public thread but cannot post
    stranger = await browsers()
    assert "Ridge walk Saturday" in (await stranger.get("/g/hikers")).text
    await member(settings, "carol")
    carol = await browsers("carol")
    refused = await post_form(carol, "/g/hikers/post", {"content": "spam"})
    assert refused.status_code == 403


async def test_members_only_posts_and_member_list_are_for_members(settings, alice, hikers, browsers):
    web = await browsers("alice")
    await post_form(web, "/g/hikers/post", {"content": "Venue: 12 Main St.", "members_only": "yes"})
    assert "12 Main St." in (await web.get("/g/hikers")).text
    stranger = await browsers()
    assert "12 Main St." not in (await stranger.get("/g/hikers")).text
    assert (await stranger.get("/g/hikers/members")).status_code == 403
    assert "@alice@fedi.test" in (await web.get("/g/hikers/members")).text


async def test_moderators_lock_remove_and_ban(settings, alice, hikers, browsers, deps):
    carol_actor = await member(settings, "carol")
    await Membership.create(group=hikers, member=carol_actor, state="accepted")
    carol = await browsers("carol")
    await post_form(carol, "/g/hikers/post", {"content": "Buy my stuff"})
    note = await Note.get(author=carol_actor)
    admin = await browsers("alice")
    assert (await post_form(admin, f"/g/hikers/t/{note.id}/lock", {})).status_code == 303
    refused = await post_form(carol, "/g/hikers/post", {"content": "reply", "in_reply_to": str(note.id)})
    assert refused.status_code == 403
    assert (await post_form(carol, f"/g/hikers/t/{note.id}/remove", {})).status_code == 403
    await post_form(admin, f"/g/hikers/t/{note.id}/remove", {"reason": "spam"})
    assert (await GroupPost.get(note=note)).state == "removed"
    assert "Buy my stuff" not in (await (await browsers()).get("/g/hikers")).text
    row = await Membership.get(group=hikers, member=carol_actor)
    await post_form(admin, f"/g/hikers/members/{row.id}/ban", {"reason": "spam"})
    assert (await Membership.get(id=row.id)).state == "banned"
    log = await admin.get("/g/hikers/modlog")
    assert "ban" in log.text and "spam" in log.text
    assert await ModLog.filter(action="remove").exists()


async def test_directory_search_and_json(make_group, client):
    await make_group("hikers", tags="hiking", city="Leipzig")
    await make_group("gamers", name="Board games", tags="games", city="Detroit")
    await make_group("hidden", name="Secret hikers", visibility="unlisted")
    page = await client.get("/groups")
    assert "Hikers of Example Valley" in page.text and "Secret hikers" not in page.text
    by_tag = await client.get("/groups", params={"tag": "games"})
    assert "Board games" in by_tag.text and "Hikers of" not in by_tag.text
    by_city = (await client.get("/groups.json", params={"city": "leipzig"})).json()
    assert [g["handle"] for g in by_city] == ["@hikers@fedi.test"]
    by_text = (
        await client.get("/groups", params={"q": "board"}, headers={"accept": "application/json"})
    ).json()
    assert [g["name"] for g in by_text] == ["Board games"]


async def test_atom_feed_lists_public_threads(alice, hikers, deps, client):
    from fediverse_net.services.groups.posting import publish_in_group

    await publish_in_group(deps, hikers, alice, "Ridge walk <Saturday>")
    await publish_in_group(deps, hikers, alice, "Secret venue", members_only=True)
    response = await client.get("/g/hikers/feed.atom")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/atom+xml")
    assert "<title>Ridge walk &lt;Saturday&gt;</title>" in response.text
    assert "Secret venue" not in response.text


async def test_group_page_serves_the_actor_to_activitypub_clients(hikers, client):
    response = await client.get("/g/hikers", headers={"accept": "application/activity+json"})
    assert response.json()["type"] == "Group"


async def test_forms_without_csrf_are_refused(alice, hikers, browsers):
    web = await browsers("alice")
    response = await web.post("/g/hikers/post", data={"content": "x"})
    assert response.status_code == 403
    assert not await Note.exists()


async def test_member_joins_a_remote_group_from_the_web(alice, browsers, fediverse, app):
    climbers = fediverse.add_actor("climbers", "mobilizon.example", type="Group", slot=3)
    web = await browsers("alice")
    page = await web.get("/groups/find", params={"q": climbers.id})
    assert page.status_code == 200 and ">Join<" in page.text
    group = await Actor.get(ap_id=climbers.id)
    response = await post_form(web, "/groups/remote/join", {"actor_id": str(group.id)}, "/groups")
    assert response.status_code == 303
    assert (await Membership.get(group=group)).state == "pending"
    assert "Waiting for approval" in (await web.get("/groups/find", params={"q": climbers.id})).text


async def test_editing_the_group_sends_update_group_to_followers_and_remote_members(
    app, client, fediverse, make_group, browsers, run_workers
):
    group = await make_group(follow_is_join=False)
    bob, carol = fediverse.add_actor("bob"), fediverse.add_actor("carol", domain="other.example")
    await fediverse.post_signed(client, "/inbox", follow_of(fediverse, bob, group.ap_id), as_actor=bob)
    await run_workers()
    await Membership.create(group=group, member=await stored(app, carol), role="member", state="accepted")
    admin = await browsers("alice")
    form = {"name": "Ridge walkers", "description": "New **plans**.", "join_mode": "approval"}
    response = await post_form(admin, "/g/hikers/edit", form, "/g/hikers/edit")
    assert response.status_code == 303
    ((update, inboxes),) = await queued("Update")
    assert inboxes == sorted([bob.shared_inbox, carol.shared_inbox])
    assert update["actor"] == group.ap_id and update["to"] == [PUBLIC]
    document = update["object"]
    assert document["id"] == group.ap_id and document["type"] == "Group"
    assert document["name"] == "Ridge walkers" and "<strong>plans</strong>" in document["summary"]
    assert document["manuallyApprovesFollowers"] is True and document["openness"] == "moderated"
    assert document["attributedTo"] == f"{group.ap_id}/moderators" and document["memberCount"] == 2
    assert "@context" not in document and {"memberCount", "openness"} <= set(update["@context"][-1])
    assert document["publicKey"]["id"] == f"{group.ap_id}#main-key"
