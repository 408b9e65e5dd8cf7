from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from kubewright.runtime.clock import Clock, FakeClock, RealClock

pytestmark = pytest.mark.unit


def test_real_clock_satisfies_protocol() -> None:
    clock: Clock = RealClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    assert clock.monotonic() >= first


async def test_real_clock_sleep_zero_returns() -> None:
    await asyncio.wait_for(RealClock().sleep(0), timeout=1)


def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(start=100.0, wall_start=datetime(2030, 5, 1, tzinfo=UTC))
    assert clock.monotonic() == 100.0
    clock.advance(2.5)
    assert clock.monotonic() == 102.5
    assert clock.now() == datetime(2030, 5, 1, tzinfo=UTC) + timedelta(seconds=2.5)


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1)


async def test_sleepers_wake_at_their_deadline_in_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("late", 3.0), ("early", 1.0), ("tie", 1.0)]]
    await clock.wait_for_sleepers(3)
    assert clock.next_deadline == 1.0

    clock.advance(0.999)
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    assert woke == []

    clock.advance(0.001)
    await asyncio.gather(*tasks[1:])
    assert woke == ["early", "tie"]
    assert clock.sleepers == 1

    clock.advance(5)
    await tasks[0]
    assert woke == ["early", "tie", "late"]
    assert clock.next_deadline is None


async def test_zero_sleep_yields_without_registering() -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(0), timeout=1)
    assert clock.sleepers == 0


async def test_cancelled_sleeper_is_not_counted() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    clock.advance(20)  # resolving nothing, and not failing on the cancelled future


async def test_wait_for_sleepers_gives_up() -> None:
    with pytest.raises(TimeoutError, match="expected 1 sleepers"):
        await FakeClock().wait_for_sleepers(1, max_turns=3)
