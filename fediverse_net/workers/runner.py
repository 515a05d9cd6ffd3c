"""WorkerRunner: polls the durable queues until stopped; `run_pending()` cranks once for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fediverse_net.deps import Deps

log = logging.getLogger("fediverse_net.workers")

# A step processes what is due and returns how many items it handled.
Step = Callable[[Deps], Awaitable[int]]


def default_steps() -> list[Step]:
    from fediverse_net.workers.delivery import step as delivery_step
    from fediverse_net.workers.inbox import step as inbox_step

    return [inbox_step, delivery_step]


class WorkerRunner:
    def __init__(self, deps: Deps, steps: list[Step] | None = None, idle_sleep: float = 0.5) -> None:
        self.deps = deps
        self.steps = steps if steps is not None else default_steps()
        self.idle_sleep = idle_sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        # Set by the inbox and the outbox when they queue work, so workers start at once.
        self.wake = asyncio.Event()
        deps.caches["wake"] = self.wake

    async def run_pending(self, max_rounds: int = 50) -> int:
        """Run every step until nothing is due (bounded), for tests and `worker --once`."""
        total = 0
        for _ in range(max_rounds):
            done = 0
            for step in self.steps:
                done += await step(self.deps)
            total += done
            if done == 0:
                break
        return total

    async def _loop(self, step: Step) -> None:
        while not self._stopping.is_set():
            try:
                done = await step(self.deps)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one item must not stop the worker; the row records it
                log.exception("worker step failed")
                done = 0
            if done == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.idle_sleep)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(step)) for step in self.steps]

    async def run_forever(self) -> None:
        self.start()
        await self._stopping.wait()
        await self._drain()

    async def stop(self) -> None:
        """Graceful: stop claiming, let in-flight items finish for a moment, then cancel.

        Anything cut short keeps its lease and is picked up again later (at least once).
        """
        self._stopping.set()
        self.wake.set()
        await self._drain()

    async def _drain(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks = []
        from fediverse_net.workers.delivery import shutdown

        # POSTs still in flight get a few seconds to finish and be recorded.
        await shutdown(self.deps, grace=5.0)
