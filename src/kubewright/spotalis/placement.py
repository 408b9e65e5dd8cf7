"""Spec 3.6 steps 3-8: which capacity a new pod gets, and the JSONPatch that pins it there.

Pure: no I/O; time is passed in. `admit` reads the group's counters and in-flight records, decides and
records in one synchronous call, so no other admission can interleave between the read and the record
(step 5: "no await between reading and recording"). Decisions fill the on-demand floor first, then the
ratio, and place surplus pods (surge, scale-up beyond T) by the split of the grown total; sequential
admissions from empty therefore land exactly on `desired_split(T)` however the cache lags.

Patches, per `webhook.placement.mode`:
- `requiredAffinity` (default) [fix]: the provider's term replaces the placement-key expressions in every
  required node-affinity term; conflicting nodeSelector pins are removed. nodeSelector cannot say
  "not spot" (GKE, AKS) or "on-demand or reserved" (Karpenter).
- `nodeSelector` [compat]: upstream's exact two patch shapes (spec 2.5), for single-value presets.
- `preferredAffinity`: a weight-100 preference, except for `floor` and `spot_unavailable`, which must
  hold and are required.
Spot pods get the preset's missing tolerations; every mode adds the intent label and the admission-id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubewright.spotalis.classify import (
    AKS_SCALESET_PRIORITY,
    EKS_CAPACITY_TYPE,
    GKE_PREEMPTIBLE,
    GKE_SPOT,
    KARPENTER_CAPACITY_TYPE,
    Capacity,
    LabelSelector,
    Operator,
    Requirement,
)
from kubewright.spotalis.inflight import InflightRecord, InflightTracker
from kubewright.spotalis.records import ADMISSION_ID_ANNOTATION, INTENT_LABEL
from kubewright.spotalis.split import Split, desired_split
from kubewright.spotalis.state import ClusterState

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
PREFERENCE_WEIGHT = 100
NO_SCHEDULE = "NoSchedule"

JsonPatch = list[dict[str, Any]]


class Reason(StrEnum):
    """Why a pod got its capacity (the `reason` of `spotalis_webhook_decisions_total`)."""

    SPOT_UNAVAILABLE = "spot_unavailable"
    FLOOR = "floor"
    RATIO = "ratio"
    SURPLUS = "surplus"
    REINVOCATION = "reinvocation"  # step 8: the pod already carries this request's decision


class PlacementMode(StrEnum):
    REQUIRED_AFFINITY = "requiredAffinity"
    NODE_SELECTOR = "nodeSelector"
    PREFERRED_AFFINITY = "preferredAffinity"


class PlacementProvider(StrEnum):
    KARPENTER = "karpenter"
    EKS = "eks"
    GKE = "gke"
    AKS = "aks"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    seconds: int | None = None  # tolerationSeconds

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Toleration:
        operator = raw.get("operator") or "Equal"
        if operator not in ("Equal", "Exists"):
            raise ValueError(f"spotTolerations: operator must be Equal or Exists, got {operator!r}")
        key, value, effect = (raw.get(k) or "" for k in ("key", "value", "effect"))
        if not all(isinstance(v, str) for v in (key, value, effect)):
            raise ValueError(f"spotTolerations: key, value and effect must be strings in {dict(raw)!r}")
        if operator == "Exists" and value:
            raise ValueError(f"spotTolerations: Exists takes no value (key {key!r})")
        seconds = raw.get("tolerationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
            raise ValueError(f"spotTolerations: tolerationSeconds must be an integer (key {key!r})")
        return cls(str(key), str(operator), str(value), str(effect), seconds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.value:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.seconds is not None:
            out["tolerationSeconds"] = self.seconds
        return out

    def covered_by(self, existing: Mapping[str, Any]) -> bool:
        """`existing` (a pod's toleration) already tolerates everything this one would."""
        effect = existing.get("effect") or ""
        if effect and effect != self.effect:
            return False
        key = existing.get("key") or ""
        operator = existing.get("operator") or "Equal"
        if not key:
            return operator == "Exists"
        if key != self.key:
            return False
        if operator == "Exists":
            return True
        return self.operator == "Equal" and (existing.get("value") or "") == self.value


def _term(key: str, operator: Operator, *values: str) -> Requirement:
    return Requirement(key, operator, values)


@dataclass(frozen=True)
class _Preset:
    spot: tuple[Requirement, ...]
    on_demand: tuple[Requirement, ...]
    tolerations: tuple[Toleration, ...]
    # nodeSelector mode [compat]: the single pair each capacity gets, where the provider has one.
    selector: Mapping[Capacity, tuple[str, str]] | None


# Spec 3.6's provider table.
PRESETS: Mapping[PlacementProvider, _Preset] = {
    PlacementProvider.KARPENTER: _Preset(
        (_term(KARPENTER_CAPACITY_TYPE, Operator.IN, "spot"),),
        (_term(KARPENTER_CAPACITY_TYPE, Operator.IN, "on-demand", "reserved"),),
        (),
        {
            Capacity.SPOT: (KARPENTER_CAPACITY_TYPE, "spot"),
            Capacity.ON_DEMAND: (KARPENTER_CAPACITY_TYPE, "on-demand"),
        },
    ),
    PlacementProvider.EKS: _Preset(
        (_term(EKS_CAPACITY_TYPE, Operator.IN, "SPOT"),),
        (_term(EKS_CAPACITY_TYPE, Operator.IN, "ON_DEMAND"),),
        (),
        {Capacity.SPOT: (EKS_CAPACITY_TYPE, "SPOT"), Capacity.ON_DEMAND: (EKS_CAPACITY_TYPE, "ON_DEMAND")},
    ),
    PlacementProvider.GKE: _Preset(
        (_term(GKE_SPOT, Operator.IN, "true"),),
        (_term(GKE_SPOT, Operator.NOT_IN, "true"), _term(GKE_PREEMPTIBLE, Operator.NOT_IN, "true")),
        (Toleration(GKE_SPOT, "Equal", "true", NO_SCHEDULE),),
        None,
    ),
    PlacementProvider.AKS: _Preset(
        (_term(AKS_SCALESET_PRIORITY, Operator.IN, "spot"),),
        (_term(AKS_SCALESET_PRIORITY, Operator.NOT_IN, "spot"),),
        (Toleration(AKS_SCALESET_PRIORITY, "Equal", "spot", NO_SCHEDULE),),
        None,
    ),
}


def _single_pair(term: Sequence[Requirement]) -> tuple[str, str] | None:
    if len(term) == 1 and term[0].operator is Operator.IN and len(term[0].values) == 1:
        return term[0].key, term[0].values[0]
    return None


@dataclass(frozen=True)
class PlacementPolicy:
    """`webhook.placement`: the terms each capacity gets, how they are written, and spot tolerations.

    Build with `placement_policy` (provider defaults filled in) or `policy_from_labels`.
    """

    provider: PlacementProvider
    mode: PlacementMode
    spot_term: tuple[Requirement, ...]
    on_demand_term: tuple[Requirement, ...]
    spot_tolerations: tuple[Toleration, ...] = ()
    # nodeSelector mode: the pair per capacity; None when the terms cannot be one label each.
    selector: Mapping[Capacity, tuple[str, str]] | None = None
    placement_keys: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        if not self.spot_term or not self.on_demand_term:
            raise ValueError("webhook.placement: spotTerm and onDemandTerm need at least one expression each")
        if self.mode is PlacementMode.NODE_SELECTOR:
            if self.provider in (PlacementProvider.GKE, PlacementProvider.AKS):
                raise ValueError(
                    f"webhook.placement.mode: nodeSelector cannot express {self.provider.value}'s on-demand "
                    "term (NotIn); use requiredAffinity or preferredAffinity"
                )
            if self.selector is None:
                raise ValueError(
                    "webhook.placement.mode: nodeSelector needs spotTerm and onDemandTerm of one "
                    "`In` expression with one value each"
                )
        object.__setattr__(
            self, "placement_keys", frozenset(r.key for r in (*self.spot_term, *self.on_demand_term))
        )

    def term(self, capacity: Capacity) -> tuple[Requirement, ...]:
        return self.spot_term if capacity is Capacity.SPOT else self.on_demand_term


def placement_policy(
    provider: PlacementProvider = PlacementProvider.KARPENTER,
    mode: PlacementMode = PlacementMode.REQUIRED_AFFINITY,
    *,
    spot_term: Sequence[Requirement] | None = None,
    on_demand_term: Sequence[Requirement] | None = None,
    spot_tolerations: Sequence[Toleration] | None = None,
) -> PlacementPolicy:
    """The policy for `provider`, with the spec 3.6 table's terms and tolerations unless overridden.

    `custom` has no defaults: both terms are required. Raises ValueError naming the rule broken.
    """
    preset = PRESETS.get(provider)
    if preset is None:
        if not spot_term or not on_demand_term:
            raise ValueError("webhook.placement: provider custom needs spotTerm and onDemandTerm")
        preset = _Preset((), (), (), None)
    spot = tuple(spot_term) if spot_term else preset.spot
    on_demand = tuple(on_demand_term) if on_demand_term else preset.on_demand
    tolerations = preset.tolerations if spot_tolerations is None else tuple(spot_tolerations)
    selector = _selector_pairs(preset, spot, on_demand)
    return PlacementPolicy(provider, mode, spot, on_demand, tuple(dict.fromkeys(tolerations)), selector)


def _selector_pairs(
    preset: _Preset, spot: tuple[Requirement, ...], on_demand: tuple[Requirement, ...]
) -> dict[Capacity, tuple[str, str]] | None:
    """nodeSelector pairs: the preset's where its term is in use, else a single-value `In` term's."""
    pairs = {}
    for capacity, term, default in (
        (Capacity.SPOT, spot, preset.spot),
        (Capacity.ON_DEMAND, on_demand, preset.on_demand),
    ):
        pair = preset.selector.get(capacity) if preset.selector is not None and term == default else None
        pair = pair or _single_pair(term)
        if pair is None:
            return None
        pairs[capacity] = pair
    return pairs


def policy_from_labels(
    spot_labels: Sequence[LabelSelector],
    on_demand_labels: Sequence[LabelSelector],
    mode: PlacementMode = PlacementMode.REQUIRED_AFFINITY,
    spot_tolerations: Sequence[Toleration] = (),
) -> PlacementPolicy:
    """Without `webhook.placement`: a custom policy from the first `spotLabels` pair [compat].

    On-demand pods get the first `onDemandLabels` pair when there is one, else "not the spot value".
    """
    spot_pair = next((pair for s in spot_labels for pair in s.match_labels), None)
    if spot_pair is None:
        raise ValueError("nodeClassifier.spotLabels: needs a matchLabels pair to derive the placement from")
    od_pair = next((pair for s in on_demand_labels for pair in s.match_labels), None)
    key, value = spot_pair
    on_demand = _term(od_pair[0], Operator.IN, od_pair[1]) if od_pair else _term(key, Operator.NOT_IN, value)
    return placement_policy(
        PlacementProvider.CUSTOM,
        mode,
        spot_term=(_term(key, Operator.IN, value),),
        on_demand_term=(on_demand,),
        spot_tolerations=spot_tolerations,
    )


# -- the decision ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    capacity: Capacity
    reason: Reason


def admission_total(*replicas: int | None) -> int:
    """Step 3: T = max(Deployment, ReplicaSet replicas), or the StatefulSet's; 1 if none is set."""
    given = [r for r in replicas if r is not None]
    return max(given) if given else 1


def decide(
    total: int,
    spot_percentage: int,
    min_on_demand: int,
    spot: int,
    on_demand: int,
    *,
    spot_unavailable_until: float | None = None,
    now: float = 0.0,
) -> Decision:
    """Step 5, given S+pS (`spot`) and O+pO (`on_demand`); `spot_unavailable_until` is the marker."""
    if spot_unavailable_until is not None and spot_unavailable_until > now:
        return Decision(Capacity.ON_DEMAND, Reason.SPOT_UNAVAILABLE)
    target = desired_split(total, spot_percentage, min_on_demand)
    if on_demand < target.on_demand:
        reason = Reason.FLOOR if on_demand < min(min_on_demand, total) else Reason.RATIO
        return Decision(Capacity.ON_DEMAND, reason)
    if spot < target.spot:
        return Decision(Capacity.SPOT, Reason.RATIO)
    grown = desired_split(spot + on_demand + 1, spot_percentage, min_on_demand)
    if on_demand < grown.on_demand:
        return Decision(Capacity.ON_DEMAND, Reason.SURPLUS)
    if spot < grown.spot:
        return Decision(Capacity.SPOT, Reason.SURPLUS)
    return Decision(Capacity.ON_DEMAND, Reason.SURPLUS)


@dataclass(frozen=True)
class AdmissionRequest:
    """One pod CREATE for a managed workload, with what the wiring resolved (steps 1-3)."""

    uid: str  # request.uid
    pod: Mapping[str, Any]  # request.object
    group: str  # records.group_key of the pod's ReplicaSet or StatefulSet
    total: int  # T, see admission_total
    spot_percentage: int
    min_on_demand: int
    spot_unavailable_until: float | None = None  # the workload's marker, epoch seconds
    dry_run: bool = False


@dataclass(frozen=True)
class Admission:
    decision: Decision
    patch: JsonPatch
    recorded: InflightRecord | None
    target: Split
    spot: int  # S (survivors, same-name pod excluded)
    on_demand: int  # O
    pending_spot: int  # pS
    pending_on_demand: int  # pO


def admit(
    request: AdmissionRequest,
    state: ClusterState,
    inflight: InflightTracker,
    policy: PlacementPolicy,
    now: float,
) -> Admission:
    """Steps 4-8 in one synchronous call. `now` is epoch seconds (the marker and the in-flight TTL)."""
    target = desired_split(request.total, request.spot_percentage, request.min_on_demand)
    meta = _map(request.pod.get("metadata"))
    counts = state.survivor_counts(request.group, _str(meta.get("name")) or None)
    pending_spot, pending_on_demand = inflight.pending(request.group, now)
    again = _reinvocation(request, inflight)
    if again is not None:
        decision = again
    else:
        decision = decide(
            request.total,
            request.spot_percentage,
            request.min_on_demand,
            counts.spot + pending_spot,
            counts.on_demand + pending_on_demand,
            spot_unavailable_until=request.spot_unavailable_until,
            now=now,
        )
    patch = build_patch(request.pod, decision, policy, request.uid)
    recorded = None
    if again is None and not request.dry_run:
        recorded = inflight.record(request.group, request.uid, decision.capacity, now)
    return Admission(
        decision, patch, recorded, target, counts.spot, counts.on_demand, pending_spot, pending_on_demand
    )


def _reinvocation(request: AdmissionRequest, inflight: InflightTracker) -> Decision | None:
    """Step 8: the pod already carries this request's admission-id; repeat its decision."""
    meta = _map(request.pod.get("metadata"))
    if _map(meta.get("annotations")).get(ADMISSION_ID_ANNOTATION) != request.uid:
        return None
    label = _map(meta.get("labels")).get(INTENT_LABEL)
    if label in (Capacity.SPOT.value, Capacity.ON_DEMAND.value):
        return Decision(Capacity(label), Reason.REINVOCATION)
    # Another webhook dropped our label: the in-flight record still knows what we decided.
    rec = inflight.get(request.uid)
    return Decision(rec.capacity, Reason.REINVOCATION) if rec is not None else None


# -- the patch ------------------------------------------------------------------------------------


def pointer_token(key: str) -> str:
    """RFC 6901: `~` -> `~0`, `/` -> `~1` (`karpenter.sh/capacity-type` -> `karpenter.sh~1capacity-type`)."""
    return key.replace("~", "~0").replace("/", "~1")


def build_patch(
    pod: Mapping[str, Any], decision: Decision, policy: PlacementPolicy, admission_id: str
) -> JsonPatch:
    """The RFC 6902 patch placing `pod` per `decision`, in `policy.mode`."""
    spec = _map(pod.get("spec"))
    if policy.mode is PlacementMode.NODE_SELECTOR:
        ops = _node_selector_ops(spec, decision.capacity, policy)
    else:
        ops = _affinity_ops(spec, decision, policy)
    ops += _toleration_ops(spec, decision.capacity, policy)
    ops += _metadata_ops(_map(pod.get("metadata")), decision.capacity, admission_id)
    return ops


def _node_selector_ops(spec: Mapping[str, Any], capacity: Capacity, policy: PlacementPolicy) -> JsonPatch:
    assert policy.selector is not None  # PlacementPolicy refuses nodeSelector mode without pairs
    key, value = policy.selector[capacity]
    if not isinstance(spec.get("nodeSelector"), dict):
        return [{"op": "add", "path": "/spec/nodeSelector", "value": {key: value}}]
    return [{"op": "add", "path": f"/spec/nodeSelector/{pointer_token(key)}", "value": value}]


def _affinity_ops(spec: Mapping[str, Any], decision: Decision, policy: PlacementPolicy) -> JsonPatch:
    term = policy.term(decision.capacity)
    keys = policy.placement_keys
    original = spec.get("affinity")
    affinity = _json_copy(original) if isinstance(original, dict) else {}
    node_affinity = affinity.get("nodeAffinity")
    node_affinity = node_affinity if isinstance(node_affinity, dict) else {}
    if _placement_required(spec, decision, policy):
        _require(node_affinity, term, keys)
    else:
        _prefer(node_affinity, term, keys)
    affinity["nodeAffinity"] = node_affinity
    ops: JsonPatch = []
    if affinity != original:
        ops.append({"op": "add", "path": "/spec/affinity", "value": affinity})
    selector = _map(spec.get("nodeSelector"))
    for key, value in selector.items():
        if key in keys and not _satisfies(term, key, value):
            ops.append({"op": "remove", "path": f"/spec/nodeSelector/{pointer_token(key)}"})
    return ops


def _placement_required(spec: Mapping[str, Any], decision: Decision, policy: PlacementPolicy) -> bool:
    if policy.mode is PlacementMode.REQUIRED_AFFINITY:
        return True
    if decision.reason is Reason.REINVOCATION:
        # The first invocation's strength shows in the pod: keep it.
        wanted = [r.to_dict() for r in policy.term(decision.capacity)]
        required = _map(_map(_map(spec.get("affinity")).get("nodeAffinity")).get(REQUIRED))
        terms = _list(required.get("nodeSelectorTerms"))
        return bool(terms) and all(
            all(w in _list(_map(t).get("matchExpressions")) for w in wanted) for t in terms
        )
    return decision.reason in (Reason.FLOOR, Reason.SPOT_UNAVAILABLE)


def _require(node_affinity: dict[str, Any], term: Sequence[Requirement], keys: frozenset[str]) -> None:
    """Every required term (they are ORed) gets our expressions in place of its placement-key ones."""
    required = node_affinity.get(REQUIRED)
    required = required if isinstance(required, dict) else {}
    terms = [t for t in _list(required.get("nodeSelectorTerms")) if isinstance(t, dict)] or [{}]
    for t in terms:
        t["matchExpressions"] = _strip(t.get("matchExpressions"), keys) + [r.to_dict() for r in term]
    required["nodeSelectorTerms"] = terms
    node_affinity[REQUIRED] = required


def _prefer(node_affinity: dict[str, Any], term: Sequence[Requirement], keys: frozenset[str]) -> None:
    """A weight-100 preference; required pins on placement keys are lifted (the preference overrides)."""
    required = node_affinity.get(REQUIRED)
    if isinstance(required, dict):
        terms = [t for t in _list(required.get("nodeSelectorTerms")) if isinstance(t, dict)]
        for t in terms:
            _strip_term(t, keys)
        # An emptied term matched only by capacity: without it the OR admits any node, so nothing is required.
        if not terms or any(not t for t in terms):
            del node_affinity[REQUIRED]
        else:
            required["nodeSelectorTerms"] = terms
    preferred = []
    for p in _list(node_affinity.get(PREFERRED)):
        if not isinstance(p, dict):
            continue
        preference = p.get("preference")
        if not isinstance(preference, dict):
            continue
        _strip_term(preference, keys)
        if preference:
            preferred.append(p)
    preferred.append(
        {"weight": PREFERENCE_WEIGHT, "preference": {"matchExpressions": [r.to_dict() for r in term]}}
    )
    node_affinity[PREFERRED] = preferred


def _strip(expressions: Any, keys: frozenset[str]) -> list[Any]:
    return [e for e in _list(expressions) if not (isinstance(e, dict) and e.get("key") in keys)]


def _strip_term(term: dict[str, Any], keys: frozenset[str]) -> None:
    kept = _strip(term.get("matchExpressions"), keys)
    if kept:
        term["matchExpressions"] = kept
    else:
        term.pop("matchExpressions", None)
    if not term.get("matchFields"):
        term.pop("matchFields", None)


def _satisfies(term: Sequence[Requirement], key: str, value: Any) -> bool:
    """A nodeSelector pin agrees with our term only if the term constrains `key` and `value` meets it."""
    on_key = [r for r in term if r.key == key]
    return isinstance(value, str) and bool(on_key) and all(r.matches({key: value}) for r in on_key)


def _toleration_ops(spec: Mapping[str, Any], capacity: Capacity, policy: PlacementPolicy) -> JsonPatch:
    if capacity is not Capacity.SPOT or not policy.spot_tolerations:
        return []
    existing = spec.get("tolerations")
    tolerations = list(_list(existing))
    changed = False
    for wanted in policy.spot_tolerations:
        if not any(isinstance(t, dict) and wanted.covered_by(t) for t in tolerations):
            tolerations.append(wanted.to_dict())
            changed = True
    return [{"op": "add", "path": "/spec/tolerations", "value": tolerations}] if changed else []


def _metadata_ops(meta: Mapping[str, Any], capacity: Capacity, admission_id: str) -> JsonPatch:
    ops: JsonPatch = []
    for field_name, key, value in (
        ("labels", INTENT_LABEL, capacity.value),
        ("annotations", ADMISSION_ID_ANNOTATION, admission_id),
    ):
        current = meta.get(field_name)
        if not isinstance(current, dict):
            ops.append({"op": "add", "path": f"/metadata/{field_name}", "value": {key: value}})
        elif current.get(key) != value:
            ops.append({"op": "add", "path": f"/metadata/{field_name}/{pointer_token(key)}", "value": value})
    return ops


def _json_copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_json_copy(v) for v in value]
    return value


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
