"""Injectable time source.

Everything in the runtime that waits or measures (work-queue delays and backoff, lease expiry,
certificate polling) takes a `Clock` instead of calling `time`/`asyncio.sleep` directly, so tests can
drive time explicitly with `FakeClock` and never depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Time as the runtime sees it.

    `monotonic()` is for durations and deadlines (never jumps when the wall clock is adjusted);
    `now()` is for timestamps written to the API (Lease renewTime, Event times).
    """

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The process clock: `time.monotonic`, UTC wall time and `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


_DEFAULT_WALL_START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """Test double: a clock that only moves when a test calls `advance`.

    Sleepers are woken in deadline order (ties in the order they went to sleep), which makes tests that
    interleave timers deterministic. Waking only resolves their futures; the sleeping tasks run at the
    event loop's next turn, so a test yields (e.g. `await asyncio.sleep(0)`) before observing effects.
    """

    def __init__(self, start: float = 0.0, wall_start: datetime = _DEFAULT_WALL_START) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            # Still a scheduling point, like asyncio.sleep(0), so loops that sleep zero yield.
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._sequence), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has been reached."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds})")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many tasks are currently asleep on this clock (cancelled sleeps excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    @property
    def next_deadline(self) -> float | None:
        """The earliest pending wake-up time, or None when nobody sleeps."""
        pending = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return min(pending, default=None)

    async def wait_for_sleepers(self, count: int, max_turns: int = 1000) -> None:
        """Yield to the loop until at least `count` tasks sleep on this clock.

        Lets a test advance time only once the code under test is actually waiting, instead of guessing
        with real sleeps. Gives up after `max_turns` loop turns so a broken test fails instead of hanging.
        """
        for _ in range(max_turns):
            if self.sleepers >= count:
                return
            await asyncio.sleep(0)
        raise TimeoutError(f"expected {count} sleepers on the fake clock, found {self.sleepers}")
