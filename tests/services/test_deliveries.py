"""Retry policy (pure), claiming and recording deliveries, host health (protocol.md §4.4, §4.5).

Security matrix invariant 9, rows 31 and 34, faults F2, F3, F8, F9, F10; checklist 36, 37.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from fediverse_net.db.models import Actor, Delivery, Follow, HostHealth
from fediverse_net.deps import Deps
from fediverse_net.services import deliveries as d
from fediverse_net.services.deliveries import (
    Attempt,
    Claim,
    breaker_cooloff,
    claim_due,
    classify,
    handle_gone_inbox,
    next_attempt_at,
    record_failure,
    record_outcomes,
    record_success,
    retry_delay,
    revive_host,
)
from fediverse_net.services.deliveries.policy import settle_batch
from fediverse_net.services.outbox import record_outgoing
from tests.services import Clock, follow, local_actor, note_activity, remote_actor

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# --- the pure policy ---------------------------------------------------------------------------


def test_row36_retry_schedule_spans_at_least_48_hours_and_stops():
    delays = [retry_delay(n, jitter=0.0) for n in range(1, d.MAX_ATTEMPTS)]
    assert len(delays) == 16  # 17 tries in all, as Mastodon
    assert delays == sorted(delays)  # monotonic
    assert delays[0] == timedelta(seconds=15)
    assert delays[4] == timedelta(seconds=4**4 + 15)
    total = sum(delays, timedelta())
    assert timedelta(hours=48) <= total <= timedelta(hours=50)  # Mastodon's ≈ 49.6 h
    most = sum((retry_delay(n, jitter=1.0) for n in range(1, d.MAX_ATTEMPTS)), timedelta())
    assert most <= timedelta(hours=63)  # ≈ 2.6 days with the largest jitter
    assert next_attempt_at(d.MAX_ATTEMPTS - 1, NOW, jitter=0) == NOW + delays[-1]
    assert next_attempt_at(d.MAX_ATTEMPTS, NOW) is None


def test_retry_jitter_is_bounded():
    for attempts in (1, 5, 12):
        base = retry_delay(attempts, jitter=0.0)
        samples = [retry_delay(attempts) for _ in range(500)]
        assert all(base <= s <= base * 1.25 for s in samples)
        assert len(set(samples)) > 1  # it is random


@pytest.mark.parametrize(
    ("attempts", "retry_after", "expected"),
    [
        (1, 120, timedelta(seconds=120)),  # honoured
        (1, 999_999, timedelta(hours=1)),  # clamped to an hour
        (1, 0.0, timedelta(seconds=15)),  # an HTTP-date in the past
        (5, 1, timedelta(seconds=4**4 + 15)),  # never earlier than our own schedule
        (14, 60, retry_delay(14, jitter=0.0)),  # our delay (9 h) is longer than the cap
        (3, None, timedelta(seconds=2**4 + 15)),
    ],
)
def test_F8_retry_after_is_honoured_and_clamped(attempts, retry_after, expected):
    assert next_attempt_at(attempts, NOW, retry_after=retry_after, jitter=0.0) == NOW + expected


@dataclass
class Result:
    status: int | None
    error: str | None = None


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, "delivered"),
        (202, None, "delivered"),
        (204, None, "delivered"),
        (400, None, "permanent"),
        (403, None, "permanent"),
        (404, None, "permanent"),
        (413, None, "permanent"),
        (422, None, "permanent"),
        (501, None, "permanent"),
        (307, None, "permanent"),  # row 31: a redirect answering a POST is not followed
        (410, None, "gone"),
        (401, None, "retry"),
        (408, None, "retry"),
        (429, None, "retry"),
        (500, None, "retry"),
        (502, None, "retry"),
        (503, None, "retry"),
        (None, "connect: refused", "retry"),
        (None, "timeout: no answer within 30 s", "retry"),
        (None, "dns-failure: SERVFAIL", "retry"),
        (None, "dns-nxdomain: no such host", "permanent"),  # F10
        (None, "tls-certificate: expired", "permanent"),  # F11
        (None, None, "retry"),
    ],
)
def test_F9_classify(status, error, outcome):
    assert classify(Result(status, error)) == outcome


@pytest.mark.parametrize(
    ("failures", "cooloff"),
    [
        (0, None),
        (9, None),
        (10, timedelta(seconds=60)),
        (11, timedelta(seconds=120)),
        (13, timedelta(seconds=480)),
        (16, timedelta(hours=1)),
        (500, timedelta(hours=1)),
    ],
)
def test_F1_circuit_breaker_cooloff_grows_and_is_capped(failures, cooloff):
    assert breaker_cooloff(failures) == cooloff


def _claim(n: int, host: str, attempts: int = 0) -> Claim:
    return Claim(n, 1, f"https://{host}/inbox{n}", host, attempts, False, NOW + d.DEFAULT_LEASE)


def test_settle_batch_tallies_hosts_without_a_database():
    """The in-memory half of `record_outcomes`: row states and what counts for each host."""
    rows = [
        _claim(1, "up.example"),
        _claim(2, "down.example"),
        _claim(3, "busy.example"),
        _claim(4, "gone.example"),
        _claim(5, "up.example"),
        _claim(6, "ssrf.example"),
    ]
    hosts, gone = settle_batch(
        [
            Attempt(rows[0], status=202, scheme="rfc9421"),
            Attempt(rows[1], error="connect: refused"),
            Attempt(rows[2], status=429, retry_after=120),
            Attempt(rows[3], status=410),
            Attempt(rows[4], dropped="the sending actor is deleted or suspended"),
            Attempt(rows[5], error="unsafe-url: private address", unsafe=True),
        ],
        NOW,
    )
    assert [(r.state, r.attempts, r.claimed_until) for r in rows] == [
        ("delivered", 1, None),
        ("pending", 1, None),
        ("pending", 1, None),
        ("failed", 1, None),
        ("dropped", 0, None),
        ("failed", 1, None),
    ]
    assert rows[1].next_attempt_at is not None and rows[1].next_attempt_at > NOW
    assert rows[2].next_attempt_at is not None and rows[2].next_attempt_at >= NOW + timedelta(seconds=120)
    assert (hosts["up.example"].reachable, hosts["up.example"].scheme) == (1, "rfc9421")
    assert (hosts["down.example"].failed, hosts["down.example"].reachable) == (1, 0)
    busy = hosts["busy.example"]  # 429: up, but paused for its Retry-After
    assert (busy.reachable, busy.failed, busy.pause_until) == (1, 0, NOW + timedelta(seconds=120))
    assert hosts["gone.example"].reachable == 1 and gone == ["https://gone.example/inbox4"]
    assert "ssrf.example" not in hosts  # neither dropped rows nor SSRF refusals count for a host


# --- with the database -------------------------------------------------------------------------

pytest_anyio = pytest.mark.anyio


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def deps(settings, clock):
    return Deps(settings=settings, clock=clock)


@pytest.fixture
async def alice(db, settings):
    return await local_actor(settings, "alice")


async def outgoing_to(deps, alice, *hosts: str, follow_request: bool = False):
    recipients = [await remote_actor(host) for host in hosts]
    activity = note_activity(alice)
    if follow_request:
        activity = {
            "id": activity["id"],
            "type": "Follow",
            "actor": alice.ap_id,
            "object": recipients[0].ap_id,
        }
    outgoing = await record_outgoing(deps, actor=alice, activity=activity, recipients=recipients)
    return await Delivery.filter(activity_id=outgoing.id).order_by("id")


@pytest_anyio
async def test_claim_due_leases_due_rows_once(deps, alice, clock):
    rows = await outgoing_to(deps, alice, "a.example", "b.example")
    await Delivery.filter(id=rows[1].id).update(next_attempt_at=NOW + timedelta(minutes=1))

    claimed = await claim_due(10, NOW)
    assert [r.id for r in claimed] == [rows[0].id]
    assert claimed[0].claimed_until == NOW + d.DEFAULT_LEASE
    assert await claim_due(10, NOW) == []  # leased
    assert [r.id for r in await claim_due(10, NOW + timedelta(minutes=1))] == [rows[1].id]


@pytest_anyio
async def test_F3_rows_of_a_crashed_worker_come_back_after_the_lease(deps, alice):
    await outgoing_to(deps, alice, "a.example")
    (first,) = await claim_due(10, NOW, timedelta(seconds=30))  # …and the worker dies here
    assert await claim_due(10, NOW + timedelta(seconds=29)) == []
    (again,) = await claim_due(10, NOW + timedelta(seconds=31))
    assert again.id == first.id and again.state == "pending" and again.attempts == 0


@pytest_anyio
async def test_claim_is_fair_across_hosts(deps, alice, clock):
    backlog = [f"https://big.example/inbox/{i}" for i in range(50)]
    await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[], inboxes=backlog)
    clock.advance(seconds=1)  # newer than the whole backlog
    await record_outgoing(
        deps,
        actor=alice,
        activity=note_activity(alice),
        recipients=[],
        inboxes=["https://small.example/inbox"],
    )

    claimed = await claim_due(10, clock(), per_host=4)
    hosts = [r.host for r in claimed]
    assert hosts.count("big.example") == 4 and hosts.count("small.example") == 1
    # Hosts the caller is already saturating are skipped.
    more = await claim_due(10, clock(), per_host=4, exclude_hosts={"big.example"})
    assert more == []


@pytest_anyio
async def test_claim_skips_hosts_in_backoff(deps, alice):
    await outgoing_to(deps, alice, "a.example", "b.example")
    await HostHealth.create(host="a.example", backoff_until=NOW + timedelta(seconds=60))
    assert [r.host for r in await claim_due(10, NOW)] == ["b.example"]
    assert [r.host for r in await claim_due(10, NOW + timedelta(seconds=61))] == ["a.example"]


@pytest_anyio
async def test_F1_open_breaker_allows_one_probe_per_window(deps, alice):
    for _ in range(3):
        await outgoing_to(deps, alice, "down.example")
    await HostHealth.create(
        host="down.example", consecutive_failures=12, backoff_until=NOW - timedelta(seconds=1)
    )
    (probe,) = await claim_due(10, NOW)
    health = await HostHealth.get(host="down.example")
    assert health.backoff_until == NOW + d.DEFAULT_LEASE  # no second probe while this one runs
    assert await claim_due(10, NOW + timedelta(seconds=5)) == []
    await record_failure(probe, NOW + timedelta(seconds=5), error="connect: refused")
    health = await HostHealth.get(host="down.example")
    assert health.consecutive_failures == 13
    assert health.backoff_until == NOW + timedelta(seconds=5) + breaker_cooloff(13)
    # The next window follows the cool-off, not the (longer) hold taken for the probe.
    await HostHealth.filter(host="down.example").update(backoff_until=NOW, consecutive_failures=10)
    (probe,) = await claim_due(10, NOW + timedelta(seconds=10))
    await record_failure(probe, NOW + timedelta(seconds=10), error="connect: refused")
    health = await HostHealth.get(host="down.example")
    assert health.backoff_until == NOW + timedelta(seconds=10 + 120)  # not the probe's 5-minute hold
    # A success closes the breaker: the whole backlog flows again.
    (probe,) = await claim_due(10, health.backoff_until)
    await record_success(probe, health.backoff_until)
    assert len(await claim_due(10, health.backoff_until + timedelta(minutes=10))) == 2


@pytest_anyio
async def test_F1_ten_failures_in_a_row_open_the_breaker(deps, alice):
    for _ in range(10):
        await outgoing_to(deps, alice, "down.example")
    claimed = await claim_due(100, NOW)
    assert len(claimed) == 8  # per-host quota
    await record_outcomes([Attempt(r, error="connect: refused") for r in claimed], NOW)
    health = await HostHealth.get(host="down.example")
    assert (health.consecutive_failures, health.backoff_until) == (8, None)
    claimed = await claim_due(2, NOW + timedelta(minutes=1))
    await record_outcomes([Attempt(r, error="connect: refused") for r in claimed], NOW + timedelta(minutes=1))
    health = await HostHealth.get(host="down.example")
    assert health.consecutive_failures == 10
    assert health.backoff_until == NOW + timedelta(minutes=2)


@pytest_anyio
async def test_success_and_failure_update_the_row(deps, alice):
    ok, bad = await outgoing_to(deps, alice, "a.example", "b.example")
    claimed = await claim_due(10, NOW)
    await record_outcomes(
        [
            Attempt(claimed[0], status=202, scheme="rfc9421"),
            Attempt(claimed[1], status=500, error="http: 500"),
        ],
        NOW,
    )
    ok, bad = await Delivery.get(id=ok.id), await Delivery.get(id=bad.id)
    assert (ok.state, ok.attempts, ok.last_status, ok.last_error, ok.claimed_until) == (
        "delivered",
        1,
        202,
        None,
        None,
    )
    assert (bad.state, bad.attempts, bad.last_status, bad.last_error) == ("pending", 1, 500, "http: 500")
    assert NOW + timedelta(seconds=15) <= bad.next_attempt_at <= NOW + timedelta(seconds=19)
    health = await HostHealth.get(host="b.example")
    assert (health.failure_days, health.consecutive_failures, health.unavailable) == (
        ["2026-03-01"],
        1,
        False,
    )
    assert not await HostHealth.filter(host="a.example").exists()  # healthy hosts need no row


@pytest_anyio
@pytest.mark.parametrize("status", [400, 403, 404, 422, 501])
async def test_F9_permanent_4xx_is_not_retried_and_not_a_host_failure(deps, alice, status):
    (row,) = await outgoing_to(deps, alice, "a.example")
    await HostHealth.create(host="a.example", failure_days=["2026-02-28"], consecutive_failures=3)
    (claimed,) = await claim_due(10, NOW)
    await record_failure(claimed, NOW, status=status)
    row = await Delivery.get(id=row.id)
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, f"HTTP {status}")
    health = await HostHealth.get(host="a.example")
    assert (health.failure_days, health.consecutive_failures) == ([], 0)  # the host answered


@pytest_anyio
async def test_F9_401_is_retried(deps, alice):
    (row,) = await outgoing_to(deps, alice, "a.example")
    (claimed,) = await claim_due(10, NOW)
    await record_failure(claimed, NOW, status=401, error="http: 401")
    row = await Delivery.get(id=row.id)
    assert (row.state, row.attempts) == ("pending", 1)


@pytest_anyio
async def test_F8_429_pauses_the_host_without_counting_a_failure(deps, alice):
    for _ in range(2):
        await outgoing_to(deps, alice, "a.example")
    (claimed, *_) = await claim_due(1, NOW)
    await record_failure(claimed, NOW, status=429, retry_after=120)
    row = await Delivery.get(id=claimed.id)
    assert row.next_attempt_at == NOW + timedelta(seconds=120)
    health = await HostHealth.get(host="a.example")
    assert (health.consecutive_failures, health.failure_days) == (0, [])
    assert health.backoff_until == NOW + timedelta(seconds=120)
    assert await claim_due(10, NOW + timedelta(seconds=60)) == []  # the whole host waits
    assert await claim_due(10, NOW + timedelta(seconds=120))


@pytest_anyio
async def test_F2_seven_failure_days_mark_the_host_unavailable_and_revive_host_clears_it(deps, alice, clock):
    follow_row = (await outgoing_to(deps, alice, "down.example", follow_request=True))[0]
    for day in range(7):
        await outgoing_to(deps, alice, "down.example")
        for claimed in await claim_due(10, clock()):
            await record_failure(claimed, clock(), error="connect: refused")
        health = await HostHealth.get(host="down.example")
        assert health.unavailable is (day == 6)
        if day < 6:
            clock.advance(days=1)
    assert len(health.failure_days) == 7
    assert not await Delivery.filter(host="down.example", state="pending", bypass_availability=False).exists()
    assert await Delivery.filter(host="down.example", state="dropped").count() >= 1
    assert (await Delivery.get(id=follow_row.id)).state == "pending"  # Follow requests are exempt
    # New deliveries skip the host, except Follows.
    assert await outgoing_to(deps, alice, "down.example") == []
    assert len(await outgoing_to(deps, alice, "down.example", follow_request=True)) == 1
    clock.advance(days=1)
    assert {r.bypass_availability for r in await claim_due(10, clock())} == {True}

    assert await revive_host("https://down.example/inbox", now=clock()) is True
    health = await HostHealth.get(host="down.example")
    assert (health.unavailable, health.failure_days, health.consecutive_failures) == (False, [], 0)
    assert await revive_host("down.example", now=clock()) is False  # nothing to revive
    assert len(await outgoing_to(deps, alice, "down.example")) == 1


@pytest_anyio
async def test_a_success_clears_failures_and_makes_the_backlog_due(deps, alice, clock):
    for _ in range(2):
        await outgoing_to(deps, alice, "flaky.example")
    claimed = await claim_due(10, NOW)
    assert len(claimed) == 2
    await record_failure(claimed[0], NOW, error="connect: refused")
    await record_failure(claimed[1], NOW, status=500, retry_after=600)
    later = NOW + timedelta(seconds=20)
    (again,) = await claim_due(1, later)
    assert again.id == claimed[0].id
    await record_success(again, later)
    health = await HostHealth.get(host="flaky.example")
    assert (health.failure_days, health.consecutive_failures, health.last_success_at) == ([], 0, later)
    remaining = await Delivery.filter(host="flaky.example", state="pending")
    assert [r.next_attempt_at for r in remaining] == [later]


@pytest_anyio
async def test_row34_ssrf_refusal_is_permanent_and_not_a_host_outage(deps, alice):
    (row,) = await outgoing_to(deps, alice, "internal.example")
    (claimed,) = await claim_due(10, NOW)
    await record_failure(claimed, NOW, error="unsafe-url: 10.0.0.1 is private", unsafe=True)
    row = await Delivery.get(id=row.id)
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "unsafe-url: 10.0.0.1 is private")
    assert not await HostHealth.filter(host="internal.example").exists()


@pytest_anyio
async def test_gives_up_after_the_last_attempt(deps, alice):
    (row,) = await outgoing_to(deps, alice, "a.example")
    await Delivery.filter(id=row.id).update(attempts=d.MAX_ATTEMPTS - 1)
    (claimed,) = await claim_due(10, NOW)
    await record_failure(claimed, NOW, status=503, error="http: 503")
    row = await Delivery.get(id=row.id)
    assert (row.state, row.attempts) == ("failed", d.MAX_ATTEMPTS)
    assert row.last_error.startswith("gave up after 17 attempts: http: 503")


@pytest_anyio
async def test_dropped_rows_are_neutral(deps, alice):
    (row,) = await outgoing_to(deps, alice, "a.example")
    (claimed,) = await claim_due(10, NOW)
    await record_outcomes([Attempt(claimed, dropped="the sending actor is deleted or suspended")], NOW)
    row = await Delivery.get(id=row.id)
    assert (row.state, row.attempts, row.last_error) == (
        "dropped",
        0,
        "the sending actor is deleted or suspended",
    )
    assert not await HostHealth.exists()


@pytest_anyio
async def test_410_from_an_inbox_removes_the_follower(deps, alice, settings):
    bob = await remote_actor("mastodon.example", "bob")
    other = await remote_actor("mastodon.example", "other")
    group = await local_actor(settings, "group", type="Group")
    remote_followed = await remote_actor("elsewhere.example")
    for followee in (alice, group):
        await follow(bob, followee)
    await follow(other, alice)
    await follow(alice, bob)  # our follow of them is theirs to end
    await follow(bob, remote_followed)
    pending = await record_outgoing(
        deps, actor=alice, activity=note_activity(alice), recipients=[bob], personal=True
    )

    assert await handle_gone_inbox(bob.inbox_url, NOW) == 2
    assert not await Follow.filter(follower=bob, followee__local=True).exists()
    assert await Follow.filter(follower=other).exists()
    assert await Follow.filter(follower=alice, followee=bob).exists()
    assert (await Actor.get(id=bob.id)).deleted_at == NOW
    assert (await Delivery.get(activity_id=pending.id)).state == "dropped"


@pytest_anyio
async def test_410_answer_is_recorded_and_handled(deps, alice):
    bob = await remote_actor("mastodon.example", "bob")
    await follow(bob, alice)
    await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[bob], personal=True)
    (claimed,) = await claim_due(10, NOW)
    await record_failure(claimed, NOW, status=410)
    assert (await Delivery.get(id=claimed.id)).state == "failed"
    assert not await Follow.filter(follower=bob).exists()


@pytest_anyio
async def test_purge_finished_keeps_pending_rows(deps, alice):
    rows = await outgoing_to(deps, alice, "a.example", "b.example")
    claimed = await claim_due(10, NOW)
    await record_success(claimed[0], NOW)
    assert await d.purge_finished(NOW - timedelta(seconds=1)) == 0
    assert await d.purge_finished(NOW + timedelta(seconds=1)) == 1
    assert [r.id for r in await Delivery.all()] == [rows[1].id]


@pytest_anyio
async def test_concurrent_claims_never_share_a_row(deps, alice):
    """Eight workers claim at the same instant; on PostgreSQL they race for real (SKIP LOCKED)."""
    inboxes = [f"https://host{i % 20}.example/inbox/{i}" for i in range(400)]
    await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[], inboxes=inboxes)
    claims = await asyncio.gather(*(claim_due(30, NOW) for _ in range(8)))
    ids = [r.id for claim in claims for r in claim]
    assert len(ids) == len(set(ids))
    assert sum(1 for claim in claims if claim) >= 2  # more than one worker found work
    assert await Delivery.filter(claimed_until__not_isnull=True).count() == len(ids)
