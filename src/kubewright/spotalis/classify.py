"""Spec 3.4: which capacity a node provides, whether it is being reclaimed, and what a pod asks for.

Pure: no I/O, no clock. Classification is ordered rules, first match wins: the configured `spotLabels`,
then `onDemandLabels`, then the built-in provider presets. Upstream knew only its configured selectors
(Karpenter by default) and missed GKE Spot; a node it could not classify silently counted as neither.
Here a node no rule matches takes `unknownNodeType`, and the result says so, so the caller can log it
once.

The same label rules read a pod's nodeSelector and required node affinity, which is how an unscheduled
pod admitted without the webhook (failure policy `Ignore`) still gets a capacity type (spec 3.5).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

# Label and taint keys of the spec 3.4 table. Local until constants.py lands; to be reconciled there.
KARPENTER_CAPACITY_TYPE = "karpenter.sh/capacity-type"
EKS_CAPACITY_TYPE = "eks.amazonaws.com/capacityType"
GKE_SPOT = "cloud.google.com/gke-spot"
GKE_PREEMPTIBLE = "cloud.google.com/gke-preemptible"
GKE_NODEPOOL = "cloud.google.com/gke-nodepool"
AKS_SCALESET_PRIORITY = "kubernetes.azure.com/scalesetpriority"
AKS_AGENTPOOL = "kubernetes.azure.com/agentpool"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NODE_READY = "Ready"

# Spec 3.4 reclaimTaints defaults, with the source each comes from.
DEFAULT_RECLAIM_TAINTS: frozenset[str] = frozenset(
    {
        "karpenter.sh/disrupted",  # kubernetes-sigs/karpenter pkg/apis/v1/taints.go
        "karpenter.sh/disruption",  # pre-v1 Karpenter
        "aws-node-termination-handler/spot-itn",  # aws/aws-node-termination-handler README
        "aws-node-termination-handler/asg-lifecycle-termination",
        "aws-node-termination-handler/scheduled-maintenance",
        "ToBeDeletedByClusterAutoscaler",  # kubernetes/autoscaler utils/deletetaint/delete.go
        "cloud.google.com/impending-node-termination",
    }
)

# Keys whose value alone says spot or on-demand. Pool keys (gke-nodepool, agentpool) are not among
# them: a pool can be either, so a pod pinned to a pool asks for no particular capacity.
BUILTIN_CAPACITY_KEYS: frozenset[str] = frozenset(
    {KARPENTER_CAPACITY_TYPE, EKS_CAPACITY_TYPE, GKE_SPOT, GKE_PREEMPTIBLE, AKS_SCALESET_PRIORITY}
)


class Capacity(StrEnum):
    """A node's capacity type; the values are those of the `spotalis.io/capacity-intent` label."""

    SPOT = "spot"
    ON_DEMAND = "on-demand"


class Provider(StrEnum):
    """Built-in classification presets, checked in this order unless `builtinProviders` says otherwise."""

    KARPENTER = "karpenter"
    EKS = "eks"
    GKE = "gke"
    AKS = "aks"


ALL_PROVIDERS: tuple[Provider, ...] = tuple(Provider)


class Operator(StrEnum):
    """Selector operators: label selectors use the first four, node selector requirements all six."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `matchExpressions` entry, with Kubernetes' matching semantics."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Requirement:
        """Decode `{key, operator, values}`; raises ValueError naming what is wrong."""
        key = raw.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"requirement {dict(raw)!r}: key must be a non-empty string")
        try:
            operator = Operator(str(raw.get("operator")))
        except ValueError:
            allowed = ", ".join(o.value for o in Operator)
            raise ValueError(f"requirement on {key!r}: operator must be one of {allowed}") from None
        values = raw.get("values") or ()
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"requirement on {key!r}: values must be a list of strings")
        if operator in (Operator.IN, Operator.NOT_IN) and not values:
            raise ValueError(f"requirement on {key!r}: {operator.value} needs at least one value")
        if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            raise ValueError(f"requirement on {key!r}: {operator.value} takes no values")
        if operator in (Operator.GT, Operator.LT) and (len(values) != 1 or not _is_int(values[0])):
            raise ValueError(f"requirement on {key!r}: {operator.value} needs one integer value")
        return cls(sys.intern(key), operator, tuple(sys.intern(v) for v in values))

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator is Operator.IN:
            return value is not None and value in self.values
        if self.operator is Operator.NOT_IN:
            return value is None or value not in self.values
        if self.operator is Operator.EXISTS:
            return value is not None
        if self.operator is Operator.DOES_NOT_EXIST:
            return value is None
        if value is None or not _is_int(value) or not self.values or not _is_int(self.values[0]):
            return False
        if self.operator is Operator.GT:
            return int(value) > int(self.values[0])
        return int(value) < int(self.values[0])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "operator": self.operator.value}
        if self.values:
            out["values"] = list(self.values)
        return out


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector (upstream's `spotLabels`/`onDemandLabels` entries): all parts must match."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        # Kubernetes reads an empty selector as "everything": every node would be spot.
        if not self.match_labels and not self.match_expressions:
            raise ValueError("node classifier selector: empty selector would match every node")
        for req in self.match_expressions:
            if req.operator in (Operator.GT, Operator.LT):
                raise ValueError(f"node classifier selector: label selectors do not support {req.operator}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LabelSelector:
        """Decode `{matchLabels, matchExpressions}` (the upstream YAML shape)."""
        labels = raw.get("matchLabels") or {}
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError("node classifier selector: matchLabels must map strings to strings")
        exprs = raw.get("matchExpressions") or []
        if not isinstance(exprs, list):
            raise ValueError("node classifier selector: matchExpressions must be a list")
        return cls(
            tuple((sys.intern(k), sys.intern(v)) for k, v in labels.items()),
            tuple(Requirement.from_dict(e) for e in exprs),
        )

    @classmethod
    def label(cls, key: str, value: str) -> LabelSelector:
        return cls(((key, value),))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def keys(self) -> set[str]:
        return {k for k, _ in self.match_labels} | {r.key for r in self.match_expressions}


class NodeClass(NamedTuple):
    """A classification: `rule` names what matched (`spotLabels[0]`, `gke`...), None when none did."""

    capacity: Capacity
    rule: str | None

    @property
    def unknown(self) -> bool:
        """True when no rule matched and `capacity` is the configured `unknownNodeType`."""
        return self.rule is None


def _karpenter(labels: Mapping[str, str]) -> Capacity | None:
    value = labels.get(KARPENTER_CAPACITY_TYPE)
    if value == "spot":
        return Capacity.SPOT
    # `reserved` is Karpenter v1's capacity-reservation type: paid for, never reclaimed like spot.
    if value in ("on-demand", "reserved"):
        return Capacity.ON_DEMAND
    return None


def _eks(labels: Mapping[str, str]) -> Capacity | None:
    # Upstream required an instance-type label first; managed node groups always set capacityType.
    value = labels.get(EKS_CAPACITY_TYPE)
    if value == "SPOT":
        return Capacity.SPOT
    if value == "ON_DEMAND":
        return Capacity.ON_DEMAND
    return None


def _gke(labels: Mapping[str, str]) -> Capacity | None:
    if labels.get(GKE_SPOT) == "true" or labels.get(GKE_PREEMPTIBLE) == "true":
        return Capacity.SPOT
    return Capacity.ON_DEMAND if GKE_NODEPOOL in labels else None


def _aks(labels: Mapping[str, str]) -> Capacity | None:
    value = labels.get(AKS_SCALESET_PRIORITY)
    if value == "spot":
        return Capacity.SPOT
    if value == "regular" or (value is None and AKS_AGENTPOOL in labels):
        return Capacity.ON_DEMAND
    return None


_PRESETS = {Provider.KARPENTER: _karpenter, Provider.EKS: _eks, Provider.GKE: _gke, Provider.AKS: _aks}

KARPENTER_SPOT = LabelSelector.label(KARPENTER_CAPACITY_TYPE, "spot")
KARPENTER_ON_DEMAND = LabelSelector.label(KARPENTER_CAPACITY_TYPE, "on-demand")


class ReclaimReason(StrEnum):
    """Why a node's pods are leaving, in the order floor repair prefers them (spec 3.9 (a))."""

    GONE = "gone"  # missing from the cache, or deletionTimestamp set
    TAINTED = "tainted"  # a reclaimTaints key, or a reclaimConditions condition True
    CORDONED = "cordoned"  # spec.unschedulable, or the node.kubernetes.io/unschedulable taint


class NodeLike(Protocol):
    """What classification reads of a node (records.NodeRecord has it)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def unschedulable(self) -> bool: ...
    @property
    def deleting(self) -> bool: ...
    @property
    def taint_keys(self) -> frozenset[str]: ...
    @property
    def true_conditions(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node as counting sees it: its capacity, and whether pods on it still count."""

    name: str
    capacity: Capacity
    rule: str | None
    reclaim: ReclaimReason | None
    ready: bool

    @property
    def unknown(self) -> bool:
        return self.rule is None

    @property
    def leaving(self) -> bool:
        """Pods here are lost capacity: reclaimed, or on a not-ready node (never evicted there)."""
        return self.reclaim is not None or not self.ready


@dataclass(frozen=True)
class NodeClassifier:
    """`controllers.nodeClassifier`: the rules, the fallback type, and what counts as reclaiming."""

    spot_labels: tuple[LabelSelector, ...] = (KARPENTER_SPOT,)
    on_demand_labels: tuple[LabelSelector, ...] = (KARPENTER_ON_DEMAND,)
    builtin_providers: tuple[Provider, ...] = ALL_PROVIDERS
    unknown_node_type: Capacity = Capacity.ON_DEMAND
    reclaim_taints: frozenset[str] = DEFAULT_RECLAIM_TAINTS
    reclaim_conditions: frozenset[str] = frozenset()
    capacity_keys: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        if NODE_READY in self.reclaim_conditions:
            # Ready=True on every healthy node: this would mark the whole cluster as reclaiming.
            raise ValueError("nodeClassifier.reclaimConditions: must not contain Ready")
        if len(set(self.builtin_providers)) != len(self.builtin_providers):
            raise ValueError("nodeClassifier.builtinProviders: providers must not repeat")
        keys = set(BUILTIN_CAPACITY_KEYS)
        for selector in (*self.spot_labels, *self.on_demand_labels):
            keys |= selector.keys()
        object.__setattr__(self, "capacity_keys", frozenset(keys))

    def classify(self, labels: Mapping[str, str]) -> NodeClass:
        """First matching rule wins; no match gives `unknown_node_type` with `rule=None`."""
        for i, selector in enumerate(self.spot_labels):
            if selector.matches(labels):
                return NodeClass(Capacity.SPOT, f"spotLabels[{i}]")
        for i, selector in enumerate(self.on_demand_labels):
            if selector.matches(labels):
                return NodeClass(Capacity.ON_DEMAND, f"onDemandLabels[{i}]")
        for provider in self.builtin_providers:
            capacity = _PRESETS[provider](labels)
            if capacity is not None:
                return NodeClass(capacity, provider.value)
        return NodeClass(self.unknown_node_type, None)

    def reclaim_reason(self, node: NodeLike | None) -> ReclaimReason | None:
        """Why `node` is being reclaimed (None: it is not); a node missing from the cache is gone."""
        if node is None or node.deleting:
            return ReclaimReason.GONE
        if not node.taint_keys.isdisjoint(self.reclaim_taints) or not node.true_conditions.isdisjoint(
            self.reclaim_conditions
        ):
            return ReclaimReason.TAINTED
        if node.unschedulable or UNSCHEDULABLE_TAINT in node.taint_keys:
            return ReclaimReason.CORDONED
        return None

    def is_reclaiming(self, node: NodeLike | None) -> bool:
        return self.reclaim_reason(node) is not None

    def status(self, node: NodeLike) -> NodeStatus:
        cls = self.classify(node.labels)
        return NodeStatus(node.name, cls.capacity, cls.rule, self.reclaim_reason(node), is_ready(node))

    def requested_capacity(
        self, node_selector: Iterable[Requirement], terms: Sequence[Sequence[Requirement]]
    ) -> Capacity | None:
        """What a pod's nodeSelector and required node affinity ask for, if they pin one capacity.

        Every way the pod could schedule (each required term, ANDed with the nodeSelector) must pin the
        same capacity; anything ambiguous answers None, and counting falls back to `unknownNodeType`.
        """
        base = {c for r in node_selector if (c := self._implied(r)) is not None}
        if not terms:
            return next(iter(base)) if len(base) == 1 else None
        found: Capacity | None = None
        for term in terms:
            implied = base | {c for r in term if (c := self._implied(r)) is not None}
            if len(implied) != 1:
                return None
            (capacity,) = implied
            if found is not None and capacity is not found:
                return None
            found = capacity
        return found

    def _implied(self, req: Requirement) -> Capacity | None:
        if req.key not in self.capacity_keys:
            return None
        kinds = [self.classify({req.key: v}) for v in req.values]
        if req.operator is Operator.IN:
            capacities = {k.capacity for k in kinds}
            if len(capacities) == 1 and not any(k.unknown for k in kinds):
                return capacities.pop()
            return None
        # "Not spot" (the GKE and AKS on-demand terms) pins on-demand; "not on-demand" could be anything.
        if req.operator is Operator.NOT_IN and any(
            k.capacity is Capacity.SPOT and not k.unknown for k in kinds
        ):
            return Capacity.ON_DEMAND
        return None


def is_ready(node: NodeLike) -> bool:
    """The Ready condition is True; a node that never reported one is not ready."""
    return NODE_READY in node.true_conditions
