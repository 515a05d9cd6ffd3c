"""Smoke test of `python -m benchmarks`: every scenario B1–B12 runs at tiny sizes and yields a row.

No timing is asserted (the machine is shared and noisy); the point is that `make bench` keeps
working as the code changes. Runs on PostgreSQL when FEDINET_TEST_DATABASE_URL points at one
(a scratch database is created on that server and dropped), otherwise on SQLite. Bounded: the
process group is killed after 85 s, and the run gives itself a 60 s budget (scenarios not started
by then get a "skipped" row).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {f"B{i}" for i in range(1, 13)}


def test_every_scenario_produces_a_row(tmp_path: Path) -> None:
    database_url = os.environ.get("FEDINET_TEST_DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        backend = ["--db", "postgres", "--pg-url", database_url]
    else:
        backend = ["--db", "sqlite"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDINET_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Own process group: on a timeout the whole tree (servers, sinks, workers) is killed.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--max-seconds",
            "60",
            "--out",
            str(tmp_path),
            *backend,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=85)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError("python -m benchmarks --quick took more than 85 s:\n" + stderr[-4000:]) from None
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    report = json.loads((tmp_path / "quick.json").read_text())
    rows = report["rows"]
    seen = {part for row in rows for part in row["scenario"].split("/")}
    assert seen >= SCENARIOS, f"no row for {sorted(SCENARIOS - seen)}"
    # A scenario may be skipped (PostgreSQL unreachable, time budget used up on a busy machine),
    # but none may crash.
    errors = [f"{r['scenario']} {r['db']}: {r['note']}" for r in rows if r["note"].startswith("error")]
    assert not errors, errors
    assert (tmp_path / "quick.md").read_text().count("| B") >= len(SCENARIOS)
