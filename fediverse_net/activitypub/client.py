"""FederationClient: every outbound HTTP request of the server (protocol.md §1.2, §4.1, §4.6, §6.4, §6.5).

One `httpx.AsyncClient` per process, owned by one `FederationClient` (made in the app lifespan and
passed in `Deps`), for GETs; inbox POSTs go through one shared `aiohttp.ClientSession`
(`aiohttp_poster.py`: about twice the throughput per core, benchmarks.md) with the same dial-time
check, unless a test injected its own `transport` or `http_client` (then POSTs use httpx too).
The httpx transport is `GuardedTransport`: one small httpcore pool per origin, whose network
backend resolves the host, checks **every** address (`netguard.resolve_checked`) and dials one of
the checked addresses itself. httpcore starts TLS afterwards with the original host name, so
SNI and certificate verification use the name, and the Host header is untouched; keep-alive works
as usual (each new connection is checked when it is dialled). Tests may pass their own `transport`
(e.g. `httpx.MockTransport`): URL checks still apply, dial-time checks are then the transport's
business. Every refusal is logged (logger `fediverse_net.activitypub.client`, level WARNING).

Rules applied to every request (security matrix section D, faults F7, F8, F10, F12):

* `check_url` on the URL and on every redirect hop; plain `http` only when `insecure_http`
  (default: same as `allow_private`, i.e. development and tests only — protocol.md §6.5).
* No automatic redirects. GETs follow at most `max_redirects` (3) hops, each re-checked and
  re-signed; a POST that is answered with a redirect is not followed (a permanent failure, D31).
* Timeouts connect 5 s / read 10 s / write 10 s / pool 5 s, plus an overall `deadline` (30 s)
  around each HTTP exchange (for GETs: all redirect hops and the body together; for POSTs: each
  attempt of the double-knock), so a slowloris body cannot hold a worker.
* Response bodies are read raw and decompressed here, with `zlib`'s `max_length`, so the 1 MiB cap
  counts decompressed bytes and a gzip bomb never expands past the cap (+1 byte) in memory.
* JSON: stdlib parser; nesting deeper than 64 is refused (RecursionError is caught for absurd depths).
* Cookies are never stored (a remote server cannot plant state in our shared client), proxies from
  the environment are ignored (`trust_env=False`), so nothing bypasses the dial-time check.
* The `Date` of every answer (GETs, each redirect hop, inbox POSTs on either HTTP stack) feeds
  `clock_monitor` (`clock.ClockMonitor`, security matrix F15): is our clock so far off that peers
  reject our signatures?

Error reporting: `fetch_object` and `webfinger` raise `FetchError` (network problems included,
`status=None`), `ObjectGone` for 410/Tombstone and `UnsafeURL` for SSRF refusals; `post_activity`
never raises for network problems and returns a `DeliveryResult` instead (only `UnsafeURL`
propagates: a permanent refusal, not a host outage — D34). Network error strings start with a kind:
`timeout`, `dns-nxdomain` (permanent for this attempt, F10), `dns-failure` (temporary),
`tls-certificate` (not retryable, F11), `tls`, `connect`, `protocol`, `network`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import quote

import httpx

from fediverse_net.activitypub.aiohttp_poster import (
    CONNECT_ERRORS,
    POST_ERRORS,
    PROTOCOL_ERRORS,
    AiohttpPoster,
)
from fediverse_net.activitypub.clock import ClockMonitor
from fediverse_net.activitypub.errors import FetchError, ObjectGone, ProtocolError, UnsafeURL
from fediverse_net.activitypub.keys import SigningKey
from fediverse_net.activitypub.netguard import (
    IPNetwork,
    checked_url,
    parse_networks,
)
from fediverse_net.activitypub.signatures import Scheme, sign_request
from fediverse_net.activitypub.transport import (
    DEFAULT_TIMEOUT,
    DNSLookupError,
    GuardedNetworkBackend,
    GuardedTransport,
    build_http_client,
)
from fediverse_net.activitypub.vocab import (
    ACCEPT_ACTIVITY,
    ACTIVITY_CONTENT_TYPE,
    AS_CONTEXT,
    JRD_CONTENT_TYPE,
    is_activitypub_media_type,
)

log = logging.getLogger(__name__)
__all__ = [
    "DEFAULT_TIMEOUT",
    "DeliveryResult",
    "FederationClient",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "build_http_client",
    "parse_json_object",
    "parse_retry_after",
]

DEFAULT_DEADLINE: Final = 30.0  # s, whole call (Mastodon `request.rb` total deadline)
MAX_BODY_BYTES: Final = 1_048_576  # decompressed, Mastodon `body_with_limit(1.megabyte)`
MAX_REDIRECTS: Final = 3  # Mastodon `max_hops`
MAX_JSON_DEPTH: Final = 64
MAX_POST_RESPONSE_DRAIN: Final = 65_536  # read at most this much of an inbox's answer
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
ACCEPT_JRD: Final = f"{JRD_CONTENT_TYPE}, application/json"
ACCEPT_XRD: Final = "application/xrd+xml, application/xml, text/xml"
_RETRYABLE_4XX: Final = frozenset({401, 408, 429})
_DEFAULT_SCHEME: Final[Scheme] = "draft-cavage"
_OTHER_SCHEME: Final[dict[Scheme, Scheme]] = {"draft-cavage": "rfc9421", "rfc9421": "draft-cavage"}
_EAI_NXDOMAIN: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def _loggable(text: str) -> str:
    """Untrusted text for a log field: bounded, control characters escaped (no log injection)."""
    return text[:200].encode("unicode_escape").decode("ascii")


class RequestSigner(Protocol):
    """What `signatures.sign_request` looks like to us (injectable for tests)."""

    def __call__(
        self, method: str, url: str, body: bytes | None, *, key: SigningKey, scheme: Scheme = ...
    ) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one inbox POST (after the double-knock, if one happened).

    `status` is None when no HTTP answer arrived (then `error` says why); `retry_after` is the
    server's `Retry-After` in seconds from now, unclamped (the retry policy clamps, F8).
    """

    status: int | None
    retry_after: float | None
    error: str | None
    scheme_used: Scheme

    @property
    def ok(self) -> bool:
        """2xx: delivered."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def permanent(self) -> bool:
        """Do not retry: a redirect on POST, any 4xx except 401/408/429, and 501 (§4.4, §4.5)."""
        status = self.status
        if status is None:
            return False
        return 300 <= status < 400 or (400 <= status < 500 and status not in _RETRYABLE_4XX) or status == 501


# --- helpers ------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """`Retry-After` as seconds from `now` (epoch): delta-seconds or an HTTP-date; None if absent/invalid.

    Past dates give 0.0. Values are not clamped here (the retry policy does that).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 15 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - now)


def _json_too_deep(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        assert isinstance(children, Iterable)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse a JSON object with bounded nesting; FetchError otherwise (not JSON, not an object, too deep)."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise FetchError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise FetchError(f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise FetchError("JSON document is not an object")
    if _json_too_deep(document, max_depth):
        raise FetchError(f"JSON nested deeper than {max_depth} levels")
    return document


def _origin(url: str | httpx.URL) -> tuple[str, bytes, int | None]:
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return parsed.scheme, parsed.raw_host, parsed.port


def _has_as_context(document: Mapping[str, Any]) -> bool:
    context = document.get("@context")
    if isinstance(context, str):
        return context == AS_CONTEXT
    return isinstance(context, list) and AS_CONTEXT in context


def _types(document: Mapping[str, Any]) -> list[Any]:
    value = document.get("type")
    return value if isinstance(value, list) else [value]


def _describe(exc: BaseException) -> str:
    """`<kind>: <message>` for a network failure (kinds listed in the module docstring)."""
    kind = "network"
    seen: BaseException | None = exc
    chain: list[BaseException] = []
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for item in chain:
        if isinstance(item, DNSLookupError):
            kind = "dns-nxdomain" if item.nxdomain else "dns-failure"
            break
        if isinstance(item, socket.gaierror):  # aiohttp: ClientConnectorDNSError from gaierror
            kind = "dns-nxdomain" if item.errno in _EAI_NXDOMAIN else "dns-failure"
            break
        if isinstance(item, ssl.SSLCertVerificationError):
            kind = "tls-certificate"
            break
        if isinstance(item, ssl.SSLError):
            kind = "tls"
            break
    else:
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            kind = "timeout"
        elif isinstance(exc, (httpx.ConnectError, *CONNECT_ERRORS)):
            kind = "connect"
        elif isinstance(exc, (httpx.ProtocolError, httpx.DecodingError, *PROTOCOL_ERRORS)):
            kind = "protocol"
    message = str(exc) or type(exc).__name__
    return f"{kind}: {message[:300]}"


class _BoundedDecoder:
    """Content-Encoding decoding that never produces more than `limit` + 1 bytes in total."""

    __slots__ = ("_encoding", "_limit", "_out", "_started", "_z")

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        self._encoding = encoding
        self._limit = limit
        self._out = bytearray()
        self._started = False
        if encoding in ("", "identity"):
            self._z: Any = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding[:40]!r}")

    def _append(self, data: bytes) -> None:
        self._out += data
        if len(self._out) > self._limit:
            raise FetchError(f"response body exceeds {self._limit} bytes")

    def feed(self, data: bytes) -> None:
        if self._z is None:
            self._append(data)
            return
        while data:
            try:
                chunk = self._z.decompress(data, self._limit - len(self._out) + 1)
            except zlib.error as exc:
                if self._encoding == "deflate" and not self._started:
                    # "deflate" is often sent without the zlib wrapper: retry as raw deflate.
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise FetchError(f"corrupt {self._encoding} body: {exc}") from None
            self._started = True
            self._append(chunk)
            data = self._z.unconsumed_tail
            if self._z.eof:
                rest = self._z.unused_data
                if rest and self._encoding in ("gzip", "x-gzip"):  # multi-member gzip
                    self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest + data
                elif rest or data:
                    raise FetchError("data after the end of the compressed body")

    def finish(self) -> bytes:
        if self._z is not None and self._started and not self._z.eof:
            raise FetchError(f"truncated {self._encoding} body")
        return bytes(self._out)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


@dataclass(frozen=True, slots=True)
class _Fetched:
    url: str  # final URL, after redirects
    status: int
    content_type: str | None
    body: bytes  # read only for 200 answers


@dataclass(slots=True)
class _HostSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


def _split_handle(handle: str) -> tuple[str, str]:
    """`user@domain` from `@user@domain`, `user@domain` or `acct:user@domain`; ProtocolError if not."""
    text = handle.strip()
    if text[:5].lower() == "acct:":
        text = text[5:]
    text = text.removeprefix("@")
    user, sep, domain = text.rpartition("@")
    if not sep or not user or not domain or "@" in user:
        raise ProtocolError(f"not a handle: {handle[:100]!r}")
    if any(c in user for c in "/?#%:") or not user.isprintable() or any(c.isspace() for c in user):
        raise ProtocolError(f"invalid user name in handle {handle[:100]!r}")
    if any(c in domain for c in "/?#\\") or not domain.isprintable() or any(c.isspace() for c in domain):
        raise ProtocolError(f"invalid domain in handle {handle[:100]!r}")
    return user, domain.lower()


def _self_link(jrd: Mapping[str, Any]) -> str:
    """§1.1: the href of the first `self` link whose type is an ActivityPub media type."""
    links = jrd.get("links")
    if isinstance(links, list):
        for link in links:
            if (
                isinstance(link, dict)
                and link.get("rel") == "self"
                and isinstance(link.get("type"), str)
                and is_activitypub_media_type(link["type"])
            ):
                href = link.get("href")
                if not isinstance(href, str):
                    raise FetchError("WebFinger self link has no href")
                return href
    raise FetchError("WebFinger response has no ActivityPub self link")


# --- the client ---------------------------------------------------------------------------------


class FederationClient:
    """Signed GETs of ActivityPub documents, inbox POSTs with double-knock, WebFinger (module docstring).

    Create one per process and `aclose()` it on shutdown. `allow_private=True` is for development
    and tests (peers on loopback); `allowed_networks` is Mastodon's `ALLOWED_PRIVATE_ADDRESSES`.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        allow_private: bool = False,
        allowed_networks: Iterable[str | IPNetwork] = (),
        insecure_http: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        max_json_depth: int = MAX_JSON_DEPTH,
        per_host_limit: int = 4,
        global_limit: int = 64,
        signer: RequestSigner = sign_request,
        clock: Callable[[], float] = time.time,
        clock_monitor: ClockMonitor | None = None,
    ) -> None:
        if per_host_limit < 1 or global_limit < 1:
            raise ValueError("concurrency limits must be at least 1")
        self._allow_private = allow_private
        self._allowed = parse_networks(allowed_networks)
        self._insecure_http = allow_private if insecure_http is None else insecure_http
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else build_http_client(
                allow_private=allow_private,
                allowed=self._allowed,
                transport=transport,
                timeout=timeout,
                per_origin_connections=max(16, 2 * per_host_limit),
                per_origin_keepalive=per_host_limit,
            )
        )
        self._http.headers["User-Agent"] = user_agent
        # Inbox POSTs over aiohttp, unless a test injected its own httpx transport or client.
        self._poster = (
            AiohttpPoster(
                user_agent=user_agent,
                allow_private=allow_private,
                allowed=self._allowed,
                per_host_limit=per_host_limit,
                global_limit=global_limit,
                timeout=timeout,
            )
            if transport is None and http_client is None
            else None
        )
        self._deadline = deadline
        self._max_body = max_body_bytes
        self._max_redirects = max_redirects
        self._max_depth = max_json_depth
        self._per_host_limit = per_host_limit
        self._global = asyncio.Semaphore(global_limit)
        self._host_slots: dict[str, _HostSlot] = {}
        self._schemes: dict[str, Scheme] = {}
        self._sign = signer
        self._clock = clock
        # Peers' `Date` headers against our clock (F15); read by /healthz and the admin pages.
        self.clock_monitor = clock_monitor if clock_monitor is not None else ClockMonitor(wall=clock)

    async def __aenter__(self) -> FederationClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients (and their pooled connections) this object created."""
        if self._poster is not None:
            await self._poster.aclose()
        if self._owns_http:
            await self._http.aclose()

    def scheme_for(self, host: str) -> Scheme:
        """The signature scheme we use first for `host` (host[:port]): the last one that worked."""
        return self._schemes.get(host.lower(), _DEFAULT_SCHEME)

    # -- URL policy --

    def check_url(self, url: str) -> httpx.URL:
        """The SSRF/URL policy of this client (netguard.check_url + https-only unless insecure_http)."""
        try:
            parsed = checked_url(url, allow_private=self._allow_private, allowed=self._allowed)
            if parsed.scheme == "http" and not self._insecure_http:
                raise UnsafeURL("plain http is only allowed in development (insecure_http)")
        except UnsafeURL as exc:
            log.warning(
                "url refused", extra={"fields": {"url": _loggable(url), "reason": _loggable(str(exc))}}
            )
            raise
        return parsed

    def _observe_clock(self, url: httpx.URL, headers: Mapping[str, str]) -> None:
        """Give the answer's `Date` (and `Age`) to the clock monitor; headers are case-insensitive.

        Samples are per host name without the port: more ports of one machine are not more opinions.
        """
        if "date" in headers:
            host = url.raw_host.decode("ascii")
            self.clock_monitor.observe(host, headers.get("date"), headers.get("age"))

    # -- GET with manual redirects --

    async def _read_body(self, response: httpx.Response, limit: int) -> bytes:
        if response.is_stream_consumed:  # already in memory (httpx.MockTransport): decoded by httpx
            if len(response.content) > limit:
                raise FetchError(f"response body exceeds {limit} bytes")
            return response.content
        encoding = response.headers.get("content-encoding", "")
        if encoding.strip().lower() in ("", "identity"):
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchError(f"response body exceeds {limit} bytes (Content-Length {declared[:20]})")
        decoder = _BoundedDecoder(encoding, limit)
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
        return decoder.finish()

    async def _get(self, url: str, *, accept: str, sign_as: SigningKey | None) -> _Fetched:
        """GET `url`, following ≤ max_redirects hops (each checked and signed); body read for 200 only."""
        current = self.check_url(url)
        try:
            async with asyncio.timeout(self._deadline):
                for _hop in range(self._max_redirects + 1):
                    wire_url = str(current)
                    headers = {"Accept": accept, "Accept-Encoding": "gzip"}
                    if sign_as is not None:
                        host = current.netloc.decode("ascii")
                        headers.update(
                            self._sign("GET", wire_url, None, key=sign_as, scheme=self.scheme_for(host))
                        )
                    request = self._http.build_request("GET", current, headers=headers)
                    response = await self._http.send(request, stream=True)
                    self._observe_clock(current, response.headers)
                    try:
                        status = response.status_code
                        if status in REDIRECT_STATUSES:
                            location = response.headers.get("location")
                            if not location:
                                raise FetchError(f"redirect without Location from {wire_url}", status=status)
                            current = self.check_url(str(current.join(location)))
                            continue
                        body = await self._read_body(response, self._max_body) if status == 200 else b""
                        return _Fetched(wire_url, status, response.headers.get("content-type"), body)
                    finally:
                        await response.aclose()
        except TimeoutError:
            raise FetchError(f"timeout: no complete answer from {url} within {self._deadline:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(_describe(exc)) from exc
        except OSError as exc:  # defensive: socket errors that escaped httpcore's mapping
            raise FetchError(_describe(exc)) from exc
        raise FetchError(f"more than {self._max_redirects} redirects fetching {url}")

    async def fetch_object(
        self, url: str, *, sign_as: SigningKey | None, expect_id: bool = True
    ) -> dict[str, Any]:
        """GET an ActivityPub document and validate it (§4.6, §6.4; security matrix rows 13-15).

        Requires 200 (410 → ObjectGone, else FetchError with `status`), an ActivityStreams media type,
        a JSON object with the AS `@context`, and an `id` on the origin of the final URL (FEP-fe34).
        With `expect_id` (we asked for a known id) the `id` must equal `url` exactly — the URL we were
        asked for, also after redirects (so a redirect can never change which object we store). A
        `url` with a fragment (a key id) will not match its document's id: pass `expect_id=False`
        and compare yourself. With `expect_id=False` (a pasted link) the caller may re-fetch the
        returned `id` once with `expect_id=True`. A `Tombstone` → ObjectGone.
        """
        fetched = await self._get(url, accept=ACCEPT_ACTIVITY, sign_as=sign_as)
        if fetched.status == 410:
            raise ObjectGone(f"{url} is gone", status=410)
        if fetched.status != 200:
            raise FetchError(f"GET {url} answered {fetched.status}", status=fetched.status)
        if not is_activitypub_media_type(fetched.content_type):
            raise FetchError(
                f"GET {url}: Content-Type {str(fetched.content_type)[:80]!r} is not ActivityStreams",
                status=200,
            )
        document = parse_json_object(fetched.body, max_depth=self._max_depth)
        if not _has_as_context(document):
            raise FetchError(f"GET {url}: @context does not include {AS_CONTEXT}", status=200)
        doc_id = document.get("id")
        if not isinstance(doc_id, str):
            raise FetchError(f"GET {url}: document has no id", status=200)
        if expect_id and doc_id != url:
            raise FetchError(f"GET {url}: document id {doc_id[:200]!r} differs from the URL", status=200)
        try:
            same_origin = _origin(doc_id) == _origin(fetched.url)
        except (httpx.InvalidURL, ValueError, TypeError):
            same_origin = False
        if not same_origin:
            raise FetchError(
                f"GET {url}: id {doc_id[:200]!r} is not on the origin of {fetched.url}", status=200
            )
        if "Tombstone" in _types(document):
            raise ObjectGone(f"{url} is a Tombstone", status=200)
        return document

    # -- POST to an inbox --

    async def post_activity(self, inbox_url: str, body: bytes, *, sign_as: SigningKey) -> DeliveryResult:
        """POST a serialised activity to an inbox (§4.1) with a signature double-knock.

        The first attempt uses the scheme remembered for the host (draft-cavage by default); on 400 or
        401 it is retried once with the other scheme, and a success makes that scheme the host's
        default. When both attempts fail, the retryable answer of the two is returned (a 401 from the
        host's usual scheme is not turned into a permanent 400 by the fallback). At most
        `per_host_limit` POSTs per host and `global_limit` in total run at once; the host slot is
        taken first so one slow host cannot hold global slots while it queues.
        Raises only UnsafeURL (permanent: never retry, not a host outage).
        """
        url = self.check_url(inbox_url)
        host = url.netloc.decode("ascii").lower()
        slot = self._host_slots.get(host)
        if slot is None:
            slot = self._host_slots[host] = _HostSlot(asyncio.Semaphore(self._per_host_limit))
        slot.users += 1
        try:
            async with slot.semaphore, self._global:
                first_scheme = self._schemes.get(host, _DEFAULT_SCHEME)
                first = await self._post_once(url, body, sign_as, first_scheme)
                if first.status not in (400, 401):
                    return first
                second = await self._post_once(url, body, sign_as, _OTHER_SCHEME[first_scheme])
                if second.ok:
                    self._schemes[host] = second.scheme_used
                    return second
                return first if second.permanent and not first.permanent else second
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._host_slots[host]

    async def _post_once(
        self, url: httpx.URL, body: bytes, key: SigningKey, scheme: Scheme
    ) -> DeliveryResult:
        wire_url = str(url)
        headers = {"Content-Type": ACTIVITY_CONTENT_TYPE, "Accept": ACTIVITY_CONTENT_TYPE}
        headers.update(self._sign("POST", wire_url, body, key=key, scheme=scheme))
        try:
            async with asyncio.timeout(self._deadline) as deadline:
                if self._poster is not None:
                    status, answer = await self._poster.post(
                        wire_url, body, headers, drain=MAX_POST_RESPONSE_DRAIN
                    )
                else:
                    status, answer = await self._post_httpx(url, body, headers)
        except (httpx.HTTPError, *POST_ERRORS) as exc:  # OSError includes TimeoutError
            if isinstance(exc, TimeoutError) and deadline.expired():
                return DeliveryResult(None, None, f"timeout: no answer within {self._deadline:g} s", scheme)
            return DeliveryResult(None, None, _describe(exc), scheme)
        self._observe_clock(url, answer)
        retry_after = parse_retry_after(answer.get("retry-after"), now=self._clock())
        if 200 <= status < 300:
            return DeliveryResult(status, retry_after, None, scheme)
        if 300 <= status < 400:
            location = answer.get("location", "")[:200]
            error = f"redirect: {status} on POST is not followed (Location: {location!r})"
        else:
            error = f"http: {status}"
        return DeliveryResult(status, retry_after, error, scheme)

    async def _post_httpx(
        self, url: httpx.URL, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str]]:
        """The httpx POST path (injected transports and clients, i.e. tests): status and headers."""
        request = self._http.build_request("POST", url, content=body, headers=headers)
        response = await self._http.send(request, stream=True)
        try:
            drained = 0
            chunks = response.aiter_raw() if not response.is_stream_consumed else _nothing()
            async for chunk in chunks:
                drained += len(chunk)
                if drained > MAX_POST_RESPONSE_DRAIN:
                    break  # closing an unread response closes the connection
        finally:
            await response.aclose()
        return response.status_code, response.headers

    # -- WebFinger (§1.2 steps 1-4) --

    async def webfinger(self, handle: str) -> str:
        """Resolve `user@domain` to its actor id (§1.2 steps 1-4); the caller fetches and round-trips.

        Unsigned GET of `https://<domain>/.well-known/webfinger?resource=acct:<user>@<domain>`
        (`http://` when `insecure_http`), ≤ 3 redirects; on 404 one retry through host-meta's `lrdd`
        template (which must stay on the same host); 410 → ObjectGone. The answer needs a `subject`
        and a `self` link of an ActivityPub type, whose href passes the URL policy (row D33). If the
        subject differs (case-insensitively), the subject is looked up once more and must confirm
        itself. The href may be on another host (split-domain deployments, e.g. Mastodon's
        LOCAL_DOMAIN/WEB_DOMAIN): identity is proven by the caller's round-trip check (§1.2 step 6).
        """
        user, domain = _split_handle(handle)
        resource = f"acct:{user}@{domain}"
        jrd = await self._webfinger_lookup(domain, resource)
        subject = jrd["subject"]
        if subject.lower() != resource.lower():
            if subject[:5].lower() != "acct:":
                raise FetchError(f"WebFinger subject {subject[:100]!r} is not an acct: URI")
            user2, domain2 = _split_handle(subject)
            requery = f"acct:{user2}@{domain2}"
            jrd = await self._webfinger_lookup(domain2, requery)
            if jrd["subject"].lower() != requery.lower():
                raise FetchError(f"WebFinger subject {subject[:100]!r} does not confirm itself")
        href = _self_link(jrd)
        self.check_url(href)
        return href

    async def _webfinger_lookup(self, domain: str, resource: str) -> dict[str, Any]:
        scheme = "http" if self._insecure_http else "https"
        query = quote(resource, safe=":@")
        url = f"{scheme}://{domain}/.well-known/webfinger?resource={query}"
        fetched = await self._get(url, accept=ACCEPT_JRD, sign_as=None)
        if fetched.status == 404:
            template = await self._lrdd_template(f"{scheme}://{domain}", domain)
            if template is not None:
                url = template.replace("{uri}", quote(resource, safe=""))
                fetched = await self._get(url, accept=ACCEPT_JRD, sign_as=None)
        if fetched.status == 410:
            raise ObjectGone(f"{resource} is gone", status=410)
        if fetched.status != 200:
            raise FetchError(f"WebFinger for {resource} answered {fetched.status}", status=fetched.status)
        media = (fetched.content_type or "").partition(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise FetchError(f"WebFinger answer is {media[:80]!r}, not JSON", status=200)
        jrd = parse_json_object(fetched.body, max_depth=self._max_depth)
        if not isinstance(jrd.get("subject"), str):
            raise FetchError("WebFinger answer has no subject", status=200)
        return jrd

    async def _lrdd_template(self, origin: str, domain: str) -> str | None:
        """The `lrdd` template of host-meta (§1.2 step 2) if it is usable and on `domain`, else None."""
        fetched = await self._get(f"{origin}/.well-known/host-meta", accept=ACCEPT_XRD, sign_as=None)
        if fetched.status != 200 or b"<!DOCTYPE" in fetched.body or b"<!ENTITY" in fetched.body:
            return None
        try:
            root = ET.fromstring(fetched.body)
        except ET.ParseError:
            return None
        for element in root.iter():
            if element.tag.rpartition("}")[2] == "Link" and element.get("rel") == "lrdd":
                template = element.get("template")
                if not template or "{uri}" not in template:
                    return None
                try:
                    target = self.check_url(template.replace("{uri}", "x"))
                except UnsafeURL:
                    return None
                if target.netloc.decode("ascii").lower() != domain:
                    return None
                return template
        return None
