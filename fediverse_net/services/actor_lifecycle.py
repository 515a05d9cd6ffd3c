"""Announcing changes of our own actors: profile updates, key rotation, account deletion.

Protocol §5.10 / §3.6 / §5.4: the complete actor goes out in an `Update`; a rotated key keeps its
key id and the `Update` is signed with the OLD key; a deleted account sends `Delete{actor}`
signed with its key, then answers 410 forever.
"""

from __future__ import annotations

import asyncio

from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.documents import key_id_of
from fediverse_net.activitypub.keys import generate_rsa_keypair
from fediverse_net.db.models import Account, Actor, Follow, PublicKey
from fediverse_net.deps import Deps
from fediverse_net.services.actor_documents import document_for
from fediverse_net.services.errors import ServiceError
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token


async def contacts(actor: Actor) -> list[Actor]:
    """Everyone who may have cached this actor: followers and the accounts it follows."""
    rows = await Follow.filter(followee=actor).select_related("follower")
    rows += await Follow.filter(follower=actor).select_related("followee")
    seen: dict[int, Actor] = {}
    for row in rows:
        other = row.follower if row.followee_id == actor.id else row.followee
        seen.setdefault(other.id, other)
    return list(seen.values())


async def announce_update(deps: Deps, actor: Actor, *, signing_key_pem: str | None = None) -> None:
    """Send `Update{actor}` (the complete current document) to every contact."""
    document = await document_for(actor, deps.urls)
    activity = builders.update_actor(id=f"{actor.ap_id}#updates/{new_token()}", actor_document=document)
    await record_outgoing(
        deps,
        actor=actor,
        activity=activity,
        recipients=await contacts(actor),
        signing_key_pem=signing_key_pem,
    )


async def rotate_key(deps: Deps, actor: Actor) -> None:
    """New key pair under the same key id, announced with an Update signed by the old key."""
    if not actor.local or not actor.private_key_pem:
        raise ServiceError("only local actors have keys to rotate")
    old_private = actor.private_key_pem
    private_pem, public_pem = await asyncio.to_thread(generate_rsa_keypair)
    async with in_transaction():
        actor.private_key_pem = private_pem
        await actor.save(update_fields=["private_key_pem", "updated_at"])
        await PublicKey.filter(key_id=key_id_of(actor.ap_id)).update(pem=public_pem)
        await announce_update(deps, actor, signing_key_pem=old_private)


async def delete_member(deps: Deps, account: Account) -> None:
    """Delete a member: `Delete{actor}` to every contact, then 410 on the actor, inbox, WebFinger.

    The key is kept so the queued deliveries can still be signed; follows and the login go.
    """
    actor = await account.actor
    recipients = await contacts(actor)
    activity = builders.delete(id=f"{actor.ap_id}#delete", actor=actor.ap_id, object_id=actor.ap_id)
    async with in_transaction():
        await record_outgoing(deps, actor=actor, activity=activity, recipients=recipients)
        await Follow.filter(follower=actor).delete()
        await Follow.filter(followee=actor).delete()
        actor.deleted_at = deps.clock()
        await actor.save(update_fields=["deleted_at", "updated_at"])
        await account.delete()
