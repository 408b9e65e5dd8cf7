"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

The contract a leader-gated controller relies on: at most one process leads at a time, a dead leader
is replaced within about one lease duration, and a leader that shuts down hands over at once.

How it is kept:
- Expiry is judged only by this process's monotonic clock, from the moment it *observed* the Lease
  being written (a renewal, a new holder). Comparing renewTime with local wall time would trust the
  clocks of two machines to agree; a skewed clock would then let two processes lead at once.
- A leader that cannot renew within `renew_deadline` of sending its last successful renewal stops
  leading. Any other candidate observed that renewal after it was sent and waits `lease_duration`
  (> `renew_deadline`) from then, so the leader has stopped before anyone can take over.
- Every write is a PUT carrying the observed resourceVersion (a create when the Lease is absent): when
  two candidates race, the API server lets exactly one through and the other gets Conflict, re-reads
  and stands by.
- Stopping (not cancelling) the elector while leading releases the Lease (empty holder, 1 s duration;
  client-go's ReleaseOnCancel), so a standby takes over immediately instead of after expiry.

Beyond client-go, each candidate also watches the Lease. Polling alone notices a renewal up to one
jittered retry period late, which delays takeover after a crash by as much; watch events make the
observation time (and so the takeover) prompt, and a released or deleted Lease wakes standbys at once.
Polling stays the source of truth, so a stalled watch only costs that promptness.

The decisions (is the Lease expired, what to write next) are pure functions of an `Observation` and
the time, unit-tested without any API; `LeaderElector` is only the I/O loop around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.kube import Conflict, Forbidden, KubeClient, NotFound, Obj
from kubewright.runtime.logs import get_logger
from kubewright.runtime.metrics import runtime_metrics

LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_KIND = "Lease"
# client-go's defaults (and controller-runtime's): 15 s lease, 10 s renew deadline, 2 s retry.
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2
# client-go writes this duration on release, so a lease left released is also expired one second on.
RELEASED_LEASE_SECONDS = 1
WATCH_TIMEOUT_SECONDS = 300

T = TypeVar("T")


@dataclass(frozen=True)
class ElectionConfig:
    """Which Lease, who we are, and the timings; invalid combinations fail at construction.

    `identity` must be unique per process: a process that finds its own identity in the Lease treats
    itself as the holder (as client-go does, so a restarted pod with a stable identity resumes at once).
    """

    lease_name: str
    namespace: str
    identity: str
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD
    jitter_factor: float = JITTER_FACTOR

    def __post_init__(self) -> None:
        for name in ("lease_name", "namespace", "identity"):
            if not getattr(self, name):
                raise ValueError(f"leader election: {name} must not be empty")
        if self.retry_period <= 0 or self.jitter_factor < 0:
            raise ValueError(
                f"leader election: retry_period must be > 0 and jitter_factor >= 0, "
                f"got retry_period={self.retry_period}, jitter_factor={self.jitter_factor}"
            )
        # The same two checks as client-go's NewLeaderElector: the first is the safety margin between
        # the leader giving up and a standby taking over; the second leaves room for a jittered retry.
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"leader election: lease_duration ({self.lease_duration}) must be greater than "
                f"renew_deadline ({self.renew_deadline})"
            )
        if self.renew_deadline <= self.jitter_factor * self.retry_period:
            raise ValueError(
                f"leader election: renew_deadline ({self.renew_deadline}) must be greater than "
                f"jitter_factor * retry_period ({self.jitter_factor} * {self.retry_period})"
            )

    @property
    def lease_duration_seconds(self) -> int:
        """What we write to spec.leaseDurationSeconds: whole seconds, rounded up so never shorter."""
        return max(1, math.ceil(self.lease_duration))


def default_identity() -> str:
    """hostname_uuid, as controller-runtime builds it: stable enough to read, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


# -- the Lease as the elector reads it --------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec.

    Times are parsed rather than kept as strings because the API server and client libraries render
    the same MicroTime differently (".000000Z" vs "Z").
    """

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int


@dataclass(frozen=True)
class ObservedLease:
    """A Lease as read from the API: its record, its resourceVersion and the whole object.

    The whole object is kept so writes replace only the spec fields we own and preserve labels,
    annotations and spec fields of newer API versions.
    """

    record: LeaseRecord
    resource_version: str
    body: Obj = field(compare=False, repr=False)


def parse_lease(obj: Obj) -> ObservedLease:
    spec = obj.get("spec") or {}
    record = LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )
    return ObservedLease(record, str((obj.get("metadata") or {}).get("resourceVersion", "")), obj)


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def micro_time(moment: datetime) -> str:
    """RFC 3339 with microseconds in UTC, the wire form of metav1.MicroTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Observation:
    """The last Lease this process saw (None: it does not exist) and since when it looks like that."""

    lease: ObservedLease | None
    observed_at: float


def observe(previous: Observation | None, lease: ObservedLease | None, now: float) -> Observation:
    """Fold a fresh read into what we know: the expiry clock restarts only when the Lease was written.

    Re-reading an untouched Lease keeps `observed_at`, so polling an abandoned Lease does not postpone
    its expiry. "Written" is judged by resourceVersion, which every write changes, not by comparing
    holder and renewTime: a holder whose wall clock is frozen or stepped back could renew with an
    identical renewTime, and a standby comparing records would then count from the older renewal and
    take over while that holder still leads. The price is that a metadata-only write (a label added by
    hand) also delays expiry, which only costs time, never safety.
    """
    if previous is not None and _version(previous.lease) == _version(lease):
        return Observation(lease, previous.observed_at)
    return Observation(lease, now)


def _version(lease: ObservedLease | None) -> str | None:
    return None if lease is None else lease.resource_version


def _record(lease: ObservedLease | None) -> LeaseRecord | None:
    return None if lease is None else lease.record


# -- decisions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateLease:
    """The Lease does not exist: create it naming us (a racing creator gets AlreadyExists)."""

    body: Obj


@dataclass(frozen=True)
class RenewLease:
    """We hold the Lease: bump renewTime, keeping acquireTime and leaseTransitions."""

    body: Obj


@dataclass(frozen=True)
class TakeOverLease:
    """The Lease is released or expired: become its holder, one more transition."""

    body: Obj
    previous_holder: str


@dataclass(frozen=True)
class ReleaseLease:
    """We are shutting down while holding the Lease: empty the holder so a standby takes over now."""

    body: Obj


@dataclass(frozen=True)
class Standby:
    """Someone else holds a Lease that has not expired by our clock; retry no later than `expires_at`."""

    holder: str
    expires_at: float


@dataclass(frozen=True)
class StepDown:
    """We lead, but the Lease no longer names us (or vanished): stop leading now."""

    reason: str


CandidateAction = CreateLease | RenewLease | TakeOverLease | Standby
LeaderAction = RenewLease | StepDown


def expires_at(observation: Observation, config: ElectionConfig) -> float:
    """When, by our monotonic clock, the observed holder's claim lapses.

    The duration is the one the holder wrote (client-go does the same), falling back to ours when the
    record carries none.
    """
    lease = observation.lease
    seconds = lease.record.lease_duration_seconds if lease is not None else 0
    return observation.observed_at + (seconds if seconds > 0 else config.lease_duration)


def candidate_action(
    observation: Observation, now: float, config: ElectionConfig, wall_now: datetime
) -> CandidateAction:
    """What a process that does not lead should do after reading the Lease."""
    stamp = micro_time(wall_now)
    lease = observation.lease
    if lease is None:
        record = LeaseRecord(config.identity, config.lease_duration_seconds, wall_now, wall_now, 0)
        return CreateLease(lease_body(None, config, record, stamp, stamp))
    held = lease.record
    if held.holder == config.identity:
        return _renewal(lease, config, wall_now, stamp)
    if held.holder and now < expires_at(observation, config):
        return Standby(held.holder, expires_at(observation, config))
    record = LeaseRecord(
        config.identity, config.lease_duration_seconds, wall_now, wall_now, held.transitions + 1
    )
    return TakeOverLease(lease_body(lease, config, record, stamp, stamp), held.holder)


def leader_action(observation: Observation, config: ElectionConfig, wall_now: datetime) -> LeaderAction:
    """What the leader should do at a renewal: renew, unless the Lease says it no longer leads.

    A vanished Lease also means stepping down: recreating it would race a candidate that saw it absent
    and created it first, leaving two processes that both believe they lead until the next renewal.
    """
    lease = observation.lease
    if lease is None:
        return StepDown("the Lease was deleted")
    if lease.record.holder != config.identity:
        return StepDown(f"the Lease is held by {lease.record.holder or 'nobody'}")
    return _renewal(lease, config, wall_now, micro_time(wall_now))


def _renewal(lease: ObservedLease, config: ElectionConfig, wall_now: datetime, stamp: str) -> RenewLease:
    record = replace(
        lease.record,
        lease_duration_seconds=config.lease_duration_seconds,
        renew_time=wall_now,
        acquire_time=lease.record.acquire_time or wall_now,
    )
    acquired = micro_time(record.acquire_time) if record.acquire_time else stamp
    return RenewLease(lease_body(lease, config, record, acquired, stamp))


def release_action(
    observation: Observation, config: ElectionConfig, wall_now: datetime
) -> ReleaseLease | None:
    """The write that hands the Lease over, or None when it does not name us (never clear another's)."""
    lease = observation.lease
    if lease is None or lease.record.holder != config.identity:
        return None
    stamp = micro_time(wall_now)
    record = LeaseRecord("", RELEASED_LEASE_SECONDS, wall_now, wall_now, lease.record.transitions)
    return ReleaseLease(lease_body(lease, config, record, stamp, stamp))


def lease_body(
    base: ObservedLease | None, config: ElectionConfig, record: LeaseRecord, acquired: str, renewed: str
) -> Obj:
    """The object to PUT (or create): the observed Lease with our record in its spec.

    Keeping metadata.resourceVersion from the observation is what makes the write conditional.
    """
    if base is None:
        body: Obj = {
            "apiVersion": LEASE_API_VERSION,
            "kind": LEASE_KIND,
            "metadata": {"name": config.lease_name, "namespace": config.namespace},
        }
    else:
        body = copy.deepcopy(base.body)
        body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": base.resource_version}
    body["spec"] = {
        **(body.get("spec") or {}),
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": acquired,
        "renewTime": renewed,
        "leaseTransitions": record.transitions,
    }
    return body


def retry_delay(config: ElectionConfig, fraction: float) -> float:
    """client-go's wait.Jitter: retry_period stretched by up to jitter_factor, `fraction` in [0, 1)."""
    return config.retry_period * (1.0 + fraction * config.jitter_factor)


def leading_until(renew_sent_at: float, config: ElectionConfig) -> float:
    """When a leader must have stopped, measured from when it *sent* its last successful renewal.

    Measuring from the send, not the reply, keeps the deadline before any observer's expiry even when
    the reply is slow: an observer cannot have seen the write before it was sent.
    """
    return renew_sent_at + config.renew_deadline


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
        if before is not None and _version(before.lease) == _version(lease):
            return False
        previous = _record(before.lease) if before is not None else None
        holder = lease.record.holder if lease is not None else None
        if holder is not None and (previous is None or holder != previous.holder):
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
