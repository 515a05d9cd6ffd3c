"""The SSRF-guarded HTTP transport under `FederationClient` (protocol.md §6.5, security matrix D).

`GuardedTransport` keeps one small httpcore pool per origin; its `GuardedNetworkBackend` resolves
the host, checks **every** address (`netguard.resolve_checked`) and dials one of the checked
addresses itself, so DNS rebinding cannot slip a private address in between check and connect.
httpcore starts TLS afterwards with the original host name (SNI and certificate checks use it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import httpcore
import httpx

from fediverse_net.activitypub.errors import UnsafeURL
from fediverse_net.activitypub.netguard import (
    IPNetwork,
    resolve_checked,
)

log = logging.getLogger("fediverse_net.activitypub.client")

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
_EAI_NXDOMAIN: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def _loggable(text: str) -> str:
    """Untrusted text for a log field: bounded, control characters escaped (no log injection)."""
    return text[:200].encode("unicode_escape").decode("ascii")


# --- dial-time SSRF guard -----------------------------------------------------------------------


class DNSLookupError(httpcore.ConnectError):
    """Name resolution failed; `nxdomain` tells a missing name from a temporary failure (F10)."""

    def __init__(self, host: str, error: socket.gaierror) -> None:
        super().__init__(f"DNS lookup of {host} failed: {error}")
        self.nxdomain = error.errno in _EAI_NXDOMAIN


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that resolves, checks every address, and connects to a checked address.

    Addresses are tried in resolver order within one connect timeout. UnsafeURL propagates
    unchanged through httpcore and httpx. Unix sockets are refused.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        allowed: Sequence[IPNetwork] = (),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._allowed = tuple(allowed)
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore backend interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await resolve_checked(
                    host, port, allow_private=self._allow_private, allowed=self._allowed
                )
        except UnsafeURL as exc:
            log.warning("connection refused", extra={"fields": {"host": _loggable(host), "reason": str(exc)}})
            raise
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from None
        except socket.gaierror as exc:
            raise DNSLookupError(host, exc) from exc
        except UnicodeError as exc:  # IDNA failure inside getaddrinfo
            raise httpcore.ConnectError(f"invalid host name {host!r}") from exc
        failure: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve_checked never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore backend interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURL("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore → httpx exceptions, most specific first (the first match wins).
_EXCEPTION_MAP: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


def _to_httpx(exc: Exception, request: httpx.Request) -> Exception:
    for core_type, httpx_type in _EXCEPTION_MAP:
        if isinstance(exc, core_type):
            return httpx_type(str(exc), request=request)
    return exc


@dataclass(slots=True)
class _Shard:
    pool: httpcore.AsyncConnectionPool
    in_flight: int = 0
    last_used: float = 0.0


class _ShardStream(httpx.AsyncByteStream):
    """A response body that maps httpcore errors and releases its shard exactly once when closed."""

    __slots__ = ("_closed", "_request", "_shard", "_stream")

    def __init__(self, stream: AsyncIterable[bytes], shard: _Shard, request: httpx.Request) -> None:
        self._stream = stream
        self._shard = shard
        self._request = request
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _to_httpx(exc, self._request)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._shard.in_flight -= 1
            self._shard.last_used = time.monotonic()


class GuardedTransport(httpx.AsyncBaseTransport):
    """The outbound transport: SSRF check at dial time and one small connection pool per origin.

    Every connection is opened by `GuardedNetworkBackend` (resolve, check all addresses, dial a
    checked one; TLS/SNI with the host name). Pools are per origin because httpcore's pool scans all
    of its connections on every request (benchmarks.md: one big pool gets slower as concurrency
    grows); with ≤ `per_origin_connections` per pool that scan stays tiny. At most `max_origins`
    pools are kept (least recently used idle ones are closed), and pools idle for longer than
    `keepalive_expiry` are closed on the next request. HTTP/1.1 only; no proxies.
    `verify` is an SSL context (tests pass one trusting a test CA).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        allowed: Sequence[IPNetwork] = (),
        verify: ssl.SSLContext | None = None,
        per_origin_connections: int = 16,
        per_origin_keepalive: int = 4,
        keepalive_expiry: float = 30.0,
        max_origins: int = 256,
    ) -> None:
        self._ssl_context = verify if verify is not None else httpx.create_ssl_context(trust_env=False)
        self._backend = GuardedNetworkBackend(allow_private=allow_private, allowed=allowed)
        self._max_connections = per_origin_connections
        self._max_keepalive = per_origin_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._max_origins = max_origins
        self._shards: OrderedDict[tuple[bytes, bytes, int | None], _Shard] = OrderedDict()
        self._next_sweep = time.monotonic() + keepalive_expiry

    def _new_pool(self) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_keepalive,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=self._backend,
        )

    async def _prune(self, now: float) -> None:
        """Close idle pools: expired ones, then the least recently used while over `max_origins`."""
        doomed: list[_Shard] = []
        for key, shard in list(self._shards.items()):
            if shard.in_flight:
                continue
            if now - shard.last_used > self._keepalive_expiry or len(self._shards) > self._max_origins:
                del self._shards[key]
                doomed.append(shard)
        for shard in doomed:
            await shard.pool.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        now = time.monotonic()
        shard = self._shards.get(key)
        if shard is None:
            shard = self._shards[key] = _Shard(self._new_pool(), last_used=now)
        else:
            self._shards.move_to_end(key)
        shard.in_flight += 1
        try:
            if now >= self._next_sweep or len(self._shards) > self._max_origins:
                self._next_sweep = now + self._keepalive_expiry
                await self._prune(now)
            assert isinstance(request.stream, httpx.AsyncByteStream)
            core_request = httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
            response = await shard.pool.handle_async_request(core_request)
        except Exception as exc:
            shard.in_flight -= 1
            mapped = _to_httpx(exc, request)
            if mapped is exc:
                raise
            raise mapped from exc
        except BaseException:
            shard.in_flight -= 1
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ShardStream(response.stream, shard, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        shards = list(self._shards.values())
        self._shards.clear()
        for shard in shards:
            await shard.pool.aclose()


def build_http_client(
    *,
    allow_private: bool,
    allowed: Sequence[IPNetwork] = (),
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    per_origin_connections: int = 16,
    per_origin_keepalive: int = 4,
) -> httpx.AsyncClient:
    """The process's outbound `httpx.AsyncClient`: guarded transport, no redirects, no cookies, no env."""
    if transport is None:
        transport = GuardedTransport(
            allow_private=allow_private,
            allowed=allowed,
            per_origin_connections=per_origin_connections,
            per_origin_keepalive=per_origin_keepalive,
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
