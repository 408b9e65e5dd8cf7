"""Spec 3.7-3.10: the workload reconciler's decision paths, on a FakeClock and in-memory collaborators.

`EvictionRecorder` is a test double for the Kubernetes writes (evictions, merge patches, the PDB list):
it records every call and can be told to fail; no API server, real or fake, is involved. Counts come
from a real `ClusterState` fed with decoded pod and node dicts, exactly as the cache feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.controller import Result
from kubewright.runtime.kube import Obj, TooManyRequests
from kubewright.spotalis import constants as c
from kubewright.spotalis.cache import NamespaceRecord, build_classifier
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.controllers.workload import WorkloadReconciler, parse_key
from kubewright.spotalis.records import RecordDecoder, WorkloadRecord
from kubewright.spotalis.state import ClusterState

pytestmark = pytest.mark.unit

NS = "apps"
WALL = datetime(2025, 1, 1, tzinfo=UTC)
CAPACITY = "karpenter.sh/capacity-type"
ENABLED = {c.ENABLED_LABEL: c.ENABLED_VALUE}


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(WALL.timestamp() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, capacity: str, *, cordoned: bool = False, taints: tuple[str, ...] = ()) -> Obj:
    return {
        "metadata": {"name": name, "labels": {CAPACITY: capacity}},
        "spec": {"unschedulable": cordoned, "taints": [{"key": k, "effect": "NoSchedule"} for k in taints]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(
    name: str,
    node_name: str | None,
    *,
    owner: tuple[str, str] = ("ReplicaSet", "web-1"),
    created: float = -100.0,
    cost: int | None = None,
    intent: str | None = None,
    unschedulable_since: float | None = None,
) -> Obj:
    labels = {"app": "web"}
    if intent is not None:
        labels[c.CAPACITY_INTENT_LABEL] = intent
    annotations = {} if cost is None else {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    conditions: list[Obj] = []
    if node_name is not None:
        conditions = [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]
    elif unschedulable_since is not None:
        conditions = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": stamp(unschedulable_since),
            }
        ]
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "labels": labels,
            "annotations": annotations,
            "creationTimestamp": stamp(created),
            "ownerReferences": [{"kind": owner[0], "name": owner[1], "uid": "x", "controller": True}],
        },
        "spec": {"nodeName": node_name} if node_name else {},
        "status": {"phase": "Running" if node_name else "Pending", "conditions": conditions},
    }


def workload(
    kind: str, name: str, replicas: int, annotations: dict[str, str], *, ready: int | None = None
) -> Obj:
    ready = replicas if ready is None else ready
    status: Obj = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    if kind == "StatefulSet":
        status.update(currentRevision="r1", updateRevision="r1")
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "labels": ENABLED,
            "annotations": annotations,
        },
        "spec": {"replicas": replicas},
        "status": status,
    }


@dataclass
class FakeCache:
    """Test double of the cache's read side: workload and Namespace records by name."""

    workloads: dict[str, WorkloadRecord] = field(default_factory=dict)
    namespaces: dict[str, NamespaceRecord] = field(default_factory=dict)

    def workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None:
        return self.workloads.get(f"{namespace}/{kind}/{name}")

    def namespace(self, name: str) -> NamespaceRecord | None:
        return self.namespaces.get(name)


@dataclass
class EvictionRecorder:
    """Test double for the Kubernetes writes: records evictions and patches, serves a PDB list.

    A merge patch of annotations is echoed into `cache`, as the workload informer would echo it.
    """

    cache: FakeCache
    evictions: list[str] = field(default_factory=list)
    patches: list[tuple[str, str, Obj]] = field(default_factory=list)
    pdbs: list[Obj] = field(default_factory=list)
    fail_with: list[Exception] = field(default_factory=list)

    async def evict(self, name: str, namespace: str, *, uid: str | None = None) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.evictions.append(name)

    async def merge_patch(
        self, api_version: str, kind: str, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        self.patches.append((kind, name, patch))
        key = f"{namespace}/{kind}/{name}"
        record = self.cache.workloads[key]
        merged = dict(record.annotations)
        for k, v in patch["metadata"]["annotations"].items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        self.cache.workloads[key] = replace(record, annotations=MappingProxyType(merged))
        return {}

    async def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.pdbs


@dataclass
class Events:
    """Test double of the Event recorder: (type, reason, message) in order."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.seen.append(("Normal", reason, message))

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.seen.append(("Warning", reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.seen]


class Harness:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        raw: dict[str, Any] = {
            "controllers": {
                "reconcileInterval": "5s",
                "workloadTiming": {"cooldownPeriod": "2s", "disruptionRetryInterval": "30s"},
                "fallback": {"timeout": "15s", "backoff": "30s"},
            }
        }
        for section, values in (config or {}).items():
            raw.setdefault(section, {}).update(values)
        self.config = SpotalisConfig.model_validate(raw)
        classifier = build_classifier(self.config)
        self.decoder = RecordDecoder(classifier.capacity_keys)
        self.state = ClusterState(classifier)
        self.cache = FakeCache()
        self.cache.namespaces[NS] = NamespaceRecord(NS, MappingProxyType(ENABLED), MappingProxyType({}))
        self.kube = EvictionRecorder(self.cache)
        self.events = Events()
        self.clock = FakeClock(wall_start=WALL)
        self.reconciler = WorkloadReconciler(
            self.kube, self.cache, self.state, self.config, self.events, self.clock
        )
        self.reconciler.begin_tenure()

    def nodes(self, *objs: Obj) -> None:
        for obj in objs:
            self.state.upsert_node(self.decoder.node(obj))

    def pods(self, *objs: Obj) -> None:
        for obj in objs:
            self.state.upsert_pod(self.decoder.pod(obj))

    def deployment(self, name: str, replicas: int, annotations: dict[str, str], **kw: Any) -> str:
        record = self.decoder.workload(
            workload("Deployment", name, replicas, annotations, **kw), "Deployment"
        )
        self.cache.workloads[record.key] = record
        rs = workload("ReplicaSet", f"{name}-1", replicas, {})
        rs["metadata"]["ownerReferences"] = [
            {"kind": "Deployment", "name": name, "uid": f"uid-{name}", "controller": True}
        ]
        rs_record = self.decoder.workload(rs, "ReplicaSet")
        self.cache.workloads[rs_record.key] = rs_record
        return record.key

    def statefulset(self, name: str, replicas: int, annotations: dict[str, str]) -> str:
        record = self.decoder.workload(workload("StatefulSet", name, replicas, annotations), "StatefulSet")
        self.cache.workloads[record.key] = record
        return record.key

    async def reconcile(self, key: str) -> Result | None:
        return await self.reconciler.reconcile(key)


def four_four(h: Harness) -> str:
    """T=8 at 4 spot / 4 on-demand, annotated 80 % (target 6/2): two moves to spot are due."""
    h.nodes(node("s1", "spot"), node("s2", "spot"), node("o1", "on-demand"), node("o2", "on-demand"))
    h.pods(*(pod(f"web-s{i}", "s1" if i < 2 else "s2") for i in range(4)))
    h.pods(pod("web-o0", "o1"), pod("web-o1", "o2"), pod("web-o2", "o2"), pod("web-o3", "o2", created=-5))
    return h.deployment("web", 8, {c.SPOT_PERCENTAGE_ANNOTATION: "80", c.MIN_ON_DEMAND_ANNOTATION: "1"})


def test_parse_key_accepts_only_deployments_and_statefulsets() -> None:
    assert parse_key("ns/Deployment/web") == ("ns", "Deployment", "web")
    assert parse_key("ns/StatefulSet/db") == ("ns", "StatefulSet", "db")
    assert parse_key("ns/ReplicaSet/web-1") is None
    assert parse_key("ns/web") is None


async def test_new_tenure_starts_in_cooldown_then_one_eviction_per_cooldown() -> None:
    h = Harness()
    key = four_four(h)
    result = await h.reconcile(key)
    assert h.kube.evictions == []  # a new leader starts every workload in cooldown
    assert result is not None
    assert result.requeue_after == pytest.approx(2.0)

    h.clock.advance(2.1)
    result = await h.reconcile(key)
    # Most pods of this workload on o2, then newest: web-o3.
    assert h.kube.evictions == ["web-o3"]
    assert result == Result(requeue_after=2.0)
    assert h.events.reasons() == [c.EventReason.REBALANCE_EVICTION]

    h.clock.advance(0.5)
    assert (await h.reconcile(key)) is not None
    assert h.kube.evictions == ["web-o3"]  # at most one per cooldown
    assert h.kube.patches == []  # never replicas, /scale or templates; no annotation needed here


async def test_lowest_deletion_cost_goes_first() -> None:
    h = Harness()
    key = four_four(h)
    h.pods(pod("web-o0", "o1", cost=-10))
    h.clock.advance(3)
    await h.reconcile(key)
    assert h.kube.evictions == ["web-o0"]


async def test_statefulset_highest_ordinal_first() -> None:
    h = Harness()
    h.nodes(node("s1", "spot"), node("o1", "on-demand"))
    sts = ("StatefulSet", "db")
    h.pods(pod("db-0", "o1", owner=sts), pod("db-1", "o1", owner=sts), pod("db-2", "o1", owner=sts))
    key = h.statefulset("db", 3, {c.SPOT_PERCENTAGE_ANNOTATION: "100", c.MIN_ON_DEMAND_ANNOTATION: "1"})
    h.clock.advance(3)
    await h.reconcile(key)
    assert h.kube.evictions == ["db-2"]


async def test_read_only_writes_nothing() -> None:
    h = Harness({"operator": {"readOnlyMode": True}})
    key = four_four(h)
    h.clock.advance(3)
    result = await h.reconcile(key)
    assert (h.kube.evictions, h.kube.patches, h.events.seen) == ([], [], [])
    assert result == Result(requeue_after=5.0)


async def test_unstable_workload_is_not_rebalanced() -> None:
    h = Harness()
    four_four(h)
    key = h.deployment("web", 8, {c.SPOT_PERCENTAGE_ANNOTATION: "80"}, ready=7)
    h.clock.advance(3)
    result = await h.reconcile(key)
    assert h.kube.evictions == []
    assert result == Result(requeue_after=5.0)


async def test_floor_repair_evicts_the_pod_on_the_cordoned_node_once_per_breach() -> None:
    h = Harness()
    h.nodes(node("s1", "spot"), node("o1", "on-demand", cordoned=True), node("o2", "on-demand"))
    h.pods(pod("web-a", "s1"), pod("web-b", "s1"), pod("web-c", "o1"))
    # The window is closed all day but today's first minute: floor repair ignores it.
    key = h.deployment(
        "web",
        3,
        {
            c.SPOT_PERCENTAGE_ANNOTATION: "100",
            c.MIN_ON_DEMAND_ANNOTATION: "1",
            c.DISRUPTION_SCHEDULE_ANNOTATION: "0 0 1 1 *",
            c.DISRUPTION_DURATION_ANNOTATION: "1s",
        },
    )
    h.clock.advance(3)
    result = await h.reconcile(key)
    assert h.kube.evictions == ["web-c"]
    assert result == Result(requeue_after=2.0)
    assert h.events.reasons() == [c.EventReason.FLOOR_REPAIR]


async def test_pdb_allowing_nothing_blocks_and_backs_off() -> None:
    h = Harness()
    key = four_four(h)
    h.kube.pdbs = [
        {
            "metadata": {"name": "web-pdb"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 8},
            "status": {"disruptionsAllowed": 0},
        }
    ]
    h.clock.advance(3)
    result = await h.reconcile(key)
    assert h.kube.evictions == []
    assert result == Result(requeue_after=30.0)
    assert h.events.reasons() == [c.EventReason.REBALANCE_BLOCKED_BY_PDB]
    labels = {"namespace": NS, "workload": "web", "pdb_name": "web-pdb"}
    assert h.reconciler.metrics.blocked_by_pdb.labels(*labels.values())._value.get() == 1


async def test_429_backs_off_doubling() -> None:
    h = Harness()
    key = four_four(h)
    h.kube.fail_with = [
        TooManyRequests("budget", code=429, reason="TooManyRequests"),
        TooManyRequests("budget", code=429, reason="TooManyRequests"),
    ]
    h.clock.advance(3)
    assert await h.reconcile(key) == Result(requeue_after=30.0)
    h.clock.advance(10)
    blocked = await h.reconcile(key)
    assert blocked is not None
    assert blocked.requeue_after == pytest.approx(20.0)  # back-off pending
    h.clock.advance(21)
    assert await h.reconcile(key) == Result(requeue_after=60.0)
    h.clock.advance(61)
    await h.reconcile(key)
    assert h.kube.evictions == ["web-o3"]


async def test_invalid_annotation_emits_one_configuration_error_per_content() -> None:
    h = Harness()
    h.nodes(node("s1", "spot"))
    h.pods(pod("web-a", "s1"))
    key = h.deployment("web", 1, {c.SPOT_PERCENTAGE_ANNOTATION: "150"})
    assert await h.reconcile(key) is None
    assert await h.reconcile(key) is None
    assert h.events.reasons() == [c.EventReason.CONFIGURATION_ERROR]
    h.deployment("web", 1, {c.SPOT_PERCENTAGE_ANNOTATION: "abc"})
    await h.reconcile(key)
    assert h.events.reasons() == [c.EventReason.CONFIGURATION_ERROR] * 2
    assert h.kube.evictions == []


async def test_gone_and_out_of_scope_workloads_are_dropped() -> None:
    h = Harness()
    key = four_four(h)
    h.cache.namespaces[NS] = NamespaceRecord(NS, MappingProxyType({}), MappingProxyType({}))
    h.clock.advance(3)
    assert await h.reconcile(key) is None
    assert await h.reconcile(f"{NS}/Deployment/missing") is None
    assert h.kube.evictions == []


async def test_fallback_sets_the_marker_then_evicts_the_stuck_spot_pods() -> None:
    h = Harness()
    h.nodes(node("o1", "on-demand"))
    h.pods(pod("web-a", "o1"), pod("web-b", None, intent="spot", unschedulable_since=-20.0))
    key = h.deployment("web", 2, {c.SPOT_PERCENTAGE_ANNOTATION: "50"}, ready=1)
    result = await h.reconcile(key)  # in cooldown: fallback does not wait for it
    assert h.kube.evictions == ["web-b"]
    assert result == Result(requeue_after=2.0)
    [(kind, name, patch)] = h.kube.patches
    assert (kind, name) == ("Deployment", "web")
    assert list(patch) == ["metadata"]
    assert patch["metadata"]["annotations"] == {
        c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION: stamp(30),
        c.SPOT_FALLBACKS_ANNOTATION: "1",
    }
    assert h.events.reasons() == [c.EventReason.SPOT_FALLBACK]


async def test_young_unschedulable_spot_pod_is_left_alone() -> None:
    h = Harness()
    h.nodes(node("o1", "on-demand"))
    h.pods(pod("web-a", "o1"), pod("web-b", None, intent="spot", unschedulable_since=-5.0))
    key = h.deployment("web", 2, {c.SPOT_PERCENTAGE_ANNOTATION: "50"}, ready=1)
    await h.reconcile(key)
    assert (h.kube.evictions, h.kube.patches) == ([], [])


async def test_expired_marker_is_cleared_once_a_new_spot_pod_is_ready() -> None:
    h = Harness()
    h.nodes(node("s1", "spot"), node("o1", "on-demand"))
    h.pods(pod("web-a", "o1"), pod("web-b", "s1", created=50))
    h.clock.advance(60)
    key = h.deployment(
        "web",
        2,
        {
            c.SPOT_PERCENTAGE_ANNOTATION: "50",
            c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION: stamp(40),
            c.SPOT_FALLBACKS_ANNOTATION: "1",
        },
    )
    await h.reconcile(key)
    [(_, _, patch)] = h.kube.patches
    assert patch["metadata"]["annotations"] == {
        c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION: None,
        c.SPOT_FALLBACKS_ANNOTATION: None,
    }
    assert h.events.reasons() == [c.EventReason.SPOT_RESTORED]
