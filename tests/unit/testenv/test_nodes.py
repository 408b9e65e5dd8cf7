from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.testenv.nodes import (
    KARPENTER_CAPACITY_TYPE,
    KWOK_NODE_ANNOTATION,
    CapacityType,
    Provider,
    build_nodes,
    provider_labels,
    spot_count,
)

pytestmark = pytest.mark.unit

fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(nodes=st.integers(min_value=0, max_value=5000), fraction=fractions)
def test_spot_count_is_the_nearest_whole_number(nodes: int, fraction: float) -> None:
    spots = spot_count(nodes, fraction)
    assert 0 <= spots <= nodes
    assert abs(spots - nodes * fraction) <= 0.5 + 1e-9


@pytest.mark.parametrize(
    ("nodes", "fraction", "expected"), [(3, 0.5, 2), (10, 0.7, 7), (1, 0.49, 0), (0, 1.0, 0)]
)
def test_spot_count_examples(nodes: int, fraction: float, expected: int) -> None:
    assert spot_count(nodes, fraction) == expected


@pytest.mark.parametrize(("nodes", "fraction"), [(-1, 0.5), (3, 1.5), (3, -0.1)])
def test_spot_count_rejects_out_of_range(nodes: int, fraction: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        spot_count(nodes, fraction)


@given(nodes=st.integers(min_value=0, max_value=300), fraction=fractions, provider=st.sampled_from(Provider))
def test_build_nodes_labels_every_node_once(nodes: int, fraction: float, provider: Provider) -> None:
    manifests = build_nodes(nodes, fraction, provider)
    names = [m["metadata"]["name"] for m in manifests]
    assert len(set(names)) == nodes
    spots = [m for m in manifests if m["metadata"]["labels"][KARPENTER_CAPACITY_TYPE] == "spot"]
    assert len(spots) == spot_count(nodes, fraction)
    for m in manifests:
        assert m["metadata"]["annotations"][KWOK_NODE_ANNOTATION] == "fake"
        assert m["metadata"]["labels"]["kubernetes.io/hostname"] == m["metadata"]["name"]


@pytest.mark.parametrize(
    ("provider", "capacity", "expected"),
    [
        (Provider.KARPENTER, CapacityType.SPOT, {KARPENTER_CAPACITY_TYPE: "spot"}),
        (Provider.EKS, CapacityType.SPOT, {"eks.amazonaws.com/capacityType": "SPOT"}),
        (Provider.EKS, CapacityType.ON_DEMAND, {"eks.amazonaws.com/capacityType": "ON_DEMAND"}),
        (Provider.GKE, CapacityType.SPOT, {"cloud.google.com/gke-spot": "true"}),
        (Provider.AKS, CapacityType.SPOT, {"kubernetes.azure.com/scalesetpriority": "spot"}),
        (Provider.AKS, CapacityType.ON_DEMAND, {"kubernetes.azure.com/scalesetpriority": "regular"}),
    ],
)
def test_provider_label_sets_match_the_clouds(
    provider: Provider, capacity: CapacityType, expected: dict[str, str]
) -> None:
    labels = provider_labels(provider, capacity, "pool")
    assert expected.items() <= labels.items()
    assert labels[KARPENTER_CAPACITY_TYPE] == capacity.value


def test_gke_on_demand_nodes_carry_no_spot_label() -> None:
    assert "cloud.google.com/gke-spot" not in provider_labels(Provider.GKE, CapacityType.ON_DEMAND, "p")


def test_aks_spot_nodes_are_tainted_like_real_aks() -> None:
    spot, on_demand = build_nodes(2, 0.5, Provider.AKS)
    assert spot["spec"]["taints"] == [
        {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}
    ]
    assert "taints" not in on_demand["spec"]
