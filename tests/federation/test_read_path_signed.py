"""Authorized fetch with the cached read path (B1): the cache never bypasses the signer checks.

The document cache holds the full Person document; in authorized-fetch mode a GET that is not
signed by an allowed server must still get only the key, whoever filled the cache before.
"""

from __future__ import annotations

import pytest

from fediverse_net.activitypub.signatures import sign_request
from fediverse_net.services import instance_admin

pytestmark = pytest.mark.anyio
AP = {"Accept": "application/activity+json"}
URL = "https://fedi.test/users/alice"


@pytest.fixture
def settings(settings):
    return settings.with_(authorized_fetch=True)


def _is_key_only(doc: dict) -> bool:
    return "publicKey" in doc and "followers" not in doc and "summary" not in doc


async def test_document_cached_by_a_signed_get_is_not_served_in_full_unsigned(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    for _ in range(2):  # the second signed GET is served from the cache, in full
        signed = await client.get(
            "/users/alice", headers={**AP, **sign_request("GET", URL, None, key=bob.key)}
        )
        assert signed.status_code == 200
        assert "followers" in signed.json() and not _is_key_only(signed.json())
    for _ in range(2):
        unsigned = await client.get("/users/alice", headers=AP)
        assert unsigned.status_code == 200
        assert _is_key_only(unsigned.json())
    assert unsigned.headers["x-frame-options"] == "DENY"


async def test_signer_from_a_suspended_domain_gets_the_key_only_even_when_cached(
    app, client, fediverse, alice
):
    bob = fediverse.add_actor("bob")
    mallory = fediverse.add_actor("mallory", domain="evil.example", slot=1)
    assert not _is_key_only(
        (
            await client.get("/users/alice", headers={**AP, **sign_request("GET", URL, None, key=bob.key)})
        ).json()
    )
    await instance_admin.block_domain(app.state.deps, None, "evil.example")
    blocked = await client.get(
        "/users/alice", headers={**AP, **sign_request("GET", URL, None, key=mallory.key)}
    )
    assert blocked.status_code == 200
    assert _is_key_only(blocked.json())
