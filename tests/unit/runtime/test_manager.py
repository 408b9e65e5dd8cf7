"""The manager's orchestration: which runnables run when, shutdown order, exit codes.

Leadership comes from `ScriptedElection`, a test double for the manager's `Election` port that lets a
test decide when leadership starts and ends; the real elector is exercised end to end, in separate
processes against a real API server, in tests/envtest/runtime/test_leader_election.py. Time is a
FakeClock, so graceful-shutdown deadlines are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.leader import LeaderCallbacks
from kubewright.runtime.manager import CANCEL_GRACE, RELEASE_GRACE, ExitCode, Manager

pytestmark = pytest.mark.unit

GRACE = 30.0


async def settle(turns: int = 20) -> None:
    """Let every ready task run (a bounded number of loop turns, never wall-clock time)."""
    for _ in range(turns):
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)


async def until(condition: Callable[[], bool], max_turns: int = 200) -> None:
    for _ in range(max_turns):
        if condition():
            return
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    raise AssertionError("condition not reached")


class ScriptedElection:
    """Test double for leader election: leadership starts and ends when the test says so.

    On `stop` it behaves like the real elector: if leading, it reports the end of leadership and
    "releases" (recorded in the shared journal).
    """

    def __init__(self, journal: list[str], clock: FakeClock, release_takes: float = 0.0) -> None:
        self.journal = journal
        self.clock = clock
        self.release_takes = release_takes
        self.callbacks: LeaderCallbacks | None = None
        self.stop: asyncio.Event | None = None
        self.leading = False
        self._lost = asyncio.Event()
        self._crash: Exception | None = None

    async def run(self, stop: asyncio.Event, callbacks: LeaderCallbacks) -> None:
        self.stop, self.callbacks = stop, callbacks
        stopped = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({stopped, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            lost.cancel()
        if self._crash is not None:
            raise self._crash
        if self.leading:
            self.leading = False
            callbacks.on_stopped_leading()
            if stop.is_set() and not self._lost.is_set():
                await self.clock.sleep(self.release_takes)
                self.journal.append("released")

    def win(self) -> None:
        assert self.callbacks is not None, "the manager has not started the election yet"
        self.leading = True
        self.callbacks.on_started_leading()

    def lose(self) -> None:
        self._lost.set()

    def crash(self, error: Exception) -> None:
        self._crash = error
        self._lost.set()


class Worker:
    """A runnable that journals its life; `drain` is how long (fake seconds) it takes to finish."""

    def __init__(self, name: str, journal: list[str], clock: FakeClock, drain: float = 0.0) -> None:
        self.name, self.journal, self.clock, self.drain = name, journal, clock, drain
        self.running = False

    async def start(self, stop: asyncio.Event) -> None:
        self.running = True
        self.journal.append(f"{self.name} started")
        try:
            await stop.wait()
            self.journal.append(f"{self.name} stopping")
            if self.drain:
                await self.clock.sleep(self.drain)
            self.journal.append(f"{self.name} drained")
        except asyncio.CancelledError:
            self.journal.append(f"{self.name} cancelled")
            raise
        finally:
            self.running = False


class Setup:
    def __init__(
        self,
        *,
        elected: bool = True,
        gated_drain: float = 0.0,
        always_drain: float = 0.0,
        release_takes: float = 0.0,
    ) -> None:
        self.journal: list[str] = []
        self.clock = FakeClock()
        self.election = ScriptedElection(self.journal, self.clock, release_takes) if elected else None
        self.manager = Manager(election=self.election, graceful_shutdown_timeout=GRACE, clock=self.clock)
        self.controller = Worker("controller", self.journal, self.clock, gated_drain)
        self.webhook = Worker("webhook", self.journal, self.clock, always_drain)
        self.manager.add_leader_gated("controller", self.controller)
        self.manager.add_always_on("webhook", self.webhook)
        self.run: asyncio.Task[ExitCode] | None = None

    async def start(self) -> None:
        self.run = asyncio.create_task(self.manager.run())
        await settle()

    async def result(self) -> ExitCode:
        assert self.run is not None
        await until(self.run.done)
        return self.run.result()


async def test_without_election_everything_runs_and_stops_cleanly() -> None:
    setup = Setup(elected=False)
    await setup.start()
    assert setup.controller.running
    assert setup.webhook.running
    assert setup.manager.leading

    setup.manager.request_stop()
    assert await setup.result() == ExitCode.OK
    assert "controller drained" in setup.journal
    assert "webhook drained" in setup.journal


async def test_leader_gated_runnables_wait_for_leadership() -> None:
    setup = Setup()
    await setup.start()
    assert setup.webhook.running
    assert not setup.controller.running

    assert setup.election is not None
    setup.election.win()
    await settle()
    assert setup.controller.running
    assert setup.manager.leading
    setup.manager.request_stop()
    assert await setup.result() == ExitCode.OK


async def test_losing_leadership_cancels_controllers_at_once_and_exits_non_zero() -> None:
    setup = Setup(gated_drain=10.0, always_drain=1.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()

    setup.election.lose()
    await settle()
    # No draining: the controller is cancelled in the same loop turn leadership ended.
    assert "controller cancelled" in setup.journal
    assert "controller drained" not in setup.journal
    assert not setup.controller.running
    # The webhook still gets its graceful stop.
    await setup.clock.wait_for_sleepers(1)
    setup.clock.advance(1.0)
    assert await setup.result() == ExitCode.LEADERSHIP_LOST
    assert "webhook drained" in setup.journal
    assert "released" not in setup.journal


async def test_shutdown_drains_controllers_then_releases_then_drains_the_rest() -> None:
    setup = Setup(gated_drain=5.0, always_drain=2.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()

    setup.manager.request_stop()
    await settle()
    # Intake stops everywhere at once, but the Lease is held (and renewed) while controllers drain.
    assert {"controller stopping", "webhook stopping"} <= set(setup.journal)
    assert setup.election.stop is not None
    assert not setup.election.stop.is_set()

    setup.clock.advance(2.0)
    await settle()
    assert "webhook drained" in setup.journal
    assert "released" not in setup.journal
    setup.clock.advance(3.0)
    assert await setup.result() == ExitCode.OK
    order = setup.journal
    assert order.index("controller drained") < order.index("released")


async def test_release_comes_before_slow_always_on_runnables_finish() -> None:
    setup = Setup(gated_drain=1.0, always_drain=20.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()
    setup.manager.request_stop()
    await settle()
    setup.clock.advance(1.0)
    await until(lambda: "released" in setup.journal)
    assert "webhook drained" not in setup.journal
    setup.clock.advance(19.0)
    assert await setup.result() == ExitCode.OK


async def test_runnables_that_ignore_stop_are_cancelled_at_the_graceful_deadline() -> None:
    setup = Setup(gated_drain=100.0, always_drain=100.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()
    setup.manager.request_stop()
    await settle()

    setup.clock.advance(GRACE - 0.001)
    await settle()
    assert "controller cancelled" not in setup.journal
    setup.clock.advance(0.001)
    await until(lambda: "released" in setup.journal)
    assert "controller cancelled" in setup.journal
    assert await setup.result() == ExitCode.OK
    assert "webhook cancelled" in setup.journal


async def test_the_release_gets_its_grace_even_when_draining_spent_the_budget() -> None:
    setup = Setup(gated_drain=100.0, release_takes=RELEASE_GRACE - 1.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()
    setup.manager.request_stop()
    await settle()
    setup.clock.advance(GRACE)  # the controller ignores stop: cancelled at the deadline
    await until(lambda: "controller cancelled" in setup.journal)
    await setup.clock.wait_for_sleepers(2)  # the release in flight, and the manager's wait for it
    setup.clock.advance(RELEASE_GRACE - 1.0)
    assert await setup.result() == ExitCode.OK
    assert "released" in setup.journal


async def test_a_standby_stops_campaigning_at_once_on_shutdown() -> None:
    setup = Setup()
    await setup.start()
    setup.manager.request_stop()
    assert await setup.result() == ExitCode.OK
    assert setup.election is not None
    assert setup.election.stop is not None
    assert setup.election.stop.is_set()
    assert "controller started" not in setup.journal


async def test_leadership_won_during_shutdown_starts_nothing() -> None:
    """An attempt in flight when shutdown began may still win; the elector then releases at once."""
    setup = Setup(always_drain=5.0)
    await setup.start()
    setup.manager.request_stop()
    await settle()
    assert setup.election is not None
    setup.election.win()
    await settle()
    assert "controller started" not in setup.journal
    assert not setup.manager.leading
    setup.clock.advance(5.0)
    assert await setup.result() == ExitCode.OK


async def test_a_failing_runnable_shuts_down_in_order_and_exits_non_zero() -> None:
    setup = Setup()

    async def broken(stop: asyncio.Event) -> None:
        raise RuntimeError("cannot reach the cache")

    setup.manager.add_leader_gated("broken", broken)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    assert await setup.result() == ExitCode.RUNNABLE_FAILED
    assert order_of(setup.journal, "controller drained", "released")


async def test_leadership_lost_while_draining_is_reported() -> None:
    setup = Setup(gated_drain=5.0)
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()
    setup.manager.request_stop()
    await settle()
    setup.election.lose()
    assert await setup.result() == ExitCode.LEADERSHIP_LOST
    assert "controller cancelled" in setup.journal


async def test_a_crashed_election_ends_the_process() -> None:
    setup = Setup()
    await setup.start()
    assert setup.election is not None
    setup.election.win()
    await settle()
    setup.election.crash(RuntimeError("boom"))
    assert await setup.result() == ExitCode.LEADERSHIP_LOST
    assert "controller cancelled" in setup.journal


async def test_runnables_cancelled_and_stuck_are_abandoned_after_a_grace() -> None:
    clock = FakeClock()
    manager = Manager(graceful_shutdown_timeout=1.0, clock=clock)
    released = asyncio.Event()

    async def stubborn(stop: asyncio.Event) -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # ignores cancellation: a bug the manager must survive

    manager.add_always_on("stubborn", stubborn)
    run = asyncio.create_task(manager.run())
    await settle()
    manager.request_stop()
    await clock.wait_for_sleepers(1)
    clock.advance(1.0)
    await clock.wait_for_sleepers(1)
    clock.advance(CANCEL_GRACE)
    await until(run.done)
    assert run.result() == ExitCode.OK
    released.set()
    await settle()


async def test_plain_coroutine_functions_are_runnables() -> None:
    seen: list[str] = []

    async def metrics(stop: asyncio.Event) -> None:
        seen.append("metrics")
        await stop.wait()

    manager = Manager(clock=FakeClock())
    manager.add_always_on("metrics", metrics)
    run = asyncio.create_task(manager.run())
    await settle()
    manager.request_stop()
    await until(run.done)
    assert seen == ["metrics"]
    assert run.result() == ExitCode.OK


async def test_registration_mistakes_are_refused() -> None:
    manager = Manager(clock=FakeClock())

    async def noop(stop: asyncio.Event) -> None:
        await stop.wait()

    manager.add_always_on("health", noop)
    with pytest.raises(ValueError, match="'health' is already registered"):
        manager.add_leader_gated("health", noop)
    with pytest.raises(ValueError, match="graceful_shutdown_timeout"):
        Manager(graceful_shutdown_timeout=-1)
    manager.request_stop()
    assert await manager.run() == ExitCode.OK
    with pytest.raises(RuntimeError, match="already running"):
        manager.add_always_on("late", noop)
    with pytest.raises(RuntimeError, match="runs once"):
        await manager.run()


async def test_a_failure_is_not_masked_by_a_later_stop() -> None:
    manager = Manager(clock=FakeClock())

    async def broken(stop: asyncio.Event) -> None:
        raise RuntimeError("bad")

    manager.add_always_on("broken", broken)
    run = asyncio.create_task(manager.run())
    await settle()
    manager.request_stop()
    await until(run.done)
    assert run.result() == ExitCode.RUNNABLE_FAILED


def order_of(journal: list[str], *entries: str) -> bool:
    positions = [journal.index(entry) for entry in entries]
    return positions == sorted(positions)
