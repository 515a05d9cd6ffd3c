"""Row F13 of shared/security-matrix.md: a boost storm at our inbox.

A bounded number of inbox POSTs in flight, a bounded backlog waiting for a turn, then 503 +
Retry-After; and a bound on the stored queue (pending rows above the cap: 503, nothing stored).
Requests are held in flight by a key server that answers only when the test says so (no sleeps,
no timing).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fediverse_net.db.models import InboxItem
from fediverse_net.services import inbox as inbox_service
from tests.safety.test_matrix import create_of, follow_of

pytestmark = pytest.mark.anyio


class HeldKeyServer(httpx.AsyncBaseTransport):
    """The fake fediverse, except that GETs (key fetches) wait until `release` is set."""

    def __init__(self, fediverse) -> None:
        self.fediverse = fediverse
        self.release = asyncio.Event()
        self.held = 0
        self.changed = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if request.method == "GET":
            self.held += 1
            self.changed.set()
            await self.release.wait()
        return self.fediverse.handle(request)

    async def until_held(self, count: int) -> None:
        while self.held < count:
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
def settings(settings):
    return settings.with_(inbox_max_in_flight=2, inbox_max_backlog=1, inbox_max_pending=3)


@pytest.fixture
def key_server(fediverse):
    return HeldKeyServer(fediverse)


@pytest.fixture
def fake_transport(key_server):
    return key_server


async def _until_waiting(deps, count: int) -> None:
    gate = inbox_service.admission_gate(deps)
    for _ in range(1000):  # yields to the loop only: the POST task reaches the gate's queue
        if len(gate.waiting) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError("the request never reached the backlog")


async def test_F13_inbox_in_flight_limit_and_backlog_then_503(
    client, fediverse, key_server, alice, deps, run_workers
):
    senders = [fediverse.add_actor(f"storm{i}", f"s{i}.example") for i in range(4)]
    posts = [
        asyncio.create_task(fediverse.post_signed(client, "/inbox", follow_of(fediverse, a), as_actor=a))
        for a in senders[:2]
    ]
    await key_server.until_held(2)  # both slots taken: each waits for its first-contact key fetch
    queued = asyncio.create_task(
        fediverse.post_signed(client, "/inbox", follow_of(fediverse, senders[2]), as_actor=senders[2])
    )
    await _until_waiting(deps, 1)  # the backlog (1) is full
    refused = await fediverse.post_signed(
        client, "/inbox", follow_of(fediverse, senders[3]), as_actor=senders[3]
    )
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"
    assert "error" in refused.json()
    assert key_server.held == 2  # the refused request fetched nothing
    key_server.release.set()
    responses = await asyncio.gather(*posts, queued)
    assert [r.status_code for r in responses] == [202, 202, 202]
    stored = set(await InboxItem.all().values_list("actor_ap_id", flat=True))
    assert stored == {a.id for a in senders[:3]}  # nothing of the refused request was kept
    gate = inbox_service.admission_gate(deps)
    assert (gate.active, len(gate.waiting)) == (0, 0)  # every slot was given back
    # Capacity is back (and the queue, at its cap of 3, drained): the refused sender's retry goes through.
    await run_workers()
    retry = await fediverse.post_signed(
        client, "/inbox", follow_of(fediverse, senders[3]), as_actor=senders[3]
    )
    assert retry.status_code == 202


async def test_F13_a_cancelled_waiter_gives_its_turn_back(app, deps):
    gate = inbox_service.admission_gate(deps)
    await gate.acquire()
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await _until_waiting(deps, 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(gate.waiting) == 0
    gate.release()
    gate.release()
    assert gate.active == 0


async def test_F13_full_inbox_queue_is_503_and_stores_nothing(
    client, fediverse, key_server, alice, bob, run_workers
):
    key_server.release.set()  # no holding here: the queue bound is what is tested
    accepted = [create_of(fediverse, bob) for _ in range(3)]
    for activity in accepted:
        assert (await fediverse.post_signed(client, "/inbox", activity, as_actor=bob)).status_code == 202
    # Three activities wait (the cap): the next POST is refused before it is even parsed.
    late = create_of(fediverse, bob)
    refused = await fediverse.post_signed(client, "/inbox", late, as_actor=bob)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"
    assert await InboxItem.filter(activity_id=late["id"]).count() == 0
    assert await InboxItem.filter(state="pending").count() == 3
    # Once the worker drained the queue, the sender's retry is accepted.
    await run_workers()
    assert await InboxItem.filter(state="pending").count() == 0
    assert (await fediverse.post_signed(client, "/inbox", late, as_actor=bob)).status_code == 202
