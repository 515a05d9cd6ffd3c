"""What a handler gets: deps, the stored item, the activity and its (resolved) actor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fediverse_net.activitypub.parse import JSON, get_id, get_type
from fediverse_net.db.models import Actor, ActorBlock, Follow, InboxItem, Tombstone
from fediverse_net.deps import Deps
from fediverse_net.services.errors import NotFound
from fediverse_net.services.moderation import ALLOWED_WHEN_SUSPENDED
from fediverse_net.services.remote_actors import is_fresh, resolve_actor

# Activities after which the actor's row may have changed (profile, keys, deletion): the next
# item of the same actor reads it again instead of using the batch's copy.
CHANGES_ACTOR = frozenset({"Update", "Delete", "Move"})
# Activities that cannot change whether one of ours follows their actor.
KEEPS_FOLLOWS = frozenset({"Create", "Follow", "Announce", "Like", "Flag"})


@dataclass(slots=True)
class Incoming:
    deps: Deps
    item: InboxItem
    activity: JSON
    actor: Actor
    batch: Batch | None = None

    @property
    def local(self) -> bool:
        """Delivered in-process by one of our own actors (already trusted)."""
        return self.actor.local

    def is_local_id(self, ap_id: str | None) -> bool:
        return bool(ap_id) and self.deps.urls.is_local(ap_id or "")


@dataclass(slots=True)
class Batch:
    """What the inbox worker reads once for a claimed batch instead of once per item.

    * `actors`: the batch's actors that `resolve_actor` would return without fetching (local,
      or remote and fresh, and not deleted).
    * `blocks_exist`: whether any member block exists at all (when none does, the block checks
      need no query per item).
    * `local_targets`: local, not deleted actors named as the `object` of the batch's Follows
      (a name asked for and absent: no such local actor).
    * `followed`: for the batch's Create actors, whether one of ours follows them (accepted).
    * `tombstoned`: which of the batch's Create object ids are tombstoned (None once a Delete
      of the batch was applied: ask the database again).

    Each answer is dropped when an applied item may have changed it (`applied`).
    """

    actors: dict[str, Actor] = field(default_factory=dict)
    blocks_exist: bool = True
    local_targets: dict[str, Actor | None] = field(default_factory=dict)
    followed: dict[str, bool] = field(default_factory=dict)
    tombstoned: dict[str, bool] | None = field(default_factory=dict)

    def applied(self, item: InboxItem) -> None:
        """Forget what `item` may have changed."""
        if item.type in CHANGES_ACTOR:
            self.actors.pop(item.actor_ap_id, None)
        if item.type not in KEEPS_FOLLOWS:
            self.followed.pop(item.actor_ap_id, None)
        if item.type == "Block":
            self.blocks_exist = True
        if item.type == "Delete":
            self.tombstoned = None


async def preload(deps: Deps, items: Iterable[InboxItem]) -> Batch:
    items = list(items)
    ids = list({item.actor_ap_id for item in items})
    now = deps.clock()
    batch = Batch(blocks_exist=await ActorBlock.exists())
    if ids:
        for actor in await Actor.filter(ap_id__in=ids, deleted_at=None):
            if actor.local or is_fresh(actor, now):
                batch.actors[actor.ap_id] = actor
    targets = {
        target
        for item in items
        if item.type == "Follow"
        and (target := get_id(item.payload.get("object")))
        and deps.urls.is_local(target)
    }
    if targets:
        batch.local_targets = dict.fromkeys(targets)
        for actor in await Actor.filter(ap_id__in=list(targets), local=True, deleted_at=None):
            batch.local_targets[actor.ap_id] = actor
    creates = [item for item in items if item.type == "Create"]
    authors = [batch.actors[i.actor_ap_id] for i in creates if i.actor_ap_id in batch.actors]
    if authors:
        batch.followed = {a.ap_id: False for a in authors if not a.local}
        followed = await Follow.filter(
            followee_id__in=[a.id for a in authors], follower__local=True, state="accepted"
        ).values_list("followee_id", flat=True)
        by_id = {a.id: a.ap_id for a in authors}
        for followee_id in followed:
            if (ap_id := by_id.get(int(str(followee_id)))) in batch.followed:
                batch.followed[ap_id] = True
    objects = {
        object_id
        for item in creates
        if isinstance(obj := item.payload.get("object"), dict)
        and get_type(obj)
        and (object_id := get_id(obj))
    }
    if objects:
        batch.tombstoned = dict.fromkeys(objects, False)
        for row in await Tombstone.filter(ap_id__in=list(objects)).values("ap_id"):
            batch.tombstoned[str(row["ap_id"])] = True
    return batch


async def load(deps: Deps, item: InboxItem, batch: Batch | None = None) -> Incoming | None:
    """The item's actor, or None when the item must be dropped (actor gone, or suspended).

    A suspended actor's Delete / Undo / Reject / Update still apply: they only clean up after
    it (its notes go, its follows end), which is why the inbox let them through (Mastodon does
    the same).
    """
    actor = batch.actors.get(item.actor_ap_id) if batch is not None else None
    if actor is None:
        try:
            actor = await resolve_actor(deps, item.actor_ap_id)
        except NotFound:
            return None
    if actor.suspended and item.type not in ALLOWED_WHEN_SUSPENDED:
        return None
    return Incoming(deps=deps, item=item, activity=item.payload, actor=actor, batch=batch)
