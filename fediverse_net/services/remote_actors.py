"""Remote actors and keys: resolve by id or handle, cache, refresh, and the signature key lookup.

Every fetch is signed by the instance actor (authorized-fetch servers demand it). Remote data
never overwrites a local actor, and keys are only ever registered for remote ids (§6.2).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urldefrag

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from fediverse_net.activitypub.actors import RemoteActorData, parse_actor
from fediverse_net.activitypub.documents import key_id_of
from fediverse_net.activitypub.errors import (
    FetchError,
    KeyFetchError,
    KeyFetchUnavailable,
    ObjectGone,
    ProtocolError,
    UnsafeURL,
)
from fediverse_net.activitypub.keys import SigningKey, load_private_key, load_public_key
from fediverse_net.activitypub.parse import JSON, same_origin
from fediverse_net.activitypub.sanitize import clean_name, sanitize_html
from fediverse_net.activitypub.signatures import KeyLookup, PublicKeyInfo
from fediverse_net.activitypub.vocab import ACTOR_TYPES
from fediverse_net.db.models import Actor, Follow, PublicKey
from fediverse_net.deps import Deps
from fediverse_net.logs import event
from fediverse_net.services.errors import NotFound, ServiceError
from fediverse_net.services.moderation import policy_for

log = logging.getLogger("fediverse_net.federation")
STALE_AFTER = timedelta(days=1)  # Mastodon's STALE_THRESHOLD
KEY_REFRESH_COOLDOWN = 300.0  # one refetch per key per 5 minutes (security matrix row 2)
# Parsed keys by key id: a verified inbox POST then costs no key query (benchmark B3).
KEY_CACHE = "public_keys"
KEY_CACHE_TTL = 60.0  # bounds how long another process may trust a rotated-away key


def signing_key_for(actor: Actor) -> SigningKey:
    """The key a local actor signs with (parsed PEMs are cached by `load_private_key`)."""
    if not actor.private_key_pem:
        raise ValueError(f"{actor.ap_id} is not a local actor with a key")
    return SigningKey(key_id=key_id_of(actor.ap_id), private_key=load_private_key(actor.private_key_pem))


async def instance_signing_key(deps: Deps) -> SigningKey:
    cached = deps.caches.get("instance_key")
    if isinstance(cached, SigningKey):
        return cached
    actor = await Actor.get(ap_id=deps.urls.instance_actor)
    key = signing_key_for(actor)
    deps.caches["instance_key"] = key
    return key


async def upsert_remote_actor(deps: Deps, data: RemoteActorData) -> Actor:
    """Insert or refresh a remote actor and its keys. Local ids are refused (never overwritten)."""
    if deps.urls.is_local(data.ap_id):
        raise ProtocolError("remote data may not describe a local actor")
    values: dict[str, Any] = {
        "type": data.type,
        "username": data.username,
        "domain": data.domain,
        "name": clean_name(data.name),
        "summary": sanitize_html(data.summary_html),
        "url": data.url,
        "inbox_url": data.inbox,
        "shared_inbox_url": data.shared_inbox,
        "outbox_url": data.outbox,
        "followers_url": data.followers,
        "following_url": data.following,
        "manually_approves_followers": data.manually_approves_followers,
        "discoverable": data.discoverable,
        "indexable": data.indexable,
        "avatar_url": data.avatar_url,
        "header_url": data.header_url,
        "fetched_at": deps.clock(),
    }
    policy = await policy_for(deps, data.ap_id)
    if policy is not None and policy.reject_media:  # domain policy: never show their pictures
        values["avatar_url"] = values["header_url"] = None
    async with in_transaction():
        actor = await Actor.filter(ap_id=data.ap_id).first()
        if actor is None:
            try:
                # A savepoint: on PostgreSQL a failed INSERT would abort the whole transaction,
                # and two first contacts from a new actor arrive at the same moment.
                async with in_transaction():
                    actor = await Actor.create(ap_id=data.ap_id, local=False, **values)
            except IntegrityError:  # created concurrently
                actor = await Actor.get(ap_id=data.ap_id)
        else:
            await Actor.filter(id=actor.id).update(**values)
            await actor.refresh_from_db()
        keys = deps.cache(KEY_CACHE, KEY_CACHE_TTL)
        if data.keys:  # keys the actor no longer publishes stop verifying (revocation)
            stale = PublicKey.filter(actor=actor).exclude(key_id__in=[k.key_id for k in data.keys])
            for key_id in await stale.values_list("key_id", flat=True):
                keys.pop(key_id)
            await stale.delete()
        for key in data.keys:
            keys.pop(key.key_id)
            updated = await PublicKey.filter(key_id=key.key_id, actor=actor).update(pem=key.pem)
            if not updated and not await PublicKey.filter(key_id=key.key_id).exists():
                try:
                    async with in_transaction():
                        await PublicKey.create(key_id=key.key_id, actor=actor, pem=key.pem)
                except IntegrityError:  # stored concurrently by another request
                    pass
    return actor


async def _fetch(deps: Deps, url: str, *, expect_id: bool = True) -> JSON:
    key = await instance_signing_key(deps)
    return await deps.http().fetch_object(url, sign_as=key, expect_id=expect_id)


async def mark_gone(actor: Actor, now: Any) -> None:
    """The remote actor was deleted (410): drop its follows both ways, keep a tombstoned row."""
    async with in_transaction():
        await Follow.filter(follower=actor).delete()
        await Follow.filter(followee=actor).delete()
        await Actor.filter(id=actor.id).update(deleted_at=now)


def is_fresh(actor: Actor, now: datetime) -> bool:
    """A stored remote actor recent enough to use without fetching it again (`STALE_AFTER`)."""
    return actor.fetched_at is not None and now - actor.fetched_at < STALE_AFTER


async def resolve_actor(deps: Deps, ap_id: str, *, refresh: bool = False) -> Actor:
    """A known actor from the DB (local or fresh remote), else fetched and stored.

    Raises NotFound when it cannot be had; ObjectGone marks the stored copy deleted.
    """
    actor = await Actor.filter(ap_id=ap_id).first()
    if actor is not None and (actor.local or actor.deleted_at is not None):
        if actor.deleted_at is not None:
            raise NotFound("that account was deleted")
        return actor
    if actor is not None and not refresh and is_fresh(actor, deps.clock()):
        return actor
    if deps.urls.is_local(ap_id):
        raise NotFound("no such local actor")
    try:
        document = await _fetch(deps, ap_id)
        data = parse_actor(document, expected_id=ap_id)
    except ObjectGone:
        if actor is not None:
            await mark_gone(actor, deps.clock())
        raise NotFound("that account was deleted") from None
    except (FetchError, ProtocolError, UnsafeURL) as exc:
        if actor is not None:  # keep using the stale copy rather than failing
            return actor
        raise NotFound(f"could not fetch {ap_id[:200]}: {exc}") from exc
    actor = await upsert_remote_actor(deps, data)
    event(log, "actor fetched", actor=actor.ap_id, type=actor.type)
    return actor


def split_handle(handle: str) -> tuple[str, str]:
    value = handle.strip().removeprefix("acct:").lstrip("@")
    user, sep, domain = value.partition("@")
    if not sep or not user or not domain or "@" in domain or "/" in domain:
        raise ServiceError("Enter a handle like @name@example.social")
    return user, domain.lower()


async def resolve_handle(deps: Deps, handle: str) -> Actor:
    """`@user@domain` → actor: local handles directly, remote ones via WebFinger then the actor."""
    user, domain = split_handle(handle)
    if domain == deps.settings.domain:
        actor = await Actor.filter(handle=user.lower(), local=True, deleted_at=None).first()
        if actor is None:
            raise NotFound(f"No one here is called @{user}.")
        return actor
    try:
        actor_id = await deps.http().webfinger(f"{user}@{domain}")
    except (FetchError, ProtocolError, UnsafeURL) as exc:
        raise NotFound(f"Could not find @{user}@{domain}: {exc}") from exc
    return await resolve_actor(deps, actor_id)


def key_lookup(deps: Deps) -> KeyLookup:
    """The `(key_id, refresh) -> PublicKeyInfo` callable signature verification uses.

    Cached keys come from the DB (parsed keys are memoised by PEM). A refresh refetches the
    key's document at most once per key per 5 minutes.
    """

    cache = deps.cache(KEY_CACHE, KEY_CACHE_TTL)

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        if refresh:
            cache.pop(key_id)
        else:
            if (cached := cache.get(key_id)) is not None:
                return cached  # type: ignore[no-any-return]
            row = await PublicKey.filter(key_id=key_id).select_related("actor").first()
            if row is not None and row.actor.deleted_at is None:
                info = PublicKeyInfo(
                    key_id=key_id, owner=row.actor.ap_id, public_key=load_public_key(row.pem)
                )
                cache.put(key_id, info)
                return info
        if deps.urls.is_local(key_id):
            raise KeyFetchError("unknown local key")
        throttle: dict[str, float] = deps.caches.setdefault("key_refresh", {})
        now = time.monotonic()
        if refresh and now - throttle.get(key_id, -KEY_REFRESH_COOLDOWN) < KEY_REFRESH_COOLDOWN:
            raise KeyFetchError("key was refreshed recently; not fetching it again")
        throttle[key_id] = now
        if len(throttle) > 10_000:
            throttle.clear()
        return await _fetch_key(deps, key_id)

    return lookup


async def _fetch_key(deps: Deps, key_id: str) -> PublicKeyInfo:
    url, _ = urldefrag(key_id)
    try:
        document = await _fetch(deps, url, expect_id=False)
    except (ObjectGone, UnsafeURL) as exc:
        raise KeyFetchError(f"key {key_id[:200]} cannot be fetched: {exc}") from exc
    except FetchError as exc:
        if exc.status is None or exc.status >= 500 or exc.status == 429:
            raise KeyFetchUnavailable(f"key server unavailable: {exc}") from exc
        raise KeyFetchError(f"key {key_id[:200]} cannot be fetched: {exc}") from exc
    except ProtocolError as exc:
        raise KeyFetchError(f"key document unusable: {exc}") from exc
    owner_id = document.get("id") if document.get("type") in ACTOR_TYPES else document.get("owner")
    if not isinstance(owner_id, str) or not same_origin(owner_id, key_id):
        raise KeyFetchError("key owner missing or on another origin")
    if document.get("type") in ACTOR_TYPES and document.get("id") == url:
        # The usual case: keyId = actor#main-key, the actor document is what we got.
        try:
            actor = await upsert_remote_actor(deps, parse_actor(document, expected_id=url))
        except ProtocolError as exc:
            raise KeyFetchError(f"signer's actor document unusable: {exc}") from exc
    else:
        # A key document (owner) or GoToSocial's stub actor at …/main-key: fetch the owner
        # itself and require that it lists this key (reciprocal claim, protocol §3.6).
        # resolve_actor stores exactly the keys the owner's own document lists.
        try:
            actor = await resolve_actor(deps, owner_id, refresh=True)
        except NotFound as exc:
            raise KeyFetchError(str(exc)) from exc
    row = await PublicKey.filter(key_id=key_id, actor=actor).first()
    if row is None:
        raise KeyFetchError("the signer's actor does not publish this key")
    return PublicKeyInfo(key_id=key_id, owner=actor.ap_id, public_key=load_public_key(row.pem))
