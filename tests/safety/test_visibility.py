"""Privacy of members' lists of people, and the `reject_media` domain policy.

Follower and following collections list items only when the member is `discoverable`, for
unsigned and signed (FakeFediverse actor) requests alike; otherwise only `totalItems` is shown.
"""

from __future__ import annotations

import pytest

from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.db.models import Actor, Follow
from tests.safety.test_matrix import follow_of
from tests.web.test_social import post_form

pytestmark = pytest.mark.anyio
AP = {"Accept": "application/activity+json"}


async def followed_by(client, fediverse, actor, run_workers) -> None:
    follow = follow_of(fediverse, actor)
    assert (await fediverse.post_signed(client, "/inbox", follow, as_actor=actor)).status_code == 202
    await run_workers()
    assert await Follow.filter(follower__ap_id=actor.id, state="accepted").exists()


async def get_collection(client, fediverse, path: str, signer=None) -> dict:
    headers = dict(AP)
    if signer is not None:
        headers |= sign_request("GET", f"https://fedi.test{path}", None, key=signer.key)
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_lists_of_a_member_who_is_not_discoverable_are_hidden(
    client, fediverse, alice, bob, mallory, run_workers, signed
):
    await followed_by(client, fediverse, bob, run_workers)
    assert alice.discoverable is False
    for which in ("followers", "following"):
        doc = await get_collection(client, fediverse, f"/users/alice/{which}", mallory if signed else None)
        assert "first" not in doc and "orderedItems" not in doc
        assert doc["totalItems"] == (1 if which == "followers" else 0)
        page = await get_collection(
            client, fediverse, f"/users/alice/{which}?page=1", mallory if signed else None
        )
        assert bob.id not in str(page)
        assert "orderedItems" not in page


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_lists_of_a_discoverable_member_are_shown(
    client, fediverse, alice, bob, mallory, run_workers, signed
):
    await Actor.filter(id=alice.id).update(discoverable=True)
    await followed_by(client, fediverse, bob, run_workers)
    signer = mallory if signed else None
    doc = await get_collection(client, fediverse, "/users/alice/followers", signer)
    assert doc["totalItems"] == 1
    assert doc["first"] == "https://fedi.test/users/alice/followers?page=1"
    page = await get_collection(client, fediverse, "/users/alice/followers?page=1", signer)
    assert page["orderedItems"] == [bob.id]
    following = await get_collection(client, fediverse, "/users/alice/following", signer)
    assert following["totalItems"] == 0 and "first" in following


async def test_actor_document_reflects_discoverable_and_indexable(client, alice, browsers):
    doc = (await client.get("/users/alice", headers=AP)).json()
    assert doc["discoverable"] is False and doc["indexable"] is False
    browser = await browsers("alice")
    response = await post_form(
        browser,
        "/settings/profile",
        {"display_name": "Alice", "bio": "", "interests": "", "avatar_url": "", "discoverable": "yes"},
        token_page="/settings/profile",
    )
    assert response.status_code == 303, response.text
    doc = (await client.get("/users/alice", headers=AP)).json()
    assert doc["discoverable"] is True and doc["indexable"] is False
    assert 'name="robots" content="noindex"' in (await client.get("/@alice")).text
    response = await post_form(
        browser,
        "/settings/profile",
        {"display_name": "Alice", "bio": "", "interests": "", "avatar_url": "", "indexable": "yes"},
        token_page="/settings/profile",
    )
    assert response.status_code == 303, response.text
    doc = (await client.get("/users/alice", headers=AP)).json()
    assert doc["indexable"] is True and doc["discoverable"] is False
    assert "noindex" not in (await client.get("/@alice")).text  # search engines may index it now
    # Unticking the box hides the profile again.
    await post_form(
        browser,
        "/settings/profile",
        {"display_name": "Alice", "bio": "", "interests": "", "avatar_url": ""},
        token_page="/settings/profile",
    )
    doc = (await client.get("/users/alice", headers=AP)).json()
    assert doc["discoverable"] is False


# --- reject_media domain policy ----------------------------------------------------------------------

AVATAR = "https://remote.example/media/avatar.png"
HEADER = "https://remote.example/media/header.png"


def with_pictures(fediverse, actor) -> None:
    document = fediverse.documents[actor.id]
    document["icon"] = {"type": "Image", "mediaType": "image/png", "url": AVATAR}
    document["image"] = {"type": "Image", "mediaType": "image/png", "url": HEADER}


def note_with_media(fediverse, actor) -> dict:
    from tests.safety.test_matrix import ALICE, PUBLIC, create_of

    attachment = [{"type": "Document", "mediaType": "image/png", "url": f"{actor.id}/media/1.png"}]
    return create_of(fediverse, actor, to=[ALICE, PUBLIC], attachment=attachment, image=attachment[0])


async def test_reject_media_domain_stores_actors_without_pictures_and_notes_without_media(
    client, fediverse, alice, bob, deps, run_workers, browsers
):
    from fediverse_net.db.models import Note
    from fediverse_net.services import instance_admin
    from fediverse_net.services.remote_actors import resolve_actor

    with_pictures(fediverse, bob)
    await instance_admin.block_domain(deps, None, "remote.example", "noop", reject_media=True)
    stored = await resolve_actor(deps, bob.id)
    assert stored.avatar_url is None and stored.header_url is None
    create = note_with_media(fediverse, bob)
    assert (await fediverse.post_signed(client, "/inbox", create, as_actor=bob)).status_code == 202
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert "attachment" not in note.document and "image" not in note.document
    browser = await browsers("alice")
    for path in ("/", f"/search?q={bob.id}"):
        page = (await browser.get(path)).text
        assert "/media/" not in page
    # A refresh of the actor (e.g. its Update) does not bring the pictures back.
    refreshed = await resolve_actor(deps, bob.id, refresh=True)
    assert refreshed.avatar_url is None and refreshed.header_url is None


async def test_without_reject_media_pictures_and_media_are_kept(
    client, fediverse, alice, bob, deps, run_workers
):
    from fediverse_net.db.models import Note
    from fediverse_net.services.remote_actors import resolve_actor

    with_pictures(fediverse, bob)
    stored = await resolve_actor(deps, bob.id)
    assert stored.avatar_url == AVATAR and stored.header_url == HEADER
    create = note_with_media(fediverse, bob)
    await fediverse.post_signed(client, "/inbox", create, as_actor=bob)
    await run_workers()
    note = await Note.get(ap_id=create["object"]["id"])
    assert note.document["attachment"]
