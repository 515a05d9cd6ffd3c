"""Several first requests from an actor we have never seen, at the same moment (PostgreSQL race)."""

from __future__ import annotations

import asyncio

import pytest

from fediverse_net.db.models import Actor, InboxItem, PublicKey

pytestmark = pytest.mark.anyio


async def test_simultaneous_first_contacts_all_succeed(client, fediverse, alice):
    bob = fediverse.add_actor("bob")

    def follow(n: int) -> dict:
        return {"id": f"{bob.id}/follows/{n}", "type": "Follow", "actor": bob.id, "object": alice.ap_id}

    responses = await asyncio.gather(
        *(fediverse.post_signed(client, "/inbox", follow(n), as_actor=bob) for n in range(6))
    )
    assert [r.status_code for r in responses] == [202] * 6
    assert await Actor.filter(ap_id=bob.id).count() == 1
    assert await PublicKey.filter(key_id=bob.key_id).count() == 1
    assert await InboxItem.all().count() == 6
