"""Spec 3.7-3.10: the leader-only reconciler of Deployments and StatefulSets, keyed `ns/Kind/name`.

One pass, level-based (it never looks at the event that woke it):
1. gone or out of scope: drop the per-key state;
2. unreadable annotations: one `ConfigurationError` Warning per distinct content, then wait for a change;
3. build the `ReplicaState` from `ClusterState` (the webhook's own counters) and ask `decide()`;
4. act: spot fallback (3.8), else floor repair (3.9), else rebalance (3.10), at most one disruptive
   eviction per pass, and requeue per spec 3.7's rules.

Writes are evictions (the Eviction API, so PDBs are enforced by the API server as well) and a metadata
merge patch of the two marker annotations; replicas, `/scale` and templates are never written. In
read-only mode every write becomes a `read-only: would ...` log line. Cooldowns and back-offs live on the
monotonic clock and are per tenure: `begin_tenure()` (called when this process starts leading) puts
every workload in cooldown, so a new leader never evicts right after the old one did.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from kubewright.runtime.clock import Clock
from kubewright.runtime.controller import Result
from kubewright.runtime.kube import Conflict, Forbidden, KubeError, NotFound, Obj, TooManyRequests
from kubewright.runtime.logs import get_logger
from kubewright.spotalis import constants as c
from kubewright.spotalis.annotations import Management, WorkloadReading, read_workload
from kubewright.spotalis.cache import NamespaceRecord, build_namespace_filter
from kubewright.spotalis.classify import LabelSelector, ReclaimReason
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.model import (
    Decision,
    DisruptionPolicy,
    DisruptionVerdict,
    NamespaceFilter,
    NextAction,
    PodDisruptionBudgetView,
    ReplicaState,
    WorkloadConfiguration,
)
from kubewright.spotalis.records import (
    DEPLOYMENT,
    REPLICA_SET,
    STATEFUL_SET,
    PodRecord,
    WorkloadRecord,
    group_key,
    parse_time,
)
from kubewright.spotalis.schedule import (
    DisruptionWindow,
    WindowLevel,
    WindowSetting,
    parse_cron,
)
from kubewright.spotalis.state import PENDING, ClusterState, Effective, PodState, WorkloadView

WORKLOAD_API_VERSION = "apps/v1"
WORKLOAD_KINDS = (DEPLOYMENT, STATEFUL_SET)
MARKER_WAIT_SECONDS = 2.0  # spec 3.8 step 3
MARKER_POLL_SECONDS = 0.05
MAX_THROTTLE_BACKOFF = 600.0  # 429: disruptionRetryInterval * 2^k, up to 10 m
MAX_ERROR_BACKOFF = 60.0  # other responses: 1 s -> 60 s
PDB_EVENT_INTERVAL = 600.0  # RebalanceBlockedByPDB at most every 10 min
_RECLAIM_RANK = {ReclaimReason.GONE: 0, ReclaimReason.TAINTED: 1, ReclaimReason.CORDONED: 2}

log = get_logger("kubewright.spotalis.controllers.workload")


# -- collaborators (structural: the real ones are SpotalisCache, KubeClient and EventRecorder) -----------


class WorkloadCache(Protocol):
    def workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None: ...

    def namespace(self, name: str) -> NamespaceRecord | None: ...


class KubeWriter(Protocol):
    async def evict(self, name: str, namespace: str, *, uid: str | None = None) -> None: ...

    async def merge_patch(
        self, api_version: str, kind: str, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj: ...

    async def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]: ...


class EventSink(Protocol):
    def normal(self, obj: Obj, reason: str, message: str) -> None: ...

    def warning(self, obj: Obj, reason: str, message: str) -> None: ...


class ControllerMetrics:
    """The controller's counters (spec 7.1 names); to move into `spotalis.metrics` with the gauges."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.reconciliations = PromCounter(
            c.METRIC_RECONCILIATIONS.removesuffix("_total"),
            "Controller actions taken (or held back), by workload, action and result",
            [*c.WORKLOAD_LABELS, c.LABEL_ACTION, c.LABEL_RESULT],
            registry=registry,
        )
        self.evictions = PromCounter(
            c.METRIC_EVICTIONS.removesuffix("_total"),
            "Pods evicted by the controller, by action",
            [c.LABEL_ACTION],
            registry=registry,
        )
        self.blocked_by_pdb = PromCounter(
            c.METRIC_REBALANCING_BLOCKED_BY_PDB.removesuffix("_total"),
            "Evictions held back by a PodDisruptionBudget pre-check",
            [c.LABEL_NAMESPACE, c.LABEL_WORKLOAD, c.LABEL_PDB_NAME],
            registry=registry,
        )
        self.spot_fallbacks = PromCounter(
            c.METRIC_SPOT_FALLBACKS.removesuffix("_total"),
            "Spot fallbacks started (marker set), by namespace",
            [c.LABEL_NAMESPACE],
            registry=registry,
        )


@dataclass(frozen=True)
class EvictionRecord:
    """One eviction this process made (kept for tests and `explain`): monotonic time, workload, pod."""

    at: float
    key: str
    pod: str
    action: c.ReconcileAction


@dataclass
class _Track:
    """Per-workload memory of this tenure."""

    cooldown_until: float
    backoff_until: float = 0.0
    throttles: int = 0
    failures: int = 0
    config_error: str | None = None
    breach_reported: bool = False
    pdb_event_at: float | None = None


@dataclass
class _Pass:
    """What one reconcile pass works with."""

    key: str
    workload: WorkloadRecord
    reading: WorkloadReading
    config: WorkloadConfiguration
    view: WorkloadView
    total: int
    track: _Track
    mono: float
    now: datetime

    @property
    def ref(self) -> Obj:
        w = self.workload
        return {
            "apiVersion": WORKLOAD_API_VERSION,
            "kind": w.kind,
            "metadata": {"name": w.name, "namespace": w.namespace, "uid": w.uid},
        }


def parse_key(key: str) -> tuple[str, str, str] | None:
    """`ns/Kind/name` of a Deployment or StatefulSet, else None."""
    parts = key.split("/")
    if len(parts) != 3 or parts[1] not in WORKLOAD_KINDS or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


def workload_key(namespace: str, kind: str, name: str) -> str:
    return f"{namespace}/{kind}/{name}"


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def victim_order(
    candidates: Iterable[PodState], kind: str, workload_pods: Sequence[PodState]
) -> list[PodState]:
    """Spec 3.10: StatefulSet highest ordinal first; Deployment lowest deletion-cost, then the node with
    the most pods of this workload, then newest, then name."""
    pods = list(candidates)
    if kind == STATEFUL_SET:
        return sorted(pods, key=lambda p: (-(p.pod.ordinal if p.pod.ordinal is not None else -1), p.pod.name))
    per_node = Counter(p.pod.node_name for p in workload_pods if p.pod.node_name and not p.pod.deleting)

    def rank(p: PodState) -> tuple[int, int, float, str]:
        on_node = per_node[p.pod.node_name] if p.pod.node_name else 0
        return (p.pod.deletion_cost, -on_node, -(p.pod.created or 0.0), p.pod.name)

    return sorted(pods, key=rank)


def floor_victims(view: WorkloadView, kind: str) -> list[PodState]:
    """Spec 3.9: (a) pods on leaving nodes, deleted before tainted before cordoned, never on not-ready
    nodes; (b) else Ready spot survivors in victim order."""
    leaving = [p for p in view.pods if p.effective is Effective.LEAVING and _evictable_leaving(p)]
    if leaving:
        ordered = victim_order(leaving, kind, view.pods)
        return sorted(ordered, key=_reclaim_rank)  # stable: victim order within one reason
    return victim_order(_ready_spot(view), kind, view.pods)


def _reclaim_rank(p: PodState) -> int:
    if p.node is None or p.node.reclaim is None:
        return 0  # the node is gone from the cache
    return _RECLAIM_RANK[p.node.reclaim]


def _evictable_leaving(p: PodState) -> bool:
    if p.pod.deleting:
        return False
    return p.node is None or (p.node.ready and p.node.reclaim is not None)


def _ready_spot(view: WorkloadView) -> list[PodState]:
    return [
        p
        for p in view.of_type(Effective.SPOT)
        if p.pod.ready and p.pod.node_name is not None and not p.pod.deleting
    ]


def _late_spot_pending(view: WorkloadView) -> list[PodRecord]:
    return [
        p.pod
        for p in view.of_type(Effective.SPOT)
        if p.pod.node_name is None and p.pod.phase == PENDING and not p.pod.deleting
    ]


def pdb_matches(pdb: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """policy/v1: an empty selector matches every pod of the namespace; a null one none."""
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return True
    try:
        return LabelSelector.from_dict(selector).matches(labels)
    except ValueError:
        return False


def pdb_view(pdb: Mapping[str, Any]) -> PodDisruptionBudgetView | None:
    spec = pdb.get("spec") or {}
    status = pdb.get("status") or {}
    allowed = status.get("disruptionsAllowed")
    try:
        return PodDisruptionBudgetView(
            name=str((pdb.get("metadata") or {}).get("name") or ""),
            min_available=spec.get("minAvailable"),
            max_unavailable=spec.get("maxUnavailable"),
            disruptions_allowed=allowed if isinstance(allowed, int) else None,
        )
    except ValueError:
        return None


class WorkloadReconciler:
    """`reconcile(key)` for the runtime Controller; see the module docstring."""

    def __init__(
        self,
        kube: KubeWriter,
        cache: WorkloadCache,
        state: ClusterState,
        config: SpotalisConfig,
        events: EventSink,
        clock: Clock,
        *,
        registry: CollectorRegistry | None = None,
        is_leader: Callable[[], bool] | None = None,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._state = state
        self._events = events
        self._clock = clock
        self._is_leader = is_leader or (lambda: True)
        self.metrics = ControllerMetrics(registry)
        self._tracks: dict[str, _Track] = {}
        self._tenure_start = clock.monotonic()
        self.history: list[EvictionRecord] = []
        self.config = config

    # -- configuration --------------------------------------------------------------------------------

    @property
    def config(self) -> SpotalisConfig:
        return self._config

    @config.setter
    def config(self, config: SpotalisConfig) -> None:
        """Swap the configuration (spec 3.13); cooldowns and back-offs already running are kept."""
        self._config = config
        self._filter: NamespaceFilter = build_namespace_filter(config)
        timing = config.controllers.workloadTiming
        self.cooldown = timing.cooldownPeriod.total_seconds()
        self.retry_interval = timing.disruptionRetryInterval.total_seconds()
        self.window_poll = timing.disruptionWindowPollInterval.total_seconds()
        self.interval = config.controllers.reconcileInterval.total_seconds()
        defaults = config.controllers.workloadDefaults
        self._defaults = WorkloadConfiguration(
            spot_percentage=defaults.spotPercentage, min_on_demand=defaults.minOnDemand
        )
        section = config.operator.disruptionWindow
        if section.configured and section.duration is not None:
            window = DisruptionWindow(parse_cron(section.schedule), section.duration)
            self._operator_window = WindowSetting(WindowLevel.OPERATOR, window=window)
        else:
            self._operator_window = WindowSetting(WindowLevel.OPERATOR)

    @property
    def read_only(self) -> bool:
        return self._config.operator.readOnlyMode

    def begin_tenure(self) -> None:
        """This process starts leading: forget the last tenure, and start every workload in cooldown."""
        self._tracks.clear()
        self._tenure_start = self._clock.monotonic()

    def _track(self, key: str) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(cooldown_until=self._tenure_start + self.cooldown)
        return track

    def forget(self, key: str) -> None:
        self._tracks.pop(key, None)

    # -- the pass ---------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        parsed = parse_key(key)
        if parsed is None:
            return None
        namespace, kind, name = parsed
        workload = self._cache.workload(kind, namespace, name)
        if workload is None or workload.deleting:
            self.forget(key)
            return None
        reading = self._read(workload)
        if reading is None or reading.management in (
            Management.NAMESPACE_NOT_ENABLED,
            Management.WORKLOAD_NOT_ENABLED,
        ):
            self.forget(key)
            return None
        track = self._track(key)
        if reading.management is Management.INVALID or reading.config is None:
            message = str(reading.error)
            if track.config_error != message:
                track.config_error = message
                log.warning("invalid workload configuration", workload=key, error=message)
                self._count(workload, c.ReconcileAction.REBALANCE, c.ReconcileResult.ERROR)
                if not self.read_only:
                    self._events.warning(_ref(workload), c.EventReason.CONFIGURATION_ERROR, message)
            return None
        track.config_error = None
        view = self._state.view(self._groups(workload))
        ctx = _Pass(
            key,
            workload,
            reading,
            reading.config,
            view,
            workload.replicas if workload.replicas is not None else 1,
            track,
            self._clock.monotonic(),
            self._clock.now(),
        )
        restored = await self._maybe_restore(ctx)
        if restored is not None:
            return restored
        replica_state = self._replica_state(ctx)
        decision = replica_state.decide()
        if not replica_state.floor_breached:
            track.breach_reported = False
        log.debug(
            "reconcile",
            workload=key,
            action=decision.action.value,
            reason=decision.reason,
            **{
                c.LOG_CURRENT_SPOT: replica_state.spot,
                c.LOG_CURRENT_ON_DEMAND: replica_state.on_demand,
                c.LOG_DESIRED_SPOT: decision.target.spot,
                c.LOG_DESIRED_ON_DEMAND: decision.target.on_demand,
            },
        )
        return await self._act(ctx, replica_state, decision)

    def _read(self, workload: WorkloadRecord) -> WorkloadReading | None:
        """Scope (spec 3.3) and configuration; None when the namespace is filtered out."""
        namespace = workload.namespace
        if namespace == self._config.operator.namespace:
            return None
        ns = self._cache.namespace(namespace)
        ns_labels: Mapping[str, str] | None = ns.labels if ns is not None else None
        if not self._filter.namespace_verdict(namespace, ns_labels).allowed:
            return None
        if not self._filter.require_namespace_label:
            ns_labels = {**(ns_labels or {}), c.ENABLED_LABEL: c.ENABLED_VALUE}
        return read_workload(
            namespace=namespace,
            namespace_labels=ns_labels,
            namespace_annotations=ns.annotations if ns is not None else None,
            workload_labels=workload.labels,
            workload_annotations=workload.annotations,
            defaults=self._defaults,
            operator_window=self._operator_window,
        )

    def _groups(self, workload: WorkloadRecord) -> list[str]:
        namespace = workload.namespace
        if workload.kind == STATEFUL_SET:
            return [group_key(namespace, STATEFUL_SET, workload.name)]
        prefix = f"{namespace}/{REPLICA_SET}/"
        groups = []
        for group in self._state.groups():
            if not group.startswith(prefix):
                continue
            rs = self._cache.workload(REPLICA_SET, namespace, group[len(prefix) :])
            owner = rs.owner if rs is not None else None
            if (
                owner is not None
                and owner.kind == DEPLOYMENT
                and owner.name == workload.name
                and (not owner.uid or not workload.uid or owner.uid == workload.uid)
            ):
                groups.append(group)
        return sorted(groups)

    def _fallback_timeout(self, config: WorkloadConfiguration) -> float | None:
        section = self._config.controllers.fallback
        if not section.enabled:
            return None
        timeout = config.effective_fallback_timeout(section.timeout)
        return timeout.total_seconds() if timeout is not None else None

    def _marker(self, workload: WorkloadRecord) -> float | None:
        return parse_time(workload.annotations.get(c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION))

    def _replica_state(self, ctx: _Pass) -> ReplicaState:
        view, w, total = ctx.view, ctx.workload, ctx.total
        now_ts = ctx.now.timestamp()
        marker = self._marker(w)
        spot_unavailable = marker is not None and marker > now_ts
        timeout = self._fallback_timeout(ctx.config)
        candidates = view.fallback_candidates(now_ts, timeout) if timeout is not None else []
        evictable = [p for p in view.pods if p.effective is Effective.LEAVING and _evictable_leaving(p)]
        counts = view.counts
        return ReplicaState(
            total=total,
            config=ctx.config,
            spot=counts.spot,
            on_demand=counts.on_demand,
            leaving=counts.leaving,
            evictable_leaving=len(evictable),
            ready_spot=len(_ready_spot(view)),
            fallback_candidates=len(candidates),
            pending_spot_intent=len(_late_spot_pending(view)) if spot_unavailable else 0,
            spot_unavailable=spot_unavailable,
            fallback_enabled=timeout is not None,
            stable=self._stable(w, total, counts.ready),
            rollout_in_progress=self._rollout(w, total, view),
            in_cooldown=ctx.mono < ctx.track.cooldown_until,
            backoff_pending=ctx.mono < ctx.track.backoff_until,
            window_open=ctx.reading.window.is_open(ctx.now),
        )

    @staticmethod
    def _stable(w: WorkloadRecord, total: int, cached_ready: int) -> bool:
        """Spec 3.10's stability gate."""
        st = w.status
        if st.observed_generation < w.generation or total <= 0 or cached_ready != total:
            return False
        if w.kind == STATEFUL_SET:
            if st.ready_replicas != total:
                return False
            if w.strategy == "OnDelete":
                return True
            return st.updated_replicas == total and st.current_revision == st.update_revision
        return (
            st.replicas == st.updated_replicas == st.ready_replicas == st.available_replicas == total
            and st.unavailable_replicas == 0
        )

    @staticmethod
    def _rollout(w: WorkloadRecord, total: int, view: WorkloadView) -> bool:
        st = w.status
        if st.observed_generation < w.generation:
            return True
        if w.kind == STATEFUL_SET:
            return w.strategy != "OnDelete" and st.current_revision != st.update_revision
        return st.updated_replicas != total or len(view.groups) > 1

    # -- actions ------------------------------------------------------------------------------------------

    async def _act(self, ctx: _Pass, rs: ReplicaState, decision: Decision) -> Result:
        action = decision.action
        if action is NextAction.FALLBACK:
            return await self._fallback(ctx, rs)
        if action is NextAction.FLOOR_REPAIR:
            victims = floor_victims(ctx.view, ctx.workload.kind)
            return await self._disrupt(ctx, rs, victims, c.ReconcileAction.FLOOR_REPAIR, decision.reason)
        if action is NextAction.MOVE_TO_ON_DEMAND:
            spot = [p for p in ctx.view.of_type(Effective.SPOT) if not p.pod.deleting]
            victims = victim_order(spot, ctx.workload.kind, ctx.view.pods)
            return await self._disrupt(ctx, rs, victims, c.ReconcileAction.REBALANCE, decision.reason)
        if action is NextAction.MOVE_TO_SPOT:
            od = [
                p
                for p in ctx.view.of_type(Effective.ON_DEMAND)
                if not p.pod.deleting and p.pod.node_name is not None
            ]
            victims = victim_order(od, ctx.workload.kind, ctx.view.pods)
            return await self._disrupt(ctx, rs, victims, c.ReconcileAction.REBALANCE, decision.reason)
        if action is NextAction.BLOCKED:
            return Result(requeue_after=self._blocked_delay(ctx, rs, decision))
        return Result(requeue_after=self.interval)

    def _blocked_delay(self, ctx: _Pass, rs: ReplicaState, decision: Decision) -> float:
        if decision.reason == "outside disruption window":
            start = ctx.reading.window.next_open(ctx.now)
            until = (start - ctx.now).total_seconds() if start is not None else math.inf
            return max(min(until, self.window_poll), 0.05)
        delay = self.interval
        if rs.backoff_pending:
            delay = ctx.track.backoff_until - ctx.mono
        elif rs.in_cooldown:
            delay = ctx.track.cooldown_until - ctx.mono
        return max(delay, 0.05)

    async def _disrupt(
        self,
        ctx: _Pass,
        rs: ReplicaState,
        victims: list[PodState],
        action: c.ReconcileAction,
        reason: str,
    ) -> Result:
        """At most one disruptive eviction: PDB pre-check, leadership re-check, then the Eviction API."""
        w = ctx.workload
        if not victims:
            return Result(requeue_after=self.interval)
        victim = victims[0].pod
        what = f"evict pod {victim.namespace}/{victim.name} of {ctx.key} ({action.value}: {reason})"
        if self.read_only:
            log.info(f"read-only: would {what}", workload=ctx.key, pod=victim.name)
            self._count(w, action, c.ReconcileResult.DRY_RUN)
            return Result(requeue_after=self.interval)
        verdict = await self._pdb_check(ctx, victim)
        if not verdict.allowed:
            return self._blocked_by_pdb(ctx, action, verdict)
        if not self._is_leader():
            return Result(requeue_after=self.interval)
        if action is c.ReconcileAction.FLOOR_REPAIR and not ctx.track.breach_reported:
            ctx.track.breach_reported = True
            self._events.warning(
                ctx.ref,
                c.EventReason.FLOOR_REPAIR,
                f"on-demand replicas {rs.on_demand} below the floor {rs.floor}; evicting pod {victim.name}",
            )
        log.info(
            c.MSG_EVICTING if action is c.ReconcileAction.REBALANCE else "Evicting pod to repair the floor",
            workload=ctx.key,
            pod=victim.name,
            reason=reason,
            **{
                c.LOG_CURRENT_SPOT: rs.spot,
                c.LOG_CURRENT_ON_DEMAND: rs.on_demand,
                c.LOG_DESIRED_SPOT: rs.target.spot,
                c.LOG_DESIRED_ON_DEMAND: rs.target.on_demand,
            },
        )
        return await self._evict_one(ctx, victim, action)

    async def _evict_one(self, ctx: _Pass, victim: PodRecord, action: c.ReconcileAction) -> Result:
        track, w = ctx.track, ctx.workload
        try:
            await self._kube.evict(victim.name, victim.namespace, uid=victim.uid)
        except (NotFound, Conflict):
            log.info("eviction target already gone", workload=ctx.key, pod=victim.name)
            return Result(requeue_after=min(self.cooldown, self.interval))
        except TooManyRequests as err:
            delay = min(self.retry_interval * 2**track.throttles, MAX_THROTTLE_BACKOFF)
            track.throttles += 1
            track.backoff_until = self._clock.monotonic() + delay
            log.info(
                "eviction refused (429); backing off",
                workload=ctx.key,
                pod=victim.name,
                retry_in=delay,
                error=str(err),
            )
            self._count(w, action, c.ReconcileResult.BLOCKED)
            return Result(requeue_after=delay)
        except KubeError as err:
            self._count(w, action, c.ReconcileResult.ERROR)
            if isinstance(err, Forbidden) or err.code == 500:
                track.backoff_until = self._clock.monotonic() + self.retry_interval
                log.warning("eviction failed; backing off", workload=ctx.key, pod=victim.name, error=str(err))
                return Result(requeue_after=self.retry_interval)
            return self._error_backoff(ctx, err)
        except Exception as err:  # transport: the queue back-off, 1 s -> 60 s
            self._count(w, action, c.ReconcileResult.ERROR)
            return self._error_backoff(ctx, err)
        now = self._clock.monotonic()
        track.cooldown_until = now + self.cooldown
        track.throttles = 0
        track.failures = 0
        self.history.append(EvictionRecord(now, ctx.key, victim.name, action))
        self.metrics.evictions.labels(action.value).inc()
        self._count(w, action, c.ReconcileResult.SUCCESS)
        if action is c.ReconcileAction.REBALANCE:
            self._events.normal(ctx.ref, c.EventReason.REBALANCE_EVICTION, f"evicted pod {victim.name}")
        return Result(requeue_after=self.cooldown)

    def _error_backoff(self, ctx: _Pass, err: Exception) -> Result:
        delay = min(2.0**ctx.track.failures, MAX_ERROR_BACKOFF)
        ctx.track.failures += 1
        log.warning("eviction failed", workload=ctx.key, error=f"{type(err).__name__}: {err}", retry_in=delay)
        return Result(requeue_after=delay)

    async def _pdb_check(self, ctx: _Pass, victim: PodRecord) -> DisruptionVerdict:
        """Spec 3.10's pre-check (DisruptionPolicy); a failed LIST lets the Eviction API decide."""
        try:
            pdbs = await self._kube.list("policy/v1", "PodDisruptionBudget", victim.namespace)
        except Exception as err:
            log.info("listing PodDisruptionBudgets failed; proceeding", workload=ctx.key, error=str(err))
            pdbs = []
        views = tuple(
            v for pdb in pdbs if pdb_matches(pdb, victim.labels) and (v := pdb_view(pdb)) is not None
        )
        policy = DisruptionPolicy(total_replicas=ctx.total, healthy=ctx.view.counts.ready, pdbs=views)
        return policy.check()

    def _blocked_by_pdb(self, ctx: _Pass, action: c.ReconcileAction, verdict: DisruptionVerdict) -> Result:
        w, track = ctx.workload, ctx.track
        pdb = verdict.pdb_name or ""
        self.metrics.blocked_by_pdb.labels(w.namespace, w.name, pdb).inc()
        self._count(w, action, c.ReconcileResult.BLOCKED)
        log.info(
            c.MSG_BLOCKED_BY_PDB,
            workload=ctx.key,
            reason=verdict.reason.value,
            **{c.LOG_PDB: pdb, c.LOG_DISRUPTIONS_ALLOWED: verdict.disruptions_allowed},
        )
        mono = self._clock.monotonic()
        if track.pdb_event_at is None or mono - track.pdb_event_at >= PDB_EVENT_INTERVAL:
            track.pdb_event_at = mono
            self._events.warning(
                ctx.ref,
                c.EventReason.REBALANCE_BLOCKED_BY_PDB,
                f"PodDisruptionBudget {pdb} allows no disruption ({verdict.reason.value})",
            )
        track.backoff_until = mono + self.retry_interval
        return Result(requeue_after=self.retry_interval)

    # -- fallback (3.8) -------------------------------------------------------------------------------------

    async def _fallback(self, ctx: _Pass, rs: ReplicaState) -> Result:
        w = ctx.workload
        now_ts = ctx.now.timestamp()
        timeout = self._fallback_timeout(ctx.config)
        candidates = ctx.view.fallback_candidates(now_ts, timeout) if timeout is not None else []
        victims = {p.name: p for p in candidates}
        if rs.spot_unavailable:
            victims.update((p.name, p) for p in _late_spot_pending(ctx.view))
        if self.read_only:
            log.info(
                f"read-only: would fall back to on-demand for {ctx.key} and evict {sorted(victims)}",
                workload=ctx.key,
            )
            self._count(w, c.ReconcileAction.FALLBACK, c.ReconcileResult.DRY_RUN)
            return Result(requeue_after=self.interval)
        if not self._is_leader():
            return Result(requeue_after=self.interval)
        if not rs.spot_unavailable:
            try:
                count = int(w.annotations.get(c.SPOT_FALLBACKS_ANNOTATION) or "0")
            except ValueError:
                count = 0
            count = max(count, 0)
            section = self._config.controllers.fallback
            seconds = section.backoff.total_seconds() * 2.0 ** min(count, 64)
            until = ctx.now + timedelta(seconds=min(seconds, section.maxBackoff.total_seconds()))
            patch: Obj = {
                "metadata": {
                    "annotations": {
                        c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION: format_time(until),
                        c.SPOT_FALLBACKS_ANNOTATION: str(count + 1),
                    }
                }
            }
            await self._kube.merge_patch(WORKLOAD_API_VERSION, w.kind, w.name, patch, w.namespace)
            await self._wait_marker(w, until)
            self.metrics.spot_fallbacks.labels(w.namespace).inc()
            self._events.warning(
                ctx.ref,
                c.EventReason.SPOT_FALLBACK,
                f"{len(candidates)} spot pod(s) unschedulable for over {timeout:g}s; spot unavailable until "
                f"{format_time(until)} (fallback {count + 1}); replacements go on-demand",
            )
            log.warning("spot fallback", workload=ctx.key, until=format_time(until), pods=sorted(victims))
        for pod in victims.values():
            try:
                await self._kube.evict(pod.name, pod.namespace, uid=pod.uid)
            except (NotFound, Conflict):
                continue
            except Exception as err:
                log.warning("fallback eviction failed", workload=ctx.key, pod=pod.name, error=str(err))
                continue
            self.history.append(
                EvictionRecord(self._clock.monotonic(), ctx.key, pod.name, c.ReconcileAction.FALLBACK)
            )
            self.metrics.evictions.labels(c.ReconcileAction.FALLBACK.value).inc()
        self._count(w, c.ReconcileAction.FALLBACK, c.ReconcileResult.SUCCESS)
        return Result(requeue_after=min(self.cooldown, self.interval))

    async def _wait_marker(self, w: WorkloadRecord, until: datetime) -> None:
        """Spec 3.8 step 3: up to 2 s for the cache to show the marker, so the webhook sees it too."""
        deadline = self._clock.monotonic() + MARKER_WAIT_SECONDS
        expected = until.timestamp() - 1.0
        while True:
            cached = self._cache.workload(w.kind, w.namespace, w.name)
            marker = self._marker(cached) if cached is not None else None
            if marker is not None and marker >= expected:
                return
            if self._clock.monotonic() >= deadline:
                log.info("marker not in the cache yet; evicting anyway", workload=w.key)
                return
            await self._clock.sleep(MARKER_POLL_SECONDS)  # poll: the workload informer's echo

    async def _maybe_restore(self, ctx: _Pass) -> Result | None:
        """After the marker expires, the first spot pod Ready since then clears both annotations."""
        w = ctx.workload
        marker = self._marker(w)
        if marker is None and c.SPOT_FALLBACKS_ANNOTATION not in w.annotations:
            return None
        if marker is not None and marker > ctx.now.timestamp():
            return None
        since = marker if marker is not None else 0.0
        proof = [p for p in _ready_spot(ctx.view) if (p.pod.created or 0.0) >= since]
        if not proof:
            return None
        if self.read_only:
            log.info(f"read-only: would clear the spot fallback marker of {ctx.key}", workload=ctx.key)
            return None
        patch: Obj = {
            "metadata": {
                "annotations": {c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION: None, c.SPOT_FALLBACKS_ANNOTATION: None}
            }
        }
        await self._kube.merge_patch(WORKLOAD_API_VERSION, w.kind, w.name, patch, w.namespace)
        self._events.normal(
            ctx.ref, c.EventReason.SPOT_RESTORED, f"spot pod {proof[0].pod.name} is Ready; fallback cleared"
        )
        log.info("spot restored", workload=ctx.key, pod=proof[0].pod.name)
        return Result(requeue_after=min(self.cooldown, self.interval))

    def _count(self, w: WorkloadRecord, action: c.ReconcileAction, result: c.ReconcileResult) -> None:
        self.metrics.reconciliations.labels(w.namespace, w.name, w.kind, action.value, result.value).inc()


def _ref(w: WorkloadRecord) -> Obj:
    return {
        "apiVersion": WORKLOAD_API_VERSION,
        "kind": w.kind,
        "metadata": {"name": w.name, "namespace": w.namespace, "uid": w.uid},
    }


__all__ = [
    "EvictionRecord",
    "KubeWriter",
    "WorkloadCache",
    "WorkloadReconciler",
    "floor_victims",
    "parse_key",
    "victim_order",
    "workload_key",
]
