"""Orchestrator-side helpers: our server and the bare server as pinned children, the load generator."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import CORE_LOAD, CORE_SERVER, PY, child_env, free_port, run_json, spawned, wait_port
from benchmarks.loadgen import write_requests

_files = itertools.count(1)
SECRET = "benchmark-secret-key-not-for-production-0123456789"


@lru_cache(maxsize=1)
def _keypool() -> list[tuple[str, str]]:
    return []


def keypairs(count: int) -> list[tuple[str, str]]:
    """`count` RSA key pairs (private PEM, public PEM), made once per run and reused."""
    from fediverse_net.activitypub.keys import generate_rsa_keypair

    pool = _keypool()
    while len(pool) < count:
        pool.append(generate_rsa_keypair())
    return pool[:count]


async def loadgen(
    workdir: Path,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int = 32,
    mode: str = "cycle",
    duration: float = 3.0,
    warmup: float = 0.5,
    warmup_requests: int = 0,
    max_seconds: float = 120.0,
) -> dict[str, Any]:
    """Run the load generator (pinned to the load core) once; its JSON result."""
    n = next(_files)
    req_file = workdir / f"requests-{n}.bin"
    spec_file = workdir / f"loadgen-{n}.json"
    write_requests(req_file, list(requests))
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "connections": connections,
        "requests_file": str(req_file),
        "mode": mode,
        "duration": duration,
        "warmup": warmup,
        "warmup_requests": warmup_requests,
        "max_seconds": max_seconds,
    }
    spec_file.write_text(json.dumps(spec))
    try:
        return await run_json(
            [PY, "-m", "benchmarks.loadgen", str(spec_file)],
            core=CORE_LOAD,
            env=child_env(),
            bound=max_seconds + 30,
        )
    finally:
        req_file.unlink(missing_ok=True)
        spec_file.unlink(missing_ok=True)


def settings_for(port: int, db_url: str, data_dir: Path) -> Any:
    from fediverse_net.config import Settings

    return Settings(
        domain=f"127.0.0.1:{port}",
        scheme="http",
        data_dir=data_dir,
        database_url=db_url,
        secret_key=SECRET,
        allow_private_addresses=True,
        run_workers=False,
    )


def server_env(port: int, db_url: str, data_dir: Path, *, workers: bool) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return child_env(
        FEDINET_DOMAIN=f"127.0.0.1:{port}",
        FEDINET_SCHEME="http",
        FEDINET_DATA_DIR=str(data_dir),
        FEDINET_DATABASE_URL=db_url,
        FEDINET_SECRET_KEY=SECRET,
        FEDINET_ALLOW_PRIVATE_ADDRESSES="true",
        FEDINET_RUN_WORKERS="true" if workers else "false",
        FEDINET_LOG_LEVEL="INFO",
    )


def serve_args(port: int, *, workers: bool, migrate: bool = False) -> list[str]:
    args = [PY, "-m", "fediverse_net", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not workers:
        args.append("--no-workers")
    if not migrate:
        args.append("--no-migrate")
    return args


@dataclass
class Server:
    port: int
    pid: int
    origin: str


@contextlib.asynccontextmanager
async def our_server(
    port: int, db_url: str, workdir: Path, *, workers: bool = False, log_name: str = "server"
) -> AsyncIterator[Server]:
    """`fediverse-net serve` (real CLI, uvicorn + uvloop + httptools) pinned to the server core."""
    env = server_env(port, db_url, workdir / "data", workers=workers)
    async with spawned(
        serve_args(port, workers=workers), core=CORE_SERVER, env=env, log=workdir / f"{log_name}.log"
    ) as proc:
        await wait_port("127.0.0.1", port, 60, proc)
        yield Server(port, proc.pid, f"http://127.0.0.1:{port}")


@contextlib.asynccontextmanager
async def bare_server(spec: dict[str, Any], workdir: Path) -> AsyncIterator[Server]:
    port = free_port()
    spec_file = workdir / f"bare-{next(_files)}.json"
    spec_file.write_text(json.dumps(spec))
    async with spawned(
        [PY, "-m", "benchmarks.bare", str(spec_file), str(port)],
        core=CORE_SERVER,
        env=child_env(),
        log=workdir / "bare.log",
    ) as proc:
        await wait_port("127.0.0.1", port, 60, proc)
        yield Server(port, proc.pid, f"http://127.0.0.1:{port}")


async def http_get_json(url: str, accept: str = "application/json") -> Any:
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, headers={"Accept": accept})
        response.raise_for_status()
        return response.json()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_FILLER = (
    "Tonight's meetup moves to the library annex: bring a board game, a friend, or both. "
    "We will also plan the spring clean-up of the riverside path and the bake sale. "
)


def create_activity(actor_id: str, *, mention: str | None = None, size: int = 1500) -> dict[str, Any]:
    """A Create{Note} of about `size` bytes, with fresh ids."""
    token = uuid.uuid4().hex
    published = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    content = "<p>" + (_FILLER * (size // len(_FILLER) + 1))[: max(size - 700, 100)] + "</p>"
    to = [PUBLIC] + ([mention] if mention else [])
    note = {
        "id": f"{actor_id}/notes/{token}",
        "type": "Note",
        "attributedTo": actor_id,
        "content": content,
        "published": published,
        "to": to,
        "cc": [f"{actor_id}/followers"],
        "url": f"{actor_id}/notes/{token}",
    }
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor_id}/activities/{token}",
        "type": "Create",
        "actor": actor_id,
        "published": published,
        "to": to,
        "cc": [f"{actor_id}/followers"],
        "object": note,
    }


def follow_activity(actor_id: str, target: str) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor_id}/follows/{uuid.uuid4().hex}",
        "type": "Follow",
        "actor": actor_id,
        "object": target,
    }


def signed_post(origin: str, path: str, activity: dict[str, Any], key_id: str, private_pem: str) -> bytes:
    """The raw bytes of a POST signed exactly as a peer would sign it (our sign_request)."""
    from benchmarks.loadgen import post_request
    from fediverse_net.activitypub.keys import SigningKey, load_private_key
    from fediverse_net.activitypub.signatures import sign_request

    body = orjson.dumps(activity)
    headers = sign_request("POST", origin + path, body, key=SigningKey(key_id, load_private_key(private_pem)))
    headers["Accept"] = "application/activity+json"
    headers["User-Agent"] = "bench-peer/1.0"
    return post_request(path, headers, body)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start
