"""The inbox worker keeps each actor's order across repeated failures of one of its activities.

Retry delays (30 s, 2 min, 8 min, 32 min) outgrow the 5-minute claim lease: later activities of
the same actor must still wait behind the failed one until it succeeds or is given up.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fediverse_net.db.models import InboxItem
from fediverse_net.services.inbox import MAX_ATTEMPTS, inbox_retry_delay
from fediverse_net.workers import inbox as inbox_worker

pytestmark = pytest.mark.anyio
X = "https://x.test/users/x"
Y = "https://y.test/users/y"


class Clock:
    def __init__(self, now) -> None:
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def _queue(clock: Clock, actor: str, name: str) -> None:
    await InboxItem.create(
        activity_id=f"{actor}/{name}", actor_ap_id=actor, type="Create", payload={}, next_attempt_at=clock()
    )


@pytest.fixture
def clock(app):
    deps = app.state.deps
    clock = Clock(deps.clock())
    deps.clock = clock
    return clock


@pytest.fixture
def applied(monkeypatch):
    """Replaces the handlers: records what was applied; activities named in `failing` fail."""
    seen: list[str] = []
    failing: dict[str, int] = {}

    async def apply(deps, item, batch=None):
        if failing.get(item.activity_id, 0) > 0:
            failing[item.activity_id] -= 1
            raise OSError("peer unreachable")
        seen.append(item.activity_id.rsplit("/", 1)[1])

    monkeypatch.setattr(inbox_worker, "process_inbox_item", apply)
    return seen, failing


async def _state(name: str, actor: str = X) -> tuple[str, int]:
    row = await InboxItem.get(activity_id=f"{actor}/{name}")
    return row.state, row.attempts


async def test_later_activities_wait_behind_a_repeatedly_failing_one(app, clock, applied):
    deps = app.state.deps
    seen, failing = applied
    failing[f"{X}/follow"] = 3  # fails three times, then goes through
    await _queue(clock, X, "follow")
    await _queue(clock, X, "undo")
    await _queue(clock, Y, "create")
    await inbox_worker.step(deps)
    assert seen == ["create"]  # the other actor is not held up
    clock.advance(timedelta(seconds=10))
    await _queue(clock, X, "late")  # arrives while the failed one waits for its retry
    await inbox_worker.step(deps)  # the worker polls meanwhile: nothing of X's is applied
    assert seen == ["create"]
    for attempt in (1, 2):
        clock.advance(inbox_retry_delay(attempt))
        await inbox_worker.step(deps)  # the failed one is due again, and fails again
        assert await _state("follow") == ("pending", attempt + 1)
        # Not due yet: its later activities still wait, also once their claim lease (5 min)
        # would have run out (the third delay, 8 min, is longer than the lease).
        past_lease = inbox_worker.LEASE + timedelta(seconds=1)
        delay = inbox_retry_delay(attempt + 1)
        clock.advance(past_lease if delay > past_lease else delay / 2)
        await inbox_worker.step(deps)
        assert seen == ["create"]
        assert await _state("follow") == ("pending", attempt + 1)
        assert await _state("undo") == ("pending", 0)
        assert await _state("late") == ("pending", 0)
    clock.advance(inbox_retry_delay(3))
    await inbox_worker.step(deps)
    assert seen == ["create", "follow", "undo", "late"]  # in arrival order once it succeeded
    assert await InboxItem.filter(state="done").count() == 4


async def test_a_given_up_activity_releases_the_ones_behind_it(app, clock, applied):
    deps = app.state.deps
    seen, failing = applied
    failing[f"{X}/broken"] = MAX_ATTEMPTS
    await _queue(clock, X, "broken")
    await _queue(clock, X, "next")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        await inbox_worker.step(deps)
        assert seen == []
        clock.advance(inbox_retry_delay(attempt))
    assert await _state("broken") == ("failed", MAX_ATTEMPTS)
    await inbox_worker.step(deps)
    assert seen == ["next"]
