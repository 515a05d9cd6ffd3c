"""Authorized-fetch mode (protocol §3.5): signed GETs for objects and collections."""

from __future__ import annotations

import pytest

from fediverse_net.activitypub.signatures import sign_request

pytestmark = pytest.mark.anyio
AP = {"Accept": "application/activity+json"}


@pytest.fixture
def settings(settings):
    return settings.with_(authorized_fetch=True)


async def test_collections_need_a_signature(client, alice):
    response = await client.get("/users/alice/followers", headers=AP)
    assert response.status_code == 401
    assert "Signature" in response.headers["vary"]


async def test_a_valid_signed_get_is_served(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    headers = sign_request("GET", "https://fedi.test/users/alice/followers", None, key=bob.key)
    response = await client.get("/users/alice/followers", headers={**AP, **headers})
    assert response.status_code == 200
    assert response.json()["type"] == "OrderedCollection"


async def test_a_bad_signature_is_refused(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    headers = sign_request("GET", "https://fedi.test/users/alice/following", None, key=bob.key)
    response = await client.get("/users/alice/followers", headers={**AP, **headers})
    assert response.status_code == 401


async def test_actor_stays_readable_unsigned_with_its_key_only(client, alice):
    response = await client.get("/users/alice", headers=AP)
    assert response.status_code == 200
    doc = response.json()
    assert doc["publicKey"]["id"] == "https://fedi.test/users/alice#main-key"
    assert "followers" not in doc and "summary" not in doc


async def test_instance_actor_needs_no_signature(client, app):
    response = await client.get("/actor", headers=AP)
    assert response.status_code == 200
    assert response.json()["type"] == "Application"
