"""Outbound HTTP client alternatives for the delivery worker: `python -m benchmarks.clients [--quick]`.

B5 shows FederationClient (httpx 0.28 over its guarded httpcore pool) reaching only ~0.3× of RSA
signing. This file measures the alternatives on the same footing — signed 2 KB POSTs to 16
loopback sink hosts answering 202, client pinned to core 0, sink on core 1, c32 and c64,
interleaved rounds, medians — and writes `benchmarks/results/clients.md`:

* `federation-client`: FederationClient as today (httpx + GuardedTransport, one pool);
* `federation-client-sharded-4`: four FederationClients, a host always on the same one;
* `federation-client-over-aiohttp`: FederationClient given an `httpx.AsyncClient` whose transport
  is `httpx_aiohttp.AiohttpTransport` (keeps our API; loses the dial-time SSRF check as is);
* `aiohttp-signed`: aiohttp `ClientSession` directly, signing each request with `sign_request`;
* `aiohttp-presigned`: aiohttp with headers signed in advance (the client's own ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, free_port, median

VARIANTS = (
    "federation-client",
    "federation-client-sharded-4",
    "federation-client-over-aiohttp",
    "aiohttp-signed",
    "aiohttp-presigned",
)


async def child_clients(
    first: str, count: int, port: int, levels: list[int], rounds: int, seconds: float, warmup: float
) -> dict:
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    from benchmarks.delivery_scenarios import _body, _settings, _sign_loop
    from benchmarks.harness import keypairs
    from benchmarks.sink import addresses
    from fediverse_net.activitypub.client import FederationClient
    from fediverse_net.activitypub.keys import SigningKey, load_private_key
    from fediverse_net.activitypub.signatures import sign_request
    from fediverse_net.app import build_client

    key = SigningKey("http://127.0.0.1:1/users/alice#main-key", load_private_key(keypairs(1)[0][0]))
    urls = [f"http://{a}:{port}/inbox" for a in addresses(first, count)]
    body = _body()
    presigned = {
        u: {**sign_request("POST", u, body, key=key), "Accept": "application/activity+json"} for u in urls
    }

    async def make(variant: str, c: int) -> tuple[Any, Any]:
        settings = _settings("sqlite://:memory:").with_(delivery_concurrency=c)
        if variant == "federation-client":
            client = build_client(settings)
            return (lambda url: client.post_activity(url, body, sign_as=key)), client.aclose
        if variant == "federation-client-sharded-4":
            shards = [build_client(settings.with_(delivery_concurrency=max(c // 4, 1))) for _ in range(4)]
            index = {u: shards[i % 4] for i, u in enumerate(urls)}

            async def close_all() -> None:
                for s in shards:
                    await s.aclose()

            return (lambda url: index[url].post_activity(url, body, sign_as=key)), close_all
        if variant == "federation-client-over-aiohttp":
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2 * c, limit_per_host=8))
            http = httpx.AsyncClient(
                transport=AiohttpTransport(client=session), follow_redirects=False, trust_env=False
            )
            client = FederationClient(
                user_agent="bench",
                allow_private=True,
                http_client=http,
                per_host_limit=settings.delivery_per_host,
                global_limit=c,
            )

            async def close() -> None:
                await http.aclose()
                await session.close()

            return (lambda url: client.post_activity(url, body, sign_as=key)), close
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c, limit_per_host=8))
        timeout = aiohttp.ClientTimeout(total=30)

        async def post(url: str) -> Any:
            if variant == "aiohttp-signed":
                headers = {**sign_request("POST", url, body, key=key), "Accept": "application/activity+json"}
            else:
                headers = presigned[url]
            async with session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()
                return response

        return post, session.close

    async def loop(post: Any, c: int) -> float:
        done = 0
        measuring = stop = False
        counter = itertools.count()

        async def worker() -> None:
            nonlocal done
            while not stop:
                await post(urls[next(counter) % len(urls)])
                if measuring and not stop:
                    done += 1

        tasks = [asyncio.create_task(worker()) for _ in range(c)]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        stop = True
        elapsed = time.perf_counter() - t0
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        return done / elapsed

    out: dict[str, Any] = {"sign": []}
    for c in levels:
        made = {v: await make(v, c) for v in VARIANTS}
        try:
            for _ in range(rounds):
                for variant in VARIANTS:
                    out.setdefault(f"{variant}@{c}", []).append(await loop(made[variant][0], c))
                out["sign"].append(_sign_loop(key, max(seconds / 2, 0.2)))
        finally:
            for _, close in made.values():
                await close()
    return out


async def main_async(quick: bool, out_dir: Path) -> str:
    from benchmarks.delivery_scenarios import in_child, sink

    workdir = Path(tempfile.mkdtemp(prefix="fedinet-clients-"))
    port = free_port()
    first, count = "127.0.3.1", 16
    rounds = 1 if quick else 5
    async with sink(workdir, first=first, count=count, port=port):
        res = await in_child(
            workdir,
            "child_clients",
            900,
            module="benchmarks.clients",
            first=first,
            count=count,
            port=port,
            levels=[32, 64],
            rounds=rounds,
            seconds=0.4 if quick else 3.0,
            warmup=0.1 if quick else 0.5,
        )
    sign = median(res["sign"])
    lines = [
        "| client | c32 deliveries/s | c64 deliveries/s | c32 / sign() | c64 / c32 |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        a, b = median(res[f"{variant}@32"]), median(res[f"{variant}@64"])
        lines.append(f"| {variant} | {a:,.0f} | {b:,.0f} | {a / sign:.2f}× | {b / a:.2f}× |")
    lines.append(f"| RSA-2048 sign() alone | {sign:,.0f} | | 1.00× | |")
    text = (
        f"# Delivery client alternatives ({'quick' if quick else 'full'} run, {rounds} round(s), medians)\n\n"
        "Signed 2 KB POSTs to 16 loopback sink hosts (202), client pinned to core 0, sink to core 1.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - after the measurement
    (out_dir / ("clients.md" if not quick else "clients-quick.md")).write_text(text)
    return text


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    import os

    from benchmarks.common import CORE_LOAD

    os.sched_setaffinity(0, {CORE_LOAD})
    print(asyncio.run(main_async(args.quick, Path(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
