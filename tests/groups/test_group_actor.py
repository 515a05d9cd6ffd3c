"""Group actors: creation, the actor document (§2.4), WebFinger, collections, the handle namespace."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import Actor, Follow, Group, Membership, PublicKey
from fediverse_net.services.errors import Conflict, ServiceError
from fediverse_net.services.groups.core import GroupInput, create_group
from tests.groups.conftest import member

pytestmark = pytest.mark.anyio
AP = {"accept": "application/activity+json"}


async def test_create_group_makes_actor_key_settings_and_admin(hikers, alice):
    assert hikers.type == "Group" and hikers.local and hikers.handle == "hikers"
    assert hikers.ap_id == "https://fedi.test/groups/hikers"
    assert hikers.url == "https://fedi.test/g/hikers"
    assert await PublicKey.filter(key_id=f"{hikers.ap_id}#main-key").exists()
    assert (await Group.get(actor=hikers)).join_mode == "open"
    admin = await Membership.get(group=hikers, member=alice)
    assert (admin.role, admin.state) == ("admin", "accepted")


async def test_group_handle_shares_the_member_namespace(make_group, settings, alice):
    with pytest.raises(Conflict):
        await make_group("alice")
    await make_group("hikers")
    with pytest.raises(Conflict):
        await member(settings, "hikers")
    with pytest.raises(Conflict):
        await make_group("Hikers")


async def test_bad_input_creates_nothing(make_group):
    for form in (
        {"name": ""},
        {"join_mode": "secret"},
        {"tags": "ok, bad tag!"},
        {"avatar_url": "javascript:x"},
    ):
        with pytest.raises(ServiceError):
            await make_group("walkers", **form)
    assert not await Actor.filter(handle="walkers").exists()


async def test_only_local_people_create_groups(settings, app, fediverse):
    remote = await Actor.create(
        ap_id="https://remote.example/users/x",
        type="Person",
        username="x",
        domain="remote.example",
        inbox_url="https://remote.example/users/x/inbox",
    )
    with pytest.raises(ServiceError):
        await create_group(settings, "walkers", remote, GroupInput(name="Walkers"))


async def test_actor_document_has_the_group_properties(client, make_group):
    await make_group(
        "hikers",
        join_mode="approval",
        tags="hiking, maps",
        city="Leipzig",
        area="Saxony",
        description="Weekend **hikes**.",
        rules="Be kind.",
    )
    response = await client.get("/groups/hikers", headers=AP)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    doc = response.json()
    assert doc["@context"][0] == "https://www.w3.org/ns/activitystreams"
    assert doc["type"] == "Group" and doc["id"] == "https://fedi.test/groups/hikers"
    assert doc["preferredUsername"] == "hikers" and doc["webfinger"] == "hikers@fedi.test"
    assert doc["inbox"] == "https://fedi.test/groups/hikers/inbox"
    assert doc["endpoints"]["sharedInbox"] == "https://fedi.test/inbox"
    assert doc["attributedTo"] == "https://fedi.test/groups/hikers/moderators"
    assert doc["featured"] == "https://fedi.test/groups/hikers/collections/featured"
    assert doc["postingRestrictedToMods"] is False
    assert doc["manuallyApprovesFollowers"] is True  # approval join mode
    assert doc["openness"] == "moderated"
    assert doc["members"] == "https://fedi.test/groups/hikers/members" and doc["memberCount"] == 1
    assert doc["publicKey"]["owner"] == doc["id"]
    assert doc["url"] == "https://fedi.test/g/hikers"
    assert "<strong>hikes</strong>" in doc["summary"] and "Be kind." in doc["summary"]
    assert "@hikers@fedi.test" in doc["summary"]
    assert {t["name"] for t in doc["tag"]} == {"#hiking", "#maps"}
    assert doc["location"]["address"]["addressLocality"] == "Leipzig"
    assert any(isinstance(c, dict) and "postingRestrictedToMods" in c for c in doc["@context"])


async def test_open_group_auto_accepts_followers_in_its_document(client, hikers):
    doc = (await client.get("/groups/hikers", headers=AP)).json()
    assert doc["manuallyApprovesFollowers"] is False and doc["openness"] == "open"


async def test_browsers_are_sent_to_the_group_page(client, hikers):
    response = await client.get("/groups/hikers", headers={"accept": "text/html"})
    assert response.status_code == 302 and response.headers["location"] == "https://fedi.test/g/hikers"


async def test_webfinger_resolves_the_group_with_the_lemmy_property(client, hikers):
    for resource in (
        "acct:hikers@fedi.test",
        "https://fedi.test/groups/hikers",
        "https://fedi.test/g/hikers",
    ):
        response = await client.get("/.well-known/webfinger", params={"resource": resource})
        assert response.status_code == 200, resource
        jrd = response.json()
        (self_link,) = [link for link in jrd["links"] if link["rel"] == "self"]
        assert self_link["href"] == "https://fedi.test/groups/hikers"
        assert self_link["properties"]["https://www.w3.org/ns/activitystreams#type"] == "Group"


async def test_followers_collection_is_hidden(client, hikers, app, fediverse):
    bob = await Actor.create(
        ap_id="https://remote.example/users/bob",
        type="Person",
        username="bob",
        domain="remote.example",
        inbox_url="https://remote.example/users/bob/inbox",
    )
    await Follow.create(follower=bob, followee=hikers, state="accepted", ap_id=f"{bob.ap_id}#f")
    doc = (await client.get("/groups/hikers/followers", headers=AP)).json()
    assert doc["totalItems"] == 1 and "first" not in doc and "orderedItems" not in doc
    paged = (await client.get("/groups/hikers/followers?page=1", headers=AP)).json()
    assert "orderedItems" not in paged


async def test_members_collection_shows_count_to_strangers(client, hikers):
    doc = (await client.get("/groups/hikers/members", headers=AP)).json()
    assert doc["totalItems"] == 1 and "first" not in doc
    page = (await client.get("/groups/hikers/members?page=1", headers=AP)).json()
    assert "orderedItems" not in page


async def test_moderators_collection_lists_admins_first(client, hikers, alice):
    doc = (await client.get("/groups/hikers/moderators", headers=AP)).json()
    assert doc["type"] == "OrderedCollection"
    assert doc["orderedItems"] == [alice.ap_id]


async def test_unknown_group_is_404(client):
    assert (await client.get("/groups/nobody", headers=AP)).status_code == 404
    assert (await client.get("/groups/nobody/followers", headers=AP)).status_code == 404


async def test_a_member_is_not_a_group(client, alice):
    assert (await client.get("/groups/alice", headers=AP)).status_code == 404
