"""A small closed-loop HTTP/1.1 load generator (keep-alive, N connections), like `wrk -t1 -cN`.

Runs as its own process pinned to the load core: `python -m benchmarks.loadgen SPEC.json`.
It imports only the standard library and uvloop, parses answers minimally (status line and
Content-Length) and prints one JSON line: count, elapsed, rps, latency percentiles, statuses.

Spec keys: host, port, connections, requests_file (length-prefixed raw requests), mode ("cycle":
repeat the requests for `warmup` + `duration` seconds; "once": send each request once, the first
`warmup_requests` unmeasured), max_seconds (hard bound).
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from array import array
from pathlib import Path


def write_requests(path: Path, requests: list[bytes]) -> None:
    with open(path, "wb") as out:
        for raw in requests:
            out.write(struct.pack("<I", len(raw)))
            out.write(raw)


def read_requests(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        out.append(data[pos : pos + size])
        pos += size
    return out


def get_request(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Run:
    def __init__(self, spec: dict, requests: list[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.requests = requests
        self.cycle = spec.get("mode", "cycle") == "cycle"
        self.warmup_requests = int(spec.get("warmup_requests", 0))
        self.index = 0
        self.measuring = not self.cycle and self.warmup_requests == 0
        self.stopping = False
        self.latencies = array("d")
        self.statuses: dict[int, int] = {}
        self.count = 0
        self.sent = 0
        self.answered = 0
        self.t0 = time.perf_counter()
        self.t1 = 0.0
        self.errors = 0
        self.done = loop.create_future()
        self.open = 0
        self.min_count = int(spec.get("min_count", 5))
        self.host, self.port = spec["host"], int(spec["port"])

    async def reconnect(self) -> None:
        if self.stopping:
            return
        try:
            await self.loop.create_connection(lambda: Client(self), self.host, self.port)
        except OSError:
            self.errors += 1
            self.loop.call_later(0.05, lambda: self.loop.create_task(self.reconnect()))

    def start_window(self) -> None:
        self.measuring = True
        self.t0 = time.perf_counter()

    def stop_soft(self) -> None:
        """End of the window; extended (up to the hard bound) until `min_count` answers arrived."""
        if self.count < self.min_count and not self.stopping:
            self.loop.call_later(0.05, self.stop_soft)
            return
        self.stop()

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.t1 = time.perf_counter()
            if not self.done.done():
                self.done.set_result(None)

    def next_request(self) -> bytes | None:
        if self.stopping:
            return None
        if self.cycle:
            raw = self.requests[self.index % len(self.requests)]
        else:
            if self.index >= len(self.requests):
                return None
            raw = self.requests[self.index]
            if self.index == self.warmup_requests and not self.measuring:
                self.start_window()
        self.index += 1
        self.sent += 1
        return raw

    def finished(self, started: float, status: int, measured: bool) -> None:
        self.answered += 1
        if measured and not self.stopping:
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.count += 1
        if not self.cycle and self.answered >= len(self.requests):
            self.stop()


class Client(asyncio.Protocol):
    def __init__(self, run: Run) -> None:
        self.run = run
        self.buf = b""
        self.need = -1
        self.status = 0
        self.started = 0.0
        self.measured = False
        self.closing = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.open += 1
        self.send()

    def send(self) -> None:
        raw = self.run.next_request()
        if raw is None:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        self.measured = self.run.measuring
        self.started = time.perf_counter()
        self.transport.write(raw)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].lower()
                self.status = int(head[9:12])
                at = head.find(b"\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r", at + 16)
                    self.need = end + 4 + int(head[at + 16 : stop if stop >= 0 else len(head)])
                elif b"\ntransfer-encoding: chunked" in head:
                    last = buf.find(b"\r\n0\r\n\r\n", end)
                    if last < 0:
                        break
                    self.need = last + 7
                else:
                    self.need = end + 4
            if len(buf) < self.need:
                break
            buf = buf[self.need :]
            self.need = -1
            self.run.finished(self.started, self.status, self.measured)
            self.send()
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.open -= 1
        if not self.run.stopping and not self.closing:
            # The server closed the connection (e.g. after a 500): count it, open a new one.
            self.run.errors += 1
            self.run.loop.create_task(self.run.reconnect())


async def main(spec: dict) -> dict:
    loop = asyncio.get_running_loop()
    requests = read_requests(Path(spec["requests_file"]))
    run = Run(spec, requests, loop)
    conns = int(spec.get("connections", 32))
    bound = float(spec.get("max_seconds", 60))
    for _ in range(conns):
        await loop.create_connection(lambda: Client(run), spec["host"], int(spec["port"]))
    if run.cycle:
        warmup = float(spec.get("warmup", 0.5))
        duration = float(spec.get("duration", 3.0))
        loop.call_later(warmup, run.start_window)
        loop.call_later(warmup + duration, run.stop_soft)
    loop.call_later(bound, run.stop)
    await run.done
    elapsed = max(run.t1 - run.t0, 1e-9)
    lat = sorted(run.latencies)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q / 100 * len(lat)))] * 1000 if lat else float("nan")

    return {
        "count": run.count,
        "elapsed": elapsed,
        "rps": run.count / elapsed,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "statuses": {str(k): v for k, v in run.statuses.items()},
        "errors": run.errors,
        "complete": run.answered >= len(requests) if not run.cycle else True,
    }


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop

        result = uvloop.run(main(spec))
    except ImportError:
        result = asyncio.run(main(spec))
    print(json.dumps(result))
