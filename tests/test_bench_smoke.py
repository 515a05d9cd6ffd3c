"""Smoke test of `python -m benchmarks`: every scenario B1–B12 runs at tiny sizes and yields a row.

No timing is asserted (the machine is shared and noisy); the point is that `make bench` keeps
working as the code changes. Runs on PostgreSQL when FEDINET_TEST_DATABASE_URL points at one
(a scratch database is created on that server and dropped), otherwise on SQLite. Bounded: the
subprocess is killed after 85 s.
"""

from __future__ import annotations

import json
import os
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
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path), *backend],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=85,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((tmp_path / "quick.json").read_text())
    rows = report["rows"]
    seen = {part for row in rows for part in row["scenario"].split("/")}
    assert seen >= SCENARIOS, f"no row for {sorted(SCENARIOS - seen)}"
    errors = [f"{r['scenario']} {r['db']}: {r['note']}" for r in rows if r["note"].startswith("error")]
    assert not errors, errors
    assert (tmp_path / "quick.md").read_text().count("| B") >= len(SCENARIOS)
