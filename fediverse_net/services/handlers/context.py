"""What a handler gets: deps, the stored item, the activity and its (resolved) actor."""

from __future__ import annotations

from dataclasses import dataclass

from fediverse_net.activitypub.parse import JSON
from fediverse_net.db.models import Actor, InboxItem
from fediverse_net.deps import Deps
from fediverse_net.services.errors import NotFound
from fediverse_net.services.remote_actors import resolve_actor


@dataclass(slots=True)
class Incoming:
    deps: Deps
    item: InboxItem
    activity: JSON
    actor: Actor

    @property
    def local(self) -> bool:
        """Delivered in-process by one of our own actors (already trusted)."""
        return self.actor.local

    def is_local_id(self, ap_id: str | None) -> bool:
        return bool(ap_id) and self.deps.urls.is_local(ap_id or "")


async def load(deps: Deps, item: InboxItem) -> Incoming | None:
    try:
        actor = await resolve_actor(deps, item.actor_ap_id)
    except NotFound:
        return None
    if actor.suspended:
        return None
    return Incoming(deps=deps, item=item, activity=item.payload, actor=actor)
