"""Spec 3.4: ordered classification rules, provider presets, reclaim and readiness, pod capacity requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.spotalis.classify import (
    AKS_AGENTPOOL,
    AKS_SCALESET_PRIORITY,
    BUILTIN_CAPACITY_KEYS,
    DEFAULT_RECLAIM_TAINTS,
    EKS_CAPACITY_TYPE,
    GKE_NODEPOOL,
    GKE_PREEMPTIBLE,
    GKE_SPOT,
    KARPENTER_CAPACITY_TYPE,
    UNSCHEDULABLE_TAINT,
    Capacity,
    LabelSelector,
    NodeClassifier,
    Operator,
    Provider,
    ReclaimReason,
    Requirement,
    is_ready,
)
from kubewright.spotalis.records import RecordDecoder
from kubewright.testenv.nodes import CapacityType, build_nodes
from kubewright.testenv.nodes import Provider as SimProvider

pytestmark = pytest.mark.unit

SPOT, OD = Capacity.SPOT, Capacity.ON_DEMAND


def test_reclaim_taint_defaults_are_the_spec_list() -> None:
    assert (
        frozenset(
            {
                "karpenter.sh/disrupted",
                "karpenter.sh/disruption",
                "aws-node-termination-handler/spot-itn",
                "aws-node-termination-handler/asg-lifecycle-termination",
                "aws-node-termination-handler/scheduled-maintenance",
                "ToBeDeletedByClusterAutoscaler",
                "cloud.google.com/impending-node-termination",
            }
        )
        == DEFAULT_RECLAIM_TAINTS
    )
    assert UNSCHEDULABLE_TAINT == "node.kubernetes.io/unschedulable"


# The spec 3.4 table, row by row: (labels, expected capacity, expected rule).
PRESET_CASES: list[tuple[dict[str, str], Capacity | None, str | None]] = [
    ({KARPENTER_CAPACITY_TYPE: "reserved"}, OD, "karpenter"),
    ({EKS_CAPACITY_TYPE: "SPOT"}, SPOT, "eks"),
    ({EKS_CAPACITY_TYPE: "ON_DEMAND"}, OD, "eks"),
    ({EKS_CAPACITY_TYPE: "spot"}, None, None),  # values are case-sensitive
    ({GKE_SPOT: "true"}, SPOT, "gke"),
    ({GKE_PREEMPTIBLE: "true"}, SPOT, "gke"),
    ({GKE_NODEPOOL: "pool-a", GKE_SPOT: "true"}, SPOT, "gke"),
    ({GKE_NODEPOOL: "pool-a"}, OD, "gke"),
    ({GKE_NODEPOOL: "pool-a", GKE_SPOT: "false"}, OD, "gke"),
    ({GKE_SPOT: "false"}, None, None),
    ({AKS_SCALESET_PRIORITY: "spot"}, SPOT, "aks"),
    ({AKS_SCALESET_PRIORITY: "regular"}, OD, "aks"),
    ({AKS_AGENTPOOL: "nodepool1"}, OD, "aks"),
    ({AKS_AGENTPOOL: "nodepool1", AKS_SCALESET_PRIORITY: "spot"}, SPOT, "aks"),
    ({AKS_AGENTPOOL: "nodepool1", AKS_SCALESET_PRIORITY: "other"}, None, None),
    ({"kubernetes.io/hostname": "n1"}, None, None),
    ({}, None, None),
]


@pytest.mark.parametrize(("labels", "capacity", "rule"), PRESET_CASES)
def test_builtin_presets(labels: dict[str, str], capacity: Capacity | None, rule: str | None) -> None:
    got = NodeClassifier().classify(labels)
    assert got.rule == rule
    assert got.capacity is (capacity or OD)  # unknown takes unknownNodeType (default on-demand)
    assert got.unknown is (rule is None)


def test_configured_karpenter_defaults_come_first() -> None:
    classifier = NodeClassifier()
    assert classifier.classify({KARPENTER_CAPACITY_TYPE: "spot"}) == (SPOT, "spotLabels[0]")
    assert classifier.classify({KARPENTER_CAPACITY_TYPE: "on-demand"}) == (OD, "onDemandLabels[0]")


def test_first_match_wins_in_rule_order() -> None:
    # An inconsistent node: the configured spot rule beats the built-in EKS on-demand rule.
    classifier = NodeClassifier(spot_labels=(LabelSelector.label("pool", "cheap"),))
    labels = {"pool": "cheap", EKS_CAPACITY_TYPE: "ON_DEMAND"}
    assert classifier.classify(labels) == (SPOT, "spotLabels[0]")
    # spotLabels before onDemandLabels.
    both = NodeClassifier(
        spot_labels=(LabelSelector.label("a", "1"),), on_demand_labels=(LabelSelector.label("b", "2"),)
    )
    assert both.classify({"a": "1", "b": "2"}).capacity is SPOT
    # Built-ins in the configured order: karpenter before eks by default, eks first when listed first.
    mixed = {KARPENTER_CAPACITY_TYPE: "spot", EKS_CAPACITY_TYPE: "ON_DEMAND"}
    plain = NodeClassifier(spot_labels=(), on_demand_labels=())
    assert plain.classify(mixed) == (SPOT, "karpenter")
    eks_first = NodeClassifier(spot_labels=(), on_demand_labels=(), builtin_providers=(Provider.EKS,))
    assert eks_first.classify(mixed) == (OD, "eks")


def test_builtin_providers_selection_disables_the_others() -> None:
    only_aks = NodeClassifier(spot_labels=(), on_demand_labels=(), builtin_providers=(Provider.AKS,))
    assert only_aks.classify({GKE_SPOT: "true"}).unknown
    assert only_aks.classify({AKS_SCALESET_PRIORITY: "spot"}) == (SPOT, "aks")
    none = NodeClassifier(spot_labels=(), on_demand_labels=(), builtin_providers=())
    assert none.classify({KARPENTER_CAPACITY_TYPE: "spot"}).unknown
    with pytest.raises(ValueError, match="builtinProviders"):
        NodeClassifier(builtin_providers=(Provider.EKS, Provider.EKS))


def test_unknown_node_type_is_configurable() -> None:
    classifier = NodeClassifier(unknown_node_type=SPOT)
    got = classifier.classify({"x": "y"})
    assert got.capacity is SPOT
    assert got.unknown


def test_label_selector_match_expressions_and_decoding() -> None:
    selector = LabelSelector.from_dict(
        {
            "matchLabels": {"tier": "batch"},
            "matchExpressions": [
                {"key": "lifecycle", "operator": "In", "values": ["spot", "preemptible"]},
                {"key": "reserved", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches({"tier": "batch", "lifecycle": "preemptible"})
    assert not selector.matches({"tier": "batch", "lifecycle": "preemptible", "reserved": "x"})
    assert not selector.matches({"tier": "web", "lifecycle": "spot"})
    assert selector.keys() == {"tier", "lifecycle", "reserved"}
    classifier = NodeClassifier(spot_labels=(selector,))
    assert {"tier", "lifecycle", "reserved"} <= classifier.capacity_keys
    assert classifier.capacity_keys >= BUILTIN_CAPACITY_KEYS


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "empty selector"),
        ({"matchLabels": {"a": 1}}, "matchLabels"),
        ({"matchExpressions": [{"key": "a", "operator": "Near"}]}, "operator must be one of"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "at least one value"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "takes no values"),
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, "do not support"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key must be"),
    ],
)
def test_label_selector_rejects_bad_input(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelSelector.from_dict(raw)


@pytest.mark.parametrize(
    ("req", "labels", "expected"),
    [
        (Requirement("k", Operator.IN, ("a", "b")), {"k": "b"}, True),
        (Requirement("k", Operator.IN, ("a",)), {}, False),
        (Requirement("k", Operator.NOT_IN, ("a",)), {}, True),
        (Requirement("k", Operator.NOT_IN, ("a",)), {"k": "a"}, False),
        (Requirement("k", Operator.EXISTS), {"k": ""}, True),
        (Requirement("k", Operator.DOES_NOT_EXIST), {"k": ""}, False),
        (Requirement("k", Operator.GT, ("3",)), {"k": "4"}, True),
        (Requirement("k", Operator.GT, ("3",)), {"k": "3"}, False),
        (Requirement("k", Operator.LT, ("3",)), {"k": "-1"}, True),
        (Requirement("k", Operator.LT, ("3",)), {"k": "x"}, False),
    ],
)
def test_requirement_semantics(req: Requirement, labels: dict[str, str], expected: bool) -> None:
    assert req.matches(labels) is expected
    assert Requirement.from_dict(req.to_dict()) == req


class FakeNode:
    """A NodeLike without the decoder, for the reclaim rules."""

    def __init__(
        self,
        *,
        labels: dict[str, str] | None = None,
        unschedulable: bool = False,
        deleting: bool = False,
        taints: frozenset[str] = frozenset(),
        conditions: frozenset[str] = frozenset({"Ready"}),
    ) -> None:
        self.name = "n1"
        self.labels = labels or {KARPENTER_CAPACITY_TYPE: "spot"}
        self.unschedulable = unschedulable
        self.deleting = deleting
        self.taint_keys = taints
        self.true_conditions = conditions


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (None, ReclaimReason.GONE),
        (FakeNode(deleting=True), ReclaimReason.GONE),
        (FakeNode(deleting=True, unschedulable=True), ReclaimReason.GONE),
        (FakeNode(taints=frozenset({"karpenter.sh/disrupted"})), ReclaimReason.TAINTED),
        (FakeNode(taints=frozenset({"ToBeDeletedByClusterAutoscaler"})), ReclaimReason.TAINTED),
        (FakeNode(taints=frozenset({"karpenter.sh/disrupted"}), unschedulable=True), ReclaimReason.TAINTED),
        (FakeNode(unschedulable=True), ReclaimReason.CORDONED),
        (FakeNode(taints=frozenset({UNSCHEDULABLE_TAINT})), ReclaimReason.CORDONED),
        (FakeNode(taints=frozenset({"dedicated"})), None),
        (FakeNode(), None),
    ],
)
def test_reclaim_reasons(node: FakeNode | None, reason: ReclaimReason | None) -> None:
    classifier = NodeClassifier()
    assert classifier.reclaim_reason(node) is reason
    assert classifier.is_reclaiming(node) is (reason is not None)


def test_reclaim_conditions_and_taints_are_configurable() -> None:
    classifier = NodeClassifier(
        reclaim_conditions=frozenset({"TerminationImminent"}), reclaim_taints=frozenset()
    )
    assert classifier.reclaim_reason(FakeNode(conditions=frozenset({"Ready", "TerminationImminent"}))) is (
        ReclaimReason.TAINTED
    )
    assert classifier.reclaim_reason(FakeNode(taints=frozenset({"karpenter.sh/disrupted"}))) is None
    # The unschedulable taint is not a configurable reclaim taint: it always cordons.
    assert (
        classifier.reclaim_reason(FakeNode(taints=frozenset({UNSCHEDULABLE_TAINT}))) is ReclaimReason.CORDONED
    )
    with pytest.raises(ValueError, match="Ready"):
        NodeClassifier(reclaim_conditions=frozenset({"Ready"}))


def test_status_combines_type_reclaim_and_readiness() -> None:
    classifier = NodeClassifier()
    healthy = classifier.status(FakeNode())
    assert (healthy.capacity, healthy.reclaim, healthy.ready, healthy.leaving) == (SPOT, None, True, False)
    not_ready = classifier.status(FakeNode(conditions=frozenset()))
    assert not_ready.leaving
    assert not_ready.reclaim is None
    assert not is_ready(FakeNode(conditions=frozenset({"MemoryPressure"})))
    cordoned = classifier.status(FakeNode(unschedulable=True))
    assert cordoned.leaving
    assert cordoned.reclaim is ReclaimReason.CORDONED
    unknown = classifier.status(FakeNode(labels={"x": "y"}))
    assert unknown.unknown
    assert not unknown.leaving  # an unclassified node still counts, as unknownNodeType


@pytest.mark.parametrize("provider", list(SimProvider))
def test_sim_nodes_classify_as_built(provider: SimProvider) -> None:
    """The sim cluster's nodes (testenv.nodes) classify as the capacity they were built as."""
    decoder = RecordDecoder()
    for only_builtin in (False, True):
        # Without the configured Karpenter rules and with only the provider's own preset, too.
        classifier = (
            NodeClassifier(spot_labels=(), on_demand_labels=(), builtin_providers=(Provider(provider.value),))
            if only_builtin and provider is not SimProvider.KARPENTER
            else NodeClassifier()
        )
        for manifest in build_nodes(6, 0.5, provider):
            node = decoder.node(manifest)
            expected = SPOT if node.labels[KARPENTER_CAPACITY_TYPE] == CapacityType.SPOT.value else OD
            got = classifier.classify(node.labels)
            assert (got.capacity, got.unknown) == (expected, False), (provider, only_builtin, node.labels)


# -- what a pod's selector and affinity ask for -------------------------------------------------------------


def req(key: str, op: str, *values: str) -> Requirement:
    return Requirement(key, Operator(op), values)


@pytest.mark.parametrize(
    ("selector", "terms", "expected"),
    [
        ((req(KARPENTER_CAPACITY_TYPE, "In", "spot"),), (), SPOT),
        ((), ((req(KARPENTER_CAPACITY_TYPE, "In", "on-demand", "reserved"),),), OD),
        ((), ((req(KARPENTER_CAPACITY_TYPE, "In", "spot", "on-demand"),),), None),
        ((), ((req(GKE_SPOT, "NotIn", "true"), req(GKE_PREEMPTIBLE, "NotIn", "true")),), OD),
        ((), ((req(GKE_SPOT, "In", "true"),),), SPOT),
        ((), ((req(AKS_SCALESET_PRIORITY, "NotIn", "spot"),),), OD),
        ((), ((req(KARPENTER_CAPACITY_TYPE, "NotIn", "on-demand"),),), None),
        ((), ((req(EKS_CAPACITY_TYPE, "In", "SPOT"),), (req(EKS_CAPACITY_TYPE, "In", "SPOT"),)), SPOT),
        # One OR-ed term pins nothing: the pod may land anywhere.
        ((), ((req(EKS_CAPACITY_TYPE, "In", "SPOT"),), ()), None),
        ((), ((req(EKS_CAPACITY_TYPE, "In", "SPOT"),), (req(EKS_CAPACITY_TYPE, "In", "ON_DEMAND"),)), None),
        # nodeSelector and a term that disagree: ambiguous.
        (
            (req(KARPENTER_CAPACITY_TYPE, "In", "spot"),),
            ((req(EKS_CAPACITY_TYPE, "In", "ON_DEMAND"),),),
            None,
        ),
        ((req(KARPENTER_CAPACITY_TYPE, "In", "spot"),), ((),), SPOT),
        ((req(KARPENTER_CAPACITY_TYPE, "Exists"),), (), None),
        ((req("zone", "In", "a"),), (), None),  # not a capacity key
        ((req(GKE_NODEPOOL, "In", "pool-a"),), (), None),  # a pool is not a capacity
        ((), (), None),
    ],
)
def test_requested_capacity(
    selector: tuple[Requirement, ...], terms: tuple[tuple[Requirement, ...], ...], expected: Capacity | None
) -> None:
    assert NodeClassifier().requested_capacity(selector, terms) is expected


def test_requested_capacity_with_custom_labels() -> None:
    classifier = NodeClassifier(
        spot_labels=(LabelSelector.label("lifecycle", "spot"),),
        on_demand_labels=(LabelSelector.label("lifecycle", "normal"),),
    )
    assert classifier.requested_capacity((req("lifecycle", "In", "spot"),), ()) is SPOT
    assert classifier.requested_capacity((), ((req("lifecycle", "NotIn", "spot"),),)) is OD
    assert classifier.requested_capacity((req("lifecycle", "In", "other"),), ()) is None


@given(
    st.dictionaries(
        st.sampled_from(sorted(BUILTIN_CAPACITY_KEYS | {GKE_NODEPOOL, AKS_AGENTPOOL, "x"})),
        st.sampled_from(
            ["spot", "on-demand", "reserved", "SPOT", "ON_DEMAND", "true", "false", "regular", "p"]
        ),
    )
)
def test_classification_is_total_and_deterministic(labels: dict[str, str]) -> None:
    classifier = NodeClassifier()
    first = classifier.classify(labels)
    assert first == classifier.classify(dict(reversed(list(labels.items()))))
    assert first.capacity in (SPOT, OD)
    assert (first.rule is None) is first.unknown
