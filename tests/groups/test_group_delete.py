"""Deleting a group: `Delete{Group}` to its remote followers and members, then 410 for its id and
WebFinger, no pages, no directory entry, and the handle is never reused."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Actor, Follow, Membership, ModLog
from fediverse_net.services.errors import Conflict
from tests.groups.conftest import member, post_form, queued
from tests.groups.test_posting import follow_group

pytestmark = pytest.mark.anyio
GROUP = "https://fedi.test/groups/hikers"
AP = {"accept": "application/activity+json"}


async def test_admin_deletes_the_group_and_everyone_who_knew_it_is_told(
    client,
    fediverse,
    settings,
    alice,
    hikers,
    browsers,
    run_workers,
    make_group,
):
    bob = fediverse.add_actor("bob", "mastodon.example")
    carol = fediverse.add_actor("carol", "other.example", slot=1)
    for person in (bob, carol):
        await follow_group(client, fediverse, person, run_workers)  # open group: members too
    web = await browsers("alice")
    page = await web.get("/g/hikers/delete")
    assert page.status_code == 200 and "cannot be undone" in page.text
    answer = await post_form(web, "/g/hikers/delete", {"confirmation": "hikers"}, "/g/hikers/delete")
    assert answer.status_code == 303 and answer.headers["location"] == "/groups"

    ((delete, inboxes),) = await queued("Delete")
    assert delete["actor"] == GROUP and delete["object"] == GROUP
    assert inboxes == ["https://mastodon.example/inbox", "https://other.example/inbox"]
    await run_workers()
    assert [a["type"] for a in fediverse.received_json("https://other.example/inbox")] == ["Delete"]

    assert (await Actor.get(id=hikers.id)).deleted_at is not None
    assert not await Follow.filter(followee_id=hikers.id).exists()
    assert not await Membership.filter(group_id=hikers.id).exists()
    assert await ModLog.filter(group_id=hikers.id, action="delete_group").exists()
    assert (await client.get("/groups/hikers", headers=AP)).status_code == 410
    assert (await client.get("/groups/hikers/outbox", headers=AP)).status_code == 410
    finger = await client.get("/.well-known/webfinger", params={"resource": "acct:hikers@fedi.test"})
    assert finger.status_code == 410
    assert (await web.get("/g/hikers")).status_code == 404
    assert "hikers" not in (await web.get("/groups")).text.lower()
    with pytest.raises(Conflict):
        await make_group("hikers")


async def test_only_admins_delete_and_only_with_the_handle_typed(settings, alice, hikers, browsers):
    carol_actor = await member(settings, "carol")
    await Membership.create(group=hikers, member=carol_actor, state="accepted", role="moderator")
    carol = await browsers("carol")
    assert (await carol.get("/g/hikers/delete")).status_code == 403
    refused = await post_form(carol, "/g/hikers/delete", {"confirmation": "hikers"})
    assert refused.status_code == 403
    admin = await browsers("alice")
    wrong = await post_form(admin, "/g/hikers/delete", {"confirmation": "walkers"}, "/g/hikers/delete")
    assert wrong.status_code == 400 and "to confirm" in wrong.text
    assert (await Actor.get(id=hikers.id)).deleted_at is None
    assert await Membership.filter(group_id=hikers.id).count() == 2
    assert not await ModLog.filter(action="delete_group").exists()
