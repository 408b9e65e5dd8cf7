from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.workqueue import ExponentialBackoff, WorkQueue

pytestmark = pytest.mark.unit


async def yield_until(condition: Callable[[], bool], max_turns: int = 100) -> None:
    """Let other tasks run until `condition` holds; bounded so a broken test fails, not hangs."""
    for _ in range(max_turns):
        if condition():
            return
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    raise AssertionError("condition not reached")


def new_queue(clock: FakeClock | None = None, registry: CollectorRegistry | None = None) -> WorkQueue[str]:
    return WorkQueue("things", clock or FakeClock(), registry)


def test_hands_out_in_order_and_dedups_queued_keys() -> None:
    queue = new_queue()
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert [queue.get_nowait() for _ in range(4)] == ["a", "b", "c", None]


def test_key_being_processed_is_not_handed_out_again_until_done() -> None:
    queue = new_queue()
    queue.add("a")
    assert queue.get_nowait() == "a"
    queue.add("a")
    queue.add("a")
    assert queue.get_nowait() is None, "a re-add while processing must wait for done()"
    queue.done("a")
    assert queue.get_nowait() == "a"
    queue.done("a")
    assert queue.get_nowait() is None


def test_done_without_processing_is_an_error() -> None:
    queue = new_queue()
    with pytest.raises(ValueError, match=r"'a'.*not being processed"):
        queue.done("a")


def test_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add_after("a", 2.0)
    assert queue.get_nowait() is None
    clock.advance(1.999)
    assert queue.get_nowait() is None
    clock.advance(0.001)
    assert queue.get_nowait() == "a"


def test_add_after_keeps_the_earliest_deadline() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add_after("a", 5.0)
    queue.add_after("a", 1.0)
    queue.add_after("a", 3.0)
    clock.advance(1.0)
    assert queue.get_nowait() == "a"
    queue.done("a")
    clock.advance(10.0)
    assert queue.get_nowait() is None, "the superseded deadlines must not fire again"


def test_due_keys_become_ready_in_deadline_order() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add_after("late", 2.0)
    queue.add_after("early", 1.0)
    queue.add("now")
    clock.advance(3.0)
    queue.add("after")
    assert [queue.get_nowait() for _ in range(4)] == ["now", "early", "late", "after"]


def test_add_after_non_positive_delay_adds_immediately() -> None:
    queue = new_queue()
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert [queue.get_nowait(), queue.get_nowait()] == ["a", "b"]


def test_rate_limited_backoff_doubles_until_forget() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    for expected in [0.005, 0.01, 0.02, 0.04]:
        queue.add_rate_limited("a")
        clock.advance(expected * 0.99)
        assert queue.get_nowait() is None, f"ready before its {expected}s backoff"
        clock.advance(expected * 0.01 + 1e-9)
        assert queue.get_nowait() == "a"
        queue.done("a")
    assert queue.num_requeues("a") == 4
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    clock.advance(0.005)
    assert queue.get_nowait() == "a", "forget() resets the backoff to the base delay"


def test_backoff_defaults_and_cap() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff()
    delays = [backoff.when("k") for _ in range(40)]
    assert delays[:3] == [0.005, 0.01, 0.02]
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0
    for _ in range(100):  # far past 2**63: no overflow
        assert backoff.when("k") == 1000.0
    assert backoff.when("other") == 0.005


def test_backoff_is_configurable_and_validated() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base=1.0, cap=3.0)
    assert [backoff.when("k") for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="base"):
        ExponentialBackoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        ExponentialBackoff(base=2, cap=1)


async def test_get_waits_for_an_add() -> None:
    queue = new_queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    assert not getter.done()
    queue.add("a")
    assert await asyncio.wait_for(getter, timeout=1) == "a"


async def test_get_wakes_when_a_parked_key_is_due() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add_after("a", 10.0)
    getter = asyncio.create_task(queue.get())
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline == 10.0
    clock.advance(10.0)
    assert await asyncio.wait_for(getter, timeout=1) == "a"


async def test_idle_getter_notices_an_earlier_deadline() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add_after("late", 10.0)
    getter = asyncio.create_task(queue.get())
    await clock.wait_for_sleepers(1)
    queue.add_after("soon", 1.0)
    await yield_until(lambda: clock.next_deadline == 1.0)
    assert clock.sleepers == 1, "the getter's sleep until the old deadline was cancelled"
    clock.advance(1.0)
    assert await asyncio.wait_for(getter, timeout=1) == "soon"


async def test_wake_up_of_a_cancelled_getter_passes_to_another() -> None:
    queue = new_queue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    queue.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, timeout=1) == "a"


async def test_shutdown_drains_queued_keys_then_returns_none() -> None:
    clock = FakeClock()
    queue = new_queue(clock)
    queue.add("a")
    queue.add("b")
    queue.add_after("parked", 1.0)
    assert await queue.get() == "a"
    queue.add("a")  # deferred re-add made before shutdown still gets processed
    queue.shutdown()
    queue.add("ignored")
    queue.add_after("ignored-too", 0)
    clock.advance(5.0)
    assert await queue.get() == "b"
    queue.done("b")
    queue.done("a")
    assert await queue.get() == "a"
    drained = asyncio.create_task(queue.drain())
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    assert not drained.done(), "a key is still being processed"
    queue.done("a")
    await asyncio.wait_for(drained, timeout=1)
    assert await queue.get() is None
    assert queue.shutting_down


async def test_shutdown_releases_idle_workers() -> None:
    queue = new_queue()
    workers = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    queue.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*workers), timeout=1) == [None, None, None]
    await asyncio.wait_for(queue.drain(), timeout=1)


def sample(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name, {"name": "things", "controller": "things"})
    assert value is not None, name
    return value


def test_metrics_use_client_go_names_and_the_injected_clock() -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    queue = new_queue(clock, registry)
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert sample(registry, "workqueue_depth") == 2
    assert sample(registry, "workqueue_adds_total") == 2

    clock.advance(0.5)
    assert queue.get_nowait() == "a"
    assert sample(registry, "workqueue_depth") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 0.5
    clock.advance(2.0)
    queue.done("a")
    assert sample(registry, "workqueue_work_duration_seconds_sum") == 2.0
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1

    queue.add_rate_limited("a")
    queue.add_after("c", 1)
    assert sample(registry, "workqueue_retries_total") == 2


def test_queues_share_one_registry() -> None:
    registry = CollectorRegistry()
    one: WorkQueue[str] = WorkQueue("one", FakeClock(), registry)
    two: WorkQueue[str] = WorkQueue("two", FakeClock(), registry)
    one.add("x")
    two.add("x")
    two.add("y")
    assert registry.get_sample_value("workqueue_depth", {"name": "one", "controller": "one"}) == 1
    assert registry.get_sample_value("workqueue_depth", {"name": "two", "controller": "two"}) == 2


async def test_workers_retry_with_backoff_on_the_fake_clock() -> None:
    """Failing keys come back after their backoff while idle workers sleep on the clock."""
    clock = FakeClock()
    queue = new_queue(clock)
    attempts: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    async def worker() -> None:
        while (key := await queue.get()) is not None:
            attempts[key].append(clock.monotonic())
            if len(attempts[key]) < 3:
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(3)]
    for key in attempts:
        queue.add(key)

    def finished() -> bool:
        return all(len(times) == 3 for times in attempts.values())

    for _ in range(100):
        await yield_until(lambda: finished() or clock.sleepers > 0)
        if finished():
            break
        clock.advance(0.005)
    queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=1)
    for times in attempts.values():
        assert [round(t, 3) for t in times] == [0.0, 0.005, 0.015]
    assert all(queue.num_requeues(key) == 0 for key in attempts)
