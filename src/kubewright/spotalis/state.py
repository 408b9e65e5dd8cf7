"""Spec 3.5: the effective type of each pod and the per-group counters the webhook and controllers share.

Pure: no I/O, no clock. One function decides what a pod counts as (`effective_type`), and one incremental
structure (`ClusterState`) keeps, per group G (a ReplicaSet or StatefulSet), how many survivors are spot
and on-demand, how many are leaving, how many are Ready, and which spot-intent pods are stuck
unschedulable. Upstream counted differently in its webhook and its controller (one skipped label-only
workloads, the other forced them on-demand), which is how it looped evictions; here both read the same
numbers.

Updates are incremental: a pod event touches its own contribution, a node event re-evaluates only the
pods on that node (owner and node indexes). Each update returns the groups it affected, so the caller can
re-enqueue their workloads (spec 3.4: "any change in these states re-enqueues the affected workloads").
`recount` is the from-scratch definition the incremental path is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kubewright.spotalis.classify import Capacity, NodeClassifier, NodeStatus
from kubewright.spotalis.records import CapacityRequest, NodeRecord, PodRecord, pod_key

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
PENDING = "Pending"


class Effective(StrEnum):
    """Spec 3.5's table: what a pod counts as."""

    GONE = "gone"
    LEAVING = "leaving"
    SPOT = "spot"
    ON_DEMAND = "on-demand"


_OF_CAPACITY = {Capacity.SPOT: Effective.SPOT, Capacity.ON_DEMAND: Effective.ON_DEMAND}


def effective_type(
    pod: PodRecord, node: NodeStatus | None, classifier: NodeClassifier, requested: Capacity | None = None
) -> Effective:
    """The effective type of `pod`; `node` is the status of `pod.node_name` (None: not in the cache).

    `requested` is `classifier.requested_capacity(...)` of the pod's capacity request when the caller has
    it memoised; otherwise it is computed here for unscheduled pods without an intent label.
    """
    if pod.deleted is not None or pod.phase in TERMINAL_PHASES:
        return Effective.GONE
    if pod.node_name is not None:
        # A node missing from the cache is gone (or not yet seen): its pods are not counted on it.
        if node is None or node.leaving:
            return Effective.LEAVING
        return _OF_CAPACITY[node.capacity]
    capacity = pod.intent
    if capacity is None:
        if requested is None:
            requested = classifier.requested_capacity(pod.request.node_selector, pod.request.terms)
        capacity = requested or classifier.unknown_node_type
    return _OF_CAPACITY[capacity]


def is_survivor(effective: Effective) -> bool:
    return effective is Effective.SPOT or effective is Effective.ON_DEMAND


def is_fallback_candidate(pod: PodRecord, effective: Effective) -> bool:
    """Spec 3.8, before the timeout: a spot-intent pod, unscheduled, Pending and `Unschedulable`."""
    return (
        effective is Effective.SPOT and pod.node_name is None and pod.phase == PENDING and pod.unschedulable
    )


def candidate_since(pod: PodRecord) -> float:
    """When the pod became unschedulable (PodScheduled's transition, else its creation)."""
    if pod.scheduled_changed is not None:
        return pod.scheduled_changed
    return pod.created if pod.created is not None else 0.0


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """Counters of one group (or, summed with `+`, of a workload's groups)."""

    spot: int = 0  # S: survivors on spot nodes, or unscheduled with spot intent
    on_demand: int = 0  # O
    leaving: int = 0  # on reclaiming, not-ready or vanished nodes
    ready: int = 0  # Ready and not terminating (the stability gate, spec 3.10)
    pending_spot: int = 0  # fallback candidates of any age (spec 3.8)

    @property
    def survivors(self) -> int:
        return self.spot + self.on_demand

    def __add__(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts(
            self.spot + other.spot,
            self.on_demand + other.on_demand,
            self.leaving + other.leaving,
            self.ready + other.ready,
            self.pending_spot + other.pending_spot,
        )


ZERO = GroupCounts()


@dataclass(frozen=True, slots=True)
class PodState:
    """A pod with what it counts as and the node it is on, for the controllers' victim choice."""

    pod: PodRecord
    effective: Effective
    node: NodeStatus | None

    @property
    def survivor(self) -> bool:
        return is_survivor(self.effective)


@dataclass(frozen=True)
class WorkloadView:
    """A workload's groups at one instant: summed counters and each pod's state."""

    groups: tuple[str, ...]
    counts: GroupCounts
    pods: tuple[PodState, ...]

    def of_type(self, effective: Effective) -> list[PodState]:
        return [p for p in self.pods if p.effective is effective]

    def fallback_candidates(self, now: float, timeout: float) -> list[PodRecord]:
        """Candidates unschedulable for longer than `timeout` seconds (wall clock, like pod timestamps)."""
        return [
            p.pod
            for p in self.pods
            if is_fallback_candidate(p.pod, p.effective) and now - candidate_since(p.pod) > timeout
        ]


@dataclass(frozen=True, slots=True)
class NodeChange:
    """What a node event or a reconfiguration did: groups to re-enqueue, nodes newly unclassifiable."""

    groups: frozenset[str]
    newly_unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Contribution:
    group: str
    effective: Effective
    ready: bool
    candidate: float | None  # candidate_since, for fallback candidates


class ClusterState:
    """Pods and nodes of the informer caches, with incremental per-group counters."""

    def __init__(self, classifier: NodeClassifier) -> None:
        self._classifier = classifier
        self._pods: dict[str, PodRecord] = {}
        self._nodes: dict[str, NodeRecord] = {}
        self._status: dict[str, NodeStatus] = {}
        self._by_group: dict[str, set[str]] = {}
        self._by_node: dict[str, set[str]] = {}
        self._contrib: dict[str, _Contribution] = {}
        self._tally: dict[str, list[int]] = {}
        self._candidates: dict[str, dict[str, float]] = {}
        self._requested: dict[CapacityRequest, Capacity | None] = {}
        self._reported_unknown: set[str] = set()

    @property
    def classifier(self) -> NodeClassifier:
        return self._classifier

    # -- reading --------------------------------------------------------------------------------

    def counts(self, group: str) -> GroupCounts:
        tally = self._tally.get(group)
        return GroupCounts(*tally) if tally is not None else ZERO

    def survivor_counts(self, group: str, exclude_name: str | None = None) -> GroupCounts:
        """Spec 3.6 step 4: G's counters without any pod named `exclude_name` [compat]."""
        counts = self.counts(group)
        if not exclude_name:
            return counts
        namespace = group.partition("/")[0]
        contrib = self._contrib.get(pod_key(namespace, exclude_name))
        if contrib is None or contrib.group != group:
            return counts
        if contrib.effective is Effective.SPOT:
            return GroupCounts(
                counts.spot - 1, counts.on_demand, counts.leaving, counts.ready, counts.pending_spot
            )
        if contrib.effective is Effective.ON_DEMAND:
            return GroupCounts(
                counts.spot, counts.on_demand - 1, counts.leaving, counts.ready, counts.pending_spot
            )
        return counts

    def all_counts(self) -> dict[str, GroupCounts]:
        return {group: GroupCounts(*tally) for group, tally in self._tally.items()}

    def groups(self) -> list[str]:
        return list(self._by_group)

    def pod(self, namespace: str, name: str) -> PodRecord | None:
        return self._pods.get(pod_key(namespace, name))

    def effective(self, namespace: str, name: str) -> Effective | None:
        contrib = self._contrib.get(pod_key(namespace, name))
        return contrib.effective if contrib is not None else None

    def pods_in(self, group: str) -> list[PodRecord]:
        return [self._pods[k] for k in self._by_group.get(group, ())]

    def pods_on(self, node_name: str) -> list[PodRecord]:
        return [self._pods[k] for k in self._by_node.get(node_name, ())]

    def node(self, name: str) -> NodeRecord | None:
        return self._nodes.get(name)

    def node_status(self, name: str) -> NodeStatus | None:
        return self._status.get(name)

    def nodes(self) -> list[NodeStatus]:
        return list(self._status.values())

    def candidates(self, group: str) -> Mapping[str, float]:
        """Fallback candidates of `group` (pod key -> since when), of any age."""
        return dict(self._candidates.get(group, {}))

    def view(self, groups: Iterable[str]) -> WorkloadView:
        names = tuple(dict.fromkeys(groups))
        total = ZERO
        pods: list[PodState] = []
        for group in names:
            total = total + self.counts(group)
            for key in sorted(self._by_group.get(group, ())):
                pod = self._pods[key]
                node = self._status.get(pod.node_name) if pod.node_name is not None else None
                pods.append(PodState(pod, self._contrib[key].effective, node))
        return WorkloadView(names, total, tuple(pods))

    # -- pods -------------------------------------------------------------------------------------

    def upsert_pod(self, pod: PodRecord) -> frozenset[str]:
        """Add or replace a pod; returns the groups whose counts or pods changed."""
        key = pod.key
        group = pod.group
        if group is None:
            return self.remove_pod(pod.namespace, pod.name)
        affected = {group}
        old = self._pods.get(key)
        if old is not None:
            affected.add(self._detach(key, old))
        self._pods[key] = pod
        self._by_group.setdefault(group, set()).add(key)
        self._tally.setdefault(group, [0, 0, 0, 0, 0])
        if pod.node_name is not None:
            self._by_node.setdefault(pod.node_name, set()).add(key)
        self._apply(key, self._contribution(pod, group), +1)
        return frozenset(affected)

    def remove_pod(self, namespace: str, name: str) -> frozenset[str]:
        key = pod_key(namespace, name)
        old = self._pods.get(key)
        if old is None:
            return frozenset()
        return frozenset({self._detach(key, old)})

    def _detach(self, key: str, pod: PodRecord) -> str:
        contrib = self._contrib[key]
        self._apply(key, contrib, -1)
        del self._pods[key]
        group = contrib.group
        members = self._by_group[group]
        members.discard(key)
        if not members:
            del self._by_group[group]
            del self._tally[group]
        if pod.node_name is not None:
            on_node = self._by_node[pod.node_name]
            on_node.discard(key)
            if not on_node:
                del self._by_node[pod.node_name]
        return group

    def _contribution(self, pod: PodRecord, group: str) -> _Contribution:
        node = self._status.get(pod.node_name) if pod.node_name is not None else None
        requested = None
        if pod.node_name is None and pod.intent is None:
            request = pod.request
            if request not in self._requested:
                self._requested[request] = self._classifier.requested_capacity(
                    request.node_selector, request.terms
                )
            requested = self._requested[request]
        effective = effective_type(pod, node, self._classifier, requested)
        return _Contribution(
            group,
            effective,
            pod.ready and pod.deleted is None,
            candidate_since(pod) if is_fallback_candidate(pod, effective) else None,
        )

    def _apply(self, key: str, contrib: _Contribution, sign: int) -> None:
        tally = self._tally[contrib.group]
        if contrib.effective is Effective.SPOT:
            tally[0] += sign
        elif contrib.effective is Effective.ON_DEMAND:
            tally[1] += sign
        elif contrib.effective is Effective.LEAVING:
            tally[2] += sign
        if contrib.ready:
            tally[3] += sign
        if contrib.candidate is not None:
            tally[4] += sign
            if sign > 0:
                self._candidates.setdefault(contrib.group, {})[key] = contrib.candidate
            else:
                group_candidates = self._candidates[contrib.group]
                del group_candidates[key]
                if not group_candidates:
                    del self._candidates[contrib.group]
        if sign > 0:
            self._contrib[key] = contrib
        else:
            del self._contrib[key]

    def _reevaluate(self, keys: Iterable[str]) -> set[str]:
        affected: set[str] = set()
        for key in list(keys):
            old = self._contrib[key]
            new = self._contribution(self._pods[key], old.group)
            if new != old:
                self._apply(key, old, -1)
                self._apply(key, new, +1)
                affected.add(old.group)
        return affected

    # -- nodes ------------------------------------------------------------------------------------

    def upsert_node(self, node: NodeRecord) -> NodeChange:
        status = self._classifier.status(node)
        old = self._status.get(node.name)
        self._nodes[node.name] = node
        self._status[node.name] = status
        newly_unknown = self._note_unknown(status)
        if old == status:
            return NodeChange(frozenset(), newly_unknown)
        affected = self._reevaluate(self._by_node.get(node.name, ()))
        if old is None or (old.reclaim, old.ready) != (status.reclaim, status.ready):
            # Reclaim reason and readiness order floor-repair victims even when the counts stay.
            affected |= {self._contrib[k].group for k in self._by_node.get(node.name, ())}
        return NodeChange(frozenset(affected), newly_unknown)

    def remove_node(self, name: str) -> NodeChange:
        if self._nodes.pop(name, None) is None:
            return NodeChange(frozenset())
        del self._status[name]
        self._reported_unknown.discard(name)
        affected = self._reevaluate(self._by_node.get(name, ()))
        affected |= {self._contrib[k].group for k in self._by_node.get(name, ())}
        return NodeChange(frozenset(affected))

    def _note_unknown(self, status: NodeStatus) -> tuple[str, ...]:
        if not status.unknown:
            self._reported_unknown.discard(status.name)
            return ()
        if status.name in self._reported_unknown:
            return ()
        self._reported_unknown.add(status.name)
        return (status.name,)

    def reconfigure(self, classifier: NodeClassifier) -> NodeChange:
        """Swap the classifier (config reload, spec 3.13): reclassify every node and re-count."""
        before = self.all_counts()
        self._classifier = classifier
        self._requested.clear()
        newly_unknown: list[str] = []
        for name, node in self._nodes.items():
            status = classifier.status(node)
            self._status[name] = status
            newly_unknown.extend(self._note_unknown(status))
        affected = self._reevaluate(self._contrib)
        after = self.all_counts()
        affected |= {g for g in after if before.get(g) != after[g]}
        return NodeChange(frozenset(affected), tuple(newly_unknown))


def recount(
    pods: Iterable[PodRecord], nodes: Iterable[NodeRecord], classifier: NodeClassifier
) -> dict[str, GroupCounts]:
    """The counters from scratch: the definition `ClusterState` maintains incrementally."""
    status = {n.name: classifier.status(n) for n in nodes}
    tallies: dict[str, GroupCounts] = {}
    for pod in pods:
        group = pod.group
        if group is None:
            continue
        node = status.get(pod.node_name) if pod.node_name is not None else None
        effective = effective_type(pod, node, classifier)
        tallies[group] = tallies.get(group, ZERO) + GroupCounts(
            spot=int(effective is Effective.SPOT),
            on_demand=int(effective is Effective.ON_DEMAND),
            leaving=int(effective is Effective.LEAVING),
            ready=int(pod.ready and pod.deleted is None),
            pending_spot=int(is_fallback_candidate(pod, effective)),
        )
    return tallies
