from __future__ import annotations

import pytest

from fediverse_net.services.members import NewMember, create_member
from fediverse_net.workers.runner import WorkerRunner
from tests.fakes.fediverse import FakeFediverse


@pytest.fixture
def fediverse() -> FakeFediverse:
    return FakeFediverse()


@pytest.fixture
def fake_transport(fediverse):
    return fediverse.transport


@pytest.fixture
async def alice(app, settings):
    account = await create_member(
        settings, NewMember(handle="alice", password="correct horse", display_name="Alice")
    )
    await account.fetch_related("actor")
    return account.actor


@pytest.fixture
def run_workers(app):
    """Crank the inbox and delivery workers until nothing is due (no background loops in tests)."""

    async def run() -> int:
        return await WorkerRunner(app.state.deps).run_pending()

    return run
