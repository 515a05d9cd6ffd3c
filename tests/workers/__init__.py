"""Worker tests. Helpers: a scripted fake poster and a real loopback HTTP sink.

`Sink` is a tiny HTTP/1.1 server (keep-alive, Content-Length bodies) on 127.0.0.1, port 0 unless
given, whose answers a test scripts per request: status, headers, a delay before the status
line, a body dribbled byte by byte. It records every request, so tests can count deliveries per
(activity, inbox) and verify signatures with our own verifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fediverse_net.activitypub.client import DeliveryResult
from fediverse_net.activitypub.keys import SigningKey


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def activity_id(self) -> str:
        return str(orjson.loads(self.body)["id"])


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # before the status line (slow headers)
    dribble: float | None = None  # seconds between body bytes (slowloris body)


Behaviour = Callable[[Received], "Reply | Awaitable[Reply]"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    def __init__(self, behaviour: Behaviour | None = None, *, port: int = 0) -> None:
        self.behaviour = behaviour or (lambda request: Reply())
        self.port = port
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/inbox") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests per (activity id, inbox path)."""
        return Counter((r.activity_id, r.path) for r in self.received if r.method == "POST")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while request := await self._read(reader):
                self.received.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    reply = self.behaviour(request)
                    if inspect.isawaitable(reply):
                        reply = await reply
                    await self._write(writer, reply)
                finally:
                    self.in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Received(method, path, headers, body)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = {"Content-Length": str(len(reply.body)), **reply.headers}
        head = f"HTTP/1.1 {reply.status} Whatever\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n")
        if reply.dribble is None:
            writer.write(reply.body)
            await writer.drain()
            return
        for byte in reply.body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(reply.dribble)


@dataclass
class Call:
    inbox_url: str
    body: bytes
    key_id: str
    key: SigningKey


@dataclass
class FakePoster:
    """`post_activity` with scripted results per inbox URL (default 202), recording every call."""

    results: dict[str, Any] = field(default_factory=dict)  # url -> DeliveryResult | Exception | callable
    delays: dict[str, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def post_activity(self, inbox_url: str, body: bytes, *, sign_as: SigningKey) -> DeliveryResult:
        self.calls.append(Call(inbox_url, body, sign_as.key_id, sign_as))
        if delay := self.delays.get(inbox_url):
            await asyncio.sleep(delay)
        result = self.results.get(inbox_url, DeliveryResult(202, None, None, "draft-cavage"))
        if callable(result):
            result = result()
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    def urls(self) -> list[str]:
        return [call.inbox_url for call in self.calls]


def answer(
    status: int | None, *, retry_after: float | None = None, error: str | None = None
) -> DeliveryResult:
    if error is None and status is not None and not 200 <= status < 300:
        error = f"http: {status}"
    return DeliveryResult(status, retry_after, error, "draft-cavage")
