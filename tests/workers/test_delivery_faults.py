"""Chaos tests of delivery against real loopback HTTP servers (security matrix §6, F1–F10).

Real `FederationClient`, real sockets, our real worker and database; only the clock that decides
when rows are due is moved by hand, and short client deadlines keep every test bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from tortoise import Tortoise

from fediverse_net.activitypub.client import FederationClient
from fediverse_net.db import tortoise_config
from fediverse_net.db.models import Actor, Delivery, Follow, HostHealth
from fediverse_net.deps import Deps
from fediverse_net.services.deliveries import RETRY_AFTER_CAP, revive_host
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.workers import delivery
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.services import Clock, follow, local_actor, note_activity, remote_actor
from tests.workers import Reply, Sink, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def client(**kwargs) -> FederationClient:
    kwargs.setdefault("deadline", 5.0)
    return FederationClient(user_agent="fediverse-net-test", allow_private=True, **kwargs)


@pytest.fixture
async def deps(db, settings):
    async with client() as http:
        deps = Deps(settings=settings, client=http, clock=Clock())
        yield deps
        await delivery.shutdown(deps)


@pytest.fixture
async def alice(db, settings):
    return await local_actor(settings, "alice")


async def send(deps, actor, inboxes, **extra):
    activity = note_activity(actor, **extra)
    return await record_outgoing(deps, actor=actor, activity=activity, recipients=[], inboxes=inboxes)


async def row(outgoing) -> Delivery:
    return await Delivery.get(activity_id=outgoing.id)


def near(value: datetime, expected: datetime, slack: float = 3.0) -> bool:
    return abs((value - expected).total_seconds()) <= slack


async def test_F1_remote_down_then_back_all_deliveries_arrive(deps, alice):
    port = free_port()
    down_inbox = f"http://127.0.0.1:{port}/inbox"
    async with Sink() as healthy:
        sent = [await send(deps, alice, [down_inbox, healthy.url()]) for _ in range(5)]
        await delivery.run_until_idle(deps)
        # The healthy host got everything at once: per-host isolation.
        assert len(healthy.counts()) == 5
    rows = await Delivery.filter(host=f"127.0.0.1:{port}")
    assert {(r.state, r.attempts) for r in rows} == {("pending", 1)}
    assert all(r.last_error.startswith("connect") for r in rows)
    health = await HostHealth.get(host=f"127.0.0.1:{port}")
    assert (health.consecutive_failures, len(health.failure_days)) == (5, 1)
    assert await delivery.step(deps) == 0  # no hot loop: nothing is due before the backoff

    async with Sink(port=port) as back:
        deps.clock.advance(minutes=1)
        await delivery.run_until_idle(deps)
        counts = back.counts()
    assert sorted(counts) == sorted((o.ap_id, "/inbox") for o in sent)
    assert set(counts.values()) == {1}  # zero loss, no duplicates
    assert await Delivery.filter(state="delivered").count() == 10
    health = await HostHealth.get(host=f"127.0.0.1:{port}")
    assert (health.consecutive_failures, health.failure_days) == (0, [])


async def test_F8_retry_after_is_honoured_and_clamped(deps, alice):
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    replies = {
        "/seconds": Reply(429, {"Retry-After": "120"}),
        "/date": Reply(503, {"Retry-After": date}),
        "/huge": Reply(429, {"Retry-After": "999999"}),
    }
    sinks = [Sink(lambda r, path=path: replies[path]) for path in replies]
    for sink in sinks:
        await sink.start()
    try:
        sent = {
            path: await send(deps, alice, [sink.url(path)]) for path, sink in zip(replies, sinks, strict=True)
        }
        await delivery.run_until_idle(deps)
    finally:
        for sink in sinks:
            await sink.stop()
    now = deps.clock()
    expected = {"/seconds": timedelta(seconds=120), "/date": timedelta(seconds=600), "/huge": RETRY_AFTER_CAP}
    for (path, outgoing), sink in zip(sent.items(), sinks, strict=True):
        delivery_row = await row(outgoing)
        assert (delivery_row.state, delivery_row.attempts) == ("pending", 1), path
        assert near(delivery_row.next_attempt_at, now + expected[path]), path
        health = await HostHealth.get(host=sink.host)
        assert near(health.backoff_until, now + expected[path]), path  # the whole host waits
        # A 429 proves the host is up: no failure day, the breaker is not tripped. 503 counts.
        assert health.consecutive_failures == (1 if path == "/date" else 0), path


async def test_F8_500_is_retried_until_it_works(deps, alice):
    answers = iter([Reply(500), Reply(502), Reply(202)])
    async with Sink(lambda r: next(answers)) as sink:
        outgoing = await send(deps, alice, [sink.url()])
        await delivery.run_until_idle(deps)
        assert ((await row(outgoing)).state, (await row(outgoing)).last_status) == ("pending", 500)
        deps.clock.advance(seconds=20)
        await delivery.run_until_idle(deps)
        assert ((await row(outgoing)).attempts, (await row(outgoing)).last_status) == (2, 502)
        deps.clock.advance(seconds=40)
        await delivery.run_until_idle(deps)
    final = await row(outgoing)
    assert (final.state, final.attempts, final.last_status) == ("delivered", 3, 202)


@pytest.mark.parametrize(
    ("status", "state"), [(400, "failed"), (403, "failed"), (404, "failed"), (401, "pending")]
)
async def test_F9_4xx_is_permanent_except_401(deps, alice, status, state):
    async with Sink(lambda r: Reply(status)) as sink:
        outgoing = await send(deps, alice, [sink.url()])
        await delivery.run_until_idle(deps)
        requests = len(sink.received)
    result = await row(outgoing)
    assert (result.state, result.attempts, result.last_status) == (state, 1, status)
    assert requests == (2 if status in (400, 401) else 1)  # the client's signature double-knock
    health = await HostHealth.filter(host=sink.host).first()
    # Permanent 4xx: the host answered, it is not failing. 401 counts (and is retried).
    assert (health.consecutive_failures if health else 0) == (1 if status == 401 else 0)


async def test_F9_410_removes_the_follower(deps, alice):
    async with Sink(lambda r: Reply(410)) as sink:
        bob = await remote_actor(sink.host, "bob", scheme="http", shared=False)
        await follow(bob, alice)
        outgoing = await record_outgoing(
            deps, actor=alice, activity=note_activity(alice), recipients=[bob], personal=True
        )
        await delivery.run_until_idle(deps)
    assert (await row(outgoing)).state == "failed"
    assert not await Follow.filter(follower_id=bob.id).exists()
    assert (await Actor.get(id=bob.id)).deleted_at is not None


async def test_row31_redirect_answering_a_delivery_is_permanent(deps, alice):
    metadata = Reply(307, {"Location": "http://169.254.169.254/latest/meta-data/"})
    async with Sink(lambda r: metadata) as sink:
        outgoing = await send(deps, alice, [sink.url()])
        await delivery.run_until_idle(deps)
        assert len(sink.received) == 1
    result = await row(outgoing)
    assert (result.state, result.last_status) == ("failed", 307)


async def test_row34_internal_inbox_is_refused_permanently_and_is_no_host_outage(db, settings, alice):
    async with Sink() as sink, FederationClient(user_agent="t", allow_private=False) as guarded:
        deps = Deps(settings=settings, client=guarded, clock=Clock())
        outgoing = await send(deps, alice, [f"https://127.0.0.1:{sink.port}/inbox"])
        await delivery.run_until_idle(deps)
        assert sink.received == []
    result = await row(outgoing)
    assert (result.state, result.attempts) == ("failed", 1)
    assert result.last_error.startswith("unsafe-url")
    assert not await HostHealth.exists()


async def test_F7_slowloris_body_is_aborted_and_counted_as_a_failure(deps, alice):
    slow = {
        "/body": Reply(202, body=b"x" * 100, dribble=0.2),
        "/headers": Reply(202, delay=20),
    }
    async with Sink(lambda r: slow[r.path]) as sink, client(deadline=0.5) as impatient:
        deps.client = impatient
        sent = [await send(deps, alice, [sink.url(path)]) for path in slow]
        started = time.monotonic()
        await delivery.run_until_idle(deps)
        assert time.monotonic() - started < 3  # the worker is freed by the deadline
    for outgoing in sent:
        result = await row(outgoing)
        assert (result.state, result.attempts, result.last_status) == ("pending", 1, None)
        assert result.last_error.startswith("timeout")
    assert (await HostHealth.get(host=sink.host)).consecutive_failures == 2


async def test_F10_nxdomain_is_permanent_servfail_is_retried(deps, alice, monkeypatch):
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host, port, **kwargs):
        code = socket.EAI_NONAME if host == "gone.example" else socket.EAI_AGAIN
        raise socket.gaierror(code, "fake resolver")

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    gone = await send(deps, alice, ["http://gone.example/inbox"])
    flaky = await send(deps, alice, ["http://flaky.example/inbox"])
    await delivery.run_until_idle(deps)
    assert ((await row(gone)).state, (await row(gone)).last_error[:12]) == ("failed", "dns-nxdomain")
    assert ((await row(flaky)).state, (await row(flaky)).last_error[:11]) == ("pending", "dns-failure")


async def test_F2_down_for_days_becomes_unavailable_then_revives(deps, alice):
    port = free_port()
    host, inbox = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/inbox"
    for day in range(7):
        await send(deps, alice, [inbox])
        await delivery.run_until_idle(deps)
        assert (await HostHealth.get(host=host)).unavailable is (day == 6)
        deps.clock.advance(days=1)
    assert not await Delivery.filter(host=host, state="pending").exists()  # dropped, visible to admins
    assert await Delivery.filter(host=host, state="dropped").exists()
    skipped = await send(deps, alice, [inbox])
    assert not await Delivery.filter(activity_id=skipped.id).exists()
    follow_request = await record_outgoing(
        deps,
        actor=alice,
        activity={"id": f"{alice.ap_id}#follows/1", "type": "Follow", "actor": alice.ap_id, "object": "x"},
        recipients=[],
        inboxes=[inbox],
    )
    async with Sink(port=port) as back:
        # The exempt Follow reaches the host; its success revives it.
        await delivery.run_until_idle(deps)
        assert (await row(follow_request)).state == "delivered"
        assert not (await HostHealth.get(host=host)).unavailable
        after = await send(deps, alice, [inbox])
        await delivery.run_until_idle(deps)
        assert (await row(after)).state == "delivered"
        assert len(back.received) == 2


async def test_F2_verified_inbound_activity_revives_an_unavailable_host(deps, alice):
    async with Sink() as sink:
        await HostHealth.create(
            host=sink.host, unavailable=True, consecutive_failures=30, failure_days=["x"] * 7
        )
        assert not await Delivery.filter(activity_id=(await send(deps, alice, [sink.url()])).id).exists()
        assert await revive_host(sink.url("/users/bob"))  # what the inbox calls
        outgoing = await send(deps, alice, [sink.url()])
        await delivery.run_until_idle(deps)
        assert (await row(outgoing)).state == "delivered"


async def test_fairness_a_slow_host_does_not_delay_the_others(deps, alice):
    async with Sink(lambda r: Reply(202, delay=3)) as slow, Sink() as fast:
        await send(deps, alice, [slow.url()])
        fast_batch = [await send(deps, alice, [fast.url(f"/inbox/{i}")]) for i in range(30)]
        started = time.monotonic()
        while await Delivery.filter(activity_id__in=[o.id for o in fast_batch], state="pending").exists():
            await delivery.step(deps)
            assert time.monotonic() - started < 2, "fast deliveries waited for the slow host"
        assert len(fast.received) == 30 and len(slow.received) == 1
        await delivery.run_until_idle(deps)
    assert await Delivery.filter(state="delivered").count() == 31


# --- a worker process killed with SIGKILL mid-delivery (F3) ------------------------------------

WORKER = """
import asyncio, sys
from pathlib import Path
from tortoise import Tortoise
from fediverse_net.activitypub.client import FederationClient
from fediverse_net.config import Settings
from fediverse_net.db import tortoise_config
from fediverse_net.deps import Deps
from fediverse_net.workers import delivery

async def main(url):
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    settings = Settings(domain="fedi.test", data_dir=Path("."), database_url=url, secret_key="x")
    async with FederationClient(user_agent="killed-worker", allow_private=True) as client:
        deps = Deps(settings=settings, client=client)
        while True:
            await delivery.step(deps)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
async def shared_db(tmp_path, settings):
    """A database a second process can open: the test PostgreSQL, or an SQLite file."""
    if IS_POSTGRES:
        await Tortoise.init(config=tortoise_config(TEST_DATABASE_URL), _enable_global_fallback=True)
        await Tortoise.generate_schemas(safe=True)
        from tests.conftest import _reset_postgres

        await _reset_postgres()
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite://{tmp_path / 'shared.sqlite3'}"
        await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
        await Tortoise.generate_schemas(safe=True)
    try:
        yield url
    finally:
        await Tortoise.close_connections()


async def test_F3_worker_killed_mid_delivery_is_redelivered_after_the_lease(shared_db, settings, tmp_path):
    first_arrived = asyncio.Event()

    async def behaviour(request):
        if not first_arrived.is_set():
            first_arrived.set()
            await asyncio.sleep(60)  # request sent, answer never recorded: the worker dies now
        return Reply(202)

    alice = await local_actor(settings, "alice")
    async with Sink(behaviour) as sink:
        deps = Deps(settings=settings, clock=Clock())
        outgoing = await send(deps, alice, [sink.url()])
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            shared_db,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            async with asyncio.timeout(30):
                await first_arrived.wait()
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        leased = await row(outgoing)
        assert (leased.state, leased.attempts) == ("pending", 0)
        assert leased.claimed_until is not None

        async with client() as http:
            deps.client = http
            assert await delivery.run_until_idle(deps) == 0  # still leased to the dead worker
            # The lease was taken on the worker's real clock, a few seconds after ours was set
            # (interpreter start-up on a loaded machine): go well past it.
            deps.clock.advance(seconds=delivery.LEASE.total_seconds() + 60)
            await delivery.run_until_idle(deps)
            await delivery.shutdown(deps)
        counts = sink.counts()
    assert counts[(outgoing.ap_id, "/inbox")] == 2  # at-least-once: the receiver dedupes by id
    assert await Delivery.filter(activity_id=outgoing.id).count() == 1  # no duplicate rows
    assert (await row(outgoing)).state == "delivered"
