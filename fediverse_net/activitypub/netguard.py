"""SSRF guard: which URLs we may request and which addresses we may dial (protocol.md §6.5).

Two layers, both used by `client.FederationClient`:

* `check_url()` is a syntactic check run on every URL before a request and on every redirect hop:
  `http`/`https` only, no userinfo, no whitespace/control characters, a valid port, no `.onion` or
  `.i2p` names (we have no Tor/I2P egress, so they are refused unconditionally), and no
  non-canonical numeric hosts. `2130706433`, `0x7f.1`, `127.1` or `0177.0.0.1` are all 127.0.0.1
  to `inet_aton()`/getaddrinfo but not to most URL parsers; rather than normalising them we refuse
  any host whose last label is numeric unless it is a canonical dotted quad (this is the WHATWG
  "ends in a number" rule). IP literals are classified here; names are classified after resolution.
* `resolve_checked()` resolves a name and classifies **every** address. It is called at dial time
  by the client's network backend, which then connects to one of the returned (checked) addresses,
  so there is no second resolution and no DNS-rebinding window (security matrix invariant 4).

Address policy (`is_forbidden_address`):

* Always forbidden, even with `allow_private=True`: unspecified (`0.0.0.0/8`, `::`), link-local
  (`169.254.0.0/16` incl. the 169.254.169.254 cloud metadata service, `fe80::/10`), multicast
  (`224.0.0.0/4`, `ff00::/8`), `240.0.0.0/4` and the broadcast address, and the two metadata
  endpoints that live inside otherwise "private" ranges (Alibaba `100.100.100.200`, AWS
  `fd00:ec2::254`). None of these is ever a federation peer, not even in development.
* Forbidden unless `allow_private=True` (development and tests talk to peers on loopback/LAN):
  the rest of Mastodon's `PrivateAddressCheck` list — RFC 1918, loopback, `100.64.0.0/10`,
  `192.0.0.0/24`, the documentation/benchmarking ranges, `192.88.99.0/24`, `::1`, `64:ff9b::/96`,
  `64:ff9b:1::/48`, `100::/64`, `2001::/32` (Teredo), `2001:10::/28`, `2001:20::/28`,
  `2001:db8::/32`, `2002::/16` (6to4), `fc00::/7`, `3fff::/20` — plus deprecated site-local
  `fec0::/10`.
* IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
  `::a.b.c.d`, SIIT `::ffff:0:a.b.c.d`, 6to4, NAT64 `/96` and `/48`, Teredo client and server) are
  unwrapped and the embedded address is classified too: the address is forbidden if any part is.
* `allowed` networks (Mastodon's `ALLOWED_PRIVATE_ADDRESSES`) override everything above, for the
  exact addresses of a test network an operator chose to trust.

Resolution policy: a name is refused if **any** of its addresses is forbidden (as Mastodon's
`Socket.open` does), instead of silently dialling the remaining public ones. A public name that
also resolves to an internal address is either misconfigured or a rebinding attempt.

Python's `ipaddress.is_private`/`is_global` are not used (wrong answers before 3.12.4,
CVE-2024-4032); the tables below are explicit.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final

import httpx

from fediverse_net.activitypub.errors import UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH: Final = 4096
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
REFUSED_TLDS: Final = (".onion", ".i2p")

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network

#: Never dialled, whatever the configuration (see module docstring).
ALWAYS_FORBIDDEN_V4: Final[tuple[ipaddress.IPv4Network, ...]] = (
    _v4("0.0.0.0/8"),  # "this network"; 0.0.0.0 reaches the local host on Linux
    _v4("169.254.0.0/16"),  # link-local, cloud metadata (169.254.169.254)
    _v4("224.0.0.0/4"),  # multicast
    _v4("240.0.0.0/4"),  # reserved, includes 255.255.255.255
    _v4("100.100.100.200/32"),  # Alibaba Cloud metadata (inside 100.64.0.0/10)
)
ALWAYS_FORBIDDEN_V6: Final[tuple[ipaddress.IPv6Network, ...]] = (
    _v6("::/128"),  # unspecified
    _v6("fe80::/10"),  # link-local
    _v6("ff00::/8"),  # multicast
    _v6("fd00:ec2::254/128"),  # AWS metadata over IPv6 (inside fc00::/7)
)

#: Forbidden unless `allow_private=True`: Mastodon's list (protocol.md §6.5) and loopback.
PRIVATE_V4: Final[tuple[ipaddress.IPv4Network, ...]] = (
    _v4("10.0.0.0/8"),
    _v4("100.64.0.0/10"),
    _v4("127.0.0.0/8"),
    _v4("172.16.0.0/12"),
    _v4("192.0.0.0/24"),
    _v4("192.0.2.0/24"),
    _v4("192.88.99.0/24"),
    _v4("192.168.0.0/16"),
    _v4("198.18.0.0/15"),
    _v4("198.51.100.0/24"),
    _v4("203.0.113.0/24"),
)
PRIVATE_V6: Final[tuple[ipaddress.IPv6Network, ...]] = (
    _v6("::1/128"),
    _v6("64:ff9b::/96"),
    _v6("64:ff9b:1::/48"),
    _v6("100::/64"),
    _v6("2001::/32"),
    _v6("2001:10::/28"),
    _v6("2001:20::/28"),
    _v6("2001:db8::/32"),
    _v6("2002::/16"),
    _v6("3fff::/20"),
    _v6("fc00::/7"),
    _v6("fec0::/10"),
)

#: Every network `is_forbidden_address` refuses by default (for tests and documentation).
FORBIDDEN_NETWORKS: Final[tuple[IPNetwork, ...]] = (
    *ALWAYS_FORBIDDEN_V4,
    *ALWAYS_FORBIDDEN_V6,
    *PRIVATE_V4,
    *PRIVATE_V6,
)

_MAPPED: Final = _v6("::ffff:0:0/96")
_COMPAT: Final = _v6("::/96")
_SIIT: Final = _v6("::ffff:0:0:0/96")
_NAT64: Final = _v6("64:ff9b::/96")
_NAT64_LOCAL: Final = _v6("64:ff9b:1::/48")
_6TO4: Final = _v6("2002::/16")
_TEREDO: Final = _v6("2001::/32")

_LOW_32: Final = 0xFFFFFFFF
# A last DNS label that is all digits, or 0x-hex: the host is numeric to inet_aton (WHATWG URL).
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")
# ASCII controls, space, DEL, C1 controls, backslash (a path separator to WHATWG parsers).
_BAD_ASCII = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_BAD_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses carried inside an IPv6 address (mapped, compatible, SIIT, 6to4, NAT64, Teredo)."""
    value = int(ip)
    if ip in _MAPPED or ip in _SIIT or ip in _NAT64:
        return [ipaddress.IPv4Address(value & _LOW_32)]
    if ip in _COMPAT:
        # ::/96 is IPv4-compatible except :: and ::1, which are classified as themselves.
        return [] if value <= 1 else [ipaddress.IPv4Address(value & _LOW_32)]
    if ip in _NAT64_LOCAL:
        # RFC 6052 §2.2, /48 prefix: v4 bits 48..63 and 72..87 (bits 64..71 are the "u" octet).
        packed = ip.packed
        return [ipaddress.IPv4Address(packed[6:8] + packed[9:11])]
    if ip in _6TO4:
        return [ipaddress.IPv4Address((value >> 80) & _LOW_32)]
    if ip in _TEREDO:
        teredo = ip.teredo
        return [] if teredo is None else [teredo[0], teredo[1]]
    return []


def _in_any(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def _forbidden_plain(ip: IPAddress, allow_private: bool) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return _in_any(ip, ALWAYS_FORBIDDEN_V4) or (not allow_private and _in_any(ip, PRIVATE_V4))
    return _in_any(ip, ALWAYS_FORBIDDEN_V6) or (not allow_private and _in_any(ip, PRIVATE_V6))


def is_forbidden_address(
    ip: IPAddress, *, allow_private: bool = False, allowed: Sequence[IPNetwork] = ()
) -> bool:
    """True when `ip` must never be dialled (module docstring: tables and unwrapping rules).

    `allow_private=True` relaxes only the private/loopback/documentation ranges; `allowed` is an
    explicit operator exception list that overrides everything.
    """
    if allowed and _in_any(ip, allowed):
        return False
    if _forbidden_plain(ip, allow_private):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            if allowed and _in_any(inner, allowed):
                continue
            if _forbidden_plain(inner, allow_private):
                return True
    return False


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Normalise an exception list (`"10.1.2.0/24"`, `"fd00::5"`, networks) to networks."""
    return tuple(
        v if not isinstance(v, str) else ipaddress.ip_network(v.strip(), strict=False) for v in values
    )


def _check_chars(url: str) -> None:
    if _BAD_ASCII.search(url):
        raise UnsafeURL("URL contains whitespace, control characters or a backslash")
    if not url.isascii():
        for ch in url:
            if ord(ch) > 0x7F and (ch.isspace() or unicodedata.category(ch) in _BAD_CATEGORIES):
                raise UnsafeURL("URL contains invisible or control characters")


def _check_host(host: str, *, allow_private: bool, allowed: Sequence[IPNetwork]) -> IPAddress | None:
    """Classify a URL/connection host (ASCII, IPv6 without brackets); UnsafeURL if refused.

    Returns the address for IP literals, None for names (which must be resolved and checked).
    """
    if not host:
        raise UnsafeURL("URL has no host")
    if "%" in host:
        raise UnsafeURL("percent-encoded hosts and IPv6 zone identifiers are refused")
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeURL(f"invalid IPv6 host {host!r}") from None
        if is_forbidden_address(ip6, allow_private=allow_private, allowed=allowed):
            raise UnsafeURL(f"address {ip6} is not allowed")
        return ip6
    name = host.lower()
    bare = name[:-1] if name.endswith(".") else name
    labels = bare.split(".")
    if any(not label for label in labels):
        raise UnsafeURL(f"host {host!r} has an empty label")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ip4 = ipaddress.IPv4Address(name)  # canonical dotted quad only, no trailing dot
        except ValueError:
            raise UnsafeURL(f"non-canonical numeric host {host!r}") from None
        if is_forbidden_address(ip4, allow_private=allow_private, allowed=allowed):
            raise UnsafeURL(f"address {ip4} is not allowed")
        return ip4
    if bare.endswith(REFUSED_TLDS):
        raise UnsafeURL(f"{host!r}: .onion and .i2p hosts are not supported")
    if not allow_private and (bare == "localhost" or bare.endswith(".localhost")):
        raise UnsafeURL(f"host {host!r} is local")
    return None


def check_url(url: str, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()) -> None:
    """Refuse (UnsafeURL) a URL we must not request; see the module docstring for the rules.

    Names are not resolved here (that happens at dial time, `resolve_checked`); IP literals and
    local names are refused immediately, so row D30 inputs never reach a socket.
    """
    checked_url(url, allow_private=allow_private, allowed=allowed)


def checked_url(url: str, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()) -> httpx.URL:
    """`check_url`, returning the parsed URL exactly as httpx will send it."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("empty URL")
    if len(url) <= _CACHED_URL_LENGTH:
        return _checked_url_cached(url, allow_private, tuple(allowed))
    return _checked_url(url, allow_private, tuple(allowed))


def _checked_url(url: str, allow_private: bool, allowed: tuple[IPNetwork, ...]) -> httpx.URL:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL("URL too long")
    _check_chars(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UnsafeURL(f"unparseable URL: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"scheme {parsed.scheme!r} is not allowed")
    if parsed.userinfo or "@" in parsed.netloc.decode("ascii", "replace"):
        raise UnsafeURL("URLs with credentials are not allowed")
    port = parsed.port
    if port is not None and not 0 < port < 65536:
        raise UnsafeURL(f"invalid port {port}")
    _check_host(parsed.raw_host.decode("ascii"), allow_private=allow_private, allowed=allowed)
    return parsed


# The verdict is a pure function of its arguments, and deliveries POST to the same inboxes over
# and over: parsing and classifying every time cost ~7 % of a signed delivery (benchmark B5).
# Only accepted URLs are remembered (a refusal raises, so it is re-evaluated and logged each
# time), only short ones (bounded memory), and httpx.URL is immutable, so sharing one is safe.
_CACHED_URL_LENGTH: Final = 512
_checked_url_cached = functools.lru_cache(maxsize=2048)(_checked_url)


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()
) -> list[str]:
    """Resolve `host` and return its addresses, all of them checked; UnsafeURL if any is forbidden.

    IP literals are checked without a lookup. DNS failures raise `socket.gaierror` unchanged
    (EAI_NONAME = NXDOMAIN, permanent for this attempt; others such as EAI_AGAIN are temporary,
    security matrix F10). The caller must connect to one of the returned addresses and nothing else.
    """
    literal = _check_host(host, allow_private=allow_private, allowed=allowed)
    if literal is not None:
        return [str(literal)]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"no addresses for {host}")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise UnsafeURL(f"{host} resolved to an unparseable address {address!r}") from None
        if is_forbidden_address(ip, allow_private=allow_private, allowed=allowed):
            raise UnsafeURL(f"{host} resolves to {ip}, which is not allowed")
    return addresses
