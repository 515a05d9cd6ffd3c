"""The SSRF classifier: URL checks, address tables, resolution policy (security matrix section D)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fediverse_net.activitypub.errors import UnsafeURL
from fediverse_net.activitypub.netguard import (
    ALWAYS_FORBIDDEN_V4,
    ALWAYS_FORBIDDEN_V6,
    FORBIDDEN_NETWORKS,
    PRIVATE_V4,
    PRIVATE_V6,
    IPNetwork,
    check_url,
    checked_url,
    is_forbidden_address,
    parse_networks,
    resolve_checked,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ip = ipaddress.ip_address

# --- D30: every input of the row ---------------------------------------------------------------

D30_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",
    "http://10.0.0.1/",
    "http://[fd00::1]/",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", D30_URLS)
def test_D30_private_addresses_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


# With allow_private=True (development), loopback/LAN peers work, but never these:
D30_ALWAYS_REFUSED = [
    "http://0.0.0.0/",
    "http://[::]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[ff02::1]/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:0.0.0.0]/",
]
D30_ALLOWED_IN_DEVELOPMENT = [
    "http://127.0.0.1:8000/",
    "http://localhost:3000/users/a",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://192.168.1.20/",
    "http://172.17.0.2:8080/inbox",
    "http://[fd00::1]/",
]


@pytest.mark.parametrize("url", D30_ALWAYS_REFUSED)
def test_D30_special_addresses_refused_even_in_development(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True)


@pytest.mark.parametrize("url", D30_ALLOWED_IN_DEVELOPMENT)
def test_D30_private_peers_allowed_in_development(url: str) -> None:
    check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "host",
    ["127.1", "0177.0.0.1", "0x7f000001", "017700000001", "1.2.3.4.", "127.0.0.1.", "example.123", "a.0x1f"],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_D30_non_canonical_numeric_hosts_refused(host: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeURL):
        check_url(f"http://{host}/", allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "https://mastodon.example/users/alice",
        "https://93.184.216.34/",
        "https://[2606:4700:4700::1111]/",
        "http://social.example:8443/inbox?x=1#frag",
        "https://ünicode.example/ü",
        "https://EXAMPLE.COM./users/a",
        "https://1e100.net/",
    ],
)
def test_public_urls_pass(url: str) -> None:
    check_url(url, allow_private=False)


# --- D32: schemes; row 29: control characters; credentials; special names ----------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://example.com/",
        "data:application/activity+json,{}",
        "ftp://example.com/actor",
        "javascript:alert(1)",
        "ws://example.com/",
        "//example.com/actor",
        "/users/alice",
        "",
    ],
)
def test_D32_non_http_schemes_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a\r\nHost: evil.example",
        "https://example.com/a\nb",
        "https://example.com/a b",
        "https://example.com/\ta",
        "https://example.com\\@evil.example/",
        "https://example.com/\x00",
        "https://example.com/\x7f",
        "https://example.com/\u202egnp.exe",
        "https://exa\u200bmple.com/",
        "https://example.com/\u3000",
        " https://example.com/",
    ],
)
def test_row29_control_characters_and_whitespace_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://user@example.com/",
        "https://user:secret@example.com/",
        "https://example.com@evil.example/",
        "https://:@example.com/",
    ],
)
def test_userinfo_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://expyuzz4wqqyqhjn.onion/",
        "http://EXAMPLE.ONION./",
        "http://site.i2p/",
        "http://sub.localhost/",
        "http://localhost./",
        "https://example.com:0/",
        "https://example.com:99999/",
        "https://%65xample.com/",
        "https://exa..mple.com/",
        "https://[::1%25lo]/",
    ],
)
def test_special_names_ports_and_encodings_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


def test_onion_refused_even_in_development() -> None:
    with pytest.raises(UnsafeURL):
        check_url("http://expyuzz4wqqyqhjn.onion/", allow_private=True)


# --- address tables: protocol.md §6.5 ---------------------------------------------------------

SECTION_6_5 = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "0.0.0.0/8",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:10::/28",
    "2001:20::/28",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "3fff::/20",
    "ff00::/8",
]


def _samples(network: str) -> list[str]:
    net = ipaddress.ip_network(network)
    return sorted({str(net[0]), str(net[net.num_addresses // 2]), str(net[-1])})


SECTION_6_5_ADDRESSES = [(net, a) for net in SECTION_6_5 for a in _samples(net)]


@pytest.mark.parametrize(("network", "address"), SECTION_6_5_ADDRESSES)
def test_D30_section_6_5_networks_are_forbidden(network: str, address: str) -> None:
    assert is_forbidden_address(ip(address))
    if ":" not in address:
        assert is_forbidden_address(ip(f"::ffff:{address}")), "IPv4-mapped form"
        assert is_forbidden_address(ip(f"::ffff:0:{address}")), "SIIT form"


def test_every_section_6_5_network_is_in_the_tables() -> None:
    for network in SECTION_6_5:
        net = ipaddress.ip_network(network)
        assert any(net.version == t.version and net.subnet_of(t) for t in FORBIDDEN_NETWORKS), network  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "2001:4860:4860::8888",
    ],
)
def test_public_addresses_allowed(address: str) -> None:
    assert not is_forbidden_address(ip(address))


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:7f00:1", "127.0.0.1"),  # IPv4-mapped
        ("::7f00:1", "127.0.0.1"),  # IPv4-compatible (deprecated)
        ("::a9fe:a9fe", "169.254.169.254"),
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 /96
        ("64:ff9b:1:a9fe:a9:fe00::", "169.254.169.254"),  # NAT64 /48 (RFC 6052 layout)
        ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),  # Teredo client = ~a9fe:a9fe
    ],
)
def test_embedded_ipv4_forms_unwrapped(address: str, embedded: str) -> None:
    assert is_forbidden_address(ip(address))
    if ipaddress.IPv4Address(embedded) in ipaddress.ip_network("169.254.0.0/16"):
        # link-local stays forbidden even when private addresses are allowed
        assert is_forbidden_address(ip(address), allow_private=True)
    else:
        assert not is_forbidden_address(ip(address), allow_private=True)


def test_unspecified_and_loopback_v6_are_not_misread_as_compatible() -> None:
    assert is_forbidden_address(ip("::"), allow_private=True)
    assert not is_forbidden_address(ip("::1"), allow_private=True)
    assert is_forbidden_address(ip("::1"))


def test_allowed_networks_override() -> None:
    allowed = parse_networks(["127.0.0.2/32", "fd00::5"])
    assert not is_forbidden_address(ip("127.0.0.2"), allowed=allowed)
    assert not is_forbidden_address(ip("::ffff:127.0.0.2"), allowed=allowed)
    assert not is_forbidden_address(ip("fd00::5"), allowed=allowed)
    assert is_forbidden_address(ip("127.0.0.1"), allowed=allowed)
    assert is_forbidden_address(ip("fd00::6"), allowed=allowed)
    check_url("http://127.0.0.2:8000/", allow_private=False, allowed=allowed)
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:8000/", allow_private=False, allowed=allowed)


def test_remembered_verdicts_follow_the_policy_arguments() -> None:
    """`checked_url` caches accepted URLs; the cache must never let one policy's verdict leak
    into another's, and a refusal is never remembered as an acceptance."""
    url = "http://127.0.0.9:8000/inbox"
    first = checked_url(url, allow_private=True)
    assert checked_url(url, allow_private=True) == first
    with pytest.raises(UnsafeURL):
        checked_url(url, allow_private=False)
    allowed = parse_networks(["127.0.0.9/32"])
    assert checked_url(url, allow_private=False, allowed=allowed) == first
    with pytest.raises(UnsafeURL):
        checked_url(url, allow_private=False, allowed=parse_networks(["127.0.0.8/32"]))
    long_url = "http://127.0.0.9/" + "a" * 1000  # above the cached length: checked every time
    assert str(checked_url(long_url, allow_private=True)) == long_url
    with pytest.raises(UnsafeURL):
        checked_url(long_url, allow_private=False)


# --- property tests ---------------------------------------------------------------------------


def _addresses_in(networks: Sequence[IPNetwork]) -> st.SearchStrategy[Any]:
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])
    )


@given(_addresses_in(PRIVATE_V4) | _addresses_in(ALWAYS_FORBIDDEN_V4))
def test_property_forbidden_v4_in_every_form(address: ipaddress.IPv4Address) -> None:
    packed = int(address)
    forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
        address,
        ipaddress.IPv6Address((0xFFFF << 32) | packed),  # ::ffff:a.b.c.d
        ipaddress.IPv6Address((0xFFFF << 48) | packed),  # ::ffff:0:a.b.c.d
        ipaddress.IPv6Address((0x0064FF9B << 96) | packed),  # 64:ff9b::a.b.c.d
        ipaddress.IPv6Address((0x2002 << 112) | (packed << 80)),  # 2002:aabb:ccdd::
    ]
    if packed > 1:
        forms.append(ipaddress.IPv6Address(packed))  # ::a.b.c.d
    for form in forms:
        assert is_forbidden_address(form), form


@given(_addresses_in(PRIVATE_V6) | _addresses_in(ALWAYS_FORBIDDEN_V6))
def test_property_forbidden_v6(address: ipaddress.IPv6Address) -> None:
    assert is_forbidden_address(address)


@given(_addresses_in(ALWAYS_FORBIDDEN_V4))
def test_property_always_forbidden_survives_allow_private(address: ipaddress.IPv4Address) -> None:
    packed = int(address)
    for form in (
        address,
        ipaddress.IPv6Address((0xFFFF << 32) | packed),
        ipaddress.IPv6Address((0x0064FF9B << 96) | packed),
        ipaddress.IPv6Address((0x2002 << 112) | (packed << 80)),
    ):
        assert is_forbidden_address(form, allow_private=True), form


@given(_addresses_in(ALWAYS_FORBIDDEN_V6))
def test_property_always_forbidden_v6_survives_allow_private(address: ipaddress.IPv6Address) -> None:
    assert is_forbidden_address(address, allow_private=True)


@given(st.integers(0, 2**32 - 1))
def test_property_mapped_form_classified_like_ipv4(value: int) -> None:
    v4 = ipaddress.IPv4Address(value)
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | value)
    for allow_private in (False, True):
        assert is_forbidden_address(mapped, allow_private=allow_private) == is_forbidden_address(
            v4, allow_private=allow_private
        )


@given(st.integers(0, 2**32 - 1))
def test_property_numeric_host_spellings_never_pass_unless_canonical(value: int) -> None:
    for host in (str(value), hex(value), f"0{value:o}"):
        with pytest.raises(UnsafeURL):
            check_url(f"http://{host}/", allow_private=True)


# --- resolve_checked ---------------------------------------------------------------------------


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        if host in table:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]
            ]
        return await real(host, port, family=family, type=type, proto=proto, flags=flags)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@pytest.mark.anyio
async def test_resolve_checked_literal_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(
        monkeypatch,
        {
            "public.test": ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"],
            "internal.test": ["10.1.2.3"],
            "rebind.test": ["93.184.216.34", "127.0.0.1"],
            "metadata.test": ["169.254.169.254"],
        },
    )
    assert await resolve_checked("93.184.216.34", 443, allow_private=False) == ["93.184.216.34"]
    assert await resolve_checked("public.test", 443, allow_private=False) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]
    with pytest.raises(UnsafeURL):
        await resolve_checked("internal.test", 443, allow_private=False)
    assert await resolve_checked("internal.test", 443, allow_private=True) == ["10.1.2.3"]
    # ANY forbidden answer refuses the name (DNS-rebinding style mixed answers).
    with pytest.raises(UnsafeURL):
        await resolve_checked("rebind.test", 443, allow_private=False)
    with pytest.raises(UnsafeURL):
        await resolve_checked("metadata.test", 80, allow_private=True)
    with pytest.raises(UnsafeURL):
        await resolve_checked("127.0.0.1", 80, allow_private=False)
    with pytest.raises(UnsafeURL):
        await resolve_checked("2130706433", 80, allow_private=True)


@pytest.mark.anyio
async def test_resolve_checked_localhost() -> None:
    with pytest.raises(UnsafeURL):
        await resolve_checked("localhost", 80, allow_private=False)
    addresses = await resolve_checked("localhost", 80, allow_private=True)
    assert addresses and all(ip(a).is_loopback for a in addresses)


@pytest.mark.anyio
async def test_F10_dns_failure_is_a_gaierror() -> None:
    with pytest.raises(socket.gaierror):
        await asyncio.wait_for(resolve_checked("does-not-exist.invalid", 443, allow_private=False), 20)
