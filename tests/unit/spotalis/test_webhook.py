"""Loopback contract tests of POST /mutate (spec 2.5, 3.6, 9 "loopback contract tests")."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from kubewright.runtime.https import new_application
from kubewright.spotalis import constants as c
from kubewright.spotalis.cache import NamespaceRecord, OwnerLookupError, build_classifier
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.inflight import InflightTracker
from kubewright.spotalis.metrics import SpotalisMetrics
from kubewright.spotalis.records import RecordDecoder, WorkloadRecord
from kubewright.spotalis.state import ClusterState
from kubewright.spotalis.webhook import APP_CLIENT_MAX_SIZE, SpotalisWebhook

pytestmark = pytest.mark.unit

NS = "apps"
DECODER = RecordDecoder()


def workload(
    kind: str, name: str, *, replicas: int, labels: Mapping[str, str] | None = None, **extra: Any
) -> WorkloadRecord:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "labels": dict(labels or {}),
        "annotations": extra.pop("annotations", {}),
    }
    if "owner" in extra:
        kind_, owner = extra.pop("owner")
        meta["ownerReferences"] = [{"kind": kind_, "name": owner, "uid": f"uid-{owner}", "controller": True}]
    return DECODER.workload({"metadata": meta, "spec": {"replicas": replicas}}, kind)


ENABLED = {c.ENABLED_LABEL: c.ENABLED_VALUE}
RATIO = {c.SPOT_PERCENTAGE_ANNOTATION: "70", c.MIN_ON_DEMAND_ANNOTATION: "1"}


@dataclass
class FakeSource:
    workloads: dict[tuple[str, str], WorkloadRecord] = field(default_factory=dict)
    namespaces: dict[str, NamespaceRecord] = field(default_factory=dict)
    remote: dict[tuple[str, str], WorkloadRecord] = field(default_factory=dict)
    fail_fetch: bool = False
    fetched: list[tuple[str, str]] = field(default_factory=list)

    def add(self, record: WorkloadRecord, *, remote_only: bool = False) -> None:
        (self.remote if remote_only else self.workloads)[(record.kind, record.name)] = record

    def workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None:
        return self.workloads.get((kind, name)) if namespace == NS else None

    def namespace(self, name: str) -> NamespaceRecord | None:
        return self.namespaces.get(name)

    async def fetch_workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None:
        self.fetched.append((kind, name))
        if self.fail_fetch:
            raise OwnerLookupError(f"GET {kind} {namespace}/{name}: TimeoutError")
        return self.remote.get((kind, name))


def managed_source(
    annotations: Mapping[str, str] = RATIO, *, replicas: int = 10, labels: Mapping[str, str] = ENABLED
) -> FakeSource:
    source = FakeSource()
    source.namespaces[NS] = NamespaceRecord(NS, dict(ENABLED), {})
    source.add(workload("Deployment", "web", replicas=replicas, labels=labels, annotations=dict(annotations)))
    source.add(workload("ReplicaSet", "web-abc", replicas=replicas, owner=("Deployment", "web")))
    source.add(workload("StatefulSet", "db", replicas=4, labels=labels, annotations=dict(annotations)))
    return source


def pod(owner: tuple[str, str] | None = ("ReplicaSet", "web-abc"), **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": "web-abc-", "namespace": NS, "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "u", "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "pause"}], **spec},
    }


def review(
    obj: Any, *, uid: str = "req-1", kind: str = "Pod", operation: str = "CREATE", **extra: Any
) -> dict[str, Any]:
    version = extra.pop("api_version", "admission.k8s.io/v1")
    request = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "namespace": NS,
        "operation": operation,
        "object": obj,
        **extra,
    }
    return {"apiVersion": version, "kind": "AdmissionReview", "request": request}


@dataclass
class Hook:
    client: TestClient[Any, Any]
    webhook: SpotalisWebhook
    registry: CollectorRegistry

    async def post(self, body: Any, path: str = "/mutate") -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = await self.client.post(path, data=data, headers={"Content-Type": "application/json"})
        return resp.status, await resp.json()

    async def admit(self, obj: Any, **kw: Any) -> dict[str, Any]:
        status, answer = await self.post(review(obj, **kw))
        assert status == 200, answer
        response: dict[str, Any] = answer["response"]
        assert response["allowed"] is True  # never a denial
        return response


async def start_hook(config: SpotalisConfig, source: FakeSource) -> Hook:
    registry = CollectorRegistry()
    classifier = build_classifier(config)
    webhook = SpotalisWebhook(
        config, source, ClusterState(classifier), InflightTracker(), SpotalisMetrics(registry)
    )
    app = new_application(client_max_size=APP_CLIENT_MAX_SIZE)
    webhook.add_routes(app, registry)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return Hook(client, webhook, registry)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    started = await start_hook(SpotalisConfig(), managed_source())
    yield started
    await started.client.close()


def patch_of(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return ops


def op_at(ops: list[dict[str, Any]], path: str) -> dict[str, Any]:
    return next(op for op in ops if op["path"] == path)


# -- the 400 / 413 contract -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", c.ERROR_CODE_INVALID_REQUEST),
        (b"", c.ERROR_CODE_INVALID_REQUEST),
        (b"[1, 2]", c.ERROR_CODE_INVALID_REQUEST),
        (
            json.dumps({"apiVersion": "v1", "kind": "Pod", "request": {}}).encode(),
            c.ERROR_CODE_INVALID_REQUEST,
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "EMPTY"),
        (json.dumps({"kind": "AdmissionReview", "request": None}).encode(), "EMPTY"),
        (json.dumps({"kind": "AdmissionReview", "request": {"uid": "x"}}).encode(), "INVALID"),
        (json.dumps({"kind": "AdmissionReview", "request": "text"}).encode(), "INVALID"),
    ],
)
async def test_malformed_and_empty_reviews_get_400_with_string_codes(
    hook: Hook, body: bytes, code: str
) -> None:
    status, answer = await hook.post(body)
    assert status == 400
    expected = {"EMPTY": c.ERROR_CODE_EMPTY_REQUEST, "INVALID": c.ERROR_CODE_INVALID_REQUEST}.get(code, code)
    assert answer["code"] == expected
    assert answer["error"]


async def test_oversized_body_gets_413(hook: Hook) -> None:
    big = review(pod(), padding="x" * (c.MAX_REVIEW_BYTES + 1))
    status, answer = await hook.post(big)
    assert status == 413
    assert "error" in answer


async def test_just_under_the_limit_is_answered(hook: Hook) -> None:
    body = review(pod())
    body["request"]["options"] = {"pad": ""}
    size = len(json.dumps(body).encode())
    body["request"]["options"]["pad"] = "x" * (c.MAX_REVIEW_BYTES - size)
    status, _ = await hook.post(body)
    assert status == 200


async def test_wrong_method_is_405(hook: Hook) -> None:
    resp = await hook.client.get("/mutate")
    assert resp.status == 405


# -- allowed without a patch ----------------------------------------------------------------------------


async def test_non_pod_is_allowed_as_unsupported_kind(hook: Hook) -> None:
    response = await hook.admit({"metadata": {"name": "cm"}}, kind="ConfigMap")
    assert response["status"]["message"] == "unsupported resource kind"
    assert "patch" not in response
    assert response["uid"] == "req-1"


@pytest.mark.parametrize(
    ("obj", "operation"),
    [(pod(), "UPDATE"), (pod(nodeName="kwok-spot-0001"), "CREATE")],
)
async def test_not_create_or_bound_pod_gets_no_patch(hook: Hook, obj: dict[str, Any], operation: str) -> None:
    response = await hook.admit(obj, operation=operation)
    assert "patch" not in response


async def test_bare_pod_and_foreign_owner_are_not_managed(hook: Hook) -> None:
    for obj in (pod(owner=None), pod(owner=("Job", "batch")), pod(owner=("DaemonSet", "agent"))):
        response = await hook.admit(obj)
        assert response["status"]["message"] == "not managed by Spotalis"
        assert "patch" not in response


async def test_unlabelled_workload_or_namespace_is_not_managed() -> None:
    for source in (managed_source(labels={}), managed_source(labels={c.ENABLED_LABEL: "True"})):
        hook = await start_hook(SpotalisConfig(), source)
        try:
            response = await hook.admit(pod())
            assert response["status"]["message"] == "not managed by Spotalis"
            assert "patch" not in response
        finally:
            await hook.client.close()
    source = managed_source()
    source.namespaces[NS] = NamespaceRecord(NS, {}, {})
    hook = await start_hook(SpotalisConfig(), source)
    try:
        assert (await hook.admit(pod()))["status"]["message"] == "not managed by Spotalis"
    finally:
        await hook.client.close()


async def test_bad_annotation_allows_without_patch_and_says_why() -> None:
    hook = await start_hook(SpotalisConfig(), managed_source({c.SPOT_PERCENTAGE_ANNOTATION: "150"}))
    try:
        response = await hook.admit(pod())
    finally:
        await hook.client.close()
    assert response["status"]["message"] == "failed to get workload config"
    assert "patch" not in response
    assert any("spot-percentage" in w for w in response["warnings"])


async def test_undecodable_pod_is_allowed_with_a_warning(hook: Hook) -> None:
    response = await hook.admit({"metadata": "oops", "spec": []})
    assert "patch" not in response
    assert response["warnings"]


async def test_read_only_mode_never_patches() -> None:
    config = SpotalisConfig.model_validate({"operator": {"readOnlyMode": True}})
    hook = await start_hook(config, managed_source())
    try:
        response = await hook.admit(pod())
    finally:
        await hook.client.close()
    assert "patch" not in response


async def test_owner_lookup_failure_leaves_the_pod_unmutated() -> None:
    source = managed_source()
    del source.workloads[("ReplicaSet", "web-abc")]
    source.fail_fetch = True
    hook = await start_hook(SpotalisConfig(), source)
    try:
        response = await hook.admit(pod())
    finally:
        await hook.client.close()
    assert "patch" not in response
    assert any("TimeoutError" in w for w in response["warnings"])
    assert source.fetched == [("ReplicaSet", "web-abc")]
    value = hook.registry.get_sample_value(
        "spotalis_webhook_requests_total", {"operation": "CREATE", "resource_kind": "Pod", "result": "error"}
    )
    assert value == 1


# -- managed ----------------------------------------------------------------------------------------------


async def test_managed_pod_gets_affinity_label_and_admission_id(hook: Hook) -> None:
    response = await hook.admit(pod(), uid="abc-123")
    assert response["uid"] == "abc-123"
    ops = patch_of(response)
    assert op_at(ops, "/metadata/labels/spotalis.io~1capacity-intent")["value"] == "on-demand"  # floor first
    assert op_at(ops, "/metadata/annotations")["value"] == {"spotalis.io/admission-id": "abc-123"}
    affinity = op_at(ops, "/spec/affinity")["value"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "reserved"]}
            ]
        }
    ]
    assert hook.registry.get_sample_value(
        "spotalis_webhook_mutations_total", {"resource_kind": "Pod", "mutation_type": "on-demand"}
    )


async def test_mutate_v1_pod_path_and_v1beta1_are_served(hook: Hook) -> None:
    status, answer = await hook.post(review(pod(), api_version="admission.k8s.io/v1beta1"), "/mutate-v1-pod")
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"]["patchType"] == "JSONPatch"


async def test_a_burst_lands_on_the_split(hook: Hook) -> None:
    intents = []
    for i in range(10):
        ops = patch_of(await hook.admit(pod(), uid=f"burst-{i}"))
        intents.append(op_at(ops, "/metadata/labels/spotalis.io~1capacity-intent")["value"])
    assert intents.count("spot") == 7
    assert intents.count("on-demand") == 3
    assert len(hook.webhook.inflight) == 10


async def test_dry_run_is_answered_alike_but_not_recorded(hook: Hook) -> None:
    response = await hook.admit(pod(), dryRun=True)
    assert patch_of(response)
    assert len(hook.webhook.inflight) == 0


async def test_statefulset_pod_is_managed(hook: Hook) -> None:
    ops = patch_of(await hook.admit(pod(owner=("StatefulSet", "db"))))
    assert op_at(ops, "/metadata/labels/spotalis.io~1capacity-intent")["value"] == "on-demand"


async def test_cache_miss_uses_one_get() -> None:
    source = managed_source()
    rs = source.workloads.pop(("ReplicaSet", "web-abc"))
    source.add(rs, remote_only=True)
    hook = await start_hook(SpotalisConfig(), source)
    try:
        assert patch_of(await hook.admit(pod()))
    finally:
        await hook.client.close()
    assert source.fetched == [("ReplicaSet", "web-abc")]


SPOT_ONLY = {c.SPOT_PERCENTAGE_ANNOTATION: "100", c.MIN_ON_DEMAND_ANNOTATION: "0"}


@pytest.mark.parametrize(
    ("placement", "spot_expression", "toleration"),
    [
        (
            {"provider": "karpenter"},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
            None,
        ),
        (
            {"provider": "eks"},
            {"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["SPOT"]},
            None,
        ),
        (
            {"provider": "gke"},
            {"key": "cloud.google.com/gke-spot", "operator": "In", "values": ["true"]},
            "cloud.google.com/gke-spot",
        ),
        (
            {"provider": "aks"},
            {"key": "kubernetes.azure.com/scalesetpriority", "operator": "In", "values": ["spot"]},
            "kubernetes.azure.com/scalesetpriority",
        ),
    ],
)
async def test_each_provider_in_required_affinity_mode(
    placement: dict[str, str], spot_expression: dict[str, Any], toleration: str | None
) -> None:
    config = SpotalisConfig.model_validate({"webhook": {"placement": placement}})
    hook = await start_hook(config, managed_source(SPOT_ONLY))
    try:
        ops = patch_of(await hook.admit(pod()))
    finally:
        await hook.client.close()
    affinity = op_at(ops, "/spec/affinity")["value"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [spot_expression]}]
    tolerations = [op for op in ops if op["path"] == "/spec/tolerations"]
    if toleration is None:
        assert not tolerations
    else:
        assert tolerations[0]["value"][0]["key"] == toleration


async def test_node_selector_mode_uses_upstream_patch_shapes() -> None:
    config = SpotalisConfig.model_validate({"webhook": {"placement": {"mode": "nodeSelector"}}})
    hook = await start_hook(config, managed_source(SPOT_ONLY))
    try:
        first = patch_of(await hook.admit(pod(), uid="a"))
        second = patch_of(await hook.admit(pod(nodeSelector={"disk": "ssd"}), uid="b"))
    finally:
        await hook.client.close()
    assert first[0] == {
        "op": "add",
        "path": "/spec/nodeSelector",
        "value": {"karpenter.sh/capacity-type": "spot"},
    }
    assert second[0] == {
        "op": "add",
        "path": "/spec/nodeSelector/karpenter.sh~1capacity-type",
        "value": "spot",
    }


async def test_preferred_affinity_mode_prefers_ratio_pods() -> None:
    config = SpotalisConfig.model_validate({"webhook": {"placement": {"mode": "preferredAffinity"}}})
    hook = await start_hook(config, managed_source(SPOT_ONLY))
    try:
        ops = patch_of(await hook.admit(pod()))
    finally:
        await hook.client.close()
    node_affinity = op_at(ops, "/spec/affinity")["value"]["nodeAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in node_affinity
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
