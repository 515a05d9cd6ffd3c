"""Announcing changes of our own actors: profile updates, key rotation, account deletion.

Protocol §5.10 / §3.6 / §5.4: the complete actor goes out in an `Update`; a rotated key keeps its
key id and the `Update` is signed with the OLD key; a deleted account sends `Delete{actor}`
signed with its key, then answers 410 forever.

`announce_update` is the ONE place an `Update{actor}` is built, for every kind of local actor:
a Person reaches its followers and the accounts it follows; a Group reaches its followers plus
its remote members (who need not follow), with the complete Group document (§2.4).
"""

from __future__ import annotations

from collections.abc import Callable

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

from fediverse_net.activitypub import builders
from fediverse_net.activitypub.documents import JSON, key_id_of
from fediverse_net.db.models import Account, Actor, Follow, PublicKey
from fediverse_net.deps import Deps
from fediverse_net.services import media
from fediverse_net.services.actor_documents import document_for, forget_document
from fediverse_net.services.errors import ServiceError
from fediverse_net.services.groups.core import audience
from fediverse_net.services.groups.documents import group_document
from fediverse_net.services.local_actors import new_key_pair
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.urls import new_token

_AFTER_COMMIT = "_fedinet_after_commit"


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current task's transaction has committed; at once outside one.

    Tortoise has no commit hooks, so the outermost transaction client of this task gets a
    `commit` that runs the callbacks after the real one. On rollback they never run, which is
    right for cache invalidation: nothing changed.
    """
    client = connections.get("default")
    while isinstance(getattr(client, "_parent", None), TransactionalDBClient):
        client = client._parent  # a savepoint: the outer transaction decides
    if not isinstance(client, TransactionalDBClient) or client._finalized:
        callback()
        return
    callbacks: list[Callable[[], None]] | None = getattr(client, _AFTER_COMMIT, None)
    if callbacks is None:
        callbacks = []
        setattr(client, _AFTER_COMMIT, callbacks)
        commit = client.commit

        async def commit_then_run() -> None:
            await commit()
            for run in callbacks:
                run()

        setattr(client, "commit", commit_then_run)  # noqa: B010 - an instance override
    callbacks.append(callback)


def forget_changed(deps: Deps, actor: Actor) -> None:
    """Forget the cached documents of `actor` now and again once its change is committed.

    Called inside the transaction that changes the actor: a GET that reads the old rows before
    the commit (another connection still sees them) may cache them; the second forget drops that.
    """
    forget_document(deps, actor)
    after_commit(lambda: forget_document(deps, actor))


async def contacts(actor: Actor) -> list[Actor]:
    """Everyone who may have cached this actor: followers and the accounts it follows."""
    rows = await Follow.filter(followee=actor).select_related("follower")
    rows += await Follow.filter(follower=actor).select_related("followee")
    seen: dict[int, Actor] = {}
    for row in rows:
        other = row.follower if row.followee_id == actor.id else row.followee
        seen.setdefault(other.id, other)
    return list(seen.values())


def _is_local_group(actor: Actor) -> bool:
    return actor.local and actor.type == "Group"


async def reach(actor: Actor) -> list[Actor]:
    """Who gets an `Update` of this actor: its contacts, and for a group also its members."""
    recipients = await contacts(actor)
    if _is_local_group(actor):
        remote_members = [other for other in await audience(actor, members_only=True) if not other.local]
        by_id = {other.id: other for other in [*recipients, *remote_members]}
        recipients = list(by_id.values())
    return recipients


async def current_document(actor: Actor, deps: Deps) -> JSON:
    """The complete actor document as served at its id (the Group document for a group)."""
    if _is_local_group(actor):
        return await group_document(actor, deps.urls)
    return await document_for(actor, deps.urls)


async def announce_update(
    deps: Deps,
    actor: Actor,
    *,
    signing_key_pem: str | None = None,
    extra: JSON | None = None,
) -> None:
    """Send `Update{actor}` (the complete current document, plus `extra`) to everyone it reaches.

    Call it inside the transaction that changed the actor: the activity and its deliveries are
    written with the change or not at all. The cached documents are forgotten when it commits.
    """
    forget_changed(deps, actor)
    document = await current_document(actor, deps)
    document.update(extra or {})
    activity = builders.update_actor(id=f"{actor.ap_id}#updates/{new_token()}", actor_document=document)
    await record_outgoing(
        deps,
        actor=actor,
        activity=activity,
        recipients=await reach(actor),
        signing_key_pem=signing_key_pem,
    )


async def rotate_key(deps: Deps, actor: Actor) -> None:
    """New key pair under the same key id, announced with an Update signed by the old key."""
    if not actor.local or not actor.private_key_pem:
        raise ServiceError("only local actors have keys to rotate")
    old_private = actor.private_key_pem
    keys = await new_key_pair()
    async with in_transaction():
        actor.private_key_pem = keys.private_pem
        await actor.save(update_fields=["private_key_pem", "updated_at"])
        await PublicKey.filter(key_id=key_id_of(actor.ap_id)).update(pem=keys.public_pem)
        await announce_update(deps, actor, signing_key_pem=old_private)
    # Committed: no one may be served the old key from our caches (also done by the hook above).
    forget_document(deps, actor)


async def delete_member(deps: Deps, account: Account) -> None:
    """Delete a member: `Delete{actor}` to every contact, then 410 on the actor, inbox, WebFinger.

    The key is kept so the queued deliveries can still be signed; follows, the login and the
    uploaded pictures go.
    """
    actor = await account.actor
    recipients = await contacts(actor)
    activity = builders.delete(id=f"{actor.ap_id}#delete", actor=actor.ap_id, object_id=actor.ap_id)
    async with in_transaction():
        forget_changed(deps, actor)
        await record_outgoing(deps, actor=actor, activity=activity, recipients=recipients)
        await Follow.filter(follower=actor).delete()
        await Follow.filter(followee=actor).delete()
        pictures = mark_deleted(deps, actor)
        await actor.save(update_fields=["deleted_at", "updated_at", "avatar_url", "header_url"])
        await account.delete()
    forget_document(deps, actor)
    await media.forget_unused(deps.settings, *pictures)


def mark_deleted(deps: Deps, actor: Actor) -> tuple[str | None, str | None]:
    """Mark a local actor deleted and drop its pictures; returns the old picture URLs (to forget
    the files once the deletion is committed: `media.forget_unused`)."""
    pictures = (actor.avatar_url, actor.header_url)
    actor.deleted_at = deps.clock()
    actor.avatar_url = actor.header_url = None
    return pictures
