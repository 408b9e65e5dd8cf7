"""Spec 3.6 steps 3-8 and 2.5: decisions, in-flight accounting, and the patches of each provider and mode."""

from __future__ import annotations

import copy
from types import MappingProxyType
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubewright.spotalis.classify import Capacity, LabelSelector, NodeClassifier, Operator, Requirement
from kubewright.spotalis.inflight import InflightTracker
from kubewright.spotalis.placement import (
    PRESETS,
    AdmissionRequest,
    Decision,
    PlacementMode,
    PlacementProvider,
    Reason,
    Toleration,
    admission_total,
    admit,
    build_patch,
    decide,
    placement_policy,
    pointer_token,
    policy_from_labels,
)
from kubewright.spotalis.records import (
    ADMISSION_ID_ANNOTATION,
    INTENT_LABEL,
    NO_REQUEST,
    NodeRecord,
    OwnerRef,
    PodRecord,
)
from kubewright.spotalis.split import desired_split
from kubewright.spotalis.state import ClusterState

pytestmark = pytest.mark.unit

SPOT, OD = Capacity.SPOT, Capacity.ON_DEMAND
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
UID = "705ab4f5-6393-11e8-b7cc-42010a800002"
KARPENTER = placement_policy()


def new_pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-7d9f-", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


def applied(pod: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """The patch applies cleanly (RFC 6902) and returns the mutated pod."""
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), patch)
    return result


def required_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = pod["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    return terms


LABEL_OP = {"op": "add", "path": "/metadata/labels/spotalis.io~1capacity-intent"}
ANNOTATION_OP = {"op": "add", "path": "/metadata/annotations", "value": {ADMISSION_ID_ANNOTATION: UID}}


# -- nodeSelector mode [compat]: the exact patches of spec 2.5 ----------------------------------------------


def test_node_selector_mode_karpenter_exact_patches() -> None:
    policy = placement_policy(PlacementProvider.KARPENTER, PlacementMode.NODE_SELECTOR)
    assert build_patch(new_pod(), Decision(SPOT, Reason.RATIO), policy, UID) == [
        {"op": "add", "path": "/spec/nodeSelector", "value": {"karpenter.sh/capacity-type": "spot"}},
        {**LABEL_OP, "value": "spot"},
        ANNOTATION_OP,
    ]
    pod = new_pod(nodeSelector={"kubernetes.io/os": "linux"})
    assert build_patch(pod, Decision(OD, Reason.FLOOR), policy, UID) == [
        {"op": "add", "path": "/spec/nodeSelector/karpenter.sh~1capacity-type", "value": "on-demand"},
        {**LABEL_OP, "value": "on-demand"},
        ANNOTATION_OP,
    ]
    # A template pin of the other type is overridden [compat]: `add` replaces the member.
    pinned = new_pod(nodeSelector={"karpenter.sh/capacity-type": "spot"})
    result = applied(pinned, build_patch(pinned, Decision(OD, Reason.RATIO), policy, UID))
    assert result["spec"]["nodeSelector"] == {"karpenter.sh/capacity-type": "on-demand"}


def test_node_selector_mode_eks_and_custom() -> None:
    eks = placement_policy(PlacementProvider.EKS, PlacementMode.NODE_SELECTOR)
    assert build_patch(new_pod(), Decision(SPOT, Reason.RATIO), eks, UID)[0] == {
        "op": "add",
        "path": "/spec/nodeSelector",
        "value": {"eks.amazonaws.com/capacityType": "SPOT"},
    }
    assert build_patch(new_pod(nodeSelector={}), Decision(OD, Reason.RATIO), eks, UID)[0] == {
        "op": "add",
        "path": "/spec/nodeSelector/eks.amazonaws.com~1capacityType",
        "value": "ON_DEMAND",
    }
    custom = placement_policy(
        PlacementProvider.CUSTOM,
        PlacementMode.NODE_SELECTOR,
        spot_term=[Requirement("node~pool/lifecycle", Operator.IN, ("spot",))],
        on_demand_term=[Requirement("node~pool/lifecycle", Operator.IN, ("normal",))],
        spot_tolerations=[Toleration("lifecycle", "Equal", "spot", "NoSchedule")],
    )
    patch = build_patch(new_pod(nodeSelector={"a": "b"}), Decision(SPOT, Reason.RATIO), custom, UID)
    assert patch[:2] == [
        {"op": "add", "path": "/spec/nodeSelector/node~0pool~1lifecycle", "value": "spot"},
        {
            "op": "add",
            "path": "/spec/tolerations",
            "value": [{"key": "lifecycle", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}],
        },
    ]


@pytest.mark.parametrize("provider", [PlacementProvider.GKE, PlacementProvider.AKS])
def test_node_selector_mode_refused_for_gke_and_aks(provider: PlacementProvider) -> None:
    with pytest.raises(ValueError, match="nodeSelector cannot express"):
        placement_policy(provider, PlacementMode.NODE_SELECTOR)


def test_node_selector_mode_refused_for_multi_value_custom() -> None:
    with pytest.raises(ValueError, match="one `In` expression with one value"):
        placement_policy(
            PlacementProvider.CUSTOM,
            PlacementMode.NODE_SELECTOR,
            spot_term=[Requirement("lifecycle", Operator.IN, ("spot", "preemptible"))],
            on_demand_term=[Requirement("lifecycle", Operator.IN, ("normal",))],
        )
    with pytest.raises(ValueError, match="provider custom needs"):
        placement_policy(PlacementProvider.CUSTOM)


def test_pointer_token_rfc6901() -> None:
    assert pointer_token("karpenter.sh/capacity-type") == "karpenter.sh~1capacity-type"
    assert pointer_token("a~b/c") == "a~0b~1c"


# -- requiredAffinity mode (default) ------------------------------------------------------------------------


def affinity_of(capacity_exprs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": capacity_exprs}]}}}


KARPENTER_SPOT = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]
KARPENTER_OD = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "reserved"]}]
EKS_SPOT = [{"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["SPOT"]}]
EKS_OD = [{"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["ON_DEMAND"]}]
GKE_SPOT = [{"key": "cloud.google.com/gke-spot", "operator": "In", "values": ["true"]}]
GKE_OD = [
    {"key": "cloud.google.com/gke-spot", "operator": "NotIn", "values": ["true"]},
    {"key": "cloud.google.com/gke-preemptible", "operator": "NotIn", "values": ["true"]},
]
AKS_SPOT = [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "In", "values": ["spot"]}]
AKS_OD = [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "NotIn", "values": ["spot"]}]
GKE_TOLERATION = {
    "key": "cloud.google.com/gke-spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}
AKS_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


@pytest.mark.parametrize(
    ("provider", "capacity", "exprs", "tolerations"),
    [
        (PlacementProvider.KARPENTER, SPOT, KARPENTER_SPOT, None),
        (PlacementProvider.KARPENTER, OD, KARPENTER_OD, None),
        (PlacementProvider.EKS, SPOT, EKS_SPOT, None),
        (PlacementProvider.EKS, OD, EKS_OD, None),
        (PlacementProvider.GKE, SPOT, GKE_SPOT, [GKE_TOLERATION]),
        (PlacementProvider.GKE, OD, GKE_OD, None),
        (PlacementProvider.AKS, SPOT, AKS_SPOT, [AKS_TOLERATION]),
        (PlacementProvider.AKS, OD, AKS_OD, None),
    ],
)
def test_required_affinity_pinned_patches(
    provider: PlacementProvider,
    capacity: Capacity,
    exprs: list[dict[str, Any]],
    tolerations: list[Any] | None,
) -> None:
    """Spec 3.6's provider table, as the exact patch for a pod without affinity or tolerations."""
    patch = build_patch(new_pod(), Decision(capacity, Reason.RATIO), placement_policy(provider), UID)
    expected: list[dict[str, Any]] = [{"op": "add", "path": "/spec/affinity", "value": affinity_of(exprs)}]
    if tolerations:
        expected.append({"op": "add", "path": "/spec/tolerations", "value": tolerations})
    expected += [{**LABEL_OP, "value": capacity.value}, ANNOTATION_OP]
    assert patch == expected


def test_required_affinity_replaces_placement_keys_in_every_term() -> None:
    pod = new_pod(
        nodeSelector={"karpenter.sh/capacity-type": "spot", "kubernetes.io/os": "linux"},
        affinity={
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
            "nodeAffinity": {
                REQUIRED: {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]},
                                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                            ]
                        },
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                    ]
                },
                PREFERRED: [{"weight": 5, "preference": {"matchExpressions": KARPENTER_SPOT}}],
            },
        },
    )
    patch = build_patch(pod, Decision(OD, Reason.FLOOR), KARPENTER, UID)
    assert {"op": "remove", "path": "/spec/nodeSelector/karpenter.sh~1capacity-type"} in patch
    result = applied(pod, patch)
    assert result["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert required_terms(result) == [
        {
            "matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]},
                *KARPENTER_OD,
            ]
        },
        {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}],
            "matchExpressions": KARPENTER_OD,
        },
    ]
    # Other affinity is kept as it was.
    assert result["spec"]["affinity"]["podAntiAffinity"] == {
        "preferredDuringSchedulingIgnoredDuringExecution": []
    }
    assert (
        result["spec"]["affinity"]["nodeAffinity"][PREFERRED]
        == pod["spec"]["affinity"]["nodeAffinity"][PREFERRED]
    )
    # The original pod is untouched (the builder works on a copy).
    assert pod["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] == "spot"


def test_consistent_node_selector_pin_is_kept() -> None:
    pod = new_pod(nodeSelector={"karpenter.sh/capacity-type": "spot"})
    patch = build_patch(pod, Decision(SPOT, Reason.RATIO), KARPENTER, UID)
    assert not [op for op in patch if op["op"] == "remove"]
    gke = placement_policy(PlacementProvider.GKE)
    # A GKE pin the on-demand term rules out (preemptible) is dropped; one it allows stays.
    pod = new_pod(
        nodeSelector={"cloud.google.com/gke-preemptible": "true", "cloud.google.com/gke-spot": "false"}
    )
    result = applied(pod, build_patch(pod, Decision(OD, Reason.RATIO), gke, UID))
    assert result["spec"]["nodeSelector"] == {"cloud.google.com/gke-spot": "false"}


def test_spot_tolerations_are_added_once() -> None:
    aks = placement_policy(PlacementProvider.AKS)
    existing = [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists"}]
    patch = build_patch(new_pod(tolerations=existing), Decision(SPOT, Reason.RATIO), aks, UID)
    assert not [op for op in patch if op["path"] == "/spec/tolerations"]
    # Tolerate-everything also covers it.
    patch = build_patch(new_pod(tolerations=[{"operator": "Exists"}]), Decision(SPOT, Reason.RATIO), aks, UID)
    assert not [op for op in patch if op["path"] == "/spec/tolerations"]
    # A different effect does not; existing tolerations are kept in front.
    other = [
        {
            "key": "kubernetes.azure.com/scalesetpriority",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoExecute",
        }
    ]
    result = applied(
        new_pod(tolerations=other),
        build_patch(new_pod(tolerations=other), Decision(SPOT, Reason.RATIO), aks, UID),
    )
    assert result["spec"]["tolerations"] == [*other, AKS_TOLERATION]
    # On-demand pods get none; duplicate configured tolerations collapse.
    assert not [
        op
        for op in build_patch(new_pod(), Decision(OD, Reason.RATIO), aks, UID)
        if "toleration" in op["path"]
    ]
    doubled = placement_policy(
        PlacementProvider.AKS,
        spot_tolerations=[Toleration.from_dict(AKS_TOLERATION), Toleration.from_dict(AKS_TOLERATION)],
    )
    assert len(doubled.spot_tolerations) == 1


@pytest.mark.parametrize(
    ("existing", "covered"),
    [
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True),
        ({"key": "k", "value": "v"}, True),  # empty operator is Equal; empty effect is all effects
        ({"key": "k", "operator": "Exists"}, True),
        ({"operator": "Exists", "effect": "NoSchedule"}, True),
        ({"operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "k", "value": "w"}, False),
        ({"key": "j", "operator": "Exists"}, False),
        ({"value": "v"}, False),  # empty key needs Exists
    ],
)
def test_toleration_coverage(existing: dict[str, str], covered: bool) -> None:
    assert Toleration("k", "Equal", "v", "NoSchedule").covered_by(existing) is covered


def test_toleration_decoding() -> None:
    assert Toleration.from_dict({"key": "k", "operator": "Exists"}).to_dict() == {
        "key": "k",
        "operator": "Exists",
    }
    with pytest.raises(ValueError, match="Exists takes no value"):
        Toleration.from_dict({"key": "k", "operator": "Exists", "value": "v"})
    with pytest.raises(ValueError, match="operator"):
        Toleration.from_dict({"key": "k", "operator": "Near"})
    timed = {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    assert Toleration.from_dict(timed).to_dict() == timed
    with pytest.raises(ValueError, match="tolerationSeconds"):
        Toleration.from_dict({"key": "k", "tolerationSeconds": "30"})


def test_metadata_ops_use_the_right_shape() -> None:
    bare = new_pod()
    del bare["metadata"]["labels"]
    bare["metadata"]["annotations"] = {"x": "y"}
    ops = build_patch(bare, Decision(SPOT, Reason.RATIO), KARPENTER, UID)[-2:]
    assert ops == [
        {"op": "add", "path": "/metadata/labels", "value": {INTENT_LABEL: "spot"}},
        {"op": "add", "path": "/metadata/annotations/spotalis.io~1admission-id", "value": UID},
    ]
    result = applied(bare, build_patch(bare, Decision(SPOT, Reason.RATIO), KARPENTER, UID))
    assert result["metadata"]["labels"] == {INTENT_LABEL: "spot"}
    assert result["metadata"]["annotations"] == {"x": "y", ADMISSION_ID_ANNOTATION: UID}


def test_patch_is_idempotent_on_its_own_result() -> None:
    for provider in PlacementProvider:
        if provider is PlacementProvider.CUSTOM:
            continue
        for mode in (PlacementMode.REQUIRED_AFFINITY, PlacementMode.PREFERRED_AFFINITY):
            policy = placement_policy(provider, mode)
            for decision in (Decision(SPOT, Reason.FLOOR), Decision(OD, Reason.RATIO)):
                once = applied(new_pod(), build_patch(new_pod(), decision, policy, UID))
                again = Decision(decision.capacity, Reason.REINVOCATION)
                assert build_patch(once, again, policy, UID) == [], (provider, mode, decision)


# -- preferredAffinity mode ---------------------------------------------------------------------------------


def test_preferred_affinity_prefers_for_ratio_and_surplus() -> None:
    policy = placement_policy(PlacementProvider.KARPENTER, PlacementMode.PREFERRED_AFFINITY)
    for reason in (Reason.RATIO, Reason.SURPLUS):
        patch = build_patch(new_pod(), Decision(SPOT, reason), policy, UID)
        assert patch[0] == {
            "op": "add",
            "path": "/spec/affinity",
            "value": {
                "nodeAffinity": {
                    PREFERRED: [{"weight": 100, "preference": {"matchExpressions": KARPENTER_SPOT}}]
                }
            },
        }


@pytest.mark.parametrize("reason", [Reason.FLOOR, Reason.SPOT_UNAVAILABLE])
def test_preferred_affinity_requires_floor_and_spot_unavailable(reason: Reason) -> None:
    policy = placement_policy(PlacementProvider.KARPENTER, PlacementMode.PREFERRED_AFFINITY)
    patch = build_patch(new_pod(), Decision(OD, reason), policy, UID)
    assert patch[0] == {"op": "add", "path": "/spec/affinity", "value": affinity_of(KARPENTER_OD)}


def test_preferred_affinity_lifts_template_pins() -> None:
    policy = placement_policy(PlacementProvider.KARPENTER, PlacementMode.PREFERRED_AFFINITY)
    pinned = new_pod(
        nodeSelector={"karpenter.sh/capacity-type": "on-demand"},
        affinity={
            "nodeAffinity": {
                REQUIRED: {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a"]},
                                *KARPENTER_OD,
                            ]
                        }
                    ]
                },
                PREFERRED: [
                    {"weight": 10, "preference": {"matchExpressions": KARPENTER_OD}},
                    {
                        "weight": 20,
                        "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]},
                    },
                ],
            }
        },
    )
    result = applied(pinned, build_patch(pinned, Decision(SPOT, Reason.RATIO), policy, UID))
    node_affinity = result["spec"]["affinity"]["nodeAffinity"]
    assert node_affinity[REQUIRED] == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
    }
    assert node_affinity[PREFERRED] == [
        {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
        {"weight": 100, "preference": {"matchExpressions": KARPENTER_SPOT}},
    ]
    assert result["spec"]["nodeSelector"] == {}
    # A required term that pinned only the capacity: without it the OR admits any node, so it goes.
    only_pin = new_pod(affinity=affinity_of(KARPENTER_OD))
    result = applied(only_pin, build_patch(only_pin, Decision(SPOT, Reason.SURPLUS), policy, UID))
    assert REQUIRED not in result["spec"]["affinity"]["nodeAffinity"]


# -- policies -----------------------------------------------------------------------------------------------


def test_presets_match_the_spec_table() -> None:
    table = {
        PlacementProvider.KARPENTER: (KARPENTER_SPOT, KARPENTER_OD, []),
        PlacementProvider.EKS: (EKS_SPOT, EKS_OD, []),
        PlacementProvider.GKE: (GKE_SPOT, GKE_OD, [GKE_TOLERATION]),
        PlacementProvider.AKS: (AKS_SPOT, AKS_OD, [AKS_TOLERATION]),
    }
    assert set(PRESETS) == set(table)
    for provider, (spot, od, tolerations) in table.items():
        policy = placement_policy(provider)
        assert [r.to_dict() for r in policy.spot_term] == spot
        assert [r.to_dict() for r in policy.on_demand_term] == od
        assert [t.to_dict() for t in policy.spot_tolerations] == tolerations
    assert KARPENTER.selector == {
        SPOT: ("karpenter.sh/capacity-type", "spot"),
        OD: ("karpenter.sh/capacity-type", "on-demand"),
    }
    assert KARPENTER.placement_keys == {"karpenter.sh/capacity-type"}
    assert placement_policy(PlacementProvider.GKE).placement_keys == {
        "cloud.google.com/gke-spot",
        "cloud.google.com/gke-preemptible",
    }


def test_policy_from_first_spot_labels_pair_compat() -> None:
    policy = policy_from_labels(
        [LabelSelector.from_dict({"matchLabels": {"lifecycle": "spot", "other": "x"}})],
        [LabelSelector.label("lifecycle", "normal")],
    )
    assert policy.provider is PlacementProvider.CUSTOM
    assert policy.spot_term == (Requirement("lifecycle", Operator.IN, ("spot",)),)
    assert policy.on_demand_term == (Requirement("lifecycle", Operator.IN, ("normal",)),)
    without_od = policy_from_labels([LabelSelector.label("lifecycle", "spot")], [])
    assert without_od.on_demand_term == (Requirement("lifecycle", Operator.NOT_IN, ("spot",)),)
    # "Not spot" has no nodeSelector form.
    with pytest.raises(ValueError, match="nodeSelector needs"):
        policy_from_labels([LabelSelector.label("lifecycle", "spot")], [], PlacementMode.NODE_SELECTOR)
    with pytest.raises(ValueError, match="matchLabels pair"):
        policy_from_labels(
            [LabelSelector.from_dict({"matchExpressions": [{"key": "a", "operator": "Exists"}]})], []
        )


def test_overridden_builtin_terms_are_used() -> None:
    policy = placement_policy(
        PlacementProvider.KARPENTER,
        PlacementMode.NODE_SELECTOR,
        on_demand_term=[Requirement("karpenter.sh/capacity-type", Operator.IN, ("reserved",))],
    )
    assert policy.selector is not None
    assert policy.selector[OD] == ("karpenter.sh/capacity-type", "reserved")


# -- the decision (step 5) ----------------------------------------------------------------------------------


def test_decide_order_and_reasons() -> None:
    # T=10, P=70, M=1 -> 7/3.
    assert decide(10, 70, 1, 0, 0) == Decision(OD, Reason.FLOOR)
    assert decide(10, 70, 1, 0, 1) == Decision(OD, Reason.RATIO)
    assert decide(10, 70, 1, 0, 3) == Decision(SPOT, Reason.RATIO)
    assert decide(10, 70, 1, 6, 3) == Decision(SPOT, Reason.RATIO)
    # Surplus (surge, or more pods than T): split the grown total.
    assert desired_split(11, 70, 1) == (7, 4)
    assert decide(10, 70, 1, 7, 3) == Decision(OD, Reason.SURPLUS)
    assert desired_split(12, 70, 1) == (8, 4)
    assert decide(10, 70, 1, 7, 4) == Decision(SPOT, Reason.SURPLUS)
    assert decide(3, 0, 0, 0, 3) == Decision(OD, Reason.SURPLUS)
    assert decide(2, 100, 0, 2, 0) == Decision(SPOT, Reason.SURPLUS)
    # The marker wins over everything, and only while in the future.
    assert decide(10, 100, 0, 0, 10, spot_unavailable_until=50.0, now=49.0) == Decision(
        OD, Reason.SPOT_UNAVAILABLE
    )
    assert decide(10, 100, 0, 0, 0, spot_unavailable_until=50.0, now=50.0) == Decision(SPOT, Reason.RATIO)
    # M > T: all on-demand, floor reason only below min(M, T).
    assert decide(2, 50, 3, 0, 0) == Decision(OD, Reason.FLOOR)
    assert decide(2, 50, 3, 0, 2) == Decision(OD, Reason.SURPLUS)


def test_admission_total() -> None:
    assert admission_total(10, 3) == 10
    assert admission_total(3, 10) == 10
    assert admission_total(None, 4) == 4
    assert admission_total(None) == 1
    assert admission_total() == 1
    assert admission_total(0) == 0


# -- admit (steps 4-8) ------------------------------------------------------------------------------------


GROUP = "shop/ReplicaSet/web-7d9f"
RS = OwnerRef("ReplicaSet", "web-7d9f", "rs-uid")


def request(
    uid: str,
    *,
    pod: dict[str, Any] | None = None,
    total: int = 10,
    pct: int = 70,
    floor: int = 1,
    **kwargs: Any,
) -> AdmissionRequest:
    return AdmissionRequest(uid, pod or new_pod(), GROUP, total, pct, floor, **kwargs)


def test_burst_without_cache_lands_exactly_by_in_flight_records() -> None:
    """Upstream's unwired tracker: a 10-pod burst at P=70 landed 5/5. Here: 7/3 before any pod is cached."""
    state, inflight = ClusterState(NodeClassifier()), InflightTracker()
    decisions = [
        admit(request(f"u{i}"), state, inflight, KARPENTER, now=0.0).decision.capacity for i in range(10)
    ]
    assert (decisions.count(SPOT), decisions.count(OD)) == (7, 3)
    assert decisions[:3] == [OD, OD, OD]  # the floor and on-demand share fill first
    assert len(inflight) == 10


def test_dry_run_is_never_recorded() -> None:
    state, inflight = ClusterState(NodeClassifier()), InflightTracker()
    result = admit(request("u1", dry_run=True), state, inflight, KARPENTER, now=0.0)
    assert result.recorded is None
    assert len(inflight) == 0
    assert result.patch  # still mutated: the dry-run shows what would happen


def test_reinvocation_repeats_the_decision_and_records_nothing() -> None:
    state, inflight = ClusterState(NodeClassifier()), InflightTracker()
    first = admit(request("u1"), state, inflight, KARPENTER, now=0.0)
    assert first.decision == Decision(OD, Reason.FLOOR)
    mutated = applied(new_pod(), first.patch)
    # Reinvoked after another webhook touched the pod: same uid, our label and admission-id present.
    mutated["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"] = []
    again = admit(request("u1", pod=mutated), state, inflight, KARPENTER, now=1.0)
    assert again.decision == Decision(OD, Reason.REINVOCATION)
    assert again.recorded is None
    assert len(inflight) == 1
    assert required_terms(applied(mutated, again.patch)) == [{"matchExpressions": KARPENTER_OD}]
    # The label dropped by the other webhook: the in-flight record still knows.
    del mutated["metadata"]["labels"][INTENT_LABEL]
    assert admit(request("u1", pod=mutated), state, inflight, KARPENTER, now=1.0).decision.capacity is OD
    # A different request uid is a new admission (e.g. a copied manifest carrying an old admission-id).
    fresh = admit(request("u2", pod=mutated), state, inflight, KARPENTER, now=1.0)
    assert fresh.decision.reason is not Reason.REINVOCATION
    assert len(inflight) == 2


def test_admit_reports_counts_and_excludes_same_name() -> None:
    state, inflight = ClusterState(NodeClassifier()), InflightTracker()
    state.upsert_node(node("od-1", "on-demand"))
    sts = OwnerRef("StatefulSet", "db", "s")
    group = "shop/StatefulSet/db"
    state.upsert_pod(cached("db-0", OD, owner=sts, node_name="od-1"))
    sts_pod = new_pod()
    sts_pod["metadata"] = {"name": "db-0", "namespace": "shop"}
    # The old db-0 is still cached and counted; its replacement must not see itself: O = 0 -> floor.
    result = admit(AdmissionRequest("u9", sts_pod, group, 2, 50, 1), state, inflight, KARPENTER, now=0.0)
    assert (result.spot, result.on_demand) == (0, 0)
    assert result.decision == Decision(OD, Reason.FLOOR)
    assert result.target == desired_split(2, 50, 1)


def node(name: str, capacity: str) -> NodeRecord:
    return NodeRecord(
        name,
        name,
        "1",
        MappingProxyType({"karpenter.sh/capacity-type": capacity}),
        False,
        False,
        frozenset(),
        frozenset({"Ready"}),
    )


def cached(
    name: str,
    capacity: Capacity,
    *,
    admission_id: str | None = None,
    owner: OwnerRef = RS,
    node_name: str | None = None,
) -> PodRecord:
    return PodRecord(
        namespace="shop",
        name=name,
        uid=f"pod-{name}",
        resource_version="1",
        labels=MappingProxyType({INTENT_LABEL: capacity.value}),
        owner=owner,
        created=0.0,
        deleted=None,
        node_name=node_name,
        request=NO_REQUEST,
        admission_id=admission_id,
        deletion_cost=0,
        phase="Running" if node_name else "Pending",
        ready=node_name is not None,
        scheduled=node_name is not None,
        unschedulable=False,
        scheduled_changed=None,
        has_pvc=False,
    )


# -- the property of spec 3.6 -------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(0, 60),
    pct=st.integers(0, 100),
    floor=st.integers(0, 65),
    data=st.data(),
)
def test_sequential_admission_reaches_the_split_under_any_cache_interleaving(
    total: int, pct: int, floor: int, data: st.DataObject
) -> None:
    """Pods reach the cache at random times, some get scheduled on a node of their type, and each
    in-flight record is dropped when its pod is seen; every pod is counted once, so the end is exact."""
    state, inflight = ClusterState(NodeClassifier()), InflightTracker(ttl=1e9)
    state.upsert_node(node("spot-1", "spot"))
    state.upsert_node(node("od-1", "on-demand"))
    not_cached: list[tuple[str, str, Capacity]] = []
    unscheduled: list[tuple[str, str, Capacity]] = []
    placed: list[Capacity] = []
    for i in range(total):
        for _ in range(data.draw(st.integers(0, len(not_cached)), label="arrivals")):
            name, uid, capacity = not_cached.pop(data.draw(st.integers(0, len(not_cached) - 1)))
            scheduled = data.draw(st.booleans())
            target = ("spot-1" if capacity is SPOT else "od-1") if scheduled else None
            state.upsert_pod(cached(name, capacity, admission_id=uid, node_name=target))
            inflight.seen(uid)
            if not scheduled:
                unscheduled.append((name, uid, capacity))
        schedule_one = data.draw(st.booleans(), label="schedule one")
        if unscheduled and schedule_one:
            name, uid, capacity = unscheduled.pop(data.draw(st.integers(0, len(unscheduled) - 1)))
            node_name = "spot-1" if capacity is SPOT else "od-1"
            state.upsert_pod(cached(name, capacity, admission_id=uid, node_name=node_name))
        uid = f"req-{i}"
        result = admit(
            request(uid, total=total, pct=pct, floor=floor), state, inflight, KARPENTER, now=float(i)
        )
        placed.append(result.decision.capacity)
        not_cached.append((f"web-7d9f-{i}", uid, result.decision.capacity))
    assert (placed.count(SPOT), placed.count(OD)) == desired_split(total, pct, floor)


@settings(max_examples=200, deadline=None)
@given(
    before=st.integers(0, 60),
    grow=st.integers(0, 60),
    pct=st.integers(0, 100),
    floor=st.integers(0, 65),
)
def test_scale_up_from_an_exact_split_needs_no_eviction(before: int, grow: int, pct: int, floor: int) -> None:
    """Spec 9 scenario 4: 10 -> 110 at P=70, M=2 lands 77/33; on-demand never has to shrink."""
    state, inflight = ClusterState(NodeClassifier()), InflightTracker(ttl=1e9)
    spot, od = desired_split(before, pct, floor)
    for i, capacity in enumerate([SPOT] * spot + [OD] * od):
        state.upsert_pod(cached(f"old-{i}", capacity))
    after = before + grow
    placed = [
        admit(
            request(f"u{i}", total=after, pct=pct, floor=floor), state, inflight, KARPENTER, now=0.0
        ).decision.capacity
        for i in range(grow)
    ]
    assert (spot + placed.count(SPOT), od + placed.count(OD)) == desired_split(after, pct, floor)


def test_scenario_four_numbers() -> None:
    assert desired_split(110, 70, 2) == (77, 33)


def test_spot_unavailable_places_everything_on_demand() -> None:
    state, inflight = ClusterState(NodeClassifier()), InflightTracker()
    decisions = {
        admit(
            request(f"u{i}", pct=100, floor=0, spot_unavailable_until=100.0),
            state,
            inflight,
            KARPENTER,
            now=5.0,
        ).decision
        for i in range(5)
    }
    assert decisions == {Decision(OD, Reason.SPOT_UNAVAILABLE)}
