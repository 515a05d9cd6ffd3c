"""Security matrix F15: our clock is skewed ±2 h, so peers reject our signatures — we must notice.

`activitypub/clock.py` compares peers' `Date` headers with our clock; `/healthz` and the admin
pages report it. Pure tests of the estimator first (injected clocks), then the whole path: fake
servers (MockTransport) whose `Date` is 2 h off answer our fetches and deliveries.
"""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fediverse_net.activitypub.clock import (
    MAX_SAMPLE_AGE,
    REWARN_SECONDS,
    ClockEstimate,
    ClockMonitor,
    parse_http_date,
)
from fediverse_net.services.remote_actors import instance_signing_key, resolve_actor

pytestmark = pytest.mark.anyio
TWO_HOURS = 7_200.0


class Clocks:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall_now = 1_800_000_000.0
        self.mono_now = 1_000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def monitor(clocks: Clocks, **kwargs: Any) -> ClockMonitor:
    return ClockMonitor(wall=clocks.wall, monotonic=clocks.mono, **kwargs)


# --- the estimator -------------------------------------------------------------------------------


def test_F15_honest_peers_give_an_ok_estimate_near_zero():
    clocks = Clocks()
    clock = monitor(clocks)
    for i, host in enumerate(("a.example", "b.example", "c.example")):
        clock.observe(host, http_date(clocks.wall_now + i - 1))  # Date has a resolution of 1 s
    estimate = clock.estimate()
    assert estimate.status == "ok" and estimate.hosts == 3
    assert estimate.offset is not None and abs(estimate.offset) <= 1
    assert not estimate.rejected_by_peers


@pytest.mark.parametrize(("skew", "direction"), [(TWO_HOURS, "behind"), (-TWO_HOURS, "ahead of")])
def test_F15_two_hours_either_way_is_skewed_and_outside_the_peers_window(skew, direction):
    clocks = Clocks()
    clock = monitor(clocks)
    for host in ("a.example", "b.example", "c.example", "d.example"):
        clock.observe(host, http_date(clocks.wall_now + skew))
    estimate = clock.estimate()
    assert estimate.status == "skewed" and estimate.offset == skew
    assert estimate.rejected_by_peers
    assert f"2 h 0 min {direction}" in estimate.describe() and "NTP" in estimate.describe()
    assert estimate.as_json() == {
        "status": "skewed",
        "offset_seconds": skew,
        "hosts": 4,
        "warn_above_seconds": 300.0,
        "rejected_by_peers": True,
    }


def test_F15_one_lying_host_cannot_raise_the_alarm_however_often_it_answers():
    clocks = Clocks()
    clock = monitor(clocks)
    for _ in range(50):  # one host, many answers: still one opinion
        clock.observe("liar.example", http_date(clocks.wall_now - TWO_HOURS))
    alone = clock.estimate()
    assert alone.status == "unknown" and alone.offset is None and alone.hosts == 1
    assert "1 of 3" in alone.describe()
    clock.observe("a.example", http_date(clocks.wall_now))
    clock.observe("b.example", http_date(clocks.wall_now + 1))
    estimate = clock.estimate()
    assert estimate.status == "ok" and estimate.hosts == 3 and estimate.offset is not None
    assert abs(estimate.offset) <= 1
    # ... nor hide a real one: when our clock is off, every honest host says so.
    for host in ("a.example", "b.example", "c.example"):
        clock.observe(host, http_date(clocks.wall_now + TWO_HOURS))
    assert clock.estimate().status == "skewed"


def test_F15_threshold_and_the_peers_window_boundaries():
    def estimate(offset: float) -> ClockEstimate:
        clock = monitor(Clocks())
        for host in ("a", "b", "c"):
            clock.add_sample(host, offset)
        return clock.estimate()

    assert estimate(299).status == "ok" and estimate(-299).status == "ok"
    assert estimate(301).status == "skewed" and estimate(-301).status == "skewed"
    assert not estimate(301).rejected_by_peers  # a warning well before Mastodon refuses us
    assert not estimate(3_900).rejected_by_peers and estimate(3_901).rejected_by_peers
    assert not estimate(-3_600).rejected_by_peers and estimate(-3_601).rejected_by_peers


def test_F15_offsets_are_described_for_people():
    def described(offset: float) -> str:
        return ClockEstimate("skewed", offset, 3).describe()

    # A Date is whole seconds and written before the answer travels: 7 199.4 s is "2 h".
    assert "is 2 h 0 min behind" in described(7_199.4)
    assert "is 1 h 0 min ahead of" in described(-3_599.6)
    assert "is 5 min 1 s behind" in described(301)
    assert "Check NTP" in described(301) and "reject" in described(-3_601)


def test_F15_samples_expire_on_the_monotonic_clock_not_the_wall_clock():
    clocks = Clocks()
    clock = monitor(clocks)
    for host in ("a", "b", "c"):
        clock.observe(host, http_date(clocks.wall_now + TWO_HOURS))
    clocks.wall_now += TWO_HOURS  # NTP steps our clock into place: old samples do not jump
    assert clock.estimate().status == "skewed"
    clocks.mono_now += MAX_SAMPLE_AGE + 1
    assert clock.estimate().status == "unknown"
    for host in ("a", "b", "c"):
        clock.observe(host, http_date(clocks.wall_now))
    assert clock.estimate().status == "ok"


def test_F15_bad_dates_are_ignored_and_age_is_added():
    clocks = Clocks()
    clock = monitor(clocks)
    for bad in (None, "", "yesterday", "Mon, 99 Foo 2026 25:61:00 GMT", "x" * 100):
        clock.observe("a.example", bad)
    assert clock.estimate().hosts == 0
    # A cached answer: Date is when the origin made it, Age how long a cache kept it (RFC 9111).
    clock.observe("a.example", http_date(clocks.wall_now - 120), age="120")
    clock.observe("b.example", http_date(clocks.wall_now - 3_000), age="86400")  # too old to say
    clock.observe("c.example", http_date(clocks.wall_now - 3_000), age="-5")
    assert clock.estimate().hosts == 1
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0


def test_F15_hosts_remembered_are_bounded():
    clock = monitor(Clocks(), max_hosts=5, min_hosts=3)
    for i in range(100):
        clock.add_sample(f"h{i}.example", float(i))
    estimate = clock.estimate()
    assert estimate.hosts == 5 and estimate.offset == 97.0  # the 5 most recent hosts


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
            st.sampled_from([0.0, 1.0, 250.0, -250.0, 299.0, 299.5, 300.5, 301.0, -301.0, 7_200.0, -7_200.0])
            | st.floats(-8_000, 8_000),
        ),
        max_size=60,
    ),
    st.sampled_from([4, 7]),
)
def test_F15_the_shortcut_never_misses_a_change_of_status(samples, max_hosts):
    """add_sample skips the median when a sample cannot change the status: check it never lies."""
    clock = monitor(Clocks(), max_hosts=max_hosts)
    for host, offset in samples:
        clock.add_sample(host, offset)
        exact = clock.estimate()
        if exact.status != "unknown":
            assert clock._skewed == (exact.status == "skewed"), (samples, exact)


def test_F15_crossing_the_threshold_logs_one_warning_and_repeats_hourly(caplog):
    clocks = Clocks()
    clock = monitor(clocks)
    caplog.set_level(logging.INFO, logger="fediverse_net.activitypub.clock")
    for host in ("a", "b", "c", "d", "e"):
        clock.add_sample(host, TWO_HOURS)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 h 0 min behind" in warnings[0].getMessage()
    assert warnings[0].fields["clock"]["offset_seconds"] == TWO_HOURS  # type: ignore[attr-defined]
    clocks.mono_now += REWARN_SECONDS
    clock.add_sample("a", TWO_HOURS)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    for host in ("a", "b", "c", "d", "e"):
        clock.add_sample(host, 0.0)
    assert any(r.getMessage() == "clock offset back to normal" for r in caplog.records)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# --- the whole path: fake peers, /healthz, the admin page -----------------------------------------


@pytest.fixture
def skews() -> dict[str, float]:
    """Seconds by which a fake host's clock is ahead of ours (default 0)."""
    return {}


@pytest.fixture
def fake_transport(fediverse, skews):
    """The fake fediverse, where every server answers with a `Date`, as real ones do."""

    def handle(request: httpx.Request) -> httpx.Response:
        response = fediverse.handle(request)
        response.headers["Date"] = http_date(time.time() + skews.get(request.url.host, 0.0))
        return response

    return httpx.MockTransport(handle)


async def talk_to(fediverse, deps, hosts: list[str]) -> None:
    """Fetch one actor from each host (signed GETs) and deliver to its inbox (signed POSTs)."""
    key = await instance_signing_key(deps)
    for i, host in enumerate(hosts):
        remote = fediverse.add_actor(f"p{i}", host, slot=i % 3)
        await resolve_actor(deps, remote.id)
        result = await deps.http().post_activity(remote.inbox, b'{"type": "Note"}', sign_as=key)
        assert result.ok


async def test_F15_peers_two_hours_ahead_make_health_degraded_and_warn_admins(
    client, fediverse, deps, skews, admin, browsers, caplog
):
    hosts = ["a.example", "b.example", "c.example"]
    skews.update(dict.fromkeys(hosts, TWO_HOURS))  # our clock is 2 h behind everybody's
    caplog.set_level(logging.WARNING, logger="fediverse_net.activitypub.clock")
    await talk_to(fediverse, deps, hosts)
    health = await client.get("/healthz")
    # 200: the pages still work, and a restart cannot fix a clock; the body says degraded.
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded" and "2 h 0 min behind" in body["message"]
    assert body["clock"]["status"] == "skewed" and body["clock"]["hosts"] == 3
    assert abs(body["clock"]["offset_seconds"] - TWO_HOURS) < 60
    assert body["clock"]["rejected_by_peers"] is True
    assert any("clock offset" in r.getMessage() for r in caplog.records)
    browser = await browsers("root_admin")
    for page in ("/admin/reports", "/admin/domains"):
        html = (await browser.get(page)).text
        assert 'id="clock-warning"' in html and "2 h 0 min behind" in html, page


async def test_F15_our_clock_two_hours_ahead_is_seen_through_deliveries_alone(client, fediverse, deps, skews):
    hosts = ["a.example", "b.example", "c.example"]
    skews.update(dict.fromkeys(hosts, -TWO_HOURS))
    key = await instance_signing_key(deps)
    for i, host in enumerate(hosts):  # no fetch at all: inbox answers are enough
        result = await deps.http().post_activity(f"https://{host}/inbox", b'{"type": "Note"}', sign_as=key)
        assert result.ok, i
    body = (await client.get("/healthz")).json()
    assert body["status"] == "degraded" and "ahead of" in body["message"]
    assert abs(body["clock"]["offset_seconds"] + TWO_HOURS) < 60


async def test_F15_honest_peers_keep_health_ok_and_admin_pages_quiet(
    client, fediverse, deps, admin, browsers
):
    await talk_to(fediverse, deps, ["a.example", "b.example", "c.example"])
    health = await client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and "message" not in body
    assert body["clock"]["status"] == "ok" and body["clock"]["hosts"] == 3
    assert abs(body["clock"]["offset_seconds"]) < 60
    html = (await (await browsers("root_admin")).get("/admin/reports")).text
    assert "clock-warning" not in html


async def test_F15_one_lying_host_alone_raises_no_alarm(client, fediverse, deps, skews):
    skews["liar.example"] = -TWO_HOURS
    await talk_to(fediverse, deps, ["liar.example"])
    body = (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["clock"] == {
        "status": "unknown",
        "offset_seconds": None,
        "hosts": 1,
        "warn_above_seconds": 300.0,
        "rejected_by_peers": False,
    }
    await talk_to(fediverse, deps, ["a.example", "b.example"])
    body = (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["clock"]["status"] == "ok" and body["clock"]["hosts"] == 3
