"""A minimal HTTP/1.1 inbox sink: answers every POST with 202, optionally after a delay.

`python -m benchmarks.sink SPEC.json` (pinned to the load core). It listens on `count`
consecutive loopback addresses from `first` (127.0.x.y, all loopback on Linux) at one `port`, so
each address is a distinct federation "host". `delay` seconds before answering; `slow` maps an
address to its own delay (B8). `GET /__stats` answers `{"posts": n, "by_host": {...}}` and
`POST /__reset` zeroes the counters. Prints "ready" once listening; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
from pathlib import Path

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


def addresses(first: str, count: int) -> list[str]:
    start = ipaddress.IPv4Address(first)
    out = []
    value = int(start)
    while len(out) < count:
        address = ipaddress.IPv4Address(value)
        value += 1
        if address.packed[-1] in (0, 255):
            continue  # skip .0 and .255 so every address is an ordinary host
        out.append(str(address))
    return out


class Stats:
    def __init__(self) -> None:
        self.posts = 0
        self.by_host: dict[str, int] = {}


class Sink(asyncio.Protocol):
    def __init__(self, stats: Stats, address: str, delay: float) -> None:
        self.stats = stats
        self.address = address
        self.delay = delay
        self.buf = b""
        self.need = -1
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _answer(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end]
                lower = head.lower()
                at = lower.find(b"\ncontent-length:")
                length = 0
                if at >= 0:
                    stop = lower.find(b"\r", at + 16)
                    length = int(lower[at + 16 : stop if stop >= 0 else len(lower)])
                self.need = end + 4 + length
                self.head = head
            if len(buf) < self.need:
                break
            head, buf = self.head, buf[self.need :]
            self.need = -1
            if head.startswith(b"GET /__stats"):
                body = json.dumps({"posts": self.stats.posts, "by_host": self.stats.by_host}).encode()
                self._answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            if head.startswith(b"POST /__reset"):
                self.stats.posts = 0
                self.stats.by_host.clear()
                self._answer(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                continue
            self.stats.posts += 1
            self.stats.by_host[self.address] = self.stats.by_host.get(self.address, 0) + 1
            if self.delay > 0:
                self.loop.call_later(self.delay, self._answer, ANSWER)
            else:
                self._answer(ANSWER)
        self.buf = buf


async def main(spec: dict) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    slow = spec.get("slow", {})
    servers = []
    for address in addresses(spec["first"], int(spec["count"])):
        delay = float(slow.get(address, spec.get("delay", 0.0)))
        server = await loop.create_server(
            lambda a=address, d=delay: Sink(stats, a, d), address, int(spec["port"]), backlog=1024
        )
        servers.append(server)
    control = await loop.create_server(
        lambda: Sink(stats, "control", 0.0), "127.0.0.1", int(spec["control_port"])
    )
    servers.append(control)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), float(spec.get("max_seconds", 3600)))
    for server in servers:
        server.close()


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop

        uvloop.run(main(config))
    except ImportError:
        asyncio.run(main(config))
