"""Authorized fetch (protocol §3.5): who signed a GET of one of our documents."""

from __future__ import annotations

from fediverse_net.activitypub.signatures import RequestParts, verify_request
from fediverse_net.deps import Deps
from fediverse_net.services.remote_actors import key_lookup


async def signed_by(deps: Deps, parts: RequestParts) -> str | None:
    """The actor id that signed this GET, or None when it carries no signature.

    Raises SignatureError when a signature is present but does not verify.
    """
    if "signature" not in parts.headers and "signature-input" not in parts.headers:
        return None
    verified = await verify_request(parts, key_lookup=key_lookup(deps), now=deps.clock())
    return verified.owner


def key_only(document: dict[str, object]) -> dict[str, object]:
    """What an unsigned request may see of an actor in authorized-fetch mode: enough to verify us."""
    keep = ("@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey", "url")
    return {k: v for k, v in document.items() if k in keep}
