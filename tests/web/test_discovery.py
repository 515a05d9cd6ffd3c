"""WebFinger, host-meta, NodeInfo and actor documents, field by field (protocol.md §1, §2, §9)."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fediverse_net.db.models import Actor
from fediverse_net.services.members import NewMember, create_member

pytestmark = pytest.mark.anyio
AP = "application/activity+json"


@pytest.fixture
async def alice(app, settings):
    account = await create_member(
        settings, NewMember(handle="alice", password="correct horse", display_name="Alice")
    )
    await account.fetch_related("actor")
    return account.actor


async def test_webfinger_acct_returns_jrd_with_self_link_identical_to_actor_id(
    client, alice
):  # §9 items 1, 3
    response = await client.get("/.well-known/webfinger?resource=acct:alice@fedi.test")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["subject"] == "acct:alice@fedi.test"
    selfs = [link for link in body["links"] if link["rel"] == "self"]
    assert len(selfs) == 1
    assert selfs[0] == {"rel": "self", "type": AP, "href": "https://fedi.test/users/alice"}
    assert "https://fedi.test/@alice" in body["aliases"]


@pytest.mark.parametrize(
    "resource",
    [
        "acct:ALICE@FEDI.TEST",
        "alice@fedi.test",
        "@alice@fedi.test",
        "https://fedi.test/users/alice",
        "https://fedi.test/@alice",
        "acct%3Aalice%40fedi.test",
    ],
)
async def test_webfinger_accepts_every_resource_form(client, alice, resource):  # §9 item 2
    response = await client.get(f"/.well-known/webfinger?resource={resource}")
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "acct:alice@fedi.test"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?resource=", 400),
        ("?resource=acct:nobody", 400),
        ("?resource=acct:a@b@c", 400),
        ("?resource=acct:bob@fedi.test", 404),
        ("?resource=acct:alice@elsewhere.example", 404),
        ("?resource=https://elsewhere.example/users/alice", 404),
    ],
)
async def test_webfinger_errors(client, alice, query, status):  # §9 item 4
    response = await client.get(f"/.well-known/webfinger{query}")
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"


async def test_webfinger_of_deleted_actor_is_gone(client, alice):
    from fediverse_net.deps import utcnow

    alice.deleted_at = utcnow()
    await alice.save()
    response = await client.get("/.well-known/webfinger?resource=acct:alice@fedi.test")
    assert response.status_code == 410
    assert (await client.get("/users/alice", headers={"Accept": AP})).status_code == 410


async def test_webfinger_resolves_instance_actor(client, app):
    for resource in ("acct:fedi.test@fedi.test", "https://fedi.test/actor"):
        response = await client.get("/.well-known/webfinger", params={"resource": resource})
        assert response.status_code == 200
        (link,) = [x for x in response.json()["links"] if x["rel"] == "self"]
        assert link["href"] == "https://fedi.test/actor"


async def test_host_meta_xml_and_json(client, app):  # §9 item 6
    response = await client.get("/.well-known/host-meta")
    assert response.headers["content-type"].startswith("application/xrd+xml")
    assert (
        '<Link rel="lrdd" template="https://fedi.test/.well-known/webfinger?resource={uri}"/>'
        in response.text
    )
    response = await client.get("/.well-known/host-meta.json")
    assert response.json()["links"][0]["template"] == "https://fedi.test/.well-known/webfinger?resource={uri}"


async def test_nodeinfo_index_and_documents_follow_the_schema(client, alice):  # §9 item 7
    index = await client.get("/.well-known/nodeinfo")
    assert index.status_code == 200
    hrefs = {link["rel"].rsplit("/", 1)[1]: link["href"] for link in index.json()["links"]}
    assert hrefs == {"2.1": "https://fedi.test/nodeinfo/2.1", "2.0": "https://fedi.test/nodeinfo/2.0"}
    for version in ("2.1", "2.0"):
        response = await client.get(f"/nodeinfo/{version}")
        assert response.status_code == 200
        assert f"schema/{version}#" in response.headers["content-type"]
        doc = response.json()
        assert set(doc) == {
            "version",
            "software",
            "protocols",
            "services",
            "openRegistrations",
            "usage",
            "metadata",
        }
        assert doc["version"] == version
        assert re.fullmatch(r"[a-z0-9-]+", doc["software"]["name"])
        assert doc["protocols"] == ["activitypub"]
        assert doc["services"] == {"inbound": [], "outbound": []}
        assert doc["openRegistrations"] is True
        assert doc["usage"]["users"]["total"] == 1
        assert isinstance(doc["metadata"], dict)
    assert (await client.get("/nodeinfo/1.0")).status_code == 404


@pytest.mark.parametrize(
    "accept",
    [
        "application/activity+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
        "application/ld+json",
        "application/json",
        "application/activity+json, application/ld+json",
    ],
)
async def test_person_document_matches_protocol(client, alice, accept):  # §9 items 8–14
    response = await client.get("/users/alice", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/activity+json; charset=utf-8"
    assert "Accept" in response.headers["vary"]
    doc = response.json()
    assert doc["@context"][0] == "https://www.w3.org/ns/activitystreams"
    assert "https://w3id.org/security/v1" in doc["@context"]
    assert doc["id"] == "https://fedi.test/users/alice"
    assert doc["type"] == "Person"
    assert doc["preferredUsername"] == "alice"
    assert doc["webfinger"] == "alice@fedi.test"
    assert doc["name"] == "Alice"
    for key in ("inbox", "outbox", "followers", "following"):
        assert doc[key] == f"https://fedi.test/users/alice/{key}"
    assert doc["endpoints"] == {"sharedInbox": "https://fedi.test/inbox"}
    assert doc["url"] == "https://fedi.test/@alice"
    assert doc["manuallyApprovesFollowers"] is False
    assert doc["discoverable"] is False
    assert isinstance(doc["publicKey"], dict)
    assert doc["publicKey"]["id"] == "https://fedi.test/users/alice#main-key"
    assert doc["publicKey"]["owner"] == doc["id"]
    key = serialization.load_pem_public_key(doc["publicKey"]["publicKeyPem"].encode())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert None not in doc.values()


async def test_person_url_redirects_browsers_to_the_profile(client, alice):
    response = await client.get("/users/alice", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"] == "https://fedi.test/@alice"


async def test_instance_actor_is_served_unsigned(client, app):
    response = await client.get("/actor", headers={"Accept": AP})
    assert response.status_code == 200
    doc = response.json()
    assert doc["type"] == "Application"
    assert doc["id"] == "https://fedi.test/actor"
    assert doc["preferredUsername"] == "fedi.test"
    assert doc["publicKey"]["id"] == "https://fedi.test/actor#main-key"
    assert doc["manuallyApprovesFollowers"] is True


async def test_followers_collection_is_paged(client, alice):
    # Lists are shown only for discoverable members (tests/safety/test_visibility.py).
    await Actor.filter(id=alice.id).update(discoverable=True)
    head = (await client.get("/users/alice/followers", headers={"Accept": AP})).json()
    assert head == {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://fedi.test/users/alice/followers",
        "type": "OrderedCollection",
        "totalItems": 0,
        "first": "https://fedi.test/users/alice/followers?page=1",
    }
    page = (await client.get("/users/alice/followers?page=1", headers={"Accept": AP})).json()
    assert page["type"] == "OrderedCollectionPage"
    assert page["partOf"] == "https://fedi.test/users/alice/followers"
    assert page["orderedItems"] == []


async def test_unknown_route_is_404(client, app):
    assert (await client.get("/no/such/thing")).status_code == 404
    assert (await client.get("/users/nobody", headers={"Accept": AP})).status_code == 404


async def test_healthz_reports_the_database(client, app):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["clock"]["status"] == "unknown"  # no peer has answered yet (F15)
