"""The entities of spec 3.1 as pydantic models: what a workload asked for, where its replicas are and
what to do next, leadership health, the PDB pre-check and the namespace filter.

All are pure: times are passed in (monotonic seconds, or aware datetimes), nothing reads a clock or the
API. The controller builds a `ReplicaState` from its caches and asks `decide()`; the same object backs
`explain`, so what the operator does and what it says it would do cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubewright.spotalis import constants as c
from kubewright.spotalis.constants import DisruptionReason
from kubewright.spotalis.split import Split, desired_split

MIN_FALLBACK_TIMEOUT = timedelta(seconds=10)


class NodeType(StrEnum):
    """A node's capacity type (spec 3.4); `unknown` matches no rule and is treated as `unknownNodeType`."""

    SPOT = c.CapacityType.SPOT.value
    ON_DEMAND = c.CapacityType.ON_DEMAND.value
    UNKNOWN = "unknown"


# --- WorkloadConfiguration (3.2)  ---------------------------------------------------------------------------
class WorkloadConfiguration(BaseModel):
    """What a workload asked for. M > T is valid: the split clamps (upstream rejected it, then never
    called its own validation)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    spot_percentage: int = Field(0, ge=0, le=100)
    min_on_demand: int = Field(0, ge=0, le=10_000)
    # None: the operator's `fallback.timeout`; zero: fallback off for this workload.
    fallback_timeout: timedelta | None = None
    # True when neither ratio annotation is set (the label alone opts in with `workloadDefaults`).
    from_defaults: bool = False

    @field_validator("fallback_timeout")
    @classmethod
    def _fallback_timeout_rule(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value != timedelta(0) and value < MIN_FALLBACK_TIMEOUT:
            raise ValueError(f"fallback_timeout must be 0 (off) or at least 10s, got {value}")
        return value

    def split(self, total: int) -> Split:
        return desired_split(total, self.spot_percentage, self.min_on_demand)

    def effective_fallback_timeout(self, operator_default: timedelta | None) -> timedelta | None:
        """The timeout in force, or None when fallback is off for this workload."""
        timeout = self.fallback_timeout if self.fallback_timeout is not None else operator_default
        return None if timeout is None or timeout == timedelta(0) else timeout


# --- ReplicaState and the next action (3.8 - 3.10) --------------------------------------------------------
class NextAction(StrEnum):
    NONE = "none"
    FALLBACK = "fallback"
    FLOOR_REPAIR = "floor_repair"
    MOVE_TO_ON_DEMAND = "move_to_on_demand"
    MOVE_TO_SPOT = "move_to_spot"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Decision:
    """The next action and why; for `blocked`, `wanted` is the action a gate is holding back."""

    action: NextAction
    reason: str
    target: Split
    wanted: NextAction | None = None


class ReplicaState(BaseModel):
    """One workload's replicas as the controller counts them (spec 3.5), plus the gates that apply.

    Counts are of pods, by effective type: `spot`/`on_demand` are survivors (unscheduled pods count by
    their intent), `leaving` are on reclaiming, not-ready or unknown nodes, `evictable_leaving` are those
    of them not on not-ready nodes (which are never evicted). Read-only mode is not a field: the caller
    turns whatever is decided into a dry run, so its log can say what it would have done.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0)
    config: WorkloadConfiguration
    spot: int = Field(0, ge=0)
    on_demand: int = Field(0, ge=0)
    leaving: int = Field(0, ge=0)
    evictable_leaving: int = Field(0, ge=0)
    ready_spot: int = Field(0, ge=0)
    # 3.8: spot-intent pods unscheduled, Pending and Unschedulable beyond the timeout.
    fallback_candidates: int = Field(0, ge=0)
    # Spot-intent Pending pods; while the marker is active they are evicted at once.
    pending_spot_intent: int = Field(0, ge=0)
    spot_unavailable: bool = False
    fallback_enabled: bool = True
    stable: bool = False
    rollout_in_progress: bool = False
    in_cooldown: bool = False
    backoff_pending: bool = False
    window_open: bool = True

    @model_validator(mode="after")
    def _consistent_counts(self) -> Self:
        if self.evictable_leaving > self.leaving:
            raise ValueError(f"evictable_leaving ({self.evictable_leaving}) exceeds leaving ({self.leaving})")
        if self.ready_spot > self.spot:
            raise ValueError(f"ready_spot ({self.ready_spot}) exceeds spot ({self.spot})")
        return self

    @property
    def target(self) -> Split:
        return self.config.split(self.total)

    @property
    def floor(self) -> int:
        return min(self.config.min_on_demand, self.total)

    @property
    def floor_breached(self) -> bool:
        return self.on_demand < self.floor

    def next_action(self) -> NextAction:
        return self.decide().action

    def decide(self) -> Decision:
        """Fallback first, then floor repair, then rebalance (spec 3.7 step 4)."""
        target = self.target
        if self.total == 0:
            return Decision(NextAction.NONE, "no replicas", target)
        if self.fallback_enabled and (
            self.fallback_candidates > 0 or (self.spot_unavailable and self.pending_spot_intent > 0)
        ):
            # Pending pods bypass PDBs and fallback evictions do not count as disruptive: no gates.
            return Decision(NextAction.FALLBACK, "spot-intent pods cannot schedule", target)
        if self.floor_breached:
            return self._floor_repair(target)
        return self._rebalance(target)

    def _floor_repair(self, target: Split) -> Decision:
        # The floor is a guarantee: the stability gate and the window are skipped; cooldown and
        # back-off still apply (and PDBs, checked by the caller before evicting).
        if self.evictable_leaving > 0:
            reason = "on-demand floor breached; evict a pod on a leaving node"
        elif self.spot + self.on_demand + self.leaving < self.total:
            # Replacements are on their way and the webhook places them on-demand first; evicting a
            # spot pod now would overshoot and cost a second eviction to undo.
            return Decision(NextAction.NONE, "on-demand floor breached; replacements pending", target)
        elif self.rollout_in_progress:
            return self._blocked(NextAction.FLOOR_REPAIR, "rollout in progress", target)
        elif self.ready_spot > 0:
            reason = "on-demand floor breached; evict a Ready spot pod"
        else:
            return self._blocked(
                NextAction.FLOOR_REPAIR, "no evictable pod (not-ready nodes are left)", target
            )
        if self.backoff_pending:
            return self._blocked(NextAction.FLOOR_REPAIR, "eviction back-off pending", target)
        if self.in_cooldown:
            return self._blocked(NextAction.FLOOR_REPAIR, "in cooldown", target)
        return Decision(NextAction.FLOOR_REPAIR, reason, target)

    def _rebalance(self, target: Split) -> Decision:
        if self.on_demand < target.on_demand:
            wanted, reason = NextAction.MOVE_TO_ON_DEMAND, "below the on-demand target; evict a spot pod"
        elif self.spot < target.spot and self.on_demand - 1 >= target.on_demand:
            if self.spot_unavailable:
                return self._blocked(NextAction.MOVE_TO_SPOT, "spot unavailable (fallback marker)", target)
            wanted, reason = NextAction.MOVE_TO_SPOT, "below the spot target; evict an on-demand pod"
        else:
            at_target = (self.spot, self.on_demand) == tuple(target)
            return Decision(
                NextAction.NONE, "at target" if at_target else "no eviction moves toward the target", target
            )
        for gate, why in (
            (self.leaving > 0, "pods on leaving nodes"),
            (not self.stable, "workload not stable"),
            (self.backoff_pending, "eviction back-off pending"),
            (self.in_cooldown, "in cooldown"),
            (not self.window_open, "outside disruption window"),
        ):
            if gate:
                return self._blocked(wanted, why, target)
        return Decision(wanted, reason, target)

    @staticmethod
    def _blocked(wanted: NextAction, reason: str, target: Split) -> Decision:
        return Decision(NextAction.BLOCKED, reason, target, wanted=wanted)


# --- LeadershipState (3.11)  --------------------------------------------------------------------------------
class LeadershipHealth(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    UNHEALTHY = "unhealthy"


class LeadershipState(BaseModel):
    """This process's view of its leadership; times are monotonic seconds.

    A follower is healthy (upstream reported "follower" as healthy); a leader's health is the time since
    its last successful renewal against retryPeriod and renewDeadline.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    identity: str
    is_leader: bool = False
    holder: str = ""
    last_renew: float | None = None
    transitions: int = Field(0, ge=0)
    lease_duration: float = Field(15.0, gt=0)
    renew_deadline: float = Field(10.0, gt=0)
    retry_period: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _timings(self) -> Self:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election timings must satisfy retryPeriod < renewDeadline < leaseDuration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )
        return self

    def since_last_renew(self, now: float) -> float:
        return math.inf if self.last_renew is None else max(now - self.last_renew, 0.0)

    def health(self, now: float) -> LeadershipHealth:
        if not self.is_leader:
            return LeadershipHealth.HEALTHY
        since = self.since_last_renew(now)
        if since <= self.retry_period:
            return LeadershipHealth.HEALTHY
        if since <= self.renew_deadline:
            return LeadershipHealth.WARNING
        return LeadershipHealth.UNHEALTHY

    def should_step_down(self, now: float) -> bool:
        return self.is_leader and self.since_last_renew(now) > self.renew_deadline

    def lease_expired(self, now: float) -> bool:
        return self.since_last_renew(now) > self.lease_duration

    def became_leader(self, now: float) -> LeadershipState:
        transitions = self.transitions + (0 if self.holder == self.identity else 1)
        return self.model_copy(
            update={"is_leader": True, "holder": self.identity, "last_renew": now, "transitions": transitions}
        )

    def renewed(self, now: float) -> LeadershipState:
        return self.model_copy(update={"last_renew": now})

    def observed_holder(self, holder: str, now: float) -> LeadershipState:
        """Another holder (or none) seen in the Lease; counts a transition when it changed."""
        if holder == self.holder:
            return self
        return self.model_copy(
            update={
                "holder": holder,
                "is_leader": holder == self.identity and self.is_leader,
                "last_renew": now,
                "transitions": self.transitions + 1,
            }
        )

    def stepped_down(self) -> LeadershipState:
        return self.model_copy(update={"is_leader": False})


# --- DisruptionPolicy: the PDB pre-check (3.10)  ------------------------------------------------------------
_PERCENT = re.compile(r"[0-9]{1,3}%")


class PodDisruptionBudgetView(BaseModel):
    """The part of a matching PDB the pre-check reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    min_available: int | str | None = None
    max_unavailable: int | str | None = None
    # status.disruptionsAllowed when the disruption controller has computed it.
    disruptions_allowed: int | None = None

    @field_validator("min_available", "max_unavailable")
    @classmethod
    def _int_or_percent(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"must be >= 0, got {value}")
        if isinstance(value, str) and not (_PERCENT.fullmatch(value) and int(value[:-1]) <= 100):
            raise ValueError(f"must be an integer or a percentage such as '50%', got {value!r}")
        return value


def scaled(value: int | str, total: int) -> int:
    """An int-or-percent against `total`, percentages rounded up (as the disruption controller does;
    upstream used T/2 for every percentage)."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value[:-1]) * total / 100)


@dataclass(frozen=True)
class DisruptionVerdict:
    allowed: bool
    reason: DisruptionReason
    pdb_name: str | None = None
    disruptions_allowed: int | None = None


class DisruptionPolicy(BaseModel):
    """May one more pod of this workload be evicted now?

    `healthy` counts the workload's Ready pods; `in_flight` counts pods already evicted and not yet gone.
    Evictions go one at a time, so one in flight is already too many.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    total_replicas: int = Field(ge=0)
    healthy: int = Field(ge=0)
    pdbs: tuple[PodDisruptionBudgetView, ...] = ()
    window_open: bool = True
    in_flight: int = Field(0, ge=0)
    max_in_flight: int = Field(1, ge=1)

    def check(self) -> DisruptionVerdict:
        if not self.window_open:
            return DisruptionVerdict(False, DisruptionReason.OUTSIDE_DISRUPTION_WINDOW)
        if self.in_flight >= self.max_in_flight:
            return DisruptionVerdict(False, DisruptionReason.TOO_MANY_DISRUPTED)
        if not self.pdbs:
            return DisruptionVerdict(True, DisruptionReason.NO_PDB)
        least: int | None = None
        for pdb in self.pdbs:
            allowed, reason = self._allowed_by(pdb)
            if allowed is None:
                continue
            if allowed < 1:
                return DisruptionVerdict(False, reason, pdb.name, max(allowed, 0))
            least = allowed if least is None else min(least, allowed)
        return DisruptionVerdict(True, DisruptionReason.ALLOWED, disruptions_allowed=least)

    def _allowed_by(self, pdb: PodDisruptionBudgetView) -> tuple[int | None, DisruptionReason]:
        """How many more pods this PDB lets go (None: no limit known) and the reason if it is none."""
        expected = self.total_replicas
        own: int | None = None
        reason = DisruptionReason.MIN_AVAILABLE_VIOLATED
        if pdb.max_unavailable is not None:
            reason = DisruptionReason.MAX_UNAVAILABLE_REACHED
            own = self.healthy - (expected - scaled(pdb.max_unavailable, expected))
        elif pdb.min_available is not None:
            own = self.healthy - scaled(pdb.min_available, expected)
        # The API server's own figure wins when stricter: it is what the Eviction API enforces.
        limits = [limit for limit in (own, pdb.disruptions_allowed) if limit is not None]
        return (min(limits) if limits else None), reason


# --- NamespaceFilter (3.3)  ---------------------------------------------------------------------------------
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


class FilterReason(StrEnum):
    ALLOWED = "allowed"
    NOT_WATCHED = "not-watched"
    EXCLUDED_NAME = "excluded-name"
    EXCLUDED_PATTERN = "excluded-pattern"
    NOT_INCLUDED = "not-included"
    NAMESPACE_MISSING = "namespace-missing"
    NAMESPACE_NOT_ENABLED = "namespace-not-enabled"
    WORKLOAD_NOT_ENABLED = "workload-not-enabled"


@dataclass(frozen=True)
class FilterVerdict:
    allowed: bool
    reason: FilterReason


_ALLOWED = FilterVerdict(True, FilterReason.ALLOWED)


class NamespaceFilter(BaseModel):
    """Which namespaces and workloads are in scope; shared by the webhook and the controllers.

    Checked in order: `watchNamespaces`, excluded names then patterns (`re.fullmatch`), includes (if
    any), the Namespace label, the workload label. A namespace missing from the cache is denied
    (upstream allowed it). `default` is not excluded (upstream excluded it by default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    watch_namespaces: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = DEFAULT_EXCLUDED_NAMESPACES
    exclude_patterns: tuple[str, ...] = ()
    include_names: tuple[str, ...] = ()
    include_patterns: tuple[str, ...] = ()
    require_namespace_label: bool = True
    # Monotonic seconds of the last recalculation, for `is_stale`.
    last_updated: float | None = None

    _exclude: tuple[re.Pattern[str], ...] = PrivateAttr(default=())
    _include: tuple[re.Pattern[str], ...] = PrivateAttr(default=())

    @field_validator("exclude_patterns", "include_patterns")
    @classmethod
    def _compilable(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid regular expression {pattern!r}: {error}") from None
        return patterns

    def model_post_init(self, context: object, /) -> None:
        self._exclude = tuple(re.compile(pattern) for pattern in self.exclude_patterns)
        self._include = tuple(re.compile(pattern) for pattern in self.include_patterns)

    def watches(self, namespace: str) -> bool:
        """Step 1 alone: also scopes the informers (except Nodes)."""
        return not self.watch_namespaces or namespace in self.watch_namespaces

    def namespace_verdict(self, namespace: str, labels: Mapping[str, str] | None) -> FilterVerdict:
        """Steps 1-4; `labels` None means the Namespace is not in the cache."""
        if not self.watches(namespace):
            return FilterVerdict(False, FilterReason.NOT_WATCHED)
        if namespace in self.exclude_names:
            return FilterVerdict(False, FilterReason.EXCLUDED_NAME)
        if any(pattern.fullmatch(namespace) for pattern in self._exclude):
            return FilterVerdict(False, FilterReason.EXCLUDED_PATTERN)
        if (self.include_names or self._include) and not (
            namespace in self.include_names or any(pattern.fullmatch(namespace) for pattern in self._include)
        ):
            return FilterVerdict(False, FilterReason.NOT_INCLUDED)
        if labels is None:
            return FilterVerdict(False, FilterReason.NAMESPACE_MISSING)
        if self.require_namespace_label and labels.get(c.ENABLED_LABEL) != c.ENABLED_VALUE:
            return FilterVerdict(False, FilterReason.NAMESPACE_NOT_ENABLED)
        return _ALLOWED

    def workload_verdict(
        self,
        namespace: str,
        namespace_labels: Mapping[str, str] | None,
        workload_labels: Mapping[str, str] | None,
    ) -> FilterVerdict:
        """Steps 1-5."""
        verdict = self.namespace_verdict(namespace, namespace_labels)
        if not verdict.allowed:
            return verdict
        if not workload_labels or workload_labels.get(c.ENABLED_LABEL) != c.ENABLED_VALUE:
            return FilterVerdict(False, FilterReason.WORKLOAD_NOT_ENABLED)
        return _ALLOWED

    def is_stale(self, max_age: float, now: float | None = None) -> bool:
        """Whether the filter is older than `max_age` seconds; `is_stale(0)` is always stale [compat]."""
        if max_age <= 0 or self.last_updated is None or now is None:
            return True
        return now - self.last_updated > max_age

    def updated(self, now: float) -> NamespaceFilter:
        return self.model_copy(update={"last_updated": now})


class NamespaceVerdicts:
    """Per-namespace verdicts (steps 1-4), dropped one by one on Namespace events.

    Upstream cleared everything every five minutes; here a Namespace event invalidates its own entry and
    a config swap replaces the filter, which clears all. Misses (Namespace not cached) are not kept, so
    the Namespace's ADDED event is seen at once.
    """

    def __init__(self, namespace_filter: NamespaceFilter) -> None:
        self._filter = namespace_filter
        self._verdicts: dict[str, FilterVerdict] = {}

    @property
    def filter(self) -> NamespaceFilter:
        return self._filter

    def verdict(self, namespace: str, labels: Mapping[str, str] | None) -> FilterVerdict:
        cached = self._verdicts.get(namespace)
        if cached is not None:
            return cached
        verdict = self._filter.namespace_verdict(namespace, labels)
        if verdict.reason is not FilterReason.NAMESPACE_MISSING:
            self._verdicts[namespace] = verdict
        return verdict

    def invalidate(self, namespace: str) -> None:
        self._verdicts.pop(namespace, None)

    def replace_filter(self, namespace_filter: NamespaceFilter) -> None:
        self._filter = namespace_filter
        self._verdicts.clear()

    def __len__(self) -> int:
        return len(self._verdicts)
