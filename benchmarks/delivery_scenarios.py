"""B5 signed delivery, B6 fan-out burst, B7 fan-out at scale, B8 fairness, B9 backlog drain.

The measured side runs in a child process pinned to the server core and uses our real code path:
`FederationClient.post_activity` (B5), and `record_outgoing` + `workers.delivery.step` (B6–B9).
The sink (`benchmarks.sink`) answers 202 on the other core, on many loopback addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks import db as dbmod
from benchmarks.common import (
    CORE_LOAD,
    CORE_SERVER,
    PY,
    Options,
    Row,
    check,
    child_env,
    free_port,
    median,
    ratio,
    run_json,
    spawned,
    wait_port,
)
from benchmarks.sink import addresses

_n = itertools.count(1)


@contextlib.asynccontextmanager
async def sink(
    workdir: Path,
    *,
    first: str,
    count: int,
    port: int,
    delay: float = 0.0,
    slow: dict[str, float] | None = None,
) -> AsyncIterator[int]:
    """The loopback sink on the load core; yields its control port."""
    control = free_port()
    spec = {
        "first": first,
        "count": count,
        "port": port,
        "delay": delay,
        "slow": slow or {},
        "control_port": control,
        "max_seconds": 3600,
    }
    spec_file = workdir / f"sink-{next(_n)}.json"
    spec_file.write_text(json.dumps(spec))
    async with spawned(
        [PY, "-m", "benchmarks.sink", str(spec_file)],
        core=CORE_LOAD,
        env=child_env(),
        log=workdir / "sink.log",
    ) as proc:
        await wait_port("127.0.0.1", control, 30, proc)
        yield control


async def in_child(
    workdir: Path,
    func: str,
    bound: float,
    module: str = "benchmarks.delivery_scenarios",
    core: int = CORE_SERVER,
    **kwargs: Any,
) -> Any:
    """Run `module:func(**kwargs)` in a fresh pinned interpreter (tortoise state never leaks across DBs)."""
    args_file = workdir / f"child-{next(_n)}.json"
    args_file.write_text(json.dumps(kwargs))
    return await run_json(
        [PY, "-m", "benchmarks.child", f"{module}:{func}", str(args_file)],
        core=core,
        env=child_env(),
        bound=bound,
        log=workdir / "child.log",
    )


# === orchestrator side ==========================================================================


async def run_b5(opts: Options, workdir: Path) -> list[Row]:
    port = free_port()
    first, count = "127.0.3.1", 16
    async with sink(workdir, first=first, count=count, port=port) as _:
        res = await in_child(
            workdir,
            "child_b5",
            600,
            first=first,
            count=count,
            port=port,
            levels=[32, 64],
            rounds=opts.rounds,
            seconds=opts.seconds(3.0, 0.4),
            warmup=opts.seconds(0.5, 0.1),
        )
    rows = []
    for c in ("32", "64"):
        o, b = median(res[c]["ours"]), median(res[c]["sign"])
        note = f"{count} sink hosts, per-host limit 4, 2 KB body; failures: {res[c]['failures']}"
        rows.append(
            Row(
                "B5",
                f"signed delivery, FederationClient.post_activity, c{c}",
                "-",
                o,
                b,
                ratio(o, b),
                "≥ 0.55×",
                check(ratio(o, b), lambda r: r >= 0.55),
                "deliveries/s",
                "RSA-2048 sign() in a loop",
                note,
                opts.rounds,
                {"ours": res[c]["ours"], "baseline": res[c]["sign"]},
            )
        )
    c32, c64 = median(res["32"]["ours"]), median(res["64"]["ours"])
    rows.append(
        Row(
            "B5",
            "signed delivery c64 vs c32",
            "-",
            c64,
            c32,
            ratio(c64, c32),
            "≥ 0.9×",
            check(ratio(c64, c32), lambda r: r >= 0.9),
            "deliveries/s",
            "same client at c32",
            "c32 and c64 rounds alternate",
            opts.rounds,
        )
    )
    return rows


async def run_b6_b8(opts: Options, backend: str, database: dbmod.BenchDB, workdir: Path) -> list[Row]:
    port = free_port()
    hosts = opts.size(500, 40)
    first = "127.0.4.1"
    addrs = addresses(first, hosts + 1)
    slow = addrs[-1]
    rtt, slow_delay = 0.1, opts.seconds(5.0, 1.0)
    async with sink(
        workdir, first=first, count=hosts + 1, port=port, delay=rtt, slow={slow: slow_delay}
    ) as control:
        res = await in_child(
            workdir,
            "child_b6_b8",
            900,
            db_url=database.url,
            first=first,
            hosts=hosts,
            port=port,
            control=control,
            rounds=opts.rounds,
            slow=slow,
            fairness=opts.wants("B8"),
        )
    ideal = math.ceil(hosts / 64) * rtt
    rows = []
    b6 = median(res["b6"])
    if opts.wants("B6"):
        rows.append(
            Row(
                "B6",
                f"fan-out burst: 1 activity → {hosts} hosts (100 ms answers), 64 in flight",
                backend,
                b6,
                ideal,
                ratio(b6, ideal),
                "≤ 1.5× ideal",
                check(ratio(b6, ideal), lambda r: r <= 1.5),
                "s",
                "ideal ⌈N/C⌉·RTT",
                f"record_outgoing + delivery.step until all delivered; sink saw {res['b6_posts']} POSTs",
                opts.rounds,
                {"ours": res["b6"]},
            )
        )
    if opts.wants("B8") and res["b8"]:
        b8 = median(res["b8"])
        rows.append(
            Row(
                "B8",
                f"fairness: as B6 with 1 host answering after {slow_delay:g} s",
                backend,
                b8,
                b6,
                ratio(b8, b6),
                "≤ 1.10× B6",
                check(ratio(b8, b6), lambda r: r <= 1.10),
                "s",
                "B6 in the same run",
                f"time until the {hosts - 1} other hosts are delivered",
                opts.rounds,
                {"ours": res["b8"]},
            )
        )
    return rows


async def run_b7(opts: Options, backend: str, database: dbmod.BenchDB, workdir: Path) -> list[Row]:
    port = free_port()
    hosts, per_host = opts.size(1000, 30), 10
    first = "127.0.8.1"
    async with sink(workdir, first=first, count=hosts, port=port) as control:
        res = await in_child(
            workdir,
            "child_b7",
            900,
            db_url=database.url,
            first=first,
            hosts=hosts,
            per_host=per_host,
            port=port,
            control=control,
            rounds=opts.rounds,
        )
    o = median(res["ours"])
    b = median(res["aiohttp"]) if res["aiohttp"] else None
    sigs = res["signatures"]
    exact = all(s == hosts for s in sigs)
    note = (
        f"time from follower_inboxes + record_outgoing to all delivered; sink POSTs per round {res['posts']}"
    )
    if b is None:
        note += "; baseline not run: aiohttp is not installed (bench-only dependency)"
    return [
        Row(
            "B7",
            f"fan-out at scale: {hosts * per_host} followers on {hosts} hosts",
            backend,
            o,
            b,
            b / o if b else None,
            "≥ 0.60× (throughput)",
            b / o >= 0.60 if b else None,
            "s",
            "aiohttp, 64 in flight, signing the same requests",
            note,
            opts.rounds,
            {"ours": res["ours"], "baseline": res["aiohttp"]},
        ),
        Row(
            "B7",
            "signatures per fan-out",
            backend,
            float(median(sigs)),
            float(hosts),
            ratio(median(sigs), hosts),
            f"exactly {hosts}",
            exact,
            "signatures",
            "one per shared inbox",
            f"per round: {sigs}",
            opts.rounds,
        ),
    ]


async def run_b9(opts: Options, backend: str, database: dbmod.BenchDB, workdir: Path) -> list[Row]:
    port = free_port()
    hosts = opts.size(1000, 20)
    activities = opts.size(20, 5)
    n = hosts * activities
    first = "127.0.12.1"
    rounds = min(opts.rounds, 3)
    async with sink(workdir, first=first, count=hosts, port=port) as control:
        res = await in_child(
            workdir,
            "child_b9",
            1500,
            db_url=database.url,
            first=first,
            hosts=hosts,
            activities=activities,
            port=port,
            control=control,
            rounds=rounds,
        )
    rate = median(res["rates"])
    inbound = 16.6
    return [
        Row(
            "B9",
            f"backlog drain: {n:,} queued deliveries on {hosts} hosts",
            backend,
            rate,
            inbound,
            ratio(rate, inbound),
            "≥ 8× inbound",
            check(ratio(rate, inbound), lambda r: r >= 8),
            "deliveries/s",
            "inbound rate 16.6/s",
            f"reduced from 120,000 to {n:,} (a full drain would take minutes per round); "
            f"{rounds} rounds; at this rate 120,000 drain in {120000 / rate / 60:.1f} min",
            rounds,
            {"ours": res["rates"]},
        )
    ]


# === child side (pinned to the server core) ======================================================


def _settings(db_url: str, workdir: str = "/tmp") -> Any:
    from benchmarks.harness import settings_for

    return settings_for(1, db_url, Path(workdir))


def _body(size: int = 2048) -> bytes:
    import orjson

    from benchmarks.harness import create_activity

    return orjson.dumps(create_activity("http://127.0.0.1:1/users/alice", size=size))


async def _post_loop(
    client: Any, urls: list[str], body: bytes, key: Any, c: int, seconds: float, warmup: float
) -> tuple[float, int]:
    done = 0
    failures = 0
    measuring = False
    stop = False
    counter = itertools.count()

    async def worker() -> None:
        nonlocal done, failures
        while not stop:
            url = urls[next(counter) % len(urls)]
            result = await client.post_activity(url, body, sign_as=key)
            if measuring and not stop:
                if result.ok:
                    done += 1
                else:
                    failures += 1

    tasks = [asyncio.create_task(worker()) for _ in range(c)]
    await asyncio.sleep(warmup)
    measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    stop = True
    elapsed = time.perf_counter() - t0
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return done / elapsed, failures


def _sign_loop(key: Any, seconds: float) -> float:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    data = (
        b"(request-target): post /inbox\nhost: 127.0.3.1:8000\ndate: Thu, 26 Nov 2026 01:00:00 GMT\n"
        b"digest: SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        b"content-type: application/activity+json"
    )
    pad, sha = padding.PKCS1v15(), hashes.SHA256()
    count = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(50):
            key.private_key.sign(data, pad, sha)
        count += 50
        now = time.perf_counter()
        if now >= end:
            return count / (now - t0)


async def child_b5(
    first: str, count: int, port: int, levels: list[int], rounds: int, seconds: float, warmup: float
) -> dict:
    from benchmarks.harness import keypairs
    from fediverse_net.activitypub.keys import SigningKey, load_private_key
    from fediverse_net.app import build_client

    key = SigningKey("http://127.0.0.1:1/users/alice#main-key", load_private_key(keypairs(1)[0][0]))
    urls = [f"http://{a}:{port}/inbox" for a in addresses(first, count)]
    body = _body()
    # The levels alternate round by round (c32, c64, c32, …), each followed by its own signing
    # baseline, so a machine that gets busier or quieter during the run cannot pass for a
    # difference between the levels (the "c64 vs c32" row compares raw rates).
    clients = {c: build_client(_settings("sqlite://:memory:").with_(delivery_concurrency=c)) for c in levels}
    out: dict[str, Any] = {str(c): {"ours": [], "sign": [], "failures": 0} for c in levels}
    try:
        for _ in range(rounds):
            for c in levels:
                rate, failed = await _post_loop(clients[c], urls, body, key, c, seconds, warmup)
                out[str(c)]["ours"].append(rate)
                out[str(c)]["failures"] += failed
                out[str(c)]["sign"].append(_sign_loop(key, max(seconds / 2, 0.2)))
    finally:
        for client in clients.values():
            await client.aclose()
    return out


async def _sink_stats(control: int) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"http://127.0.0.1:{control}/__stats")).json()


async def _sink_reset(control: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(f"http://127.0.0.1:{control}/__reset")


async def _setup_sender(db_url: str) -> tuple[Any, Any]:
    """Open the DB, create the sending member; (deps without client, member actor)."""
    from fediverse_net.db.models import Actor
    from fediverse_net.deps import Deps

    settings = _settings(db_url)
    await dbmod.open_orm(db_url)
    account = await dbmod.seed_member(settings, "alice", "Alice Example")
    actor = await Actor.get(id=account.actor_id)
    return Deps(settings=settings), actor


async def _deliver_until(
    deps: Any, activity_id: int, *, wanted: int, exclude_host: str | None, bound: float
) -> float:
    """Step the delivery worker until `wanted` rows of the activity are delivered; seconds taken."""
    from fediverse_net.db.models import Delivery
    from fediverse_net.workers import delivery

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < bound:
        await delivery.step(deps)
        query = Delivery.filter(activity_id=activity_id, state="delivered")
        if exclude_host:
            query = query.exclude(host=exclude_host)
        if await query.count() >= wanted:
            return time.perf_counter() - t0
    raise TimeoutError(f"only part of the fan-out was delivered within {bound:g} s")


async def _drain(deps: Any, bound: float) -> None:
    from fediverse_net.workers import delivery

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < bound:
        if await delivery.step(deps) == 0:
            return


async def _fanout_once(deps: Any, actor: Any, urls: list[str]) -> tuple[float, int]:
    """record_outgoing of one Create to `urls`; returns (t0 perf_counter, outgoing id)."""
    from benchmarks.harness import create_activity
    from fediverse_net.services.outbox import record_outgoing

    activity = create_activity(actor.ap_id)
    t0 = time.perf_counter()
    outgoing = await record_outgoing(deps, actor=actor, activity=activity, recipients=[], inboxes=urls)
    return t0, outgoing.id


async def child_b6_b8(
    db_url: str, first: str, hosts: int, port: int, control: int, rounds: int, slow: str, fairness: bool
) -> dict:
    from fediverse_net.app import build_client

    deps, actor = await _setup_sender(db_url)
    deps.client = build_client(deps.settings)
    addrs = addresses(first, hosts + 1)
    urls = [f"http://{a}:{port}/inbox" for a in addrs[:hosts]]
    slow_url = f"http://{slow}:{port}/inbox"
    b6, b8 = [], []
    posts = []
    try:
        # Warm-up fan-out (connections, caches, code paths), not counted.
        t0, oid = await _fanout_once(deps, actor, urls)
        await _deliver_until(deps, oid, wanted=hosts, exclude_host=None, bound=120)
        for _ in range(rounds):
            await _sink_reset(control)
            t0, oid = await _fanout_once(deps, actor, urls)
            await _deliver_until(deps, oid, wanted=hosts, exclude_host=None, bound=120)
            b6.append(time.perf_counter() - t0)
            posts.append((await _sink_stats(control))["posts"])
            if fairness:
                t0, oid = await _fanout_once(deps, actor, [*urls[: hosts - 1], slow_url])
                await _deliver_until(deps, oid, wanted=hosts - 1, exclude_host=f"{slow}:{port}", bound=120)
                b8.append(time.perf_counter() - t0)
                await _drain(deps, 60)
    finally:
        await deps.client.aclose()
        await dbmod.close_orm()
    return {"b6": b6, "b8": b8, "b6_posts": posts}


async def child_b7(
    db_url: str, first: str, hosts: int, per_host: int, port: int, control: int, rounds: int
) -> dict:
    try:
        import aiohttp  # bench-only dependency: the baseline client
    except ImportError:
        aiohttp = None

    from benchmarks.harness import create_activity
    from fediverse_net.activitypub.client import FederationClient
    from fediverse_net.activitypub.signatures import sign_request
    from fediverse_net.services.outbox import record_outgoing
    from fediverse_net.services.recipients import follower_inboxes

    deps, actor = await _setup_sender(db_url)
    addrs = addresses(first, hosts)
    specs = [
        dbmod.RemoteSpec(f"http://{addrs[i // per_host]}:{port}", f"f{i}") for i in range(hosts * per_host)
    ]
    ids = await dbmod.seed_remote_actors(specs)
    await dbmod.seed_follows((i, actor.id) for i in ids)
    signatures = 0

    def counting_sign(*args: Any, **kwargs: Any) -> Any:
        nonlocal signatures
        signatures += 1
        return sign_request(*args, **kwargs)

    settings = deps.settings
    # As app.build_client, plus a signer that counts.
    deps.client = FederationClient(
        user_agent="fediverse-net/bench",
        allow_private=True,
        per_host_limit=settings.delivery_per_host,
        global_limit=settings.delivery_concurrency,
        signer=counting_sign,
    )
    session = (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, limit_per_host=4)) if aiohttp else None
    )
    from fediverse_net.activitypub.documents import key_id_of
    from fediverse_net.activitypub.keys import SigningKey, load_private_key

    key = SigningKey(key_id_of(actor.ap_id), load_private_key(actor.private_key_pem))
    ours, base, sigs, posts = [], [], [], []

    async def aiohttp_fanout(urls: list[str], body: bytes) -> None:
        sem = asyncio.Semaphore(64)

        async def one(url: str) -> None:
            async with sem:
                headers = sign_request("POST", url, body, key=key)
                headers["Accept"] = "application/activity+json"
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 202, response.status

        await asyncio.gather(*(one(u) for u in urls))

    try:
        for r in range(rounds + 1):  # round 0 warms both up and is not counted
            await _sink_reset(control)
            signatures = 0
            activity = create_activity(actor.ap_id)
            t0 = time.perf_counter()
            inboxes = await follower_inboxes(actor)
            outgoing = await record_outgoing(
                deps, actor=actor, activity=activity, recipients=[], inboxes=inboxes
            )
            await _drain(deps, 300)
            elapsed = time.perf_counter() - t0
            from fediverse_net.db.models import Delivery

            delivered = await Delivery.filter(activity_id=outgoing.id, state="delivered").count()
            if delivered != hosts:
                raise RuntimeError(f"B7: {delivered} of {hosts} deliveries made")
            stats = await _sink_stats(control)
            urls = list(inboxes)
            body = json.dumps(activity).encode()
            t1 = time.perf_counter()
            if session is not None:
                await aiohttp_fanout(urls, body)
            base_elapsed = time.perf_counter() - t1
            if r:
                ours.append(elapsed)
                if session is not None:
                    base.append(base_elapsed)
                sigs.append(signatures)
                posts.append(stats["posts"])
    finally:
        if session is not None:
            await session.close()
        await deps.client.aclose()
        await dbmod.close_orm()
    return {"ours": ours, "aiohttp": base, "signatures": sigs, "posts": posts}


async def child_b9(
    db_url: str, first: str, hosts: int, activities: int, port: int, control: int, rounds: int
) -> dict:
    from benchmarks.harness import create_activity
    from fediverse_net.app import build_client

    deps, actor = await _setup_sender(db_url)
    deps.client = build_client(deps.settings)
    addrs = addresses(first, hosts)
    rates = []
    try:
        for _ in range(rounds):
            # The backlog: `activities` activities, each queued for every host (bulk SQL).
            when = dbmod.now()
            first_act = await dbmod.next_id("outgoing_activities")
            acts = [(first_act + i, create_activity(actor.ap_id)) for i in range(activities)]
            await dbmod.insert_rows(
                "outgoing_activities",
                ("id", "ap_id", "type", "body", "public", "created_at", "actor_id"),
                [(i, a["id"], "Create", dbmod.dumps(a), True, when, actor.id) for i, a in acts],
            )
            first_row = await dbmod.next_id("deliveries")
            rows = []
            for j, (act_id, _) in enumerate(acts):
                for k, addr in enumerate(addrs):
                    rows.append(
                        (
                            first_row + j * hosts + k,
                            f"http://{addr}:{port}/inbox",
                            f"{addr}:{port}",
                            "pending",
                            0,
                            when,
                            None,
                            None,
                            None,
                            False,
                            when,
                            when,
                            act_id,
                        )
                    )
            await dbmod.insert_rows(
                "deliveries",
                (
                    "id",
                    "inbox_url",
                    "host",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "claimed_until",
                    "last_status",
                    "last_error",
                    "bypass_availability",
                    "created_at",
                    "updated_at",
                    "activity_id",
                ),
                rows,
            )
            await dbmod.fix_sequences("outgoing_activities", "deliveries")
            t0 = time.perf_counter()
            await _drain(deps, 1200)
            elapsed = time.perf_counter() - t0
            done = (
                await dbmod.query(
                    f"SELECT COUNT(*) AS n FROM deliveries WHERE state = 'delivered' AND id >= {first_row}"
                )
            )[0]["n"]
            if done != len(rows):
                raise RuntimeError(f"B9: {done} of {len(rows)} delivered")
            rates.append(len(rows) / elapsed)
    finally:
        await deps.client.aclose()
        await dbmod.close_orm()
    return {"rates": rates}
