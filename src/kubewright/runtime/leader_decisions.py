"""The decisions of Lease leader election, as pure functions: no I/O, no asyncio, no client.

`leader.LeaderElector` reads the Lease, asks these functions what to do, and performs the write they
return. Keeping the decisions here means the safety argument below is checked by unit and property
tests over every interleaving a test can construct, without an API server or an event loop.

The safety argument (client-go's, with one correction):
- Expiry is judged only by this process's monotonic clock, from the moment it *observed* the Lease
  being written (a renewal, a new holder). Comparing renewTime with local wall time would trust the
  clocks of two machines to agree; a skewed clock would then let two processes lead at once.
- A leader that cannot renew within `renew_deadline` of sending its last successful renewal stops
  leading (`leading_until`). Any other candidate observed that renewal after it was sent and waits
  `lease_duration` (> `renew_deadline`) from then (`expires_at`), so the leader has stopped before
  anyone can take over.
- Every write is built on the observed object and carries its resourceVersion (`lease_body`), so the
  API server lets exactly one of two racing writers through.
- "Written since we last looked" is judged by resourceVersion, not by comparing records (`observe`):
  a holder whose wall clock is frozen can renew with an identical renewTime.
- A released Lease (empty holder, `RELEASED_LEASE_SECONDS`) is free at once (`candidate_action`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# The JSON the API server speaks, as kube.KubeClient returns it (not imported: this module has no client).
Obj = dict[str, Any]

LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_KIND = "Lease"
# client-go's defaults (and controller-runtime's): 15 s lease, 10 s renew deadline, 2 s retry.
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2
# client-go writes this duration on release, so a lease left released is also expired one second on.
RELEASED_LEASE_SECONDS = 1


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
    if previous is not None and lease_version(previous.lease) == lease_version(lease):
        return Observation(lease, previous.observed_at)
    return Observation(lease, now)


def lease_version(lease: ObservedLease | None) -> str | None:
    """The resourceVersion of an observed Lease, None when absent: what tells one write from the next."""
    return None if lease is None else lease.resource_version


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
