"""Simulated node manifests: which nodes are spot, and the labels real clouds would put on them.

Pure: no I/O. The sim cluster creates these Node objects and KWOK keeps them Ready, so add-ons that
classify nodes by capacity type (Spotalis) see the same label sets they would see on Karpenter, EKS,
GKE or AKS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
KARPENTER_CAPACITY_TYPE = "karpenter.sh/capacity-type"
ZONES = ("zone-a", "zone-b", "zone-c")


class CapacityType(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


class Provider(StrEnum):
    """Which cloud's label set the simulated nodes carry besides Karpenter's."""

    KARPENTER = "karpenter"
    EKS = "eks"
    GKE = "gke"
    AKS = "aks"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


def spot_count(nodes: int, spot_fraction: float) -> int:
    """How many of `nodes` are spot: the fraction rounded half up, so 0.5 of 3 gives 2."""
    if nodes < 0:
        raise ValueError(f"nodes: must be >= 0, got {nodes}")
    if not 0.0 <= spot_fraction <= 1.0:
        raise ValueError(f"spot_fraction: must be between 0 and 1, got {spot_fraction}")
    return min(nodes, math.floor(nodes * spot_fraction + 0.5))


def provider_labels(provider: Provider, capacity: CapacityType, pool: str) -> dict[str, str]:
    """The labels `provider` puts on a node of `capacity` (Karpenter's label is always present)."""
    spot = capacity is CapacityType.SPOT
    labels = {KARPENTER_CAPACITY_TYPE: capacity.value}
    if provider is Provider.EKS:
        labels["eks.amazonaws.com/capacityType"] = "SPOT" if spot else "ON_DEMAND"
        labels["eks.amazonaws.com/nodegroup"] = pool
    elif provider is Provider.GKE:
        labels["cloud.google.com/gke-nodepool"] = pool
        if spot:
            labels["cloud.google.com/gke-spot"] = "true"
    elif provider is Provider.AKS:
        labels["kubernetes.azure.com/agentpool"] = pool
        labels["kubernetes.azure.com/scalesetpriority"] = "spot" if spot else "regular"
    return labels


def provider_taints(provider: Provider, capacity: CapacityType) -> list[Taint]:
    """AKS taints every spot node automatically; the other providers leave nodes untainted by default."""
    if provider is Provider.AKS and capacity is CapacityType.SPOT:
        return [Taint("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")]
    return []


def node_name(index: int, capacity: CapacityType) -> str:
    return f"kwok-{capacity.value}-{index:04d}"


def build_nodes(nodes: int, spot_fraction: float, provider: Provider) -> list[dict[str, Any]]:
    """Node manifests: the first `spot_count` are spot; zones rotate so each zone gets both kinds."""
    spots = spot_count(nodes, spot_fraction)
    manifests = []
    for i in range(nodes):
        capacity = CapacityType.SPOT if i < spots else CapacityType.ON_DEMAND
        name = node_name(i, capacity)
        pool = f"{capacity.value}-pool"
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "m5.xlarge",
            "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
            "type": "kwok",
            **provider_labels(provider, capacity, pool),
        }
        spec: dict[str, Any] = {}
        taints = provider_taints(provider, capacity)
        if taints:
            spec["taints"] = [{"key": t.key, "value": t.value, "effect": t.effect} for t in taints]
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE},
                },
                "spec": spec,
                "status": {
                    "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                },
            }
        )
    return manifests
