"""Inbox POSTs over one shared `aiohttp.ClientSession` (the fast path of `FederationClient.post_activity`).

benchmarks.md / results/clients.md: httpx + httpcore reach ~0.25× of the RSA signing limit per
core on inbox POSTs, aiohttp signing every request ~0.5×. `FederationClient` therefore sends its
POSTs through `AiohttpPoster` unless a test injected its own httpx transport or client; GETs stay
on httpx (redirect handling and the bounded decoder live there).

The SSRF rules of `transport.GuardedNetworkBackend` hold here too:

* `CheckedResolver` is the connector's resolver: it calls `netguard.resolve_checked`, so every
  address of a name is checked and aiohttp connects only to a checked address (TLS SNI and
  certificate verification still use the name). The DNS cache is off, so every new connection is
  checked again. IP literals never reach a resolver; `FederationClient.check_url` has checked them.
* No redirects, no cookies (`DummyCookieJar`), no proxies from the environment (`trust_env=False`),
  no decompression (only at most `drain` bytes of an answer are read, then the connection is
  closed if more were coming).

The session is created lazily inside the running loop and closed by `aclose()`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Final

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from fediverse_net.activitypub.errors import UnsafeURL
from fediverse_net.activitypub.netguard import IPNetwork, resolve_checked

log = logging.getLogger("fediverse_net.activitypub.client")

# Exceptions of a failed POST; `client._describe` classifies them.
POST_ERRORS: Final = (aiohttp.ClientError, OSError)
CONNECT_ERRORS: Final = (aiohttp.ClientConnectorError,)
PROTOCOL_ERRORS: Final = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    aiohttp.ServerDisconnectedError,
)


def _loggable(text: str) -> str:
    """Untrusted text for a log field: bounded, control characters escaped (no log injection)."""
    return text[:200].encode("unicode_escape").decode("ascii")


class CheckedResolver(AbstractResolver):
    """aiohttp resolver returning only addresses that `netguard.resolve_checked` accepted.

    UnsafeURL propagates unchanged through aiohttp (it is not an OSError); `socket.gaierror`
    becomes `aiohttp.ClientConnectorDNSError` with the gaierror as its cause (dns-nxdomain or
    dns-failure in `client._describe`).
    """

    def __init__(self, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()) -> None:
        self._allow_private = allow_private
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve_checked(
                host, port, allow_private=self._allow_private, allowed=self._allowed
            )
        except UnsafeURL as exc:
            log.warning("connection refused", extra={"fields": {"host": _loggable(host), "reason": str(exc)}})
            raise
        except UnicodeError as exc:  # IDNA failure inside getaddrinfo
            raise OSError(f"invalid host name {host!r}") from exc
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class AiohttpPoster:
    """One lazily created `aiohttp.ClientSession` for inbox POSTs (module docstring).

    Connection limits mirror `FederationClient`'s semaphores (`global_limit`, `per_host_limit`);
    `timeout` maps httpx's connect/read timeouts (the caller adds the overall deadline).
    """

    def __init__(
        self,
        *,
        user_agent: str,
        allow_private: bool,
        allowed: Sequence[IPNetwork] = (),
        per_host_limit: int,
        global_limit: int,
        timeout: httpx.Timeout,
    ) -> None:
        self._user_agent = user_agent
        self._allow_private = allow_private
        self._allowed = tuple(allowed)
        self._per_host_limit = per_host_limit
        self._global_limit = global_limit
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout.connect, sock_connect=timeout.connect, sock_read=timeout.read
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(allow_private=self._allow_private, allowed=self._allowed),
                limit=self._global_limit,
                limit_per_host=self._per_host_limit,
                use_dns_cache=False,  # every new connection is resolved and checked
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent},
            )
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, drain: int
    ) -> tuple[int, Mapping[str, str]]:
        """POST `body` to `url` (already checked); (status, headers). Reads ≤ `drain` bytes of the answer.

        Raises `POST_ERRORS` (and UnsafeURL from the resolver); redirects are never followed.
        """
        session = self._get_session()
        # A ready payload skips aiohttp's payload-registry lookup on every POST; the caller's
        # Content-Type header wins over the payload's default.
        async with session.post(
            URL(url, encoded=True), data=aiohttp.BytesPayload(body), headers=headers, allow_redirects=False
        ) as response:
            drained = 0
            while chunk := await response.content.readany():
                drained += len(chunk)
                if drained > drain:
                    response.close()  # do not read a huge answer: drop the connection
                    break
            return response.status, response.headers

    async def aclose(self) -> None:
        """Close the session and its pooled connections (if one was created)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            await asyncio.sleep(0)  # let transports finish closing
