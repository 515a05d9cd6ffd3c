"""Shared pieces: result rows, run options, CPU pinning, child processes, machine details."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# The measured side (our server / our client) on one core, the load generator or sink on the other.
_CPUS = sorted(os.sched_getaffinity(0))
CORE_SERVER = _CPUS[0]
CORE_LOAD = _CPUS[1] if len(_CPUS) > 1 else _CPUS[0]


@dataclass
class Row:
    """One line of the results table."""

    scenario: str  # "B1"
    title: str  # what was measured
    db: str = "-"  # sqlite | postgres | -
    ours: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None  # None: informational, skipped or n/a
    unit: str = ""
    baseline_name: str = ""
    note: str = ""
    rounds: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)

    def status(self) -> str:
        if self.passed is None:
            return "n/a" if self.ours is None else "info"
        return "PASS" if self.passed else "FAIL"


@dataclass
class Options:
    quick: bool = False
    rounds: int = 5
    only: frozenset[str] = frozenset()
    backends: tuple[str, ...] = ("sqlite", "postgres")
    pg_url: str = "postgres://postgres@127.0.0.1:5432/postgres"
    workdir: Path = Path("/tmp")
    deadline: float = 0.0  # monotonic time after which scenarios are skipped (0: none)

    def wants(self, scenario: str) -> bool:
        return not self.only or scenario in self.only

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing, NaN or b is zero."""
    if a is None or b is None or a != a or b != b or b == 0:
        return None
    return a / b


def check(value: float | None, ok: Callable[[float], bool]) -> bool | None:
    return None if value is None else bool(ok(value))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def pin_to(core: int) -> Callable[[], None]:
    """A `preexec_fn` pinning the child (and every thread it starts) to one core.

    The child also gets SIGTERM if its parent dies (Linux PR_SET_PDEATHSIG), so a killed run
    leaves no servers, sinks or workers behind.
    """

    def pin() -> None:
        os.sched_setaffinity(0, {core})
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)

    return pin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDINET_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


async def wait_port(
    host: str, port: int, bound: float, proc: asyncio.subprocess.Process | None = None
) -> None:
    deadline = time.monotonic() + bound
    while True:
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {bound:g} s") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM this one child (by its pid), SIGKILL it if it does not exit in time."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def spawned(
    args: Sequence[str], *, core: int, env: dict[str, str], log: Path | None = None, cwd: Path | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running pinned child process, stopped on exit."""
    out = open(log, "ab") if log is not None else None  # noqa: SIM115, ASYNC230 - closed below; setup
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out or asyncio.subprocess.DEVNULL,
            stderr=out or asyncio.subprocess.DEVNULL,
            env=env,
            cwd=str(cwd or ROOT),
            preexec_fn=pin_to(core),
        )
        try:
            yield proc
        finally:
            await stop_process(proc)
    finally:
        if out is not None:
            out.close()


async def run_json(
    args: Sequence[str], *, core: int, env: dict[str, str], bound: float, log: Path | None = None
) -> Any:
    """Run a pinned child to completion (bounded) and parse the JSON on its last stdout line."""
    import json

    err = open(log, "ab") if log is not None else None  # noqa: SIM115, ASYNC230 - closed below; setup
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err or asyncio.subprocess.PIPE,
            env=env,
            cwd=str(ROOT),
            preexec_fn=pin_to(core),
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), bound)
        except TimeoutError:
            await stop_process(proc, 2.0)
            raise TimeoutError(f"{' '.join(args[:4])} did not finish within {bound:g} s") from None
    finally:
        if err is not None:
            err.close()
    lines = [line for line in stdout.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        detail = (stderr or b"").decode()[-2000:] if stderr else f"see {log}"
        raise RuntimeError(f"{' '.join(args[:4])} failed ({proc.returncode}): {detail}")
    return json.loads(lines[-1])


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in (
        "fediverse-net",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "httpx",
        "httpcore",
        "sniffio",
        "cryptography",
        "tortoise-orm",
        "aiosqlite",
        "asyncpg",
        "orjson",
        "aiohttp",
        "httpx-aiohttp",
    ):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    import sqlite3

    from cryptography.hazmat.backends.openssl import backend

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": len(_CPUS),
        "pinning": {"measured": CORE_SERVER, "load": CORE_LOAD},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "openssl": backend.openssl_version_text(),
        "sqlite": sqlite3.sqlite_version,
        "packages": packages,
    }


def as_dict(row: Row) -> dict[str, Any]:
    return asdict(row)
