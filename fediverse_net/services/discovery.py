"""Finding our own actors by WebFinger resource or URL, and NodeInfo figures."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote

from fediverse_net.activitypub.documents import NodeUsage
from fediverse_net.config import Settings
from fediverse_net.db.models import Account, Actor, Note
from fediverse_net.deps import utcnow
from fediverse_net.services.errors import NotFound, ServiceError

# Encoded WebFinger answers by resource for 60 s (benchmark B2); cleared whenever a local actor changes
# (`actor_documents.forget_document`).
WEBFINGER_CACHE = "webfinger"
WEBFINGER_TTL = 60.0


class Gone(ServiceError):
    """The actor existed and was deleted: WebFinger and actor URLs answer 410."""


def _split_acct(resource: str) -> tuple[str, str] | None:
    value = resource.strip()
    if value.lower().startswith("acct:"):
        value = value[5:]
    value = value.lstrip("@")
    if value.count("@") != 1:
        return None
    user, domain = value.split("@")
    if not user or not domain:
        return None
    return user, domain


async def actor_for_resource(settings: Settings, resource: str) -> Actor:
    """Map a WebFinger `resource` (acct:, bare handle, actor id, profile URL) to a local actor.

    Raises ValueError for a malformed resource (400), NotFound (404), Gone (410).
    """
    resource = unquote(resource).strip() if "%" in resource else resource.strip()
    if not resource or len(resource) > 512:
        raise ValueError("malformed resource")
    origin = settings.origin
    if resource.lower().startswith(("http://", "https://")):
        lowered = resource.lower()
        if lowered in {f"{origin}/actor", origin, f"{origin}/"}:
            return await _by(ap_id=f"{origin}/actor")
        for prefix in (f"{origin}/users/", f"{origin}/@", f"{origin}/groups/", f"{origin}/g/"):
            if lowered.startswith(prefix):
                return await _by(handle=lowered[len(prefix) :].strip("/"))
        raise NotFound("not one of our actors")
    parts = _split_acct(resource)
    if parts is None:
        raise ValueError("malformed resource")
    user, domain = parts[0].lower(), parts[1].lower()
    if domain != settings.domain:  # one spelling of our host, port included
        raise NotFound("not our domain")
    if user == settings.domain:
        return await _by(ap_id=f"{origin}/actor")
    return await _by(handle=user)


async def _by(**filters: str) -> Actor:
    actor = await Actor.filter(local=True, **filters).first()
    if actor is None:
        raise NotFound("no such actor")
    if actor.deleted_at is not None:
        raise Gone("deleted")
    if actor.type == "Person" and await Account.filter(actor=actor, approved=False).exists():
        raise NotFound("no such actor")  # a sign-up waiting for approval is not public yet
    return actor


async def local_actor(handle: str, *, type_: str | None = None) -> Actor:
    """A local actor by handle, for actor URLs; Gone if deleted."""
    actor = await _by(handle=handle.lower())
    if type_ and actor.type != type_:
        raise NotFound("no such actor")
    return actor


async def node_usage() -> NodeUsage:
    now = utcnow()
    total = await Account.filter(approved=True, actor__deleted_at=None).count()
    month = await Account.filter(approved=True, last_login_at__gte=now - timedelta(days=30)).count()
    halfyear = await Account.filter(approved=True, last_login_at__gte=now - timedelta(days=180)).count()
    posts = await Note.filter(local=True).count()
    return NodeUsage(users_total=total, active_month=month, active_halfyear=halfyear, local_posts=posts)


async def database_ping() -> None:
    await Actor.filter(id=0).exists()
