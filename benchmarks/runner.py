"""Command line, scenario order, the results table and files."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import db as dbmod
from benchmarks.common import CORE_LOAD, RESULTS, Options, Row, as_dict, machine_info, median

ALL = tuple(f"B{i}" for i in range(1, 13))
DB_SCENARIOS = ("B1", "B2", "B3", "B4", "B6", "B7", "B8", "B9", "B12")


def parse(argv: list[str] | None) -> tuple[Options, Path]:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round (seconds; the smoke test)")
    p.add_argument("--only", default="", help="comma-separated scenarios, e.g. B3,B5")
    p.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 5, --quick 1)")
    p.add_argument("--db", default="both", choices=("both", "sqlite", "postgres"), help="database backends")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("FEDINET_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to create (and drop) a benchmark database on",
    )
    p.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=0.0,
        help="time budget: scenarios not started by then get a 'skipped' row (0: none)",
    )
    args = p.parse_args(argv)
    only = frozenset(s.strip().upper() for s in args.only.split(",") if s.strip())
    unknown = only - set(ALL)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    backends = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    opts = Options(
        quick=args.quick,
        rounds=max(1, rounds),
        only=only,
        backends=backends,
        pg_url=args.pg_url,
        deadline=time.monotonic() + args.max_seconds if args.max_seconds > 0 else 0.0,
    )
    return opts, Path(args.out) if args.out else RESULTS


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or value != value:
        return "—"
    if unit in ("s",) or abs(value) < 10:
        text = f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = (
        "| # | scenario | db | ours | baseline | ratio | target | result |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        base = fmt(row.baseline, row.unit)
        if row.baseline_name:
            base += f" ({row.baseline_name})"
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None and row.ratio == row.ratio else "—"
        lines.append(
            f"| {row.scenario} | {row.title} | {row.db} | {fmt(row.ours, row.unit)} | {base} | {ratio} | "
            f"{row.target} | {row.status()} |"
        )
    return head + "\n".join(lines) + "\n"


def notes(rows: list[Row]) -> str:
    out = [f"- {r.scenario} ({r.db}) {r.title}: {r.note}" for r in rows if r.note]
    return "\n".join(out) + ("\n" if out else "")


async def _guard(
    rows: list[Row],
    scenario: str,
    db: str,
    title: str,
    body: Callable[[], Awaitable[list[Row]]],
    deadline: float = 0.0,
) -> None:
    started = time.monotonic()
    if deadline and started > deadline:
        rows.append(
            Row(scenario, title, db, note="skipped: the run's time budget (--max-seconds) was used up")
        )
        return
    print(f"… {scenario} {db}: {title}", file=sys.stderr, flush=True)
    try:
        got = await body()
    except Exception as exc:
        traceback.print_exc()
        got = [Row(scenario, title, db, note=f"error: {type(exc).__name__}: {str(exc)[:300]}")]
    for row in got:
        print(
            f"  {row.scenario} {row.db} {row.title}: ours={fmt(row.ours, row.unit)} "
            f"baseline={fmt(row.baseline, row.unit)} {row.status()}",
            file=sys.stderr,
            flush=True,
        )
    print(f"  ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    rows.extend(got)


SCHEMA_DRIFT: set[str] = set()


async def _with_db(opts: Options, backend: str, workdir: Path, label: str, body):
    from benchmarks.delivery_scenarios import in_child

    database = await dbmod.create_db(backend, workdir, opts.pg_url, label)
    try:
        result = await in_child(
            workdir, "child_migrate", 300, module="benchmarks.db", core=CORE_LOAD, db_url=database.url
        )
        if result["created"]:
            SCHEMA_DRIFT.update(result["created"])
            print(
                f"  warning: migrations do not create {', '.join(result['created'])}; "
                "created from the models",
                file=sys.stderr,
            )
        return await body(database)
    finally:
        await dbmod.drop_db(database)


async def run_all(opts: Options, workdir: Path) -> list[Row]:
    from benchmarks import delivery_scenarios as dlv
    from benchmarks import http_scenarios as http
    from benchmarks import inbox_scenarios as inbox
    from benchmarks import pages_scenarios as pages

    rows: list[Row] = []
    backends: list[str] = []
    for backend in opts.backends:
        if backend == "postgres":
            reason = await dbmod.pg_reachable(opts.pg_url)
            if reason is not None:
                print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
                for s in DB_SCENARIOS:
                    if opts.wants(s):
                        rows.append(Row(s, "PostgreSQL run skipped", "postgres", note=f"skipped: {reason}"))
                continue
        backends.append(backend)

    for backend in backends:
        wanted = [s for s in ("B1", "B2", "B3") if opts.wants(s)]
        if wanted:
            await _guard(
                rows,
                "/".join(wanted),
                backend,
                "HTTP server scenarios",
                lambda b=backend: _with_db(
                    opts, b, workdir, "http", lambda d, b=b: http.run_http(opts, b, d, workdir)
                ),
                opts.deadline,
            )
        if opts.wants("B4"):
            await _guard(
                rows,
                "B4",
                backend,
                "inbox processing",
                lambda b=backend: _with_db(
                    opts, b, workdir, "b4", lambda d, b=b: inbox.run_b4(opts, b, d, workdir)
                ),
                opts.deadline,
            )
    if opts.wants("B5"):
        await _guard(rows, "B5", "-", "signed delivery", lambda: dlv.run_b5(opts, workdir), opts.deadline)
    for backend in backends:
        if opts.wants("B6") or opts.wants("B8"):
            await _guard(
                rows,
                "B6/B8",
                backend,
                "fan-out burst and fairness",
                lambda b=backend: _with_db(
                    opts, b, workdir, "b6", lambda d, b=b: dlv.run_b6_b8(opts, b, d, workdir)
                ),
                opts.deadline,
            )
        if opts.wants("B7"):
            await _guard(
                rows,
                "B7",
                backend,
                "fan-out at scale",
                lambda b=backend: _with_db(
                    opts, b, workdir, "b7", lambda d, b=b: dlv.run_b7(opts, b, d, workdir)
                ),
                opts.deadline,
            )
        if opts.wants("B9"):
            await _guard(
                rows,
                "B9",
                backend,
                "backlog drain",
                lambda b=backend: _with_db(
                    opts, b, workdir, "b9", lambda d, b=b: dlv.run_b9(opts, b, d, workdir)
                ),
                opts.deadline,
            )
    if opts.wants("B10"):
        await _guard(
            rows,
            "B10",
            "sqlite",
            "memory",
            lambda: _with_db(opts, "sqlite", workdir, "b10", lambda d: http.run_memory(opts, d, workdir)),
            opts.deadline,
        )
    if opts.wants("B11"):
        await _guard(
            rows, "B11", "sqlite", "start-up", lambda: http.run_startup(opts, workdir), opts.deadline
        )
    for backend in backends:
        if opts.wants("B12"):
            await _guard(
                rows,
                "B12",
                backend,
                "pages at scale",
                lambda b=backend: _with_db(
                    opts, b, workdir, "b12", lambda d, b=b: pages.run_b12(opts, b, d, workdir)
                ),
                opts.deadline,
            )
    order = {s: i for i, s in enumerate(ALL)}
    rows.sort(key=lambda r: order.get(r.scenario.split("/")[0], 99))
    return rows


def main(argv: list[str] | None = None) -> int:
    opts, out_dir = parse(argv)
    os.sched_setaffinity(0, {CORE_LOAD})  # the orchestrator stays off the measured core
    workdir = Path(tempfile.mkdtemp(prefix="fedinet-bench-"))
    opts.workdir = workdir
    started = datetime.now(UTC)
    t0 = time.monotonic()
    try:
        rows = asyncio.run(run_all(opts, workdir))
    finally:
        logs = out_dir / "logs"
        if out_dir.exists() or out_dir == RESULTS:
            pass
        keep = os.environ.get("FEDINET_BENCH_KEEP")
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        del logs
    elapsed = time.monotonic() - t0
    machine = machine_info()
    text = table(rows)
    mode = "quick" if opts.quick else "full"
    header = (
        f"# fediverse-net benchmarks ({mode} run)\n\n{started:%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s, "
        f"{opts.rounds} round(s), medians; measured side pinned to core {machine['pinning']['measured']}, "
        f"load generator / sink to core {machine['pinning']['load']}.\n\n"
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['openssl']}, SQLite {machine['sqlite']}.\n\n"
    )
    if SCHEMA_DRIFT:
        header += (
            f"Schema drift: the migrations did not create {', '.join(sorted(SCHEMA_DRIFT))}; the benchmark "
            "created them from the models (`generate_schemas(safe=True)`) so the current code could run.\n\n"
        )
        machine["schema_drift"] = sorted(SCHEMA_DRIFT)
    body = header + text + "\nNotes:\n\n" + notes(rows)
    print(text)
    print(notes(rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "latest" if not opts.quick else "quick"
    (out_dir / f"{stem}.md").write_text(body)
    (out_dir / f"{stem}.json").write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "seconds": elapsed,
                "mode": mode,
                "rounds": opts.rounds,
                "only": sorted(opts.only),
                "backends": list(opts.backends),
                "machine": machine,
                "rows": [as_dict(r) for r in rows],
            },
            indent=2,
            default=str,
        )
    )
    print(f"written to {out_dir / (stem + '.md')} and {stem}.json", file=sys.stderr)
    failed = [r for r in rows if r.note.startswith("error")]
    return 1 if failed else 0


__all__ = ["main", "median"]
