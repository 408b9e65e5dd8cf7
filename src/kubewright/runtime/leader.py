"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: the I/O loop.

The contract a leader-gated controller relies on: at most one process leads at a time, a dead leader
is replaced within about one lease duration, and a leader that shuts down hands over at once.

What to write and when is decided by the pure functions of `leader_decisions` (where the safety
argument is spelled out); `LeaderElector` reads the Lease, asks them, and performs the write:
- every write is a PUT carrying the observed resourceVersion (a create when the Lease is absent): when
  two candidates race, the API server lets exactly one through and the other gets Conflict, re-reads
  and stands by;
- every request is bounded by the injected clock, so the renew deadline holds even when the API
  server never answers;
- stopping (not cancelling) the elector while leading releases the Lease (empty holder, 1 s duration;
  client-go's ReleaseOnCancel), so a standby takes over immediately instead of after expiry.

Beyond client-go, each candidate also watches the Lease. Polling alone notices a renewal up to one
jittered retry period late, which delays takeover after a crash by as much; watch events make the
observation time (and so the takeover) prompt, and a released or deleted Lease wakes standbys at once.
Polling stays the source of truth, so a stalled watch only costs that promptness.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.kube import Conflict, Forbidden, KubeClient, NotFound, Obj
from kubewright.runtime.leader_decisions import (
    LEASE_API_VERSION,
    LEASE_KIND,
    CreateLease,
    ElectionConfig,
    Observation,
    ObservedLease,
    Standby,
    StepDown,
    TakeOverLease,
    candidate_action,
    leader_action,
    leading_until,
    lease_version,
    observe,
    parse_lease,
    release_action,
    retry_delay,
)
from kubewright.runtime.logs import get_logger
from kubewright.runtime.metrics import runtime_metrics

# ElectionConfig is what callers pass to LeaderElector, so it is importable from here too.
__all__ = ["ElectionConfig", "LeaderCallbacks", "LeaderElector", "default_identity"]

WATCH_TIMEOUT_SECONDS = 300

T = TypeVar("T")


def default_identity() -> str:
    """hostname_uuid, as controller-runtime builds it: stable enough to read, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


# -- the I/O loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderCallbacks:
    """Called on the event loop, synchronously, so they must not block.

    `on_stopped_leading` runs the moment this process stops leading (lost, or stopping before the
    release): the leader-gated work must stop there, before any standby can take over.
    """

    on_started_leading: Callable[[], None]
    on_stopped_leading: Callable[[], None]


class _Renewal(Enum):
    RENEWED = "renewed"
    FAILED = "failed"
    LOST = "lost"


class LeaderElector:
    """Campaigns for and holds one Lease (see the module docstring for the guarantees).

    RBAC: get, create, update and watch on `leases` in group coordination.k8s.io, in the Lease's
    namespace (watch is what the promptness above needs; without it the elector still works).
    """

    def __init__(
        self,
        client: KubeClient,
        config: ElectionConfig,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        """`on_new_leader(identity)` is told each time the observed holder changes (client-go's
        OnNewLeader), including the first holder seen; an empty identity means released."""
        self.config = config
        self._client = client
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._on_new_leader = on_new_leader
        self._observation: Observation | None = None
        self._leading_until = -math.inf
        self._leading = False
        self._wake = asyncio.Event()
        families = runtime_metrics(registry if registry is not None else CollectorRegistry())
        self._status = families.leader_master_status.labels(config.lease_name)
        self._status.set(0)
        self._log = get_logger("kubewright.runtime.leader").bind(
            lease=f"{config.namespace}/{config.lease_name}", identity=config.identity
        )

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def run(self, stop: asyncio.Event, callbacks: LeaderCallbacks) -> None:
        """Campaign, lead until `stop` is set or leadership is lost, and return.

        Setting `stop` releases the Lease if we hold it (after `on_stopped_leading`); losing it returns
        without writing. Cancelling the task stops at once without releasing (the Lease then expires).
        """
        watcher = asyncio.create_task(self._watch_lease(), name=f"lease-watch-{self.config.lease_name}")
        try:
            if not await self._acquire(stop):
                return
            if not stop.is_set():
                self._set_leading(True)
                callbacks.on_started_leading()
                try:
                    stopped = await self._lead(stop)
                finally:
                    self._set_leading(False)
                    callbacks.on_stopped_leading()
                if not stopped:
                    return
            await self._release()
        finally:
            await _cancel_and_wait(watcher)

    # -- campaigning and leading ------------------------------------------------------------------

    async def _acquire(self, stop: asyncio.Event) -> bool:
        """Try until we hold the Lease (True) or `stop` is set (False)."""
        while not stop.is_set():
            self._wake.clear()
            outcome = await self._within(self._try_acquire(), self.config.renew_deadline)
            if outcome is True:
                return True
            delay = retry_delay(self.config, self._rng.random())
            if isinstance(outcome, Standby):
                # Wake when the holder's claim lapses rather than up to a jittered period after it.
                delay = min(delay, outcome.expires_at - self._clock.monotonic())
            await self._pause(delay, stop, self._wake)
        return False

    async def _try_acquire(self) -> Standby | bool:
        """One attempt: read, decide, write. True when we now hold the Lease."""
        try:
            for _ in range(2):  # Conflict means someone else wrote first: re-read once and decide again
                observation = await self._refresh()
                now = self._clock.monotonic()
                action = candidate_action(observation, now, self.config, self._clock.now())
                if isinstance(action, Standby):
                    return action
                write = self._client.create if isinstance(action, CreateLease) else self._client.replace
                try:
                    await self._commit(write(action.body), sent_at=now)
                except Conflict:
                    continue
                previous = action.previous_holder if isinstance(action, TakeOverLease) else None
                self._log.info("acquired the lease", previous_holder=previous or None)
                return True
        except Exception as err:
            self._log.warning("leader election attempt failed", error=str(err), error_type=type(err).__name__)
        return False

    async def _lead(self, stop: asyncio.Event) -> bool:
        """Renew every retry period until `stop` (True) or until renewing fails for too long (False)."""
        while True:
            wake_at = min(self._clock.monotonic() + self.config.retry_period, self._leading_until)
            if await self._pause(wake_at - self._clock.monotonic(), stop):
                return True
            remaining = self._leading_until - self._clock.monotonic()
            if remaining <= 0:
                self._log.warning(
                    "stopped leading: could not renew the lease within the renew deadline",
                    renew_deadline=self.config.renew_deadline,
                )
                return False
            if await self._within(self._try_renew(), remaining) is _Renewal.LOST:
                return False

    async def _try_renew(self) -> _Renewal:
        """One renewal: PUT over our last write (one request); on Conflict re-read and decide again."""
        try:
            observation = self._observation or await self._refresh()
            for _ in range(2):
                action = leader_action(observation, self.config, self._clock.now())
                if isinstance(action, StepDown):
                    self._log.warning("stopped leading", reason=action.reason)
                    return _Renewal.LOST
                try:
                    await self._commit(self._client.replace(action.body), sent_at=self._clock.monotonic())
                except Conflict:
                    observation = await self._refresh()
                    continue
                return _Renewal.RENEWED
        except Exception as err:
            self._log.warning("renewing the lease failed", error=str(err), error_type=type(err).__name__)
        return _Renewal.FAILED

    async def _release(self) -> None:
        """Hand the Lease over (best effort: if this fails, standbys take over at expiry)."""
        timeout = self.config.renew_deadline
        observation = self._observation
        for _ in range(2):
            action = release_action(observation, self.config, self._clock.now()) if observation else None
            if action is None:
                return
            try:
                written = await self._within(self._client.replace(action.body), timeout)
                if written is None:
                    self._log.warning("releasing the lease timed out")
                    return
                self._note(parse_lease(written))
                self._log.info("released the lease")
                return
            except Conflict:
                try:
                    observation = await self._within(self._refresh(), timeout)
                except Exception as err:
                    self._log.warning("releasing the lease failed", error=str(err))
                    return
            except Exception as err:
                self._log.warning("releasing the lease failed", error=str(err))
                return

    # -- reads and writes ---------------------------------------------------------------------------

    async def _refresh(self) -> Observation:
        try:
            obj = await self._client.get(
                LEASE_API_VERSION, LEASE_KIND, self.config.lease_name, self.config.namespace
            )
        except NotFound:
            self._note(None)
        else:
            self._note(parse_lease(obj))
        assert self._observation is not None  # set by _note
        return self._observation

    async def _commit(self, write: Awaitable[Obj], *, sent_at: float) -> None:
        """Await a create or conditional replace; on success we lead until `sent_at` + renew deadline."""
        written = await write
        self._leading_until = leading_until(sent_at, self.config)
        self._note(parse_lease(written))

    def _note(self, lease: ObservedLease | None) -> bool:
        """Record an observation; True when the Lease was written since the previous one."""
        before = self._observation
        self._observation = observe(before, lease, self._clock.monotonic())
        if before is not None and lease_version(before.lease) == lease_version(lease):
            return False
        previous = before.lease.record.holder if before is not None and before.lease is not None else None
        holder = lease.record.holder if lease is not None else None
        if holder is not None and holder != previous:
            self._log.info("observed a new holder", holder=holder or "(released)")
            if self._on_new_leader is not None:
                self._on_new_leader(holder)
        return True

    async def _watch_lease(self) -> None:
        """Feed watch events into the observations; wake standbys when the Lease is released or gone."""
        while True:
            try:
                async for event in self._client.watch_stream(
                    LEASE_API_VERSION,
                    LEASE_KIND,
                    self.config.namespace,
                    resource_version="",
                    fields={"metadata.name": self.config.lease_name},
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                ):
                    kind = event.get("type")
                    if kind not in ("ADDED", "MODIFIED", "DELETED"):
                        continue  # BOOKMARK
                    lease = None if kind == "DELETED" else parse_lease(event["object"])
                    if self._note(lease) and not self._leading and (lease is None or not lease.record.holder):
                        self._wake.set()
            except Forbidden as err:
                self._log.warning("cannot watch the lease; falling back to polling only", error=str(err))
            except Exception as err:
                self._log.debug("lease watch ended", error=str(err))
            await self._clock.sleep(self.config.retry_period)

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        self._status.set(1 if leading else 0)

    # -- waiting on the injected clock ---------------------------------------------------------------

    async def _pause(self, seconds: float, stop: asyncio.Event, wake: asyncio.Event | None = None) -> bool:
        """Sleep on the clock until `seconds` pass, `stop` or `wake` is set; True if stopping."""
        waits: list[Awaitable[Any]] = [self._clock.sleep(max(seconds, 0.0)), stop.wait()]
        if wake is not None:
            waits.append(wake.wait())
        await _first_of(*waits)
        return stop.is_set()

    async def _within(self, work: Coroutine[Any, Any, T], seconds: float) -> T | None:
        """`work`'s result, or None if it did not finish within `seconds` of the injected clock.

        The renew deadline must hold even when a request hangs (a partitioned API server never
        answers), so every attempt is bounded by the clock rather than by HTTP timeouts.
        """
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self._clock.sleep(max(seconds, 0.0)))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel_and_wait(timer, *([] if task.done() else [task]))
        if task.cancelled():
            return None
        return task.result()


async def _first_of(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancel_and_wait(*tasks)


async def _cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks` and wait for them to finish, ignoring how they end.

    A cancellation aimed at the caller while it waits is re-raised, not swallowed: the counter of
    pending cancellations tells ours apart from the ones we sent.
    """
    current = asyncio.current_task()
    pending_before = current.cancelling() if current is not None else 0
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if current is not None and current.cancelling() > pending_before:
        raise asyncio.CancelledError
