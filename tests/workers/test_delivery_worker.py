"""The delivery worker: claims, signs, sends, records; pipelined and fair (architecture B4).

Most tests script the client (`FakePoster`); the last ones use the real `FederationClient`
against loopback sinks (signatures verified by our own verifier; concurrent workers).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import orjson
import pytest

from fediverse_net.activitypub.client import FederationClient
from fediverse_net.activitypub.keys import load_private_key, load_public_key
from fediverse_net.activitypub.signatures import PublicKeyInfo, RequestParts, verify_request
from fediverse_net.db.models import Actor, Delivery, InboxItem, OutgoingActivity
from fediverse_net.deps import Deps
from fediverse_net.services.deliveries import claim_due
from fediverse_net.services.outbox import record_outgoing
from fediverse_net.workers import delivery
from fediverse_net.workers.runner import WorkerRunner
from tests.fakes.fediverse import test_keypair as keypair
from tests.services import Clock, local_actor, note_activity, remote_actor
from tests.workers import FakePoster, Reply, Sink, answer

pytestmark = pytest.mark.anyio


@pytest.fixture
def poster():
    return FakePoster()


@pytest.fixture
async def deps(db, settings, poster):
    deps = Deps(settings=settings, client=poster, clock=Clock())  # type: ignore[arg-type]
    yield deps
    await delivery.shutdown(deps)


@pytest.fixture
async def alice(db, settings):
    return await local_actor(settings, "alice")


async def send(deps, actor, inboxes, **extra):
    activity = note_activity(actor, **extra)
    outgoing = await record_outgoing(deps, actor=actor, activity=activity, recipients=[], inboxes=inboxes)
    return outgoing


async def states(outgoing):
    rows = await Delivery.filter(activity_id=outgoing.id).order_by("inbox_url")
    return {r.inbox_url: r.state for r in rows}


async def test_step_sends_the_stored_bytes_signed_as_the_actor(deps, alice, poster):
    outgoing = await send(deps, alice, ["https://a.example/inbox", "https://b.example/inbox"])

    assert await delivery.run_until_idle(deps) == 2

    assert sorted(poster.urls()) == ["https://a.example/inbox", "https://b.example/inbox"]
    assert {call.body for call in poster.calls} == {outgoing.body.encode()}
    assert {call.key_id for call in poster.calls} == {f"{alice.ap_id}#main-key"}
    assert await states(outgoing) == {
        "https://a.example/inbox": "delivered",
        "https://b.example/inbox": "delivered",
    }
    assert await delivery.step(deps) == 0  # idle


async def test_body_is_shared_and_key_parsed_once_per_batch(deps, alice, poster):
    bob = await local_actor(deps.settings, "bob", private_key_pem=keypair(1)[0])
    for actor in (alice, bob):
        await send(deps, actor, [f"https://h{i}.example/inbox" for i in range(20)])
    await delivery.run_until_idle(deps)
    assert len(poster.calls) == 40
    bodies = {id(call.body) for call in poster.calls}
    assert len(bodies) == 2  # one bytes object per activity, reused for every inbox


async def test_key_rotation_update_is_signed_with_the_old_key(deps, alice, poster):
    old_pem, new_pem = keypair(0)[0], keypair(1)[0]
    await Actor.filter(id=alice.id).update(private_key_pem=new_pem)  # rotated…
    activity = note_activity(alice, type="Update")
    outgoing = await record_outgoing(
        deps,
        actor=alice,
        activity=activity,
        recipients=[],
        inboxes=["https://a.example/inbox"],
        signing_key_pem=old_pem,
    )
    later = await send(deps, alice, ["https://a.example/inbox"])
    await delivery.run_until_idle(deps)
    keys = {orjson.loads(call.body)["id"]: call.key for call in poster.calls}
    assert keys[activity["id"]].private_key is load_private_key(old_pem)  # …announced with the old key
    assert keys[later.ap_id].private_key is load_private_key(new_pem)
    assert {key.key_id for key in keys.values()} == {f"{alice.ap_id}#main-key"}
    # Once nothing is left to send, the old key is forgotten.
    deps.caches.pop("delivery_purged_at")
    deps.clock.advance(hours=2)
    await delivery.step(deps)
    assert (await OutgoingActivity.get(id=outgoing.id)).signing_key_pem is None


async def test_unusable_signing_key_is_refused_up_front(deps, alice):
    with pytest.raises(ValueError):
        await record_outgoing(
            deps,
            actor=alice,
            activity=note_activity(alice),
            recipients=[],
            inboxes=["https://a.example/"],
            signing_key_pem="x",
        )
    assert not await OutgoingActivity.exists()


async def test_one_bad_row_never_breaks_the_step(deps, alice, poster):
    poster.results["https://broken.example/inbox"] = RuntimeError("bug in the client")
    outgoing = await send(deps, alice, ["https://broken.example/inbox", "https://fine.example/inbox"])

    await delivery.run_until_idle(deps)

    rows = {r.host: r for r in await Delivery.filter(activity_id=outgoing.id)}
    assert rows["fine.example"].state == "delivered"
    broken = rows["broken.example"]
    assert (broken.state, broken.attempts, broken.last_error) == (
        "pending",
        1,
        "RuntimeError: bug in the client",
    )


async def test_rows_of_deleted_or_suspended_actors_are_dropped_but_delete_still_goes(deps, alice, poster):
    create = await send(deps, alice, ["https://a.example/inbox"])
    delete = await send(deps, alice, ["https://a.example/inbox"], type="Delete")
    await Actor.filter(id=alice.id).update(deleted_at=deps.clock())
    await delivery.run_until_idle(deps)
    assert await states(create) == {"https://a.example/inbox": "dropped"}
    assert await states(delete) == {"https://a.example/inbox": "delivered"}
    assert poster.urls() == ["https://a.example/inbox"]


async def test_actor_without_a_usable_key_is_dropped(deps, settings, poster):
    keyless = await local_actor(settings, "keyless", private_key_pem="not a pem")
    outgoing = await send(deps, keyless, ["https://a.example/inbox"])
    await delivery.run_until_idle(deps)
    row = await Delivery.get(activity_id=outgoing.id)
    assert row.state == "dropped" and row.last_error.startswith("unusable private key")
    assert poster.calls == []


async def test_F9_results_are_classified_per_row(deps, alice, poster):
    poster.results.update(
        {
            "https://gone.example/inbox": answer(410),
            "https://nope.example/inbox": answer(403),
            "https://down.example/inbox": answer(None, error="connect: connection refused"),
            "https://busy.example/inbox": answer(429, retry_after=120),
        }
    )
    outgoing = await send(
        deps, alice, [f"https://{h}.example/inbox" for h in ("gone", "nope", "down", "busy")]
    )
    await delivery.run_until_idle(deps)
    assert await states(outgoing) == {
        "https://busy.example/inbox": "pending",
        "https://down.example/inbox": "pending",
        "https://gone.example/inbox": "failed",
        "https://nope.example/inbox": "failed",
    }
    busy = await Delivery.get(activity_id=outgoing.id, host="busy.example")
    assert busy.next_attempt_at == deps.clock() + timedelta(seconds=120)


async def test_F3_leased_rows_of_a_dead_worker_are_sent_after_the_lease(deps, alice, poster):
    outgoing = await send(deps, alice, ["https://a.example/inbox"])
    await claim_due(10, deps.clock(), delivery.LEASE)  # a worker claims them, then is killed
    assert await delivery.step(deps) == 0
    assert poster.calls == []
    deps.clock.advance(seconds=delivery.LEASE.total_seconds() + 1)
    assert await delivery.run_until_idle(deps) == 1
    assert await states(outgoing) == {"https://a.example/inbox": "delivered"}


async def test_fairness_a_slow_host_does_not_block_the_others(deps, alice, poster):
    poster.delays["https://slow.example/inbox"] = 3.0
    first = await send(deps, alice, ["https://slow.example/inbox", "https://fast1.example/inbox"])
    started = time.monotonic()
    await delivery.step(deps)  # starts both, records fast1
    later = await send(deps, alice, [f"https://fast{i}.example/inbox" for i in range(2, 30)])
    while await Delivery.filter(activity_id=later.id, state="pending").exists():
        await delivery.step(deps)
        assert time.monotonic() - started < 2.5, "fast hosts waited for the slow one"
    assert (await states(first))["https://slow.example/inbox"] == "pending"  # still in flight
    await delivery.run_until_idle(deps)
    assert (await states(first))["https://slow.example/inbox"] == "delivered"


async def test_per_host_in_flight_is_bounded(deps, alice, poster, settings):
    for _ in range(40):
        await send(deps, alice, ["https://one.example/inbox"])
    poster.delays["https://one.example/inbox"] = 0.05
    await delivery.step(deps)
    flight = delivery._flight(deps)
    assert len(flight.tasks) <= 2 * settings.delivery_per_host
    await delivery.run_until_idle(deps)
    assert await Delivery.filter(state="delivered").count() == 40


async def test_shutdown_records_what_finishes_within_the_grace_and_leaves_the_rest_leased(
    deps, alice, poster
):
    poster.delays["https://slow.example/inbox"] = 30
    poster.delays["https://soon.example/inbox"] = 0.2
    outgoing = await send(deps, alice, ["https://slow.example/inbox", "https://soon.example/inbox"])
    await delivery._top_up(deps, poster, delivery._flight(deps))  # both in flight
    assert await delivery.shutdown(deps, grace=1.0) == 1
    assert await states(outgoing) == {
        "https://slow.example/inbox": "pending",
        "https://soon.example/inbox": "delivered",
    }
    slow = await Delivery.get(activity_id=outgoing.id, host="slow.example")
    assert (slow.attempts, slow.claimed_until is not None) == (0, True)  # sent again after the lease
    assert delivery._flight(deps).tasks == {}


async def test_runner_cranks_the_delivery_step(deps, alice, poster):
    outgoing = await send(deps, alice, ["https://a.example/inbox"])
    assert await WorkerRunner(deps, steps=[delivery.step]).run_pending() == 1
    assert await states(outgoing) == {"https://a.example/inbox": "delivered"}


async def test_local_only_activity_needs_no_delivery(deps, alice, poster):
    bob = await local_actor(deps.settings, "bob")
    activity = note_activity(alice)
    await record_outgoing(deps, actor=alice, activity=activity, recipients=[bob])
    assert await delivery.run_until_idle(deps) == 0
    assert await InboxItem.filter(activity_id=activity["id"]).exists()


# --- real HTTP ---------------------------------------------------------------------------------


def real_client(**kwargs):
    kwargs.setdefault("deadline", 5.0)
    kwargs.setdefault("user_agent", "fediverse-net-test")
    return FederationClient(allow_private=True, **kwargs)


async def test_row16_deliveries_carry_signatures_our_verifier_accepts(db, settings, alice):
    public_key = load_public_key(keypair(0)[1])

    async def lookup(key_id: str, refresh: bool) -> PublicKeyInfo:
        assert key_id == f"{alice.ap_id}#main-key"
        return PublicKeyInfo(key_id, alice.ap_id, public_key)

    async with Sink() as sink, real_client() as client:
        deps = Deps(settings=settings, client=client)
        outgoing = await send(deps, alice, [sink.url("/inbox"), sink.url("/users/bob/inbox")])
        await delivery.run_until_idle(deps)
    assert len(sink.received) == 2
    for request in sink.received:
        parts = RequestParts("POST", request.path, request.headers, request.body, sink.url(""))
        signer = await verify_request(parts, key_lookup=lookup, now=Clock().now)
        assert signer.owner == alice.ap_id
        assert request.headers["content-type"] == "application/activity+json"
        assert request.body == outgoing.body.encode()
    assert await states(outgoing) == {
        sink.url("/inbox"): "delivered",
        sink.url("/users/bob/inbox"): "delivered",
    }


async def test_concurrent_workers_never_deliver_the_same_row_twice_at_once(db, settings, alice):
    """Two workers (two Deps, two clients) drain one queue; each (activity, inbox) arrives once.

    On PostgreSQL the claims race for real (FOR UPDATE SKIP LOCKED); on SQLite they serialise.
    """
    in_flight: Counter[tuple[str, str]] = Counter()
    overlaps = []

    async def slowish(request):
        key = (request.activity_id, request.headers["host"], request.path)
        in_flight[key] += 1
        overlaps.append(in_flight[key])
        await asyncio.sleep(0.01)
        in_flight[key] -= 1
        return Reply(202)

    async def work(deps: Deps) -> None:
        async with asyncio.timeout(30):
            while await Delivery.filter(state="pending").exists() or delivery._flight(deps).tasks:
                if await delivery.step(deps) == 0:
                    await asyncio.sleep(0.01)  # what the runner's idle wait does

    sinks = [Sink(slowish) for _ in range(4)]
    for sink in sinks:
        await sink.start()
    try:
        inboxes = [sink.url(f"/inbox/{i}") for sink in sinks for i in range(15)]
        async with real_client(user_agent="worker-1") as first, real_client(user_agent="worker-2") as second:
            workers = [Deps(settings=settings, client=c) for c in (first, second)]
            activities = [await send(workers[0], alice, inboxes) for _ in range(4)]
            await asyncio.gather(*(work(w) for w in workers))
    finally:
        for sink in sinks:
            await sink.stop()
    by_worker = Counter(r.headers["user-agent"] for sink in sinks for r in sink.received)
    assert set(by_worker) == {"worker-1", "worker-2"}, by_worker  # both workers took a share
    assert max(overlaps) == 1  # never the same row twice at once…
    for sink in sinks:  # …nor twice at all
        counts = sink.counts()
        assert len(counts) == 60 and set(counts.values()) == {1}
        assert {a.ap_id for a in activities} == {activity_id for activity_id, _ in counts}
    assert await Delivery.filter(state="delivered").count() == 240


async def test_outgoing_activity_body_is_the_wire_json(deps, alice, poster):
    outgoing = await send(deps, alice, ["https://a.example/inbox"], bcc=["https://b.example/users/x"])
    await delivery.run_until_idle(deps)
    wire = orjson.loads(poster.calls[0].body)
    assert "bcc" not in wire
    assert wire == orjson.loads((await OutgoingActivity.get(id=outgoing.id)).body)


async def test_remote_recipients_end_to_end(deps, alice, poster):
    bob = await remote_actor("mastodon.example")
    outgoing = await record_outgoing(deps, actor=alice, activity=note_activity(alice), recipients=[bob])
    await delivery.run_until_idle(deps)
    assert poster.urls() == ["https://mastodon.example/inbox"]
    assert await states(outgoing) == {"https://mastodon.example/inbox": "delivered"}
