"""The manager: runs a process's runnables, gates controllers on leadership, shuts down in order.

A runnable is anything with `async def start(stop)` (or such a coroutine function itself): it works
until the `stop` event is set, then finishes what it has in hand and returns. Two kinds:
- leader-gated (controllers): started only once this process leads, cancelled the moment it stops
  leading. Losing leadership ends the process with `ExitCode.LEADERSHIP_LOST` (controller-runtime
  does the same): restarting from scratch is the only way to be sure nothing from the old tenure keeps
  acting while a new leader works.
- always-on (webhooks, API servers, metrics, health): started at once, whether or not we lead.

Shutdown (SIGTERM/SIGINT through `run_with_signal_handlers`, or `request_stop`) keeps one budget, the
graceful-shutdown timeout: every runnable is told to stop (intake ends everywhere at once); the
leader-gated ones are drained first, while the Lease is still renewed, then the Lease is released so a
standby takes over without waiting for expiry (the release gets `RELEASE_GRACE` even if draining spent
the budget); then the always-on ones are drained. A runnable still running when the budget is spent is
cancelled. Releasing before the always-on runnables finish keeps failover short; they do not depend on
leadership. `exit_process` then ends the process with the run's exit code, even if a task ignored
cancellation.

A runnable that raises ends the process with `ExitCode.RUNNABLE_FAILED` (after the same orderly
shutdown), so a broken controller restarts instead of silently doing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NoReturn, Protocol, runtime_checkable

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.leader import LeaderCallbacks
from kubewright.runtime.logs import get_logger

DEFAULT_GRACEFUL_SHUTDOWN = 30.0
# How long cancelled runnables get to unwind before the manager stops waiting for them.
CANCEL_GRACE = 2.0
# The Lease release gets at least this long even when draining spent the whole budget: it is one
# request, and skipping it leaves the add-on without a leader for a full lease duration.
RELEASE_GRACE = 5.0


class ExitCode(IntEnum):
    """The process exit status a manager run ends with."""

    OK = 0
    RUNNABLE_FAILED = 1
    LEADERSHIP_LOST = 2
    FORCED = 3  # a second SIGTERM/SIGINT during shutdown


@runtime_checkable
class Runnable(Protocol):
    async def start(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then finish in-hand work and return."""
        ...


RunnableFunc = Callable[[asyncio.Event], Awaitable[None]]


class Election(Protocol):
    """What the manager needs from leader election; `leader.LeaderElector` provides it."""

    async def run(self, stop: asyncio.Event, callbacks: LeaderCallbacks) -> None: ...


@dataclass
class _Group:
    """Runnables that start and stop together, sharing one stop signal."""

    kind: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    runnables: dict[str, RunnableFunc] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class Manager:
    """Runs runnables (see the module docstring); one `run()` per instance."""

    def __init__(
        self,
        *,
        election: Election | None = None,
        graceful_shutdown_timeout: float = DEFAULT_GRACEFUL_SHUTDOWN,
        clock: Clock | None = None,
    ) -> None:
        """Without an `election`, leader-gated runnables start at once (a single-replica setup)."""
        if graceful_shutdown_timeout < 0:
            raise ValueError(f"graceful_shutdown_timeout must be >= 0, got {graceful_shutdown_timeout}")
        self._election = election
        self._graceful = graceful_shutdown_timeout
        self._clock = clock or RealClock()
        self._gated = _Group("leader-gated")
        self._always_on = _Group("always-on")
        self._election_stop = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._exit_code = ExitCode.OK
        self._leading = False
        self._releasing = False
        self._started = False
        self._log = get_logger("kubewright.runtime.manager")

    def add_leader_gated(self, name: str, runnable: Runnable | RunnableFunc) -> None:
        """Run `runnable` only while this process leads (controllers)."""
        self._add(self._gated, name, runnable)

    def add_always_on(self, name: str, runnable: Runnable | RunnableFunc) -> None:
        """Run `runnable` for the whole life of the process (webhooks, API servers, metrics, health)."""
        self._add(self._always_on, name, runnable)

    @property
    def leading(self) -> bool:
        return self._leading

    def request_stop(self) -> None:
        """Begin the orderly shutdown (what the first SIGTERM/SIGINT does)."""
        self._begin_shutdown(ExitCode.OK, "stop requested")

    async def run(self) -> ExitCode:
        """Run until stopped, leadership is lost or a runnable fails; returns the process exit code."""
        if self._started:
            raise RuntimeError("a Manager runs once; build a new one")
        self._started = True
        self._start_group(self._always_on)
        election: asyncio.Task[None] | None = None
        if self._election is None:
            self._leading = True
            self._start_group(self._gated)
        else:
            callbacks = LeaderCallbacks(self._started_leading, self._stopped_leading)
            election = asyncio.create_task(
                self._election.run(self._election_stop, callbacks), name="election"
            )
            election.add_done_callback(self._election_ended)
        await self._shutdown.wait()
        return await self._shut_down(election)

    # -- internals --------------------------------------------------------------------------------

    def _add(self, group: _Group, name: str, runnable: Runnable | RunnableFunc) -> None:
        if self._started:
            raise RuntimeError(f"cannot add runnable {name!r}: the manager is already running")
        if name in self._gated.runnables or name in self._always_on.runnables:
            raise ValueError(f"a runnable named {name!r} is already registered")
        group.runnables[name] = runnable.start if isinstance(runnable, Runnable) else runnable

    def _start_group(self, group: _Group) -> None:
        for name, start in group.runnables.items():
            group.tasks[name] = asyncio.create_task(self._supervise(group, name, start), name=name)

    async def _supervise(self, group: _Group, name: str, start: RunnableFunc) -> None:
        try:
            await start(group.stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("runnable failed", runnable=name, kind=group.kind)
            self._begin_shutdown(ExitCode.RUNNABLE_FAILED, f"runnable {name} failed")
        else:
            if not group.stop.is_set():
                self._log.info("runnable finished before being asked to stop", runnable=name)

    def _begin_shutdown(self, code: ExitCode, why: str) -> None:
        # The first failure decides the exit code; a plain stop never masks one.
        if code is not ExitCode.OK and self._exit_code is ExitCode.OK:
            self._exit_code = code
        if not self._shutdown.is_set():
            self._log.info("shutting down", reason=why)
            self._shutdown.set()

    def _started_leading(self) -> None:
        if self._shutdown.is_set():
            return  # won the Lease while shutting down: the elector is about to release it
        self._leading = True
        self._log.info("started leading; starting leader-gated runnables", count=len(self._gated.runnables))
        self._start_group(self._gated)

    def _stopped_leading(self) -> None:
        self._leading = False
        if self._releasing:
            return  # our own hand-over, after the gated runnables were drained
        # Lost: another process may lead soon, so the gated work stops now, without draining.
        self._gated.stop.set()
        for task in self._gated.tasks.values():
            task.cancel()
        self._begin_shutdown(ExitCode.LEADERSHIP_LOST, "leadership lost")

    def _election_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._releasing:
            return
        error = task.exception()
        if error is not None:
            self._log.error("leader election failed", error=repr(error))
        if self._leading:
            self._stopped_leading()
        else:
            self._begin_shutdown(ExitCode.LEADERSHIP_LOST, "leader election ended")

    async def _shut_down(self, election: asyncio.Task[None] | None) -> ExitCode:
        deadline = self._clock.monotonic() + self._graceful
        self._gated.stop.set()
        self._always_on.stop.set()
        if not self._leading:
            self._stop_election()  # a standby must not win the Lease while we shut down
        await self._drain(self._gated, deadline)
        if election is not None:
            self._stop_election()
            remaining = max(deadline - self._clock.monotonic(), RELEASE_GRACE)
            if await _wait_all({election}, self._clock, remaining):
                self._log.warning("leader election did not finish releasing in time")
                election.cancel()
        await self._drain(self._always_on, deadline)
        self._log.info("stopped", exit_code=int(self._exit_code))
        return self._exit_code

    def _stop_election(self) -> None:
        self._releasing = True
        self._election_stop.set()

    async def _drain(self, group: _Group, deadline: float) -> None:
        tasks = set(group.tasks.values())
        late = await _wait_all(tasks, self._clock, deadline - self._clock.monotonic())
        if not late:
            return
        names = sorted(t.get_name() for t in late)
        self._log.warning("graceful shutdown timeout: cancelling runnables", kind=group.kind, runnables=names)
        for task in late:
            task.cancel()
        stuck = await _wait_all(late, self._clock, CANCEL_GRACE)
        if stuck:
            self._log.error(
                "runnables ignored cancellation; abandoning them",
                runnables=sorted(t.get_name() for t in stuck),
            )


async def _wait_all(tasks: set[asyncio.Task[None]], clock: Clock, seconds: float) -> set[asyncio.Task[None]]:
    """Wait until every task is done or `seconds` pass on `clock`; returns those still running."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return pending
    timer = asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))
    try:
        while pending and not timer.done():
            done, _ = await asyncio.wait({*pending, timer}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        timer.cancel()
    return pending


async def run_with_signal_handlers(manager: Manager) -> ExitCode:
    """`manager.run()` with SIGTERM/SIGINT wired: the first begins shutdown, a second exits at once."""
    loop = asyncio.get_running_loop()
    signals_seen = 0
    log = get_logger("kubewright.runtime.manager")

    def on_signal(signum: signal.Signals) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("signal received; shutting down", signal=signum.name)
            manager.request_stop()
            return
        log.warning("second signal received; exiting now", signal=signum.name)
        _flush_and_exit(ExitCode.FORCED)

    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await manager.run()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def exit_process(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run `main()` on a fresh event loop and end the process with its exit code.

    The process ends even if a task ignored cancellation (asyncio.run would wait for it forever):
    leaving the process alive after losing leadership is exactly what must not happen.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(main())
    except BaseException:
        get_logger("kubewright.runtime.manager").exception("main failed")
        code = ExitCode.RUNNABLE_FAILED
    _flush_and_exit(int(code))


def _flush_and_exit(code: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
