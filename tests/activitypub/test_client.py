"""FederationClient against real loopback servers: SSRF at dial time, redirects, limits, faults.

Every remote is a raw asyncio HTTP/1.1 server on 127.0.0.x with port 0, so slow bodies, gzip bombs
and keep-alive behave as on the network. Security matrix rows (D13-D15, D30-D34) and faults (F7,
F8, F10, F12) are named in the test names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fediverse_net.activitypub.client import (
    DeliveryResult,
    FederationClient,
    GuardedTransport,
    _BoundedDecoder,
    parse_json_object,
    parse_retry_after,
)
from fediverse_net.activitypub.errors import FetchError, ObjectGone, ProtocolError, UnsafeURL
from fediverse_net.activitypub.keys import SigningKey, generate_rsa_keypair, load_private_key
from fediverse_net.activitypub.signatures import (
    PublicKeyInfo,
    RequestParts,
    VerifiedSignature,
    verify_request,
)
from fediverse_net.activitypub.vocab import ACCEPT_ACTIVITY, AS_CONTEXT

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

UA = "fediverse-net/0.1.0 (+https://events.example/)"
ACTIVITY = (
    b'{"@context":"https://www.w3.org/ns/activitystreams","type":"Follow","id":"https://events.example/a/1"}'
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    private_pem, _ = generate_rsa_keypair()
    return SigningKey("https://events.example/users/alice#main-key", load_private_key(private_pem))


# --- a tiny HTTP/1.1 server ---------------------------------------------------------------------


@dataclass
class Req:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return unquote(self.target.partition("?")[2])


Handler = Callable[[Req, asyncio.StreamWriter], Awaitable[bool | None]]


@dataclass
class Gauge:
    active: int = 0
    peak: int = 0
    bumped: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, active: int) -> None:
        async with asyncio.timeout(10):
            while self.active < active:
                self.bumped.clear()
                await self.bumped.wait()


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} X"]
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def respond_json(writer: asyncio.StreamWriter, document: Any, content_type: str) -> None:
    await respond(writer, 200, json.dumps(document).encode(), {"Content-Type": content_type})


@dataclass
class LoopbackServer:
    handler: Handler
    host: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    gauge: Gauge = field(default_factory=Gauge)
    requests: list[Req] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def origin(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Req(method, target, headers, body)
                self.requests.append(request)
                self.gauge.active += 1
                self.gauge.peak = max(self.gauge.peak, self.gauge.active)
                self.gauge.bumped.set()
                try:
                    keep_open = await self.handler(request, writer)
                finally:
                    self.gauge.active -= 1
                if keep_open is False:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # test teardown: end quietly (asyncio logs cancelled connection callbacks)
        finally:
            self._tasks.discard(task)
            writer.close()


async def verify(request: Req, server: LoopbackServer, key: SigningKey) -> VerifiedSignature:
    """Check the request's signature with the real verifier, as a remote would."""

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        assert key_id == key.key_id
        return PublicKeyInfo(key_id, "https://events.example/users/alice", key.private_key.public_key())

    parts = RequestParts(request.method, request.target, request.headers, request.body, server.origin)
    return await verify_request(parts, key_lookup=lookup, now=dt.datetime.now(dt.UTC))


def make_client(**kwargs: Any) -> FederationClient:
    kwargs.setdefault("allow_private", True)
    return FederationClient(user_agent=UA, **kwargs)


def note(id_: str, **extra: Any) -> dict[str, Any]:
    return {
        "@context": [AS_CONTEXT, {"toot": "http://joinmastodon.org/ns#"}],
        "id": id_,
        "type": "Note",
        **extra,
    }


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    """Make `getaddrinfo` answer `table` for some names (the client must dial what it checked)."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]
        return await real(host, port, family=family, type=type, proto=proto, flags=flags)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


# --- fetch_object --------------------------------------------------------------------------------


async def test_fetch_object_signed_get(key: SigningKey) -> None:
    seen: list[VerifiedSignature] = []

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        seen.append(await verify(request, server, key))
        await respond_json(writer, note(server.url("/notes/1")), "application/activity+json; charset=utf-8")

    async with LoopbackServer(handler) as server, make_client() as client:
        document = await client.fetch_object(server.url("/notes/1"), sign_as=key)
    assert document["id"] == server.url("/notes/1")
    (request,) = server.requests
    assert request.headers["accept"] == ACCEPT_ACTIVITY
    assert request.headers["accept-encoding"] == "gzip"
    assert request.headers["user-agent"] == UA
    assert seen[0].scheme == "draft-cavage"


async def test_fetch_object_unsigned_and_ld_json_profile() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond_json(writer, note(server.url("/n")), f'application/ld+json; profile="{AS_CONTEXT}"')

    async with LoopbackServer(handler) as server, make_client() as client:
        assert (await client.fetch_object(server.url("/n"), sign_as=None))["type"] == "Note"
    assert "signature" not in server.requests[0].headers


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "text/html", "application/ld+json", None]
)
async def test_D14_non_activitystreams_content_type_refused(content_type: str | None) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        await respond(writer, 200, json.dumps(note(server.url("/n"))).encode(), headers)

    async with LoopbackServer(handler) as server, make_client() as client:
        with pytest.raises(FetchError, match="Content-Type"):
            await client.fetch_object(server.url("/n"), sign_as=None)


async def test_D13_id_mismatch_refused() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        ids = {"/other-host": "https://victim.example/notes/1", "/same-host": server.url("/elsewhere")}
        await respond_json(writer, note(ids[request.path]), "application/activity+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        for path in ("/other-host", "/same-host"):
            with pytest.raises(FetchError, match="differs"):
                await client.fetch_object(server.url(path), sign_as=None)
        # expect_id=False (a pasted link): another id on the same origin is returned...
        assert (await client.fetch_object(server.url("/same-host"), sign_as=None, expect_id=False))["id"]
        # ...but never one on another origin (FEP-fe34).
        with pytest.raises(FetchError, match="origin"):
            await client.fetch_object(server.url("/other-host"), sign_as=None, expect_id=False)


async def test_fetch_object_requires_as_context_object_and_id() -> None:
    bodies = {
        "/no-context": {"id": "X", "type": "Note"},
        "/wrong-context": {"@context": "https://example.com/ctx", "id": "X"},
        "/array": [note("X")],
        "/no-id": {"@context": AS_CONTEXT, "type": "Note"},
    }

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        document = json.loads(
            json.dumps(bodies[request.path]).replace('"X"', json.dumps(server.url(request.path)))
        )
        await respond_json(writer, document, "application/activity+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        for path in bodies:
            with pytest.raises(FetchError):
                await client.fetch_object(server.url(path), sign_as=None)


async def test_410_and_tombstone_are_object_gone_other_statuses_fetch_error() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if request.path == "/gone":
            await respond(writer, 410, b"gone")
        elif request.path == "/tombstone":
            document = {"@context": AS_CONTEXT, "id": server.url("/tombstone"), "type": "Tombstone"}
            await respond_json(writer, document, "application/activity+json")
        else:
            await respond(writer, 404, b"nope")

    async with LoopbackServer(handler) as server, make_client() as client:
        with pytest.raises(ObjectGone) as gone:
            await client.fetch_object(server.url("/gone"), sign_as=None)
        assert gone.value.status == 410
        with pytest.raises(ObjectGone):
            await client.fetch_object(server.url("/tombstone"), sign_as=None)
        with pytest.raises(FetchError) as missing:
            await client.fetch_object(server.url("/missing"), sign_as=None)
        assert missing.value.status == 404
        assert not isinstance(missing.value, ObjectGone)


async def test_json_depth_limited() -> None:
    def nested(depth: int) -> bytes:
        return (
            b'{"@context":"'
            + AS_CONTEXT.encode()
            + b'","id":"ID","x":'
            + b"[" * (depth - 1)
            + b"]" * (depth - 1)
            + b"}"
        )

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        depth = int(request.path.strip("/"))
        body = nested(depth).replace(b'"ID"', json.dumps(server.url(request.path)).encode())
        await respond(writer, 200, body, {"Content-Type": "application/activity+json"})

    async with LoopbackServer(handler) as server, make_client() as client:
        assert await client.fetch_object(server.url("/64"), sign_as=None)
        for depth in (65, 100_000):
            with pytest.raises(FetchError, match="nested"):
                await client.fetch_object(server.url(f"/{depth}"), sign_as=None)


def test_parse_json_object_rejects_bad_input() -> None:
    for body in (b"", b"[]", b"nope", b'{"a": NaN}', b"\xff\xfe{", b'{"a": ' + b"1" * 5000 + b"}"):
        with pytest.raises(FetchError):
            parse_json_object(body)
    assert parse_json_object(b'{"a": [1, {"b": 2}]}', max_depth=3) == {"a": [1, {"b": 2}]}
    with pytest.raises(FetchError):
        parse_json_object(b'{"a": [1, {"b": []}]}', max_depth=3)


# --- redirects (D15, D31) ------------------------------------------------------------------------


async def test_D15_redirects_followed_resigned_and_capped_at_three(key: SigningKey) -> None:
    signed_targets: list[str] = []

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await verify(request, server, key)  # every hop carries a signature for its own URL
        signed_targets.append(request.target)
        hop, _, chain = request.path.strip("/").partition("/")
        if int(hop) < int(chain):
            await respond(writer, 302, headers={"Location": f"/{int(hop) + 1}/{chain}"})
        else:
            original = server.url(f"/0/{chain}")
            await respond_json(writer, note(original), "application/activity+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        document = await client.fetch_object(server.url("/0/3"), sign_as=key)
        assert document["id"] == server.url("/0/3")
        assert signed_targets == ["/0/3", "/1/3", "/2/3", "/3/3"]
        with pytest.raises(FetchError, match="more than 3 redirects"):
            await client.fetch_object(server.url("/0/4"), sign_as=key)
        assert len(signed_targets) == 4 + 4  # the fifth document is never requested


async def test_D15_redirect_to_another_origin_keeps_id_rules() -> None:
    async def far_handler(request: Req, writer: asyncio.StreamWriter) -> None:
        ids = {"/claims-original": near.url("/n"), "/own": far.url("/own")}
        await respond_json(writer, note(ids[request.path]), "application/activity+json")

    async def near_handler(request: Req, writer: asyncio.StreamWriter) -> None:
        target = "/claims-original" if request.path == "/n" else "/own"
        await respond(writer, 301, headers={"Location": far.url(target)})

    async with (
        LoopbackServer(far_handler) as far,
        LoopbackServer(near_handler) as near,
        make_client() as client,
    ):
        # The document claims the id we asked for, but is served by another origin: refused.
        with pytest.raises(FetchError, match="origin"):
            await client.fetch_object(near.url("/n"), sign_as=None)
        # A pasted link that redirects to a document naming its own (final) URL is fine...
        document = await client.fetch_object(near.url("/pasted"), sign_as=None, expect_id=False)
        assert document["id"] == far.url("/own")
        # ...but a known id must come back unchanged.
        with pytest.raises(FetchError, match="differs"):
            await client.fetch_object(near.url("/pasted"), sign_as=None)


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/internal",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://2130706433:{port}/",
        "file:///etc/passwd",
        "http://internal.test:{port}/",  # a name that resolves to loopback: refused at dial time
    ],
)
async def test_D31_redirect_to_internal_address_refused(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"internal.test": ["127.0.0.1"]})
    inner_hits: list[Req] = []

    async def internal(request: Req, writer: asyncio.StreamWriter) -> None:
        inner_hits.append(request)
        await respond(writer, 200, b"secret")

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 302, headers={"Location": location.format(port=victim.port)})

    # The "remote" lives on 127.0.0.2, explicitly allowed; everything else private is refused.
    async with (
        LoopbackServer(internal, host="127.0.0.1") as victim,
        LoopbackServer(handler, host="127.0.0.2") as server,
        make_client(allow_private=False, allowed_networks=["127.0.0.2/32"], insecure_http=True) as client,
    ):
        with pytest.raises(UnsafeURL):
            await client.fetch_object(server.url("/actor"), sign_as=None)
    assert len(server.requests) == 1
    assert victim.connections == 0 and not inner_hits


async def test_D31_D34_post_redirect_is_permanent_failure(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 307, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    async with LoopbackServer(handler) as server, make_client() as client:
        result = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
    assert result.status == 307 and result.permanent and not result.ok
    assert result.error is not None and result.error.startswith("redirect")
    assert len(server.requests) == 1


# --- SSRF at dial time (D30, D34) ---------------------------------------------------------------


async def test_D34_inbox_on_internal_address_refused_before_connect(
    key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING")

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 202)

    async with (
        LoopbackServer(handler) as server,
        make_client(allow_private=False, insecure_http=True) as client,
    ):
        for inbox in (server.url("/inbox"), f"http://localhost:{server.port}/inbox"):
            with pytest.raises(UnsafeURL):
                await client.post_activity(inbox, ACTIVITY, sign_as=key)
    assert server.connections == 0
    assert [r.getMessage() for r in caplog.records] == ["url refused", "url refused"]


async def test_D30_name_resolving_to_internal_address_refused_at_dial(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING")
    fake_dns(monkeypatch, {"internal.test": ["127.0.0.1"], "rebind.test": ["127.0.0.2", "127.0.0.1"]})

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 202)

    async with (
        LoopbackServer(handler) as server,
        make_client(allow_private=False, allowed_networks=["127.0.0.2/32"], insecure_http=True) as client,
    ):
        for host in ("internal.test", "rebind.test"):
            with pytest.raises(UnsafeURL, match="not allowed"):
                await client.post_activity(f"http://{host}:{server.port}/inbox", ACTIVITY, sign_as=key)
            with pytest.raises(UnsafeURL):
                await client.fetch_object(f"http://{host}:{server.port}/n", sign_as=None)
    assert server.connections == 0
    assert {r.getMessage() for r in caplog.records} == {"connection refused"}


async def test_dials_checked_address_but_keeps_host_header(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"peer.test": ["127.0.0.1"]})
    seen: list[VerifiedSignature] = []

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        seen.append(await verify_as(request, f"http://peer.test:{server.port}", key))
        await respond(writer, 202)

    async with LoopbackServer(handler) as server, make_client() as client:
        result = await client.post_activity(f"http://peer.test:{server.port}/inbox", ACTIVITY, sign_as=key)
    assert result.ok
    assert server.requests[0].headers["host"] == f"peer.test:{server.port}"
    assert seen


async def verify_as(request: Req, origin: str, key: SigningKey) -> VerifiedSignature:
    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        return PublicKeyInfo(key_id, "https://events.example/users/alice", key.private_key.public_key())

    parts = RequestParts(request.method, request.target, request.headers, request.body, origin)
    return await verify_request(parts, key_lookup=lookup, now=dt.datetime.now(dt.UTC))


def _tls_material(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A test CA and a leaf certificate for `name` only (no IP SAN): (server ctx, client ctx)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fediverse-net test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_ctx, client_ctx


async def test_tls_sni_and_certificate_use_the_name_not_the_dialled_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"peer.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    server_ctx, client_ctx = _tls_material(tmp_path, "peer.test")
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond_json(writer, note(f"https://peer.test:{server.port}/n"), "application/activity+json")

    transport = GuardedTransport(allow_private=True, verify=client_ctx)
    async with (
        LoopbackServer(handler, ssl_context=server_ctx) as server,
        make_client(transport=transport, insecure_http=False) as client,
    ):
        document = await client.fetch_object(f"https://peer.test:{server.port}/n", sign_as=None)
        assert document["type"] == "Note"
        assert sni == ["peer.test"]
        # Same address, another name: the certificate does not match, so the request fails.
        with pytest.raises(FetchError, match="tls-certificate"):
            await client.fetch_object(f"https://other.test:{server.port}/n", sign_as=None)


# --- body limits and deadlines (F7, F12) ---------------------------------------------------------


async def test_F7_slowloris_body_aborted_at_deadline(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nContent-Length: 100000\r\n\r\n"
        )
        while True:  # one byte every 100 ms: no single read ever times out
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    async with LoopbackServer(handler) as server, make_client(deadline=1.0) as client:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timeout"):
            await client.fetch_object(server.url("/slow"), sign_as=key)
        assert 0.9 < time.monotonic() - started < 3.0
        started = time.monotonic()
        result = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
        assert 0.9 < time.monotonic() - started < 3.0
    assert result.status is None and result.error is not None and result.error.startswith("timeout")
    assert not result.permanent


async def test_F7_silent_server_aborted_at_deadline() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async with LoopbackServer(handler) as server, make_client(deadline=0.5) as client:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timeout"):
            await client.fetch_object(server.url("/silent"), sign_as=None)
        assert time.monotonic() - started < 2.5


async def test_F12_gzip_bomb_aborted_on_decompressed_size() -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if request.path == "/bomb":
            headers = {"Content-Type": "application/activity+json", "Content-Encoding": "gzip"}
            await respond(writer, 200, bomb, headers)
        else:
            body = gzip.compress(json.dumps(note(server.url("/ok"))).encode())
            await respond(
                writer, 200, body, {"Content-Type": "application/activity+json", "Content-Encoding": "gzip"}
            )

    async with LoopbackServer(handler) as server, make_client() as client:
        with pytest.raises(FetchError, match="exceeds 1048576 bytes"):
            await client.fetch_object(server.url("/bomb"), sign_as=None)
        assert (await client.fetch_object(server.url("/ok"), sign_as=None))["type"] == "Note"
    assert server.connections == 2  # the aborted connection was closed, not reused


def test_F12_decoder_never_expands_past_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024))
    decoder = _BoundedDecoder("gzip", 1000)
    with pytest.raises(FetchError, match="exceeds"):
        decoder.feed(bomb)
    assert len(decoder._out) <= 1001
    for encoding, data in (("gzip", gzip.compress(b"abc") + gzip.compress(b"def")), ("identity", b"abcdef")):
        ok = _BoundedDecoder(encoding, 10)
        ok.feed(data)
        assert ok.finish() == b"abcdef"
    import zlib

    for payload in (zlib.compress(b"hello"), zlib.compress(b"hello")[2:-4]):  # zlib-wrapped and raw deflate
        deflate = _BoundedDecoder("deflate", 10)
        deflate.feed(payload)
        assert deflate.finish() == b"hello"
    with pytest.raises(FetchError, match="Content-Encoding"):
        _BoundedDecoder("br", 10)
    truncated = _BoundedDecoder("gzip", 100)
    truncated.feed(gzip.compress(b"hello world")[:-10])
    with pytest.raises(FetchError, match="truncated"):
        truncated.finish()


async def test_F12_endless_and_oversized_bodies_aborted() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> bool:
        if request.path == "/declared":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n")
            writer.write(b"Content-Length: 2000000\r\n\r\n")
            await writer.drain()
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()

    async with LoopbackServer(handler) as server, make_client() as client:
        for path in ("/declared", "/endless"):
            with pytest.raises(FetchError, match="exceeds"):
                await client.fetch_object(server.url(path), sign_as=None)


# --- delivery: statuses, Retry-After, double-knock, concurrency (F8, F9) -------------------------


def test_F8_parse_retry_after() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 999999 ", now=now) == 999999.0
    assert parse_retry_after(formatdate(now + 300, usegmt=True), now=now) == 300.0
    assert parse_retry_after(formatdate(now - 300, usegmt=True), now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5", "9" * 40, "Mon, 99 Foo 2026 99:99:99 GMT"):
        assert parse_retry_after(junk, now=now) is None


async def test_F8_429_and_503_retry_after_seconds_and_http_date(key: SigningKey) -> None:
    now = 1_800_000_000.0

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if request.path == "/seconds":
            await respond(writer, 429, b"slow down", {"Retry-After": "120"})
        elif request.path == "/date":
            await respond(writer, 503, b"", {"Retry-After": formatdate(now + 3600, usegmt=True)})
        else:
            await respond(writer, 500, b"oops")

    async with LoopbackServer(handler) as server, make_client(clock=lambda: now) as client:
        seconds = await client.post_activity(server.url("/seconds"), ACTIVITY, sign_as=key)
        date = await client.post_activity(server.url("/date"), ACTIVITY, sign_as=key)
        error = await client.post_activity(server.url("/500"), ACTIVITY, sign_as=key)
    assert (seconds.status, seconds.retry_after, seconds.permanent) == (429, 120.0, False)
    assert (date.status, date.retry_after, date.permanent) == (503, 3600.0, False)
    assert (error.status, error.retry_after, error.permanent) == (500, None, False)
    assert error.error == "http: 500"


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (202, False),
        (400, True),
        (403, True),
        (404, True),
        (410, True),
        (413, True),
        (401, False),
        (408, False),
        (429, False),
        (500, False),
        (501, True),
        (502, False),
        (308, True),
    ],
)
def test_F9_delivery_result_classification(status: int, permanent: bool) -> None:
    assert DeliveryResult(status, None, None, "draft-cavage").permanent is permanent
    assert DeliveryResult(None, None, "connect: refused", "draft-cavage").permanent is False


async def test_post_activity_headers_and_signature(key: SigningKey) -> None:
    seen: list[VerifiedSignature] = []

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        seen.append(await verify(request, server, key))
        await respond(writer, 202)

    async with LoopbackServer(handler) as server, make_client() as client:
        result = await client.post_activity(server.url("/users/bob/inbox"), ACTIVITY, sign_as=key)
    assert result == DeliveryResult(202, None, None, "draft-cavage")
    (request,) = server.requests
    assert request.body == ACTIVITY
    assert request.headers["content-type"] == "application/activity+json"
    assert request.headers["content-length"] == str(len(ACTIVITY))
    assert request.headers["user-agent"] == UA
    assert "digest" in request.headers and "signature" in request.headers
    assert "signature-input" not in request.headers
    assert seen[0].scheme == "draft-cavage"


async def test_double_knock_switches_to_rfc9421_and_remembers_host(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if "signature-input" not in request.headers:
            await respond(writer, 401, b"RFC 9421 only")
            return
        assert (await verify(request, server, key)).scheme == "rfc9421"
        await respond(writer, 202)

    async with LoopbackServer(handler) as server, make_client() as client:
        first = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
        assert first.status == 202 and first.scheme_used == "rfc9421"
        assert [("signature-input" in r.headers) for r in server.requests] == [False, True]
        assert client.scheme_for(f"127.0.0.1:{server.port}") == "rfc9421"
        second = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
        assert second.status == 202 and second.scheme_used == "rfc9421"
        assert len(server.requests) == 3  # no knock the second time
        # Signed GETs to that host use the remembered scheme too.
        with pytest.raises(FetchError):
            await client.fetch_object(server.url("/inbox"), sign_as=key)
        assert "signature-input" in server.requests[-1].headers


async def test_double_knock_keeps_the_retryable_answer(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 400 if "signature-input" in request.headers else 401)

    async with LoopbackServer(handler) as server, make_client() as client:
        result = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
        assert (result.status, result.scheme_used, result.permanent) == (401, "draft-cavage", False)
        assert len(server.requests) == 2
        assert client.scheme_for(f"127.0.0.1:{server.port}") == "draft-cavage"


async def test_F1_network_errors_are_results_not_exceptions(key: SigningKey) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    async with make_client() as client:
        refused = await client.post_activity(f"http://127.0.0.1:{closed_port}/inbox", ACTIVITY, sign_as=key)
        assert refused.status is None and refused.error is not None and refused.error.startswith("connect")
        with pytest.raises(FetchError) as failed:
            await client.fetch_object(f"http://127.0.0.1:{closed_port}/n", sign_as=None)
        assert failed.value.status is None
        nxdomain = await client.post_activity("http://does-not-exist.invalid/inbox", ACTIVITY, sign_as=key)
        assert nxdomain.status is None and nxdomain.error is not None and nxdomain.error.startswith("dns-")


async def test_keep_alive_connection_reused(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 202, b'{"ok":true}')

    async with LoopbackServer(handler) as server, make_client() as client:
        for _ in range(5):
            assert (await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)).ok
    assert server.connections == 1


async def test_per_host_concurrency_limit(key: SigningKey) -> None:
    release = asyncio.Event()

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await respond(writer, 202)

    async with LoopbackServer(handler) as server, make_client(per_host_limit=2) as client:
        tasks = [
            asyncio.create_task(client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key))
            for _ in range(8)
        ]
        await server.gauge.wait_for(2)
        await asyncio.sleep(0.2)
        assert server.gauge.active == 2
        release.set()
        results = await asyncio.gather(*tasks)
    assert all(r.ok for r in results)
    assert server.gauge.peak == 2
    assert not client._host_slots  # per-host state is dropped when idle


async def test_global_concurrency_limit_across_hosts(key: SigningKey) -> None:
    release = asyncio.Event()
    gauge = Gauge()

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await respond(writer, 202)

    async with (
        LoopbackServer(handler, gauge=gauge) as one,
        LoopbackServer(handler, gauge=gauge) as two,
        make_client(per_host_limit=3, global_limit=4) as client,
    ):
        tasks = [
            asyncio.create_task(client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key))
            for server in (one, two)
            for _ in range(5)
        ]
        await gauge.wait_for(4)
        await asyncio.sleep(0.2)
        assert gauge.active == 4
        release.set()
        assert all(r.ok for r in await asyncio.gather(*tasks))
    assert gauge.peak == 4


async def test_plain_http_refused_unless_insecure(key: SigningKey) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(202))
    async with make_client(allow_private=False, transport=transport) as client:
        with pytest.raises(UnsafeURL, match="plain http"):
            await client.post_activity("http://remote.example/inbox", ACTIVITY, sign_as=key)
        assert (await client.post_activity("https://remote.example/inbox", ACTIVITY, sign_as=key)).ok


# --- WebFinger (§1.2, D33) ------------------------------------------------------------------------


def jrd(subject: str, href: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "links": [
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": "https://x.example/@a",
            },
            {"rel": "self", "type": "text/html", "href": "https://x.example/not-this"},
            {"rel": "self", "type": "application/activity+json", "href": href},
            {"rel": "self", "type": "application/activity+json", "href": "https://x.example/second"},
        ],
    }


async def test_webfinger_resolves_actor_id() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        assert request.path == "/.well-known/webfinger"
        resource = request.query.removeprefix("resource=")
        await respond_json(writer, jrd(resource.upper(), server.url("/users/alice")), "application/jrd+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        for handle in (
            f"alice@127.0.0.1:{server.port}",
            f"@alice@127.0.0.1:{server.port}",
            f"acct:alice@127.0.0.1:{server.port}",
        ):
            assert await client.webfinger(handle) == server.url("/users/alice")
    request = server.requests[0]
    assert request.query == f"resource=acct:alice@127.0.0.1:{server.port}"
    assert request.headers["accept"] == "application/jrd+json, application/json"
    assert "signature" not in request.headers


async def test_webfinger_subject_redirection_is_rechecked_once() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        resource = request.query.removeprefix("resource=")
        user = resource.removeprefix("acct:").partition("@")[0]
        subjects = {
            "alias": f"acct:alice@localhost:{server.port}",
            "alice": f"acct:alice@localhost:{server.port}",
            "liar": f"acct:victim@localhost:{server.port}",
            "victim": f"acct:someone-else@localhost:{server.port}",
        }
        await respond_json(writer, jrd(subjects[user], server.url(f"/users/{user}")), "application/json")

    async with LoopbackServer(handler) as server, make_client() as client:
        assert await client.webfinger(f"alias@127.0.0.1:{server.port}") == server.url("/users/alice")
        assert [r.query.removeprefix("resource=") for r in server.requests] == [
            f"acct:alias@127.0.0.1:{server.port}",
            f"acct:alice@localhost:{server.port}",
        ]
        with pytest.raises(FetchError, match="confirm"):
            await client.webfinger(f"liar@127.0.0.1:{server.port}")


async def test_webfinger_host_meta_fallback_and_gone() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if request.path == "/.well-known/webfinger":
            await respond(writer, 410 if "gone" in request.query else 404)
        elif request.path == "/.well-known/host-meta":
            xrd = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">'
                f'<Link rel="lrdd" template="{server.url("/wf")}?resource={{uri}}"/></XRD>'
            )
            await respond(writer, 200, xrd.encode(), {"Content-Type": "application/xrd+xml"})
        else:
            assert request.path == "/wf"
            resource = request.query.removeprefix("resource=")
            await respond_json(writer, jrd(resource, server.url("/users/bob")), "application/jrd+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        assert await client.webfinger(f"bob@127.0.0.1:{server.port}") == server.url("/users/bob")
        assert [r.path for r in server.requests] == [
            "/.well-known/webfinger",
            "/.well-known/host-meta",
            "/wf",
        ]
        with pytest.raises(ObjectGone):
            await client.webfinger(f"gone@127.0.0.1:{server.port}")


@pytest.mark.parametrize(
    "href",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/actor",
        "file:///etc/passwd",
        "http://[fe80::1]/a",
    ],
)
async def test_D33_webfinger_href_to_forbidden_address_refused(href: str) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        resource = request.query.removeprefix("resource=")
        await respond_json(writer, jrd(resource, href), "application/jrd+json")

    async with LoopbackServer(handler) as server, make_client() as client:
        with pytest.raises(UnsafeURL):
            await client.webfinger(f"mallory@127.0.0.1:{server.port}")


async def test_webfinger_rejects_bad_answers_and_handles() -> None:
    answers: dict[str, tuple[int, bytes, str]] = {
        "nolink": (
            200,
            json.dumps({"subject": "acct:nolink@h", "links": []}).encode(),
            "application/jrd+json",
        ),
        "nosubject": (200, json.dumps({"links": []}).encode(), "application/jrd+json"),
        "html": (200, b"<html></html>", "text/html"),
        "error": (500, b"", "text/plain"),
    }

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        user = request.query.removeprefix("resource=acct:").partition("@")[0]
        status, body, content_type = answers[user]
        await respond(writer, status, body, {"Content-Type": content_type})

    async with LoopbackServer(handler) as server, make_client() as client:
        for user in answers:
            with pytest.raises(FetchError):
                await client.webfinger(f"{user}@127.0.0.1:{server.port}")
        for handle in (
            "nobody",
            "@example.com",
            "a/b@example.com",
            "a b@example.com",
            "a@exa/mple.com",
            "alice@user:pw@example.com",
        ):
            with pytest.raises(ProtocolError):
                await client.webfinger(handle)
        for handle in (
            "alice@169.254.169.254",
            "alice@2130706433",
            "alice@example.onion",
            "alice@host:99999",
        ):
            with pytest.raises(UnsafeURL):
                await client.webfinger(handle)


async def test_webfinger_uses_https_when_not_insecure() -> None:
    urls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(
            200, json=jrd("acct:alice@remote.example", "https://remote.example/users/alice")
        )

    transport = httpx.MockTransport(handle)
    async with make_client(allow_private=False, transport=transport) as client:
        assert await client.webfinger("Alice@Remote.Example") == "https://remote.example/users/alice"
    assert urls == ["https://remote.example/.well-known/webfinger?resource=acct:Alice@remote.example"]


# --- transport: per-origin pools, cookies, environment --------------------------------------------


async def test_transport_keeps_one_small_pool_per_origin_and_evicts_idle_ones() -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 200, b"ok")

    transport = GuardedTransport(allow_private=True, max_origins=2)
    async with (
        LoopbackServer(handler) as one,
        LoopbackServer(handler) as two,
        LoopbackServer(handler) as three,
        httpx.AsyncClient(transport=transport) as http,
    ):
        for server in (one, one, two, three):
            assert (await http.get(server.url("/"))).status_code == 200
        assert len(transport._shards) == 2  # the least recently used origin was closed
        assert all(shard.in_flight == 0 for shard in transport._shards.values())
        assert (await http.get(one.url("/"))).status_code == 200
        assert one.connections == 2  # its pool (and kept-alive connection) had been evicted
        assert (await http.get(three.url("/"))).status_code == 200
        assert three.connections == 1  # still pooled


async def test_cookies_never_stored_and_proxy_environment_ignored(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 202, headers={"Set-Cookie": "session=tracking; Path=/"})

    async with LoopbackServer(handler) as server, make_client() as client:
        for _ in range(2):
            assert (await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)).ok
    assert all("cookie" not in request.headers for request in server.requests)


# --- the aiohttp POST path (aiohttp_poster.py) ---------------------------------------------------


async def test_posts_use_one_lazy_aiohttp_session_unless_a_transport_is_injected(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 202)

    client = make_client()
    assert client._poster is not None and client._poster._session is None  # created inside the loop
    async with LoopbackServer(handler) as server:
        for _ in range(2):
            assert (await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)).ok
        session = client._poster._session
        assert session is not None and not session.closed
        await client.aclose()
    assert session.closed and server.connections == 1

    posted: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(202)

    async with make_client(transport=httpx.MockTransport(record)) as mocked:
        assert mocked._poster is None
        assert (await mocked.post_activity("http://remote.example/inbox", ACTIVITY, sign_as=key)).ok
    assert [r.content for r in posted] == [ACTIVITY]


async def test_checked_resolver_returns_only_checked_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    from fediverse_net.activitypub.aiohttp_poster import CheckedResolver

    fake_dns(monkeypatch, {"peer.test": ["127.0.0.1"], "mixed.test": ["8.8.8.8", "10.0.0.1"]})
    results = await CheckedResolver(allow_private=True).resolve("peer.test", 8080)
    assert [(r["hostname"], r["host"], r["port"], r["family"]) for r in results] == [
        ("peer.test", "127.0.0.1", 8080, socket.AF_INET)
    ]
    for host in ("peer.test", "mixed.test"):
        with pytest.raises(UnsafeURL):
            await CheckedResolver(allow_private=False).resolve(host, 443)


async def test_post_answer_is_drained_only_up_to_the_limit(key: SigningKey) -> None:
    async def handler(request: Req, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100000000\r\n\r\n")
        for _ in range(200):  # 12.8 MB, far more than MAX_POST_RESPONSE_DRAIN
            writer.write(b"x" * 65536)
            await writer.drain()
        return False

    async with LoopbackServer(handler) as server, make_client(deadline=5.0) as client:
        started = time.monotonic()
        for _ in range(2):
            result = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
            assert result.ok and result.status == 202
        assert time.monotonic() - started < 4.0
    assert server.connections == 2  # a half-read answer's connection is not reused


@pytest.mark.parametrize(
    ("errno", "kind"), [(socket.EAI_NONAME, "dns-nxdomain"), (socket.EAI_AGAIN, "dns-failure")]
)
async def test_F10_dns_error_kinds_over_aiohttp(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch, errno: int, kind: str
) -> None:
    loop = asyncio.get_running_loop()

    async def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(errno, "lookup failed")

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    async with make_client() as client:
        result = await client.post_activity("http://peer.test:1/inbox", ACTIVITY, sign_as=key)
    assert result.status is None and result.error is not None and result.error.startswith(f"{kind}:")
    assert not result.permanent


async def test_protocol_errors_over_aiohttp(key: SigningKey) -> None:
    async def garbage(request: Req, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        return False

    async def hang_up(request: Req, writer: asyncio.StreamWriter) -> bool:
        return False

    for handler in (garbage, hang_up):
        async with LoopbackServer(handler) as server, make_client() as client:
            result = await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)
        assert result.status is None and result.error is not None
        assert result.error.startswith("protocol:"), result.error


async def test_post_sends_the_signed_url_unchanged(key: SigningKey) -> None:
    seen: list[VerifiedSignature] = []

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        seen.append(await verify(request, server, key))
        await respond(writer, 202)

    async with LoopbackServer(handler) as server, make_client() as client:
        result = await client.post_activity(server.url("/in%62ox?a=%2F&b=c%20d"), ACTIVITY, sign_as=key)
    assert result.ok and seen
    assert server.requests[0].target == "/in%62ox?a=%2F&b=c%20d"


# --- F15: peers' Date headers feed the clock monitor ----------------------------------------------


async def test_F15_dates_of_get_and_post_answers_feed_the_clock_monitor(key: SigningKey) -> None:
    """GETs (httpx) and inbox POSTs (aiohttp) both report the peer's `Date`; one sample per host name."""
    skewed = formatdate(time.time() - 7200, usegmt=True)  # peers 2 h behind: our clock is ahead

    async def handler(request: Req, writer: asyncio.StreamWriter) -> None:
        if request.method == "POST":
            await respond(writer, 202, headers={"Date": skewed})
        else:
            body = json.dumps(note(f"http://{request.headers['host']}/n")).encode()
            await respond(writer, 200, body, {"Content-Type": "application/activity+json", "Date": skewed})

    client = make_client()
    assert client._poster is not None  # the real aiohttp path for POSTs
    async with (
        LoopbackServer(handler, host="127.0.0.1") as one,
        LoopbackServer(handler, host="127.0.0.2") as two,
        LoopbackServer(handler, host="127.0.0.3") as three,
        LoopbackServer(handler, host="127.0.0.3") as three_again,
        client,
    ):
        await client.fetch_object(one.url("/n"), sign_as=key)
        assert client.clock_monitor.estimate().hosts == 1
        for server in (two, three, three_again):  # another port of 127.0.0.3 is not another opinion
            assert (await client.post_activity(server.url("/inbox"), ACTIVITY, sign_as=key)).ok
        estimate = client.clock_monitor.estimate()
    assert estimate.hosts == 3 and estimate.status == "skewed"
    assert estimate.offset is not None and abs(estimate.offset + 7200) < 60
    assert estimate.rejected_by_peers
