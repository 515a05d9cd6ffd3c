"""Creating our own actors (members, groups, the instance actor) with their RSA key pairs.

Every local actor is an `Actor` row with its private key plus a `PublicKey` row under
`{ap_id}#main-key`. The key pair is generated before the transaction (RSA generation is slow and
runs in a thread); `create_local_actor` then writes both rows inside the CALLER's transaction, so
the actor and whatever the caller adds (an account, group settings) exist together or not at all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fediverse_net.activitypub.documents import key_id_of
from fediverse_net.activitypub.keys import generate_rsa_keypair
from fediverse_net.config import Settings
from fediverse_net.db.models import Actor, PublicKey
from fediverse_net.urls import Urls


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: str
    public_pem: str


async def new_key_pair() -> KeyPair:
    """A fresh RSA-2048 key pair, generated off the event loop."""
    private_pem, public_pem = await asyncio.to_thread(generate_rsa_keypair)
    return KeyPair(private_pem, public_pem)


async def create_local_actor(
    settings: Settings,
    keys: KeyPair,
    *,
    ap_id: str,
    type: str,
    username: str,
    url: str,
    handle: str | None = None,
    collections: bool = True,
    **values: Any,
) -> Actor:
    """Write a local actor and its public key; call it inside the caller's transaction.

    `collections=False` leaves out followers/following (the instance actor has none). Further
    `values` (name, summary, manually_approves_followers, …) go to the `Actor` row as given.
    """
    extra: dict[str, Any] = {}
    if collections:
        extra = {"followers_url": f"{ap_id}/followers", "following_url": f"{ap_id}/following"}
    actor = await Actor.create(
        ap_id=ap_id,
        type=type,
        local=True,
        username=username,
        handle=handle,
        domain=settings.domain,
        url=url,
        inbox_url=f"{ap_id}/inbox",
        shared_inbox_url=Urls(settings.origin).shared_inbox,
        outbox_url=f"{ap_id}/outbox",
        private_key_pem=keys.private_pem,
        **extra,
        **values,
    )
    await PublicKey.create(key_id=key_id_of(ap_id), actor=actor, pem=keys.public_pem)
    return actor
