"""B4: inbox processing — InboxItems applied per second by `workers.inbox.step` (pinned child)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks import db as dbmod
from benchmarks.common import Options, Row, median


async def run_b4(opts: Options, backend: str, database: dbmod.BenchDB, workdir: Path) -> list[Row]:
    from benchmarks.delivery_scenarios import in_child

    n = opts.size(2000, 60)
    res = await in_child(
        workdir,
        "child_b4",
        900,
        db_url=database.url,
        n=n,
        rounds=opts.rounds,
        module="benchmarks.inbox_scenarios",
    )
    rate = median(res["rates"])
    target_ok = rate >= 1000 if backend == "sqlite" else None
    return [
        Row(
            "B4",
            f"inbox processing: {n} items/round (½ Follow → Accept queued, ½ Create → note stored)",
            backend,
            rate,
            1000.0,
            rate / 1000.0,
            "≥ 1,000/s (SQLite)",
            target_ok,
            "activities/s",
            "target rate",
            f"workers.inbox.step until drained; per round: {[round(r) for r in res['rates']]}",
            opts.rounds,
            {"ours": res["rates"]},
        )
    ]


async def child_b4(db_url: str, n: int, rounds: int) -> dict[str, Any]:
    import httpx

    from benchmarks.delivery_scenarios import _setup_sender
    from benchmarks.harness import create_activity, follow_activity
    from fediverse_net.activitypub.client import FederationClient
    from fediverse_net.workers import inbox

    deps, member = await _setup_sender(db_url)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"B4 made an outbound request: {request.url}")

    deps.client = FederationClient(
        user_agent="bench", allow_private=True, transport=httpx.MockTransport(refuse)
    )
    half = n // 2
    specs = [dbmod.RemoteSpec(f"http://127.0.9.{1 + i % 50}:9", f"p{i}") for i in range(n)]
    ids = await dbmod.seed_remote_actors(specs)
    await dbmod.seed_follows(
        (member.id, ids[i]) for i in range(half, n)
    )  # Creates come from followed authors
    columns = (
        "id",
        "activity_id",
        "actor_ap_id",
        "type",
        "payload",
        "recipient",
        "refetch",
        "state",
        "attempts",
        "error",
        "received_at",
        "next_attempt_at",
        "claimed_until",
        "processed_at",
    )
    rates = []
    try:
        for r in range(rounds + 1):  # round 0 warms up and is not counted
            await dbmod.query(f"DELETE FROM follows WHERE followee_id = {member.id}")
            when = dbmod.now()
            first = await dbmod.next_id("inbox_items")
            rows = []
            for i, spec in enumerate(specs):
                activity = (
                    follow_activity(spec.ap_id, member.ap_id) if i < half else create_activity(spec.ap_id)
                )
                rows.append(
                    (
                        first + i,
                        activity["id"],
                        spec.ap_id,
                        activity["type"],
                        dbmod.dumps(activity),
                        None,
                        False,
                        "pending",
                        0,
                        None,
                        when,
                        when,
                        None,
                        None,
                    )
                )
            await dbmod.insert_rows("inbox_items", columns, rows)
            await dbmod.fix_sequences("inbox_items")
            t0 = time.perf_counter()
            for _ in range(100_000):
                if await inbox.step(deps) == 0:
                    break
            elapsed = time.perf_counter() - t0
            done = (
                await dbmod.query(
                    f"SELECT COUNT(*) AS n FROM inbox_items WHERE state = 'done' AND id >= {first}"
                )
            )[0]["n"]
            if done != n:
                raise RuntimeError(f"B4: {done} of {n} items processed")
            if r:
                rates.append(n / elapsed)
    finally:
        await deps.client.aclose()
        await dbmod.close_orm()
    return {"rates": rates}
