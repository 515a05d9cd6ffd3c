"""Member accounts: handles, passwords, creation (actor + keys + account in one transaction)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from fediverse_net.config import Settings
from fediverse_net.db.models import Account, Actor
from fediverse_net.services.errors import Conflict, ServiceError
from fediverse_net.services.local_actors import create_local_actor, new_key_pair
from fediverse_net.urls import Urls

HANDLE_RE = re.compile(r"[a-z0-9_]{1,30}")
RESERVED_HANDLES = frozenset(
    {
        "admin",
        "actor",
        "inbox",
        "about",
        "login",
        "logout",
        "signup",
        "settings",
        "static",
        "users",
        "groups",
        "notes",
        "activities",
        "nodeinfo",
        "well_known",
        "root",
        "support",
        "instance",
    }
)
MAX_PASSWORD = 1024
MIN_PASSWORD = 8
# argon2id with RFC 9106's second recommended (memory-constrained) profile: 64 MiB, 3 passes.
_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)
# Verified against when the user does not exist, so an unknown name costs the same time.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


def normalise_handle(raw: str) -> str:
    """Lower-cased, stripped handle, or ServiceError with the reason."""
    handle = raw.strip().lstrip("@").lower()
    if not HANDLE_RE.fullmatch(handle):
        raise ServiceError("A handle is 1 to 30 characters: lower-case letters, digits and _.")
    if handle in RESERVED_HANDLES:
        raise ServiceError(f"The handle {handle!r} is reserved.")
    return handle


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ServiceError(f"A password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise ServiceError(f"A password may have at most {MAX_PASSWORD} characters.")


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


@dataclass(frozen=True, slots=True)
class NewMember:
    handle: str
    password: str
    display_name: str = ""
    is_admin: bool = False
    approved: bool = True
    application_text: str = ""


async def handle_taken(handle: str) -> bool:
    return await Actor.filter(handle=handle).exists()


async def create_member(settings: Settings, new: NewMember) -> Account:
    """Create the Person actor, its RSA-2048 key pair and the account in ONE transaction.

    A duplicate handle (checked first, and enforced by the unique index under races) raises
    Conflict; nothing is half-created.
    """
    handle = normalise_handle(new.handle)
    check_password_rules(new.password)
    if await handle_taken(handle):
        raise Conflict(f"The handle {handle!r} is already taken.")
    password_hash = await hash_password(new.password)
    keys = await new_key_pair()
    urls = Urls(settings.origin)
    try:
        async with in_transaction():
            actor = await create_local_actor(
                settings,
                keys,
                ap_id=urls.member(handle),
                type="Person",
                username=handle,
                handle=handle,
                url=urls.member_profile(handle),
                name=new.display_name.strip()[:100],
            )
            account = await Account.create(
                actor=actor,
                password_hash=password_hash,
                is_admin=new.is_admin,
                approved=new.approved,
                application_text=new.application_text[:2000],
            )
    except IntegrityError:
        raise Conflict(f"The handle {handle!r} is already taken.") from None
    return account


async def authenticate(handle: str, password: str) -> Account | None:
    """The account for these credentials, or None. Unknown user and wrong password cost the same."""
    try:
        handle = normalise_handle(handle)
    except ServiceError:
        handle = ""
    account = (
        await Account.filter(actor__handle=handle, actor__deleted_at=None).select_related("actor").first()
    )
    ok = await verify_password(account.password_hash if account else None, password[:MAX_PASSWORD])
    if not ok or account is None:
        return None
    account.last_login_at = datetime.now(UTC)
    await account.save(update_fields=["last_login_at"])
    return account


async def ensure_instance_actor(settings: Settings) -> Actor:
    """The instance actor (`Application`), created with its key on first start."""
    urls = Urls(settings.origin)
    actor = await Actor.filter(ap_id=urls.instance_actor).first()
    if actor is not None:
        return actor
    keys = await new_key_pair()
    try:
        async with in_transaction():
            actor = await create_local_actor(
                settings,
                keys,
                ap_id=urls.instance_actor,
                type="Application",
                username=settings.domain,
                url=f"{settings.origin}/about",
                collections=False,
                manually_approves_followers=True,
            )
    except IntegrityError:  # another worker process created it at the same moment
        return await Actor.get(ap_id=urls.instance_actor)
    return actor
