"""Forwarded activities cannot squat ids; keys an actor stops publishing stop verifying."""

from __future__ import annotations

import pytest

from fediverse_net.db.models import InboxItem, PublicKey
from tests.fakes.fediverse import test_keypair as keypair_of_slot

pytestmark = pytest.mark.anyio


def create(bob, activity_id: str) -> dict:
    note_id = f"{bob.id}/statuses/1"
    return {
        "id": activity_id,
        "type": "Create",
        "actor": bob.id,
        "object": {"id": note_id, "type": "Note", "attributedTo": bob.id, "content": "hi", "to": []},
        "signature": {"type": "RsaSignature2017", "signatureValue": "x"},
    }


async def test_a_forwarded_copy_does_not_take_the_real_activitys_id(client, fediverse, alice):
    bob = fediverse.add_actor("bob")
    mallory = fediverse.add_actor("mallory", "evil.example", slot=1)
    activity_id = f"{bob.id}/statuses/1/activity"
    forged = await fediverse.post_signed(client, "/inbox", create(bob, activity_id), as_actor=mallory)
    assert forged.status_code == 202
    real = await fediverse.post_signed(client, "/inbox", create(bob, activity_id), as_actor=bob)
    assert real.status_code == 202
    genuine = await InboxItem.get(activity_id=activity_id)
    assert genuine.refetch is False
    assert await InboxItem.filter(refetch=True).count() == 1


async def test_a_key_the_actor_no_longer_publishes_stops_verifying(client, fediverse, alice, run_workers):
    bob = fediverse.add_actor("bob")
    follow = {"id": fediverse.new_id(bob), "type": "Follow", "actor": bob.id, "object": alice.ap_id}
    assert (await fediverse.post_signed(client, "/inbox", follow, as_actor=bob)).status_code == 202
    await run_workers()
    # bob moves to a new key id and announces it with an Update signed by the old key
    document = dict(fediverse.documents[bob.id])
    document["publicKey"] = {"id": f"{bob.id}#key-2", "owner": bob.id, "publicKeyPem": keypair_of_slot(2)[1]}
    fediverse.documents[bob.id] = document
    update = {"id": fediverse.new_id(bob), "type": "Update", "actor": bob.id, "object": document}
    assert (await fediverse.post_signed(client, "/inbox", update, as_actor=bob)).status_code == 202
    await run_workers()
    assert not await PublicKey.filter(key_id=bob.key_id).exists()
    assert await PublicKey.filter(key_id=f"{bob.id}#key-2").exists()
    again = {"id": fediverse.new_id(bob), "type": "Follow", "actor": bob.id, "object": alice.ap_id}
    assert (await fediverse.post_signed(client, "/inbox", again, as_actor=bob)).status_code == 401
