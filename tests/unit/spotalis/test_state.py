"""Spec 3.5: effective type, survivors, per-group counters, incremental == from-scratch."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubewright.spotalis.classify import (
    GKE_SPOT,
    KARPENTER_CAPACITY_TYPE,
    Capacity,
    LabelSelector,
    NodeClassifier,
    NodeStatus,
    Operator,
    Requirement,
)
from kubewright.spotalis.records import (
    INTENT_LABEL,
    NO_REQUEST,
    CapacityRequest,
    NodeRecord,
    OwnerRef,
    PodRecord,
)
from kubewright.spotalis.state import (
    ClusterState,
    Effective,
    GroupCounts,
    effective_type,
    recount,
)

pytestmark = pytest.mark.unit

RS_A = OwnerRef("ReplicaSet", "web-a", "ua")
RS_B = OwnerRef("ReplicaSet", "web-b", "ub")
STS = OwnerRef("StatefulSet", "db", "us")
JOB = OwnerRef("Job", "batch", "uj")
GROUP_A = "ns/ReplicaSet/web-a"
SPOT_REQUEST = CapacityRequest((Requirement(KARPENTER_CAPACITY_TYPE, Operator.IN, ("spot",)),), ())
OD_REQUEST = CapacityRequest((), ((Requirement(GKE_SPOT, Operator.NOT_IN, ("true",)),),))


def pod(
    name: str = "p0",
    *,
    owner: OwnerRef | None = RS_A,
    node: str | None = None,
    intent: str | None = None,
    request: CapacityRequest = NO_REQUEST,
    phase: str = "Running",
    deleted: float | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    since: float | None = None,
    created: float | None = 0.0,
) -> PodRecord:
    labels = MappingProxyType({INTENT_LABEL: intent} if intent else {})
    return PodRecord(
        namespace="ns",
        name=name,
        uid=f"u-{name}",
        resource_version="1",
        labels=labels,
        owner=owner,
        created=created,
        deleted=deleted,
        node_name=node,
        request=request,
        admission_id=None,
        deletion_cost=0,
        phase=phase,
        ready=ready,
        scheduled=node is not None,
        unschedulable=unschedulable,
        scheduled_changed=since,
        has_pvc=False,
    )


def node(
    name: str = "n0",
    capacity: str | None = "spot",
    *,
    unschedulable: bool = False,
    deleting: bool = False,
    taints: frozenset[str] = frozenset(),
    ready: bool = True,
) -> NodeRecord:
    labels = {KARPENTER_CAPACITY_TYPE: capacity} if capacity else {"kubernetes.io/hostname": name}
    return NodeRecord(
        name=name,
        uid=f"u-{name}",
        resource_version="1",
        labels=MappingProxyType(labels),
        unschedulable=unschedulable,
        deleting=deleting,
        taint_keys=taints,
        true_conditions=frozenset({"Ready"}) if ready else frozenset(),
    )


CLASSIFIER = NodeClassifier()
SPOT_NODE = CLASSIFIER.status(node("s", "spot"))
OD_NODE = CLASSIFIER.status(node("o", "on-demand"))
UNKNOWN_NODE = CLASSIFIER.status(node("u", None))


@pytest.mark.parametrize(
    ("record", "status", "expected"),
    [
        # gone
        (pod(deleted=5.0, node="s"), SPOT_NODE, Effective.GONE),
        (pod(phase="Succeeded", node="s"), SPOT_NODE, Effective.GONE),
        (pod(phase="Failed"), None, Effective.GONE),
        # leaving: node missing, reclaiming, not ready
        (pod(node="s"), None, Effective.LEAVING),
        (pod(node="s"), CLASSIFIER.status(node("s", "spot", unschedulable=True)), Effective.LEAVING),
        (pod(node="s"), CLASSIFIER.status(node("s", "spot", deleting=True)), Effective.LEAVING),
        (
            pod(node="s"),
            CLASSIFIER.status(node("s", "spot", taints=frozenset({"karpenter.sh/disrupted"}))),
            Effective.LEAVING,
        ),
        (pod(node="s"), CLASSIFIER.status(node("s", "spot", ready=False)), Effective.LEAVING),
        # scheduled: the node's type, whatever the intent says
        (pod(node="s", intent="on-demand"), SPOT_NODE, Effective.SPOT),
        (pod(node="o", intent="spot"), OD_NODE, Effective.ON_DEMAND),
        (pod(node="u"), UNKNOWN_NODE, Effective.ON_DEMAND),  # unknownNodeType
        # unscheduled: intent, else selector/affinity, else unknownNodeType
        (pod(intent="spot", request=OD_REQUEST, phase="Pending"), None, Effective.SPOT),
        (pod(request=SPOT_REQUEST, phase="Pending"), None, Effective.SPOT),
        (pod(request=OD_REQUEST, phase="Pending"), None, Effective.ON_DEMAND),
        (pod(phase="Pending"), None, Effective.ON_DEMAND),
    ],
)
def test_effective_type_table(record: PodRecord, status: NodeStatus | None, expected: Effective) -> None:
    assert effective_type(record, status, CLASSIFIER) is expected


def test_unknown_node_type_applies_to_unscheduled_and_unknown_nodes() -> None:
    classifier = NodeClassifier(unknown_node_type=Capacity.SPOT)
    assert effective_type(pod(phase="Pending"), None, classifier) is Effective.SPOT
    assert effective_type(pod(node="u"), classifier.status(node("u", None)), classifier) is Effective.SPOT


def test_counts_survivors_leaving_ready_and_candidates() -> None:
    state = ClusterState(CLASSIFIER)
    state.upsert_node(node("s1", "spot"))
    state.upsert_node(node("o1", "on-demand"))
    state.upsert_node(node("s2", "spot", unschedulable=True))
    for record in (
        pod("a", node="s1"),
        pod("b", node="o1"),
        pod("c", node="s2"),
        pod("d", intent="spot", phase="Pending", ready=False, unschedulable=True, since=100.0),
        pod("e", intent="on-demand", phase="Pending", ready=False),
        pod("f", node="o1", deleted=9.0),
        pod("g", owner=RS_B, node="s1"),
        pod("h", owner=JOB, node="s1"),
    ):
        state.upsert_pod(record)
    assert state.counts(GROUP_A) == GroupCounts(spot=2, on_demand=2, leaving=1, ready=3, pending_spot=1)
    assert state.counts(GROUP_A).survivors == 4
    assert state.counts("ns/ReplicaSet/web-b") == GroupCounts(spot=1, ready=1)
    assert state.counts("ns/Job/batch") == GroupCounts()  # not a group kind: not counted
    assert state.pod("ns", "h") is None
    assert state.candidates(GROUP_A) == {"ns/d": 100.0}
    assert sorted(p.name for p in state.pods_on("s1")) == ["a", "g"]
    assert state.effective("ns", "c") is Effective.LEAVING
    # Summed over a Deployment's ReplicaSets.
    view = state.view([GROUP_A, "ns/ReplicaSet/web-b", GROUP_A])
    assert view.groups == (GROUP_A, "ns/ReplicaSet/web-b")
    assert view.counts == GroupCounts(spot=3, on_demand=2, leaving=1, ready=4, pending_spot=1)
    assert [p.pod.name for p in view.of_type(Effective.LEAVING)] == ["c"]
    leaving = view.of_type(Effective.LEAVING)[0]
    assert leaving.node is not None
    assert leaving.node.reclaim is not None
    assert not leaving.survivor
    assert [p.name for p in view.fallback_candidates(now=150.0, timeout=60.0)] == []
    assert [p.name for p in view.fallback_candidates(now=161.0, timeout=60.0)] == ["d"]


def test_survivor_counts_exclude_the_same_name_compat() -> None:
    state = ClusterState(CLASSIFIER)
    state.upsert_node(node("s1", "spot"))
    state.upsert_node(node("o1", "on-demand"))
    state.upsert_pod(pod("db-0", owner=STS, node="o1"))
    state.upsert_pod(pod("db-1", owner=STS, node="s1"))
    state.upsert_pod(pod("db-2", owner=STS, node="s1", deleted=1.0))
    group = "ns/StatefulSet/db"
    assert state.survivor_counts(group) == GroupCounts(spot=1, on_demand=1, ready=2)
    assert state.survivor_counts(group, "db-0") == GroupCounts(spot=1, on_demand=0, ready=2)
    assert state.survivor_counts(group, "db-1") == GroupCounts(spot=0, on_demand=1, ready=2)
    assert state.survivor_counts(group, "db-2") == state.survivor_counts(group)  # gone: not a survivor
    assert state.survivor_counts(group, "db-9") == state.survivor_counts(group)
    # Same name in another group does not count against this one.
    assert state.survivor_counts(GROUP_A, "db-1") == GroupCounts()


def test_node_events_move_pods_and_report_groups() -> None:
    state = ClusterState(CLASSIFIER)
    assert state.upsert_pod(pod("a", node="n1")) == {GROUP_A}
    assert state.counts(GROUP_A).leaving == 1  # node not seen yet
    change = state.upsert_node(node("n1", "spot"))
    assert change.groups == {GROUP_A}
    assert state.counts(GROUP_A) == GroupCounts(spot=1, ready=1)
    # A label-only change that keeps the capacity changes nothing.
    assert not state.upsert_node(replace(node("n1", "spot"), resource_version="2")).groups
    change = state.upsert_node(node("n1", "spot", taints=frozenset({"karpenter.sh/disrupted"})))
    assert change.groups == {GROUP_A}
    assert state.counts(GROUP_A).leaving == 1
    # Tainted -> deleted: counts stay, the reason changes; still re-enqueued (floor-repair order).
    change = state.upsert_node(node("n1", "spot", deleting=True))
    assert change.groups == {GROUP_A}
    assert state.remove_node("n1").groups == {GROUP_A}
    assert state.counts(GROUP_A).leaving == 1
    assert not state.remove_node("n1").groups
    assert state.remove_pod("ns", "a") == {GROUP_A}
    assert state.groups() == []
    assert state.all_counts() == {}


def test_unknown_nodes_are_reported_once() -> None:
    state = ClusterState(CLASSIFIER)
    assert state.upsert_node(node("u1", None)).newly_unknown == ("u1",)
    assert state.upsert_node(replace(node("u1", None), resource_version="2")).newly_unknown == ()
    # Classified later, then unknown again: reported again.
    state.upsert_node(node("u1", "spot"))
    assert state.upsert_node(node("u1", None)).newly_unknown == ("u1",)
    # A new rule that classifies it: reconfigure reclassifies every node and recounts.
    state.upsert_pod(pod("a", node="u1"))
    assert state.counts(GROUP_A).on_demand == 1
    hostname_rule = NodeClassifier(spot_labels=(LabelSelector.label("kubernetes.io/hostname", "u1"),))
    change = state.reconfigure(hostname_rule)
    assert change.groups == {GROUP_A}
    assert state.counts(GROUP_A).spot == 1
    back = state.reconfigure(CLASSIFIER)
    assert back.newly_unknown == ("u1",)


def test_pod_moving_between_groups_and_orphaning() -> None:
    state = ClusterState(CLASSIFIER)
    state.upsert_node(node("s1", "spot"))
    state.upsert_pod(pod("a", node="s1"))
    assert state.upsert_pod(pod("a", owner=RS_B, node="s1")) == {GROUP_A, "ns/ReplicaSet/web-b"}
    assert state.counts(GROUP_A) == GroupCounts()
    assert state.upsert_pod(pod("a", owner=None, node="s1")) == {"ns/ReplicaSet/web-b"}
    assert state.all_counts() == {}


# -- property: incremental == from scratch -----------------------------------------------------------------

NAMES = [f"p{i}" for i in range(6)]
NODES = [f"n{i}" for i in range(3)]

pods = st.builds(
    pod,
    st.sampled_from(NAMES),
    owner=st.sampled_from([RS_A, RS_B, STS, JOB, None]),
    node=st.sampled_from([None, *NODES]),
    intent=st.sampled_from([None, "spot", "on-demand", "bogus"]),
    request=st.sampled_from([NO_REQUEST, SPOT_REQUEST, OD_REQUEST]),
    phase=st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
    deleted=st.sampled_from([None, 3.0]),
    ready=st.booleans(),
    unschedulable=st.booleans(),
    since=st.sampled_from([None, 10.0, 20.0]),
    created=st.sampled_from([None, 1.0]),
)
nodes = st.builds(
    node,
    st.sampled_from(NODES),
    st.sampled_from(["spot", "on-demand", "reserved", None]),
    unschedulable=st.booleans(),
    deleting=st.booleans(),
    taints=st.frozensets(
        st.sampled_from(["karpenter.sh/disrupted", "node.kubernetes.io/unschedulable", "x"])
    ),
    ready=st.booleans(),
)
classifiers = st.sampled_from(
    [
        CLASSIFIER,
        NodeClassifier(unknown_node_type=Capacity.SPOT),
        NodeClassifier(spot_labels=(LabelSelector.label(KARPENTER_CAPACITY_TYPE, "reserved"),)),
        NodeClassifier(reclaim_taints=frozenset({"x"}), builtin_providers=()),
    ]
)
ops = st.one_of(
    st.tuples(st.just("pod"), pods),
    st.tuples(st.just("rmpod"), st.sampled_from(NAMES)),
    st.tuples(st.just("node"), nodes),
    st.tuples(st.just("rmnode"), st.sampled_from(NODES)),
    st.tuples(st.just("reconfigure"), classifiers),
)


@settings(max_examples=300)
@given(st.lists(ops, max_size=40))
def test_incremental_counts_equal_a_recount(steps: list[tuple[str, object]]) -> None:
    state = ClusterState(CLASSIFIER)
    classifier = CLASSIFIER
    live_pods: dict[str, PodRecord] = {}
    live_nodes: dict[str, NodeRecord] = {}
    for kind, arg in steps:
        before = state.all_counts()
        if kind == "pod":
            assert isinstance(arg, PodRecord)
            live_pods[arg.name] = arg
            affected = state.upsert_pod(arg)
        elif kind == "rmpod":
            assert isinstance(arg, str)
            live_pods.pop(arg, None)
            affected = state.remove_pod("ns", arg)
        elif kind == "node":
            assert isinstance(arg, NodeRecord)
            live_nodes[arg.name] = arg
            affected = state.upsert_node(arg).groups
        elif kind == "rmnode":
            assert isinstance(arg, str)
            live_nodes.pop(arg, None)
            affected = state.remove_node(arg).groups
        else:
            assert isinstance(arg, NodeClassifier)
            classifier = arg
            affected = state.reconfigure(arg).groups
        expected = recount(live_pods.values(), live_nodes.values(), classifier)
        after = state.all_counts()
        assert after == expected
        # Every group whose counters moved is reported, so its workload is re-enqueued.
        moved = {g for g in before.keys() | after.keys() if before.get(g) != after.get(g)}
        assert moved <= affected
        # The candidate index agrees with the counter.
        for group, counts in after.items():
            assert len(state.candidates(group)) == counts.pending_spot
            assert {p.key for p in state.pods_in(group)} == {
                p.key for p in live_pods.values() if p.group == group
            }
        view = state.view(after)
        assert view.counts == sum(after.values(), GroupCounts())
