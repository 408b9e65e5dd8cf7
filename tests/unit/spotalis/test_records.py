"""Spec 3.5: pod, node and workload records: what they keep, sharing, and projection-compatibility."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.runtime.store import make_projection
from kubewright.spotalis.classify import KARPENTER_CAPACITY_TYPE, Capacity, Operator, Requirement
from kubewright.spotalis.records import (
    ADMISSION_ID_ANNOTATION,
    INTENT_LABEL,
    NO_REQUEST,
    NODE_FIELDS,
    POD_FIELDS,
    WORKLOAD_FIELDS,
    CapacityRequest,
    RecordDecoder,
    group_key,
    parse_time,
)

pytestmark = pytest.mark.unit

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def rs_pod(name: str = "web-7d9f-abcde", **overrides: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": "42",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d9f", INTENT_LABEL: "spot"},
            "annotations": {
                ADMISSION_ID_ANNOTATION: "req-1",
                "controller.kubernetes.io/pod-deletion-cost": "-5",
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 2000 + "}",
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u0"},
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f",
                    "uid": "rs-uid",
                    "controller": True,
                },
            ],
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "nodeName": "kwok-spot-0001",
            "nodeSelector": {"kubernetes.io/os": "linux", KARPENTER_CAPACITY_TYPE: "spot"},
            "affinity": {
                "nodeAffinity": {
                    REQUIRED: {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]},
                                    {"key": KARPENTER_CAPACITY_TYPE, "operator": "In", "values": ["spot"]},
                                ]
                            },
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]},
                        ]
                    }
                }
            },
            "containers": [{"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}] * 20}],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "cm", "configMap": {}},
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-05-01T10:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:05Z"},
            ],
            "containerStatuses": [{"name": "app", "ready": True}],
        },
    }
    for path, value in overrides.items():
        target = pod
        *parents, last = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return pod


def test_pod_record_keeps_what_decisions_read() -> None:
    rec = RecordDecoder().pod(rs_pod())
    assert (rec.namespace, rec.name, rec.uid, rec.resource_version) == (
        "shop",
        "web-7d9f-abcde",
        "uid-web-7d9f-abcde",
        "42",
    )
    assert rec.owner is not None
    assert (rec.owner.kind, rec.owner.name, rec.owner.uid) == ("ReplicaSet", "web-7d9f", "rs-uid")
    assert rec.group == group_key("shop", "ReplicaSet", "web-7d9f") == "shop/ReplicaSet/web-7d9f"
    assert rec.created == parse_time("2024-05-01T10:00:00Z") == 1714557600.0
    assert rec.deleted is None
    assert not rec.deleting
    assert rec.node_name == "kwok-spot-0001"
    assert rec.admission_id == "req-1"
    assert rec.deletion_cost == -5
    assert rec.phase == "Running"
    assert rec.ready
    assert rec.scheduled
    assert not rec.unschedulable
    assert rec.scheduled_changed == 1714557601.0
    assert rec.has_pvc
    assert rec.intent is Capacity.SPOT
    assert rec.labels == {"app": "web", "pod-template-hash": "7d9f", INTENT_LABEL: "spot"}
    assert rec.key == "shop/web-7d9f-abcde"
    # Only capacity keys survive from the selector and affinity; term structure (OR of ANDs) is kept.
    spot = Requirement(KARPENTER_CAPACITY_TYPE, Operator.IN, ("spot",))
    assert rec.request == CapacityRequest((spot,), ((spot,), ()))


def test_record_has_no_dict_and_nothing_of_the_spec() -> None:
    rec = RecordDecoder().pod(rs_pod())
    assert not hasattr(rec, "__dict__")
    assert sys.getsizeof(rec) < 250
    fields = set(type(rec).__slots__)
    assert not fields & {"spec", "status", "containers", "annotations", "managed_fields"}


def test_pending_unschedulable_pod() -> None:
    pod = rs_pod(
        spec__nodeName=None,
        status={
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "lastTransitionTime": "2024-05-01T10:01:00Z",
                }
            ],
        },
    )
    rec = RecordDecoder().pod(pod)
    assert rec.node_name is None
    assert rec.phase == "Pending"
    assert not rec.scheduled
    assert rec.unschedulable
    assert not rec.ready
    assert rec.scheduled_changed == 1714557660.0


@pytest.mark.parametrize(
    ("overrides", "attr", "expected"),
    [
        (
            {"metadata__annotations": {"controller.kubernetes.io/pod-deletion-cost": "lots"}},
            "deletion_cost",
            0,
        ),
        ({"metadata__annotations": None}, "admission_id", None),
        ({"metadata__labels": {INTENT_LABEL: "Spot"}}, "intent", None),
        ({"metadata__labels": {INTENT_LABEL: "on-demand"}}, "intent", Capacity.ON_DEMAND),
        ({"metadata__ownerReferences": [{"kind": "ReplicaSet", "name": "x", "uid": "u"}]}, "owner", None),
        ({"metadata__ownerReferences": None}, "group", None),
        ({"metadata__deletionTimestamp": "2024-05-01T11:00:00Z"}, "deleting", True),
        ({"status": {}}, "phase", "Pending"),
        ({"spec__volumes": [{"name": "e", "ephemeral": {}}]}, "has_pvc", True),
        ({"spec__volumes": None}, "has_pvc", False),
        ({"spec__affinity": None, "spec__nodeSelector": {"zone": "a"}}, "request", NO_REQUEST),
        ({"metadata__creationTimestamp": "yesterday"}, "created", None),
    ],
)
def test_pod_field_edges(overrides: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(RecordDecoder().pod(rs_pod(**overrides)), attr) == expected


def test_statefulset_pod_ordinal_and_group() -> None:
    pod = rs_pod(
        "db-12",
        metadata__ownerReferences=[{"kind": "StatefulSet", "name": "db", "uid": "s", "controller": True}],
    )
    rec = RecordDecoder().pod(pod)
    assert rec.group == "shop/StatefulSet/db"
    assert rec.ordinal == 12
    assert RecordDecoder().pod(rs_pod()).ordinal is None


def test_siblings_share_labels_owner_and_request() -> None:
    decoder = RecordDecoder()
    a = decoder.pod(rs_pod("web-7d9f-aaaaa"))
    b = decoder.pod(rs_pod("web-7d9f-bbbbb"))
    assert a.labels is b.labels
    assert a.owner is b.owner
    assert a.request is b.request
    with pytest.raises(TypeError):
        a.labels["app"] = "other"  # type: ignore[index]


def test_share_table_is_bounded() -> None:
    decoder = RecordDecoder(max_shared=4)
    for i in range(50):
        decoder.pod(rs_pod(f"p{i}", metadata__labels={"i": str(i)}))
    assert len(decoder._shared) <= 4
    # Sharing still gives equal values after the table starts over.
    assert decoder.pod(rs_pod("x")).labels == RecordDecoder().pod(rs_pod("y")).labels


def test_capacity_keys_select_what_the_request_keeps() -> None:
    decoder = RecordDecoder(capacity_keys={"lifecycle"})
    pod = rs_pod(spec__nodeSelector={"lifecycle": "spot", KARPENTER_CAPACITY_TYPE: "spot"})
    rec = decoder.pod(pod)
    assert rec.request.node_selector == (Requirement("lifecycle", Operator.IN, ("spot",)),)
    assert rec.request.terms == ((), ())


def test_projected_objects_decode_the_same() -> None:
    """The informer's projection with POD_FIELDS keeps everything the decoder reads."""
    decoder = RecordDecoder()
    project = make_projection(POD_FIELDS)
    for pod in (rs_pod(), rs_pod(spec__nodeName=None, status={"phase": "Pending"})):
        assert decoder.pod(project(copy.deepcopy(pod))) == decoder.pod(pod)
    node = kwok_node()
    assert decoder.node(make_projection(NODE_FIELDS)(node)) == decoder.node(node)
    for workload in (deployment(), statefulset()):
        kind = workload["kind"]
        assert decoder.workload(make_projection(WORKLOAD_FIELDS)(workload), kind) == decoder.workload(
            workload, kind
        )


def kwok_node(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Node",
        "metadata": {
            "name": "kwok-spot-0001",
            "uid": "node-uid",
            "resourceVersion": "7",
            "labels": {KARPENTER_CAPACITY_TYPE: "spot", "kubernetes.io/hostname": "kwok-spot-0001"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}], **spec},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"},
                {"type": "TerminationImminent", "status": "True"},
            ],
            "capacity": {"cpu": "4"},
        },
    }


def test_node_record() -> None:
    decoder = RecordDecoder()
    rec = decoder.node(kwok_node(unschedulable=True))
    assert rec.name == "kwok-spot-0001"
    assert rec.labels[KARPENTER_CAPACITY_TYPE] == "spot"
    assert rec.unschedulable
    assert not rec.deleting
    assert rec.taint_keys == {"karpenter.sh/disrupted"}
    assert rec.true_conditions == {"Ready", "TerminationImminent"}
    bare = decoder.node({"metadata": {"name": "n", "deletionTimestamp": "2024-05-01T10:00:00Z"}})
    assert bare.deleting
    assert not bare.unschedulable
    assert bare.true_conditions == frozenset()
    assert decoder.node(kwok_node()).taint_keys is rec.taint_keys


def deployment() -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "d-uid",
            "resourceVersion": "9",
            "generation": 3,
            "labels": {"spotalis.io/enabled": "true"},
            "annotations": {
                "spotalis.io/spot-percentage": "70",
                "deployment.kubernetes.io/revision": "2",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "replicas": 10,
            "strategy": {"type": "RollingUpdate"},
            "template": {"spec": {"containers": []}},
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 10,
            "updatedReplicas": 10,
            "readyReplicas": 9,
            "availableReplicas": 9,
            "unavailableReplicas": 1,
        },
    }


def statefulset() -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop", "uid": "s-uid", "generation": 1},
        "spec": {"updateStrategy": {"type": "OnDelete"}},
        "status": {"currentRevision": "db-1", "updateRevision": "db-2", "readyReplicas": 2},
    }


def test_workload_records() -> None:
    decoder = RecordDecoder()
    d = decoder.workload(deployment(), "Deployment")
    assert (d.kind, d.namespace, d.name, d.generation, d.replicas, d.strategy) == (
        "Deployment",
        "shop",
        "web",
        3,
        10,
        "RollingUpdate",
    )
    assert d.annotations == {"spotalis.io/spot-percentage": "70"}  # only spotalis.io/ keys are kept
    assert d.labels == {"spotalis.io/enabled": "true"}
    assert d.status.unavailable_replicas == 1
    assert d.status.ready_replicas == 9
    assert d.key == "shop/Deployment/web"
    s = decoder.workload(statefulset(), "StatefulSet")
    assert s.replicas is None
    assert s.strategy == "OnDelete"
    assert (s.status.current_revision, s.status.update_revision) == ("db-1", "db-2")
    rs = decoder.workload(
        {
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-7d9f",
                "namespace": "shop",
                "ownerReferences": [
                    {"kind": "Deployment", "name": "web", "uid": "d-uid", "controller": True}
                ],
            },
            "spec": {"replicas": 0},
        },
        "ReplicaSet",
    )
    assert rs.owner is not None
    assert rs.owner.name == "web"
    assert rs.replicas == 0


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_decoders_never_raise_on_odd_shapes(junk: Any) -> None:
    decoder = RecordDecoder()
    for shape in ({"metadata": junk}, {"spec": junk, "status": junk}, {"metadata": {"labels": junk}}):
        decoder.pod(shape)
        decoder.node(shape)
        decoder.workload(shape, "Deployment")
