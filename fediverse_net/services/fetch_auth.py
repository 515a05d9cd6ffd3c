"""Authorized fetch (protocol §3.5): who signed a GET of one of our documents."""

from __future__ import annotations

from fediverse_net.activitypub.errors import SignatureError
from fediverse_net.activitypub.signatures import RequestParts, verify_request
from fediverse_net.db.models import Actor
from fediverse_net.deps import Deps
from fediverse_net.services.moderation import is_suspended_domain
from fediverse_net.services.remote_actors import key_lookup


async def signed_by(deps: Deps, parts: RequestParts) -> str | None:
    """The actor id that signed this GET, or None when it carries no signature.

    Raises SignatureError when a signature is present but does not verify.
    """
    if "signature" not in parts.headers and "signature-input" not in parts.headers:
        return None
    verified = await verify_request(parts, key_lookup=key_lookup(deps), now=deps.clock())
    # Suspended servers and accounts read nothing a signature would unlock (members-only posts…).
    if (
        await is_suspended_domain(deps, verified.owner)
        or await Actor.filter(ap_id=verified.owner, suspended=True).exists()
    ):
        raise SignatureError("the signer is suspended here")
    return verified.owner


def key_only(document: dict[str, object]) -> dict[str, object]:
    """What an unsigned request may see of an actor in authorized-fetch mode: enough to verify us."""
    keep = ("@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey", "url")
    return {k: v for k, v in document.items() if k in keep}
