"""Property tests for the work queue.

A rule-based state machine drives the queue with arbitrary interleavings of adds, delayed and
rate-limited adds, clock advances, hand-outs, completions and shutdown, and checks each hand-out
against a reference model of client-go's semantics and against the guarantees directly:
- a key being processed is never handed out again (one worker per key);
- every hand-out is justified by an add since the key's previous hand-out (dedup, nothing spurious);
- every add made before shutdown is eventually handed out (nothing lost);
- distinct ready keys come out first-in first-out.
A second test runs real asyncio workers against random adds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.workqueue import ExponentialBackoff, WorkQueue

pytestmark = pytest.mark.unit

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
DELAYS = st.one_of(st.sampled_from([0.0, 0.005, 0.01, 1.0]), st.floats(min_value=-1, max_value=3))
BASE, CAP = 0.005, 0.5


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.queue: WorkQueue[str] = WorkQueue(
            "model", self.clock, rate_limiter=ExponentialBackoff(BASE, CAP)
        )
        # Reference model of client-go's queue.
        self.now = 0.0
        self.ready: list[str] = []
        self.dirty: set[str] = set()
        self.waiting: dict[str, tuple[float, int]] = {}
        self.sequence = itertools.count()
        self.failures: Counter[str] = Counter()
        self.shut = False
        # Direct bookkeeping of the guarantees, independent of the model's mechanics.
        self.processing: set[str] = set()
        self.owed: set[str] = set()
        self.parked_until: dict[str, float] = {}

    # -- model ----------------------------------------------------------------------------------------

    def model_add(self, key: str) -> None:
        if self.shut:
            return
        self.owed.add(key)
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.ready.append(key)

    def model_promote(self) -> None:
        due = sorted((at, seq, key) for key, (at, seq) in self.waiting.items() if at <= self.now)
        for _, _, key in due:
            del self.waiting[key]
            self.parked_until.pop(key, None)
            self.model_add(key)

    def model_add_after(self, key: str, delay: float) -> None:
        if self.shut:
            return
        self.model_promote()
        if delay <= 0:
            self.model_add(key)
            return
        at = self.now + delay
        if key in self.waiting and self.waiting[key][0] <= at:
            return
        self.waiting[key] = (at, next(self.sequence))
        self.parked_until[key] = at

    # -- rules ----------------------------------------------------------------------------------------

    @rule(key=KEYS)
    def add(self, key: str) -> None:
        self.queue.add(key)
        self.model_promote()
        self.model_add(key)

    @rule(key=KEYS, delay=DELAYS)
    def add_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)
        self.model_add_after(key, delay)

    @rule(key=KEYS)
    def add_rate_limited(self, key: str) -> None:
        self.queue.add_rate_limited(key)
        delay = min(BASE * 2 ** self.failures[key], CAP)
        self.failures[key] += 1
        self.model_add_after(key, delay)

    @rule(key=KEYS)
    def forget(self, key: str) -> None:
        self.queue.forget(key)
        del self.failures[key]

    @rule(seconds=st.one_of(st.sampled_from([0.005, 0.01, 1.0]), st.floats(min_value=0, max_value=2)))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.now += seconds

    @rule()
    def get(self) -> None:
        got = self.queue.get_nowait()
        self.model_promote()
        expected = self.ready.pop(0) if self.ready else None
        assert got == expected, f"FIFO: expected {expected!r}, got {got!r}"
        if got is None:
            return
        assert got not in self.processing, f"{got!r} handed to a second worker"
        assert got in self.owed, f"{got!r} handed out without an add since its last hand-out"
        self.owed.discard(got)
        self.dirty.discard(got)
        self.processing.add(got)

    @precondition(lambda self: bool(self.processing))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.processing)))
        self.queue.done(key)
        self.processing.discard(key)
        self.model_promote()
        if key in self.dirty:
            self.ready.append(key)

    @rule()
    def shutdown(self) -> None:
        self.queue.shutdown()
        self.shut = True
        self.waiting.clear()
        self.parked_until.clear()

    @invariant()
    def ready_length_matches(self) -> None:
        self.model_promote()
        assert len(self.queue) == len(self.ready)

    def teardown(self) -> None:
        """Finish all work and let every parked key come due: everything owed must come out."""
        for key in sorted(self.processing):
            self.queue.done(key)
        self.processing.clear()
        self.clock.advance(10 * CAP + 10)
        self.now += 10 * CAP + 10
        for key in self.parked_until:
            self.owed.add(key)
        handed: list[str] = []
        while (ready := self.queue.get_nowait()) is not None:
            handed.append(ready)
            self.owed.discard(ready)
            self.queue.done(ready)
            assert len(handed) < 100, "queue keeps handing out work"
        assert not self.owed, f"keys lost: {sorted(self.owed)}"


QueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestQueueMachine = QueueMachine.TestCase


OPS = st.lists(st.tuples(KEYS, st.integers(min_value=0, max_value=3)), max_size=60)


@settings(max_examples=100, deadline=None)
@given(
    ops=OPS, workers=st.integers(min_value=1, max_value=4), work_turns=st.integers(min_value=0, max_value=4)
)
def test_concurrent_workers_never_share_a_key_and_lose_nothing(
    ops: list[tuple[str, int]], workers: int, work_turns: int
) -> None:
    events: list[tuple[str, str]] = []

    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue("workers", FakeClock())
        active: set[str] = set()

        async def worker() -> None:
            while (key := await queue.get()) is not None:
                assert key not in active, f"{key!r} processed by two workers at once"
                active.add(key)
                events.append(("start", key))
                for _ in range(work_turns):
                    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
                active.discard(key)
                queue.done(key)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        for key, pause in ops:
            queue.add(key)
            events.append(("add", key))
            for _ in range(pause):
                await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
        queue.shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        await asyncio.wait_for(queue.drain(), timeout=5)

    asyncio.run(scenario())
    for key in {key for kind, key in events if kind == "add"}:
        last_add = max(i for i, event in enumerate(events) if event == ("add", key))
        starts = [i for i, event in enumerate(events) if event == ("start", key)]
        assert starts, f"{key!r} never processed"
        assert max(starts) > last_add, f"the last add of {key!r} was never processed"
