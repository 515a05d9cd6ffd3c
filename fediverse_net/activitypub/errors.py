"""The one exception tree of the protocol layer.

* FederationError
  + ProtocolError          malformed or unsupported JSON (400)
    + PayloadTooLarge      body over the limit (413)
    + UnsupportedMediaType wrong Content-Type on an inbox POST (415)
  + SignatureError         missing/invalid/expired signature (401)
    + KeyFetchError        the signer's key could not be fetched or is not usable (401)
      + KeyFetchUnavailable the key server failed temporarily (503)
  + FetchError             a remote GET failed (status, content type, id mismatch, size, timeout)
    + ObjectGone           410 or a Tombstone
  + UnsafeURL              the SSRF guard refused the URL (never retried)

`web/errors.py` maps these to HTTP answers; workers record `type(exc).__name__` on the row.
"""

from __future__ import annotations


class FederationError(Exception):
    """Base of every error raised by fediverse_net.activitypub."""


class ProtocolError(FederationError):
    """The document or request is malformed or unsupported."""


class PayloadTooLarge(ProtocolError):
    """The body exceeds the configured limit."""


class UnsupportedMediaType(ProtocolError):
    """The body is not declared as ActivityStreams JSON."""


class SignatureError(FederationError):
    """The HTTP signature is missing, malformed, expired or does not verify."""


class KeyFetchError(SignatureError):
    """The signer's public key could not be obtained."""


class KeyFetchUnavailable(KeyFetchError):
    """The key could not be fetched right now (network error, 5xx): the sender should retry."""


class FetchError(FederationError):
    """A remote GET failed or returned something we must not accept."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ObjectGone(FetchError):
    """The remote answered 410 Gone or served a Tombstone."""


class UnsafeURL(FederationError):
    """The URL's scheme or resolved address is not allowed (SSRF guard)."""
