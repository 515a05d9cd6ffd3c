"""What members do on the web pages: sign up, log in, edit their profile, read their home
timeline; and what admins do with pending sign-ups.

Every limit is checked here and refused with a message fit for the form (ServiceError), never
truncated silently. The web layer only adapts forms to these calls.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from fediverse_net.activitypub.sanitize import clean_name
from fediverse_net.config import Settings
from fediverse_net.db.models import Account, Actor, Note, PublicKey
from fediverse_net.deps import Deps
from fediverse_net.services import actor_lifecycle, media, timeline
from fediverse_net.services.errors import Forbidden, NotFound, ServiceError
from fediverse_net.services.markup import render_markdown
from fediverse_net.services.members import NewMember, authenticate, create_member

MAX_DISPLAY_NAME = 100
MAX_BIO = 2000
MAX_APPLICATION = 2000
MAX_INTERESTS = 10
MAX_INTEREST = 30
MAX_AVATAR_URL = 512
TIMELINE_PAGE = 20
WRONG_CREDENTIALS = "Wrong handle or password."
PENDING = "Your request to join is waiting for an admin."
_SPACES = re.compile(r"\s+")


def _one_line(text: str) -> str:
    """Stripped text without control, bidi-override or zero-width characters, single spaces."""
    return clean_name(text, limit=10_000)


def _check_length(label: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise ServiceError(f"{label} is too long: at most {limit} characters, you wrote {len(value)}.")


# --- accounts -------------------------------------------------------------------------------------


async def active_account(account_id: int) -> Account | None:
    """The account behind a session: approved, its actor neither deleted nor suspended."""
    return (
        await Account.filter(id=account_id, approved=True, actor__deleted_at=None, actor__suspended=False)
        .select_related("actor")
        .first()
    )


@dataclass(frozen=True, slots=True)
class SignUp:
    handle: str
    password: str
    display_name: str = ""
    reason: str = ""  # the answer to "Why do you want to join?" (approval mode)


async def sign_up(settings: Settings, form: SignUp) -> Account:
    """Create a member as the registration mode says: open → approved, approval → pending.

    Closed registrations raise Forbidden. A taken handle (any case) raises Conflict, and
    nothing is created.
    """
    mode = settings.registration_mode
    if mode == "closed":
        raise Forbidden("Sign-ups are closed on this server.")
    display_name = _one_line(form.display_name)
    _check_length("The display name", display_name, MAX_DISPLAY_NAME)
    reason = form.reason.strip()
    if mode == "approval":
        if not reason:
            raise ServiceError("Please tell the admins why you want to join.")
        _check_length("Your answer", reason, MAX_APPLICATION)
    new = NewMember(
        handle=form.handle,
        password=form.password,
        display_name=display_name,
        approved=mode == "open",
        application_text=reason if mode == "approval" else "",
    )
    account = await create_member(settings, new)
    await account.fetch_related("actor")
    return account


async def log_in(handle: str, password: str) -> Account:
    """The account for these credentials, or ServiceError.

    A wrong password and an unknown handle get the same message (and cost the same time). A
    pending account is told so only once the password is right.
    """
    account = await authenticate(handle, password)
    if account is None or account.actor.suspended:
        raise ServiceError(WRONG_CREDENTIALS)
    if not account.approved:
        raise ServiceError(PENDING)
    return account


# --- profiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    actor: Actor
    interests: list[str]


async def public_profile(handle: str) -> Profile:
    """A local member's public profile; NotFound for unknown, pending, suspended or deleted ones."""
    account = (
        await Account.filter(
            actor__handle=handle.lower(), approved=True, actor__deleted_at=None, actor__suspended=False
        )
        .select_related("actor")
        .first()
    )
    if account is None:
        raise NotFound("There is no member with this handle here.")
    return Profile(actor=account.actor, interests=list(account.interests or []))


@dataclass(frozen=True, slots=True)
class ProfileInput:
    display_name: str = ""
    bio: str = ""  # Markdown source
    interests: str = ""  # comma-separated
    avatar_url: str = ""
    discoverable: bool = False
    indexable: bool = False  # public posts may be indexed by search (Mastodon's `indexable`)
    manually_approves_followers: bool = False
    avatar_upload: bytes | None = None  # an uploaded picture; replaces `avatar_url` when given


def profile_input(account: Account) -> ProfileInput:
    """The profile form as currently saved (the bio as its Markdown source)."""
    actor = account.actor
    document = actor.document if isinstance(actor.document, dict) else {}
    return ProfileInput(
        display_name=actor.name,
        bio=str(document.get("bio_source", "")),
        interests=", ".join(account.interests or []),
        avatar_url=actor.avatar_url or "",
        discoverable=actor.discoverable,
        indexable=actor.indexable,
        manually_approves_followers=actor.manually_approves_followers,
    )


def normalise_interests(raw: str) -> list[str]:
    """Comma-separated tags: trimmed, `#` dropped, lower-cased, de-duplicated, order kept."""
    tags: list[str] = []
    for part in raw.split(","):
        tag = _one_line(part).lstrip("#").strip().lower()
        if not tag or tag in tags:
            continue
        _check_length(f"The interest {tag[:40]!r}", tag, MAX_INTEREST)
        tags.append(tag)
    if len(tags) > MAX_INTERESTS:
        raise ServiceError(f"Please list at most {MAX_INTERESTS} interests, you listed {len(tags)}.")
    return tags


def check_avatar_url(raw: str) -> str | None:
    """An http(s) URL of at most 512 characters, or None when empty."""
    url = raw.strip()
    if not url:
        return None
    _check_length("The picture address", url, MAX_AVATAR_URL)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url)
    ):
        raise ServiceError("The picture address must be a web address starting with https:// or http://.")
    return url


@dataclass(slots=True)
class _Changes:
    name: str
    summary: str
    bio_source: str
    interests: list[str] = field(default_factory=list)
    avatar_url: str | None = None


def _validate(form: ProfileInput) -> _Changes:
    name = _one_line(form.display_name)
    _check_length("The display name", name, MAX_DISPLAY_NAME)
    bio = form.bio.replace("\r\n", "\n").strip()
    _check_length("The bio", bio, MAX_BIO)
    return _Changes(
        name=name,
        summary=render_markdown(bio),
        bio_source=bio,
        interests=normalise_interests(form.interests),
        avatar_url=check_avatar_url(form.avatar_url),
    )


async def update_profile(deps: Deps, account: Account, form: ProfileInput) -> Actor:
    """Validate and save the profile; the bio is stored as sanitized HTML in `Actor.summary` and
    its Markdown source in `Actor.document["bio_source"]` (local actors have no fetched document).

    The `Update{Person}` to followers and followed accounts is queued in the same transaction
    (`actor_lifecycle.announce_update`), so remote copies of the profile follow the change.

    An uploaded picture (`avatar_upload`) is checked, cleaned and stored first (media.MediaRejected:
    nothing saved); its URL on this server becomes the avatar. Whether the save succeeds or not,
    the replaced or the just-stored file is deleted once no actor refers to it.
    """
    changes = _validate(form)
    async with media.replacing_avatar(
        deps.settings, account.actor.avatar_url, form.avatar_upload
    ) as uploaded:
        if uploaded is not None:
            changes.avatar_url = uploaded
        return await _save_profile(deps, account, form, changes)


async def _save_profile(deps: Deps, account: Account, form: ProfileInput, changes: _Changes) -> Actor:
    actor = account.actor
    document = dict(actor.document) if isinstance(actor.document, dict) else {}
    document["bio_source"] = changes.bio_source
    actor.name = changes.name
    actor.summary = changes.summary
    actor.avatar_url = changes.avatar_url
    actor.discoverable = form.discoverable
    actor.indexable = form.indexable
    actor.manually_approves_followers = form.manually_approves_followers
    actor.document = document
    account.interests = changes.interests
    async with in_transaction():
        await actor.save(
            update_fields=[
                "name",
                "summary",
                "avatar_url",
                "discoverable",
                "indexable",
                "manually_approves_followers",
                "document",
                "updated_at",
            ]
        )
        await account.save(update_fields=["interests"])
        await actor_lifecycle.announce_update(deps, actor)
    return actor


# --- admin ------------------------------------------------------------------------------------------


def _require_admin(admin: Account) -> None:
    if not admin.is_admin:
        raise Forbidden("Only admins of this server can do this.")


async def pending_accounts(admin: Account) -> list[Account]:
    """Sign-ups waiting for approval, oldest first."""
    _require_admin(admin)
    return (
        await Account.filter(approved=False, actor__deleted_at=None)
        .select_related("actor")
        .order_by("created_at", "id")
    )


async def _pending(account_id: int) -> Account:
    account = await Account.filter(id=account_id, approved=False).select_related("actor").first()
    if account is None:
        raise NotFound("This request was already handled.")
    return account


async def approve_account(admin: Account, account_id: int) -> Account:
    """Let a pending member in; they can log in from now on."""
    _require_admin(admin)
    account = await _pending(account_id)
    account.approved = True
    await account.save(update_fields=["approved"])
    return account


async def reject_account(admin: Account, account_id: int) -> str:
    """Delete a pending account with its actor and keys; the handle becomes free again.

    The actor never posted nor followed anyone (it could not log in), so no Tombstone is kept.
    Returns the rejected handle.
    """
    _require_admin(admin)
    account = await _pending(account_id)
    actor = account.actor
    async with in_transaction():
        await PublicKey.filter(actor_id=actor.id).delete()
        await Account.filter(id=account.id).delete()
        await Actor.filter(id=actor.id).delete()
    return actor.handle or actor.username


# --- home timeline ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelinePage:
    notes: list[Note]
    page: int
    has_next: bool


async def home_timeline(account: Account, page: int = 1) -> TimelinePage:
    """The member's own notes, those of people whose follow was accepted and the public posts of
    groups followed or joined, newest first (`timeline.home_notes`).

    Direct messages of others are left out (they belong in a conversation view), as are notes
    of deleted or suspended authors.
    """
    page = min(max(page, 1), 10_000)
    me = account.actor_id  # type: ignore[attr-defined]
    rows = await timeline.home_notes(me, offset=(page - 1) * TIMELINE_PAGE, limit=TIMELINE_PAGE + 1)
    return TimelinePage(notes=rows[:TIMELINE_PAGE], page=page, has_next=len(rows) > TIMELINE_PAGE)
