"""Spec 3.5: the slotted, interned records the caches hold instead of Pods, Nodes and workloads.

Pure: no I/O, no clock. A decoded Pod is ~10 KB of dicts; the decisions read about twenty scalars of it.
At 10,000 pods the difference is the RSS target (spec 8), so each object is projected once, at decode
time, into a `__slots__` record whose strings are interned and whose repeated parts (label sets, owner,
capacity requests, taint and condition sets) are shared between records by the decoder.

`POD_FIELDS`, `NODE_FIELDS` and `WORKLOAD_FIELDS` are the dotted paths the decoders read: give them to
the informer's projection so its own cache keeps no more than the records need.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar, cast

from kubewright.spotalis.classify import BUILTIN_CAPACITY_KEYS, Capacity, Operator, Requirement

# Contract strings of spec 2.2 and the Kubernetes ones read here. Local until constants.py lands.
INTENT_LABEL = "spotalis.io/capacity-intent"
ADMISSION_ID_ANNOTATION = "spotalis.io/admission-id"
SPOTALIS_PREFIX = "spotalis.io/"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

REPLICA_SET = "ReplicaSet"
STATEFUL_SET = "StatefulSet"
DEPLOYMENT = "Deployment"
GROUP_KINDS = frozenset({REPLICA_SET, STATEFUL_SET})

POD_FIELDS = (
    "metadata.labels",
    "metadata.annotations",
    "metadata.ownerReferences",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec.nodeName",
    "spec.nodeSelector",
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "spec.volumes",
    "status.phase",
    "status.conditions",
)
NODE_FIELDS = (
    "metadata.labels",
    "metadata.deletionTimestamp",
    "spec.unschedulable",
    "spec.taints",
    "status.conditions",
)
WORKLOAD_FIELDS = (
    "metadata.labels",
    "metadata.annotations",
    "metadata.ownerReferences",
    "metadata.generation",
    "metadata.deletionTimestamp",
    "spec.replicas",
    "spec.updateStrategy.type",
    "spec.strategy.type",
    "status",
)

Labels = Mapping[str, str]
_T = TypeVar("_T", bound=Hashable)


def group_key(namespace: str, kind: str, name: str) -> str:
    """The counting group G of spec 3.6: a pod's own ReplicaSet or StatefulSet, as `ns/Kind/name`."""
    return sys.intern(f"{namespace}/{kind}/{name}")


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """The controller ownerReference (the one with `controller: true`); shared by sibling pods."""

    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class CapacityRequest:
    """A pod's nodeSelector and required node-affinity terms, cut down to the capacity keys.

    A term that loses all its expressions stays as `()`: that way of scheduling pins no capacity.
    """

    node_selector: tuple[Requirement, ...] = ()
    terms: tuple[tuple[Requirement, ...], ...] = ()


NO_REQUEST = CapacityRequest()


@dataclass(frozen=True, slots=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: Labels
    owner: OwnerRef | None
    created: float | None
    deleted: float | None  # deletionTimestamp: the pod is terminating
    node_name: str | None
    request: CapacityRequest
    admission_id: str | None
    deletion_cost: int
    phase: str
    ready: bool
    scheduled: bool  # PodScheduled is True
    unschedulable: bool  # PodScheduled is False with reason Unschedulable
    scheduled_changed: float | None  # PodScheduled lastTransitionTime
    has_pvc: bool

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)

    @property
    def group(self) -> str | None:
        """The counting group, or None for pods owned by anything but a ReplicaSet or StatefulSet."""
        owner = self.owner
        if owner is None or owner.kind not in GROUP_KINDS:
            return None
        return group_key(self.namespace, owner.kind, owner.name)

    @property
    def deleting(self) -> bool:
        return self.deleted is not None

    @property
    def intent(self) -> Capacity | None:
        """The `spotalis.io/capacity-intent` label, if it holds a known value."""
        value = self.labels.get(INTENT_LABEL)
        if value == Capacity.SPOT.value:
            return Capacity.SPOT
        if value == Capacity.ON_DEMAND.value:
            return Capacity.ON_DEMAND
        return None

    @property
    def ordinal(self) -> int | None:
        """A StatefulSet pod's ordinal (the `-N` name suffix)."""
        if self.owner is None or self.owner.kind != STATEFUL_SET:
            return None
        prefix, _, suffix = self.name.rpartition("-")
        return int(suffix) if prefix == self.owner.name and suffix.isdigit() else None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    uid: str
    resource_version: str
    labels: Labels
    unschedulable: bool
    deleting: bool
    taint_keys: frozenset[str]
    true_conditions: frozenset[str]  # condition types whose status is "True" (Ready among them)


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    observed_generation: int
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    unavailable_replicas: int
    current_revision: str | None
    update_revision: str | None


@dataclass(frozen=True, slots=True)
class WorkloadRecord:
    """A Deployment, ReplicaSet or StatefulSet; annotations keep only `spotalis.io/` keys."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    labels: Labels
    annotations: Labels
    owner: OwnerRef | None
    replicas: int | None  # spec.replicas; None when unset
    strategy: str | None  # Deployment spec.strategy.type, StatefulSet spec.updateStrategy.type
    status: WorkloadStatus
    deleting: bool

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


def parse_time(value: Any) -> float | None:
    """RFC 3339 (`2024-05-01T10:00:00Z`) to epoch seconds; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str:
    return sys.intern(value) if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return sys.intern(value) if isinstance(value, str) and value else None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class RecordDecoder:
    """Decodes raw (or projected) objects into records, sharing equal parts between them.

    `capacity_keys` are the node label keys whose selector/affinity requirements a pod record keeps;
    pass the classifier's keys plus the placement keys (a config reload that adds keys needs a new
    decoder and a re-list to apply to cached pods). The share table is bounded: when it exceeds
    `max_shared` entries it starts over, which only costs sharing, never correctness.
    """

    def __init__(
        self, capacity_keys: Iterable[str] = BUILTIN_CAPACITY_KEYS, *, max_shared: int = 65536
    ) -> None:
        self.capacity_keys = frozenset(capacity_keys)
        self._max_shared = max_shared
        self._shared: dict[Hashable, Any] = {}

    def _share(self, value: _T) -> _T:
        found = self._shared.get(value)
        if found is not None:
            return cast(_T, found)
        if len(self._shared) >= self._max_shared:
            self._shared.clear()
        self._shared[value] = value
        return value

    def _labels(self, raw: Any, *, prefix: str = "") -> Labels:
        items = tuple(
            sorted(
                (sys.intern(k), sys.intern(v))
                for k, v in _map(raw).items()
                if isinstance(k, str) and isinstance(v, str) and k.startswith(prefix)
            )
        )
        if not items:
            return _EMPTY_LABELS
        key = ("labels", items)
        found = self._shared.get(key)
        if found is None:
            # Read-only: one label set is shared by every sibling pod.
            found = MappingProxyType(dict(items))
            if len(self._shared) >= self._max_shared:
                self._shared.clear()
            self._shared[key] = found
        return cast(Labels, found)

    def _owner(self, meta: Mapping[str, Any]) -> OwnerRef | None:
        for ref in _list(meta.get("ownerReferences")):
            if isinstance(ref, dict) and ref.get("controller") is True:
                return self._share(
                    OwnerRef(_str(ref.get("kind")), _str(ref.get("name")), _str(ref.get("uid")))
                )
        return None

    def _request(self, spec: Mapping[str, Any]) -> CapacityRequest:
        keys = self.capacity_keys
        selector = tuple(
            Requirement(sys.intern(k), Operator.IN, (sys.intern(v),))
            for k, v in sorted(_map(spec.get("nodeSelector")).items())
            if k in keys and isinstance(v, str)
        )
        required = _map(_map(_map(spec.get("affinity")).get("nodeAffinity")).get(_REQUIRED))
        terms = []
        for term in _list(required.get("nodeSelectorTerms")):
            kept = []
            for expr in _list(_map(term).get("matchExpressions")):
                if isinstance(expr, dict) and expr.get("key") in keys:
                    try:
                        kept.append(Requirement.from_dict(expr))
                    except ValueError:
                        continue  # the API server validated it; an odd shape pins nothing
            terms.append(tuple(kept))
        if not selector and not terms:
            return NO_REQUEST
        return self._share(CapacityRequest(selector, tuple(terms)))

    def pod(self, obj: Mapping[str, Any]) -> PodRecord:
        meta = _map(obj.get("metadata"))
        spec = _map(obj.get("spec"))
        status = _map(obj.get("status"))
        annotations = _map(meta.get("annotations"))
        conditions = {
            c.get("type"): c for c in _list(status.get("conditions")) if isinstance(c, dict) and c.get("type")
        }
        ready = _map(conditions.get("Ready")).get("status") == "True"
        scheduled_cond = _map(conditions.get("PodScheduled"))
        cost = annotations.get(DELETION_COST_ANNOTATION)
        try:
            deletion_cost = int(cost) if isinstance(cost, str) else 0
        except ValueError:
            deletion_cost = 0
        admission_id = annotations.get(ADMISSION_ID_ANNOTATION)
        return PodRecord(
            namespace=_str(meta.get("namespace")),
            name=_str(meta.get("name")),
            uid=str(meta.get("uid") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            labels=self._labels(meta.get("labels")),
            owner=self._owner(meta),
            created=parse_time(meta.get("creationTimestamp")),
            deleted=parse_time(meta.get("deletionTimestamp")),
            node_name=_opt_str(spec.get("nodeName")),
            request=self._request(spec),
            admission_id=admission_id if isinstance(admission_id, str) and admission_id else None,
            deletion_cost=deletion_cost,
            phase=_str(status.get("phase") or "Pending"),
            ready=ready,
            scheduled=scheduled_cond.get("status") == "True",
            unschedulable=scheduled_cond.get("status") == "False"
            and scheduled_cond.get("reason") == "Unschedulable",
            scheduled_changed=parse_time(scheduled_cond.get("lastTransitionTime")),
            has_pvc=any(
                isinstance(v, dict) and ("persistentVolumeClaim" in v or "ephemeral" in v)
                for v in _list(spec.get("volumes"))
            ),
        )

    def node(self, obj: Mapping[str, Any]) -> NodeRecord:
        meta = _map(obj.get("metadata"))
        spec = _map(obj.get("spec"))
        status = _map(obj.get("status"))
        taints = frozenset(
            sys.intern(t["key"]) for t in _list(spec.get("taints")) if isinstance(t, dict) and t.get("key")
        )
        true_conditions = frozenset(
            sys.intern(c["type"])
            for c in _list(status.get("conditions"))
            if isinstance(c, dict) and c.get("type") and c.get("status") == "True"
        )
        return NodeRecord(
            name=_str(meta.get("name")),
            uid=str(meta.get("uid") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            labels=self._labels(meta.get("labels")),
            unschedulable=spec.get("unschedulable") is True,
            deleting=bool(meta.get("deletionTimestamp")),
            taint_keys=self._share(taints),
            true_conditions=self._share(true_conditions),
        )

    def workload(self, obj: Mapping[str, Any], kind: str) -> WorkloadRecord:
        """`kind` comes from the informer: items of a LIST carry no `kind` of their own."""
        meta = _map(obj.get("metadata"))
        spec = _map(obj.get("spec"))
        status = _map(obj.get("status"))
        kind = sys.intern(kind)
        strategy = _map(spec.get("updateStrategy" if kind == STATEFUL_SET else "strategy")).get("type")
        replicas = spec.get("replicas")
        return WorkloadRecord(
            kind=kind,
            namespace=_str(meta.get("namespace")),
            name=_str(meta.get("name")),
            uid=str(meta.get("uid") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            generation=_int(meta.get("generation")),
            labels=self._labels(meta.get("labels")),
            annotations=self._labels(meta.get("annotations"), prefix=SPOTALIS_PREFIX),
            owner=self._owner(meta),
            replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None,
            strategy=_opt_str(strategy),
            status=WorkloadStatus(
                observed_generation=_int(status.get("observedGeneration")),
                replicas=_int(status.get("replicas")),
                updated_replicas=_int(status.get("updatedReplicas")),
                ready_replicas=_int(status.get("readyReplicas")),
                available_replicas=_int(status.get("availableReplicas")),
                unavailable_replicas=_int(status.get("unavailableReplicas")),
                current_revision=_opt_str(status.get("currentRevision")),
                update_revision=_opt_str(status.get("updateRevision")),
            ),
            deleting=bool(meta.get("deletionTimestamp")),
        )


_EMPTY_LABELS: Labels = MappingProxyType({})
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
