"""Key rotation and account updates reach contacts signed as protocol §3.6 / §5.10 require."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fediverse_net.activitypub.keys import load_public_key, public_pem_of
from fediverse_net.activitypub.signatures import PublicKeyInfo, RequestParts, verify_request
from fediverse_net.db.models import Actor, PublicKey
from fediverse_net.services.actor_lifecycle import rotate_key

pytestmark = pytest.mark.anyio


async def _follower(client, fediverse, run_workers):
    bob = fediverse.add_actor("bob")
    follow = {
        "id": fediverse.new_id(bob),
        "type": "Follow",
        "actor": bob.id,
        "object": "https://fedi.test/users/alice",
    }
    assert (await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)).status_code == 202
    await run_workers()
    return bob


async def _verify_with(pem: str, request) -> bool:
    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        return PublicKeyInfo(
            key_id=key_id, owner="https://fedi.test/users/alice", public_key=load_public_key(pem)
        )

    parts = RequestParts(
        method="POST",
        target=request.url.raw_path.decode(),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=request.content,
        origin=f"{request.url.scheme}://{request.url.netloc.decode()}",
    )
    try:
        await verify_request(parts, key_lookup=lookup, now=datetime.now(UTC))
    except Exception:
        return False
    return True


async def test_key_rotation_keeps_the_key_id_and_is_announced_with_the_old_key(
    app, client, fediverse, alice, run_workers
):
    bob = await _follower(client, fediverse, run_workers)
    old_pem = (await PublicKey.get(key_id=f"{alice.ap_id}#main-key")).pem
    await rotate_key(app.state.deps, alice)
    new_pem = (await PublicKey.get(key_id=f"{alice.ap_id}#main-key")).pem
    assert new_pem != old_pem
    alice = await Actor.get(id=alice.id)
    assert public_pem_of(alice.private_key_pem) == new_pem
    fediverse.received.clear()
    await run_workers()
    (request,) = [r for r in fediverse.received if json.loads(r.content)["type"] == "Update"]
    update = json.loads(request.content)
    assert update["object"]["id"] == alice.ap_id == update["actor"]
    assert update["object"]["publicKey"]["id"] == f"{alice.ap_id}#main-key"
    assert update["object"]["publicKey"]["publicKeyPem"] == new_pem
    assert str(request.url) == bob.shared_inbox
    assert await _verify_with(old_pem, request)
    assert not await _verify_with(new_pem, request)
    # The actor document now serves the new key.
    doc = (await client.get("/users/alice", headers={"Accept": "application/activity+json"})).json()
    assert doc["publicKey"]["publicKeyPem"] == new_pem
