"""Who gets an outgoing activity: actors -> inbox URLs (protocol.md §4.3, checklist item 33).

* Each remote actor maps to its shared inbox when it has one, else its own inbox; URLs are
  de-duplicated, so one post reaches a Mastodon server once however many followers live there
  (Mastodon `Account.inboxes`: `DISTINCT coalesce(nullif(shared_inbox_url, ''), inbox_url)`).
* Single-recipient control activities (Follow, Accept/Reject, Undo{Follow|Like|Block}, Like,
  Block, Flag) go to the target's **personal** inbox, as Mastodon's follow/favourite/block/report
  services do (`inbox_url`).
* Local actors are dropped: they get the activity in-process (see `services/outbox.py`).
* Hosts marked unavailable (`HostHealth.unavailable`, §4.5) are dropped, except for deliveries that
  bypass availability (Follow requests, as Mastodon's `bypass_availability`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from fediverse_net.activitypub.errors import ProtocolError
from fediverse_net.activitypub.parse import host_of
from fediverse_net.db.models import Actor, HostHealth

PERSONAL_TYPES: Final = frozenset({"Follow", "Accept", "Reject", "Like", "Block", "Flag"})
PERSONAL_UNDONE_TYPES: Final = frozenset({"Follow", "Like", "Block"})
BYPASS_TYPES: Final = frozenset({"Follow"})


def uses_personal_inbox(activity: Mapping[str, Any]) -> bool:
    """True for the single-recipient control activities that go to the personal inbox (§4.3 item 3)."""
    kind = activity.get("type")
    if kind in PERSONAL_TYPES:
        return True
    if kind == "Undo":
        inner = activity.get("object")
        return isinstance(inner, Mapping) and inner.get("type") in PERSONAL_UNDONE_TYPES
    return False


def bypasses_availability(activity: Mapping[str, Any]) -> bool:
    """Follow requests are sent even to hosts marked unavailable (Mastodon `bypass_availability`)."""
    return activity.get("type") in BYPASS_TYPES


def safe_host(url: str) -> str | None:
    """host[:port] of an http(s) URL, or None when it has no usable host."""
    if not url.startswith(("https://", "http://")):
        return None
    try:
        return host_of(url)
    except (ProtocolError, ValueError):
        return None


def inbox_urls(actors: Iterable[Actor], *, personal: bool = False) -> list[str]:
    """Remote actors' delivery inboxes, de-duplicated in first-seen order; local actors dropped."""
    seen: dict[str, None] = {}
    for actor in actors:
        if actor.local or actor.deleted_at is not None:
            continue
        url = actor.inbox_url if personal else actor.delivery_inbox
        if url and safe_host(url) is not None:
            seen.setdefault(url, None)
    return list(seen)


async def unavailable_hosts(hosts: Iterable[str]) -> set[str]:
    """The subset of `hosts` marked unavailable (7 failure days without a success)."""
    wanted = set(hosts)
    if not wanted:
        return set()
    rows = await HostHealth.filter(host__in=wanted, unavailable=True).values_list("host", flat=True)
    return {str(host) for host in rows}


async def filter_available(urls: Iterable[str], *, bypass_availability: bool = False) -> list[str]:
    """Drop URLs without a host and, unless bypassed, URLs on unavailable hosts; de-duplicate."""
    by_url = {url: host for url in urls if (host := safe_host(url)) is not None}
    if bypass_availability:
        return list(by_url)
    dead = await unavailable_hosts(by_url.values())
    return [url for url, host in by_url.items() if host not in dead]


async def inboxes_for(
    actors: Iterable[Actor], *, personal: bool = False, bypass_availability: bool = False
) -> list[str]:
    """Delivery inboxes for remote `actors` (shared or personal), minus unavailable hosts."""
    return await filter_available(
        inbox_urls(actors, personal=personal), bypass_availability=bypass_availability
    )


async def follower_actors(actor: Actor) -> list[Actor]:
    """Actors with an accepted Follow of `actor` (local and remote; not deleted, not suspended)."""
    return await Actor.filter(
        following_rel__followee_id=actor.id,
        following_rel__state="accepted",
        deleted_at=None,
        suspended=False,
    ).distinct()


async def follower_inboxes(actor: Actor) -> list[str]:
    """The shared/personal inboxes of `actor`'s remote followers, straight from the database.

    The cheap path for big fan-outs (no Actor objects or JSON documents are built).
    """
    rows = await Actor.filter(
        following_rel__followee_id=actor.id,
        following_rel__state="accepted",
        local=False,
        deleted_at=None,
        suspended=False,
    ).values_list("shared_inbox_url", "inbox_url")
    seen: dict[str, None] = {}
    for shared, personal in rows:
        url = shared or personal
        if url:
            seen.setdefault(str(url), None)
    return list(seen)
