"""Interop harness: our real server as a subprocess on loopback, plus the Fedify and bovine peers.

The peers live in `.cache/peers` (`make peers` copies and installs them). Without them the
interop tests skip, unless FEDINET_REQUIRE_INTEROP=1 (set by `.ci/run`), which turns every
skip into a failure.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = ROOT / ".cache" / "peers"
FEDIFY_DIR = PEERS_DIR / "fedify"
BOVINE_PYTHON = PEERS_DIR / "bovine" / ".venv" / "bin" / "python"
PYTHON = sys.executable  # the project's venv interpreter running pytest
DEFAULT_PASSWORD = "correct horse battery staple"
FIRST_KNOCKS = {"draft-cavage": "draft-cavage-http-signatures-12", "rfc9421": "rfc9421"}


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when the environment promises interop (FEDINET_REQUIRE_INTEROP=1)."""
    if os.environ.get("FEDINET_REQUIRE_INTEROP") == "1":
        pytest.fail(f"interop required (FEDINET_REQUIRE_INTEROP=1) but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique_name(prefix: str = "u") -> str:
    """A fresh valid handle (a-z, 0-9, _; at most 30 characters), so tests sharing a server don't clash."""
    return f"{prefix[:20]}_{secrets.token_hex(4)}"


def http_get(url: str, accept: str = "application/json", timeout: float = 5.0) -> tuple[int, bytes]:
    """A plain, unsigned GET: (status, body). Never raises on HTTP error statuses."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- PostgreSQL: one fresh database per server ------------------------------------------------


def _admin_dsn(url: str) -> str:
    """The asyncpg DSN for the server named in a tortoise URL, without tortoise's query options."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))


def _run_sql(url: str, sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(_admin_dsn(url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def postgres_base_url() -> str | None:
    """FEDINET_TEST_DATABASE_URL when it names PostgreSQL (then each server gets its own database)."""
    url = os.environ.get("FEDINET_TEST_DATABASE_URL", "")
    return url if url.startswith(("postgres", "asyncpg")) else None


def create_postgres_database(base_url: str) -> str:
    """CREATE DATABASE fedinet_it_<random> on the server of `base_url`; returns its URL."""
    name = f"fedinet_it_{secrets.token_hex(6)}"
    _run_sql(base_url, f"CREATE DATABASE {name}")
    return urllib.parse.urlsplit(base_url)._replace(path=f"/{name}").geturl()


def drop_postgres_database(base_url: str, url: str) -> None:
    """DROP DATABASE (connected to the database of `base_url`, never the one dropped)."""
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    assert name.startswith("fedinet_it_"), name
    _run_sql(base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- our server ---------------------------------------------------------------------------------


class ServerProcess:
    """`python -m fediverse_net serve` on 127.0.0.1:<free port> with its own data dir and database."""

    running: ClassVar[set[ServerProcess]] = set()

    def __init__(self, workdir: Path, *, startup_timeout: float = 30.0, env: dict[str, str] | None = None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.origin = f"http://{self.host}"
        self.data_dir = Path(workdir) / f"server-{self.port}"
        self.log_path = self.data_dir / "server.log"
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.database_url = ""
        self._postgres_base: str | None = None
        self._secret = secrets.token_urlsafe(32)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FEDINET_DOMAIN": self.host,
            "FEDINET_SCHEME": "http",
            "FEDINET_DATA_DIR": str(self.data_dir),
            "FEDINET_DATABASE_URL": self.database_url,
            "FEDINET_ALLOW_PRIVATE_ADDRESSES": "true",
            "FEDINET_SECRET_KEY": self._secret,
            "FEDINET_REGISTRATION_MODE": "open",
            "FEDINET_LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if pg_url := postgres_base_url():
            self.database_url = create_postgres_database(pg_url)
            self._postgres_base = pg_url
        else:
            self.database_url = f"sqlite://{self.data_dir / 'fediverse.sqlite3'}"
        # `serve` applies the checked-in migrations first, exactly as `make run` does.
        command = [PYTHON, "-m", "fediverse_net", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        ServerProcess.running.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._startup_failed(f"exited with status {self.proc.returncode}")
            try:
                if http_get(self.url("/.well-known/nodeinfo"), timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self._startup_failed(f"not ready after {self.startup_timeout:.0f} s")

    def _startup_failed(self, why: str) -> None:
        raise RuntimeError(f"server {self.origin} {why}; tail of {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL; drop the PostgreSQL database if we made one."""
        ServerProcess.running.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._postgres_base is not None:
            base, self._postgres_base = self._postgres_base, None
            drop_postgres_database(base, self.database_url)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- names -----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.origin + path

    def handle(self, name: str) -> str:
        return f"@{name}@{self.host}"

    def actor_url(self, name: str) -> str:
        return f"{self.origin}/users/{name}"

    # -- the CLI, with this server's settings ----------------------------------------------------

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m fediverse_net ARGS` against this server's database; never raises on exit status."""
        return subprocess.run(
            [PYTHON, "-m", "fediverse_net", *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def create_user(self, name: str, password: str = DEFAULT_PASSWORD, *args: str) -> str:
        """`user create NAME [ARGS]` with the password on stdin; returns the handle. Extra args: --admin…"""
        result = self.cli("user", "create", name, *args, input=password + "\n")
        if result.returncode != 0:
            raise RuntimeError(f"user create {name} failed ({result.returncode}): {result.stderr.strip()}")
        return self.handle(name)


# -- peers --------------------------------------------------------------------------------------


def peer_driver() -> ModuleType:
    """`peer_driver` imported from .cache/peers (its paths then point into the copy)."""
    if not (PEERS_DIR / "peer_driver.py").exists():
        unavailable(f"{PEERS_DIR} is missing: run `make peers`")
    if str(PEERS_DIR) not in sys.path:
        sys.path.insert(0, str(PEERS_DIR))
    return importlib.import_module("peer_driver")


def start_fedify_peer(
    logdir: Path,
    actors: tuple[str, ...] | list[str] = ("remote",),
    first_knock: str | None = None,
    extra_args: tuple[str, ...] | list[str] = (),
) -> Any:
    """A started `FedifyPeer`; first_knock is "draft-cavage" (Fedify's default) or "rfc9421"."""
    driver = peer_driver()
    if not (FEDIFY_DIR / "node_modules" / "@fedify").is_dir():
        unavailable(f"{FEDIFY_DIR}/node_modules is missing: run `make peers` (needs Node.js and npm)")
    local_node = (FEDIFY_DIR / "node_modules" / ".bin" / "node").exists()
    if not (os.environ.get("FEDIFY_PEER_NODE") or local_node or shutil.which("node")):
        unavailable("Node.js is not installed (no `node` on PATH, no node in node_modules)")
    args = list(extra_args)
    if first_knock:
        args += ["--first-knock", FIRST_KNOCKS.get(first_knock, first_knock)]
    port = driver.free_port()
    peer = driver.FedifyPeer(
        actors=list(actors), port=port, log_path=logdir / f"fedify-{port}.jsonl", extra_args=args
    )
    return peer.start()


def start_bovine_peer(logdir: Path, name: str = "bob") -> Any:
    """A started `BovinePeer` (one Person); the driver runs it with .cache/peers/bovine/.venv."""
    driver = peer_driver()
    if not BOVINE_PYTHON.exists() and not os.environ.get("BOVINE_PEER_PYTHON"):
        unavailable(f"{BOVINE_PYTHON} is missing: run `make peers`")
    port = driver.free_port()
    return driver.BovinePeer(name=name, port=port, log_path=logdir / f"bovine-{port}.jsonl").start()
