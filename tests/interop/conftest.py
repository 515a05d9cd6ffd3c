"""Interop fixtures: our server (one per test module, two for instance-to-instance tests) and
fresh Fedify / bovine peers per test. Every process is stopped by a finalizer, even on failure.

    def test_x(server, fedify_peer):
        handle = server.create_user(unique_name("alice"))
        assert fedify_peer.lookup(handle)["type"] == "Person"

    @pytest.mark.parametrize("fedify_peer", ["rfc9421"], indirect=True)   # first knock
    @pytest.mark.parametrize("fedify_peer", [{"actors": ["g:Group"], "first_knock": "rfc9421"}],
                             indirect=True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.harness import ServerProcess, start_bovine_peer, start_fedify_peer

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, attach the log tail of every running server to the report."""
    report = yield
    if report.failed and HERE in Path(item.path).parents:
        for server in sorted(ServerProcess.running, key=lambda s: s.port):
            report.sections.append((f"server {server.origin} ({server.log_path})", server.log_tail()))
    return report


@pytest.fixture(scope="session")
def interop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dirs, server logs and peer event logs (JSON lines) of the whole session."""
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="module")
def server(interop_dir: Path) -> Iterator[ServerProcess]:
    """Our server on 127.0.0.1:<port>, shared by a test module: give each test its own users."""
    with ServerProcess(interop_dir) as process:
        yield process


@pytest.fixture(scope="module")
def server_b(interop_dir: Path) -> Iterator[ServerProcess]:
    """A second, independent instance (own port, data dir and database) to federate with `server`."""
    with ServerProcess(interop_dir) as process:
        yield process


@pytest.fixture
def start_fedify(interop_dir: Path) -> Iterator[Callable[..., Any]]:
    """Factory: start_fedify(actors=("remote",), first_knock=None, extra_args=()) -> started FedifyPeer."""
    peers: list[Any] = []

    def start(**options: Any) -> Any:
        peers.append(start_fedify_peer(interop_dir, **options))
        return peers[-1]

    yield start
    for peer in peers:
        peer.stop()


@pytest.fixture
def fedify_peer(request: pytest.FixtureRequest, start_fedify: Callable[..., Any]) -> Any:
    """A fresh Fedify peer with one Person `remote`. Indirect param: a first-knock spec
    ("draft-cavage" or "rfc9421") or a dict of start_fedify options."""
    param = getattr(request, "param", None)
    options = param if isinstance(param, dict) else {"first_knock": param}
    return start_fedify(**options)


@pytest.fixture
def bovine_peer(interop_dir: Path) -> Iterator[Any]:
    """A fresh bovine peer with one Person `bob`."""
    peer = start_bovine_peer(interop_dir)
    try:
        yield peer
    finally:
        peer.stop()
