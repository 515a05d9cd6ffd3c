"""Service tests. Small factories for actors and follows shared by the outbox/delivery tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fediverse_net.config import Settings
from fediverse_net.db.models import Actor, Follow
from fediverse_net.urls import new_token
from tests.fakes.fediverse import test_keypair

_numbers = itertools.count(1)


@dataclass
class Clock:
    """A hand-moved clock for `Deps.clock`."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: Any) -> datetime:
        self.now += timedelta(**delta)
        return self.now


async def local_actor(settings: Settings, handle: str | None = None, **fields: Any) -> Actor:
    handle = handle or f"local{next(_numbers)}"
    ap_id = f"{settings.origin}/users/{handle}"
    values: dict[str, Any] = {
        "ap_id": ap_id,
        "type": "Person",
        "local": True,
        "username": handle,
        "handle": handle,
        "domain": settings.domain,
        "inbox_url": f"{ap_id}/inbox",
        "shared_inbox_url": f"{settings.origin}/inbox",
        "followers_url": f"{ap_id}/followers",
        "private_key_pem": test_keypair(0)[0],
    }
    values.update(fields)
    return await Actor.create(**values)


async def remote_actor(
    host: str = "mastodon.example",
    username: str | None = None,
    *,
    shared: bool = True,
    scheme: str = "https",
    **fields: Any,
) -> Actor:
    username = username or f"user{next(_numbers)}"
    ap_id = f"{scheme}://{host}/users/{username}"
    values: dict[str, Any] = {
        "ap_id": ap_id,
        "type": "Person",
        "local": False,
        "username": username,
        "domain": host,
        "inbox_url": f"{ap_id}/inbox",
        "shared_inbox_url": f"{scheme}://{host}/inbox" if shared else None,
    }
    values.update(fields)
    return await Actor.create(**values)


async def follow(follower: Actor, followee: Actor, state: str = "accepted") -> Follow:
    return await Follow.create(follower=follower, followee=followee, state=state)


def note_activity(actor: Actor, *, kind: str = "Create", **extra: Any) -> dict[str, Any]:
    """A minimal activity by `actor` with a fresh id (public unless `to` is given)."""
    token = new_token()
    origin = actor.ap_id.split("/users/")[0]
    activity: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{origin}/activities/{token}",
        "type": kind,
        "actor": actor.ap_id,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": f"{origin}/notes/{token}",
            "type": "Note",
            "attributedTo": actor.ap_id,
            "content": "hello",
        },
    }
    activity.update(extra)
    return activity
