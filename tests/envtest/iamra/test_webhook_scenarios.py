"""Spec 9 acceptance scenarios 1, 3-7, 9 and 12 against a real kube-apiserver."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubewright.iamra.local import RELEASE_NAMESPACE
from kubewright.runtime.kube import BadRequest, KubeClient, KubeError
from kubewright.testenv.pytest_plugin import LocalCluster
from tests.support.iamra_webhook import (
    ANNOTATIONS,
    create_when_webhook_live,
    metric,
    opt_in,
    pod,
    run_webhook,
)

pytestmark = pytest.mark.envtest


def sidecar_of(created: dict[str, Any]) -> dict[str, Any]:
    sidecar: dict[str, Any] = created["spec"]["initContainers"][0]
    return sidecar


async def test_real_pod_is_mutated_including_under_restricted(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace, **{"pod-security.kubernetes.io/enforce": "restricted"})
    async with run_webhook(envtest_cluster, kube, tmp_path):
        created = await create_when_webhook_live(
            kube, pod("app", namespace, annotations=ANNOTATIONS, restricted=True)
        )
    sidecar = sidecar_of(created)
    assert sidecar["name"] == "iamra-credential-helper"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"][:3] == ["serve", "--certificate", "/var/run/iamra/tls.crt"]
    assert "--role-arn" in sidecar["args"]
    assert sidecar["args"][sidecar["args"].index("--role-arn") + 1] == ANNOTATIONS["iamra.aws/role-arn"]
    volume = next(v for v in created["spec"]["volumes"] if v["name"] == "iamra-workload-cert")
    assert volume["csi"]["driver"] == "csi.cert-manager.io"
    for container in created["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "http://127.0.0.1:9911/"
        assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"] == "IPv4"
    annotations = created["metadata"]["annotations"]
    assert annotations["iamra.aws/injected"] == "true"
    assert len(annotations["iamra.aws/injection-hash"]) == 64


async def test_dry_run_gets_the_same_injection_and_stores_nothing(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(envtest_cluster, kube, tmp_path):
        real = await create_when_webhook_live(kube, pod("real", namespace, annotations=ANNOTATIONS))
        dry = await kube.create(pod("dry", namespace, annotations=ANNOTATIONS), dry_run=True)
    assert (
        dry["metadata"]["annotations"]["iamra.aws/injection-hash"]
        == (real["metadata"]["annotations"]["iamra.aws/injection-hash"])
    )
    assert sidecar_of(dry)["args"] == sidecar_of(real)["args"]
    with pytest.raises(KubeError, match="not found"):
        await kube.get("v1", "Pod", "dry", namespace)


async def test_gate_unlabelled_unannotated_and_release_namespace_are_never_called(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    async with run_webhook(envtest_cluster, kube, tmp_path) as hook:
        other = f"{namespace}-on"
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": other, "labels": {"iamra.aws/enable": "true"}},
            }
        )
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": other},
            }
        )
        try:
            await create_when_webhook_live(kube, pod("probe", other, annotations=ANNOTATIONS))
            calls = await metric(hook.metrics_port, "iamra_injector_admission_requests_total{")
            untouched = await kube.create(pod("plain", namespace, annotations=ANNOTATIONS))
            unannotated = await kube.create(pod("bare", other))
            assert "iamra.aws/injected" not in untouched["metadata"]["annotations"]
            assert "initContainers" not in unannotated["spec"]
            assert await metric(hook.metrics_port, "iamra_injector_admission_requests_total{") == calls
        finally:
            await kube.delete("v1", "Namespace", other, missing_ok=True)
    mwc = hook.extra["mwc"]
    expressions = mwc["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [RELEASE_NAMESPACE],
    } in expressions


async def test_gate_off_injects_anywhere_with_ignore(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    async with run_webhook(envtest_cluster, kube, tmp_path, sets=("namespaceOptIn.enabled=false",)) as hook:
        assert hook.extra["mwc"]["webhooks"][0]["failurePolicy"] == "Ignore"
        created = await create_when_webhook_live(kube, pod("anywhere", namespace, annotations=ANNOTATIONS))
    assert sidecar_of(created)["name"] == "iamra-credential-helper"


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (
            "iamra.aws/token-duration",
            "15m",
            'iamra.aws/token-duration: "15m" must be whole seconds in [900, 43200]',
        ),
        ("iamra.aws/region", "mars-1", "iamra.aws/region"),
        ("iamra.aws/log-level", "loud", "iamra.aws/log-level"),
    ],
)
async def test_invalid_annotations_are_denied_naming_the_annotation(
    envtest_cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    annotation: str,
    value: str,
    expected: str,
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(envtest_cluster, kube, tmp_path):
        await create_when_webhook_live(kube, pod("ok", namespace, annotations=ANNOTATIONS))
        bad = pod("bad", namespace, annotations={**ANNOTATIONS, annotation: value})
        with pytest.raises(BadRequest) as denied:
            await kube.create(bad)
    message = str(denied.value)
    assert 'admission webhook "inject.iamra.aws" denied the request' in message
    assert expected in message
    assert [
        p["metadata"]["name"]
        for p in await kube.list("v1", "Pod", namespace)
        if p["metadata"]["name"] == "bad"
    ] == []


async def test_webhook_down_rejects_annotated_pods_under_fail(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(envtest_cluster, kube, tmp_path) as hook:
        await create_when_webhook_live(kube, pod("up", namespace, annotations=ANNOTATIONS))
        hook.stop.set()
        await hook.task
        with pytest.raises(KubeError, match="failed calling webhook"):
            await kube.create(pod("down", namespace, annotations=ANNOTATIONS))
        # Unannotated pods never reach the webhook (matchConditions), so they are still admitted.
        await kube.create(pod("plain", namespace))


async def test_reinvocation_and_recreated_spec_add_nothing(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(envtest_cluster, kube, tmp_path):
        first = await create_when_webhook_live(kube, pod("first", namespace, annotations=ANNOTATIONS))
        again: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "again",
                "namespace": namespace,
                "annotations": first["metadata"]["annotations"],
            },
            "spec": {
                k: v for k, v in first["spec"].items() if k in ("containers", "initContainers", "volumes")
            },
        }
        for c in again["spec"]["initContainers"] + again["spec"]["containers"]:
            c.pop("terminationMessagePath", None)
        recreated = await kube.create(again)
    names = [c["name"] for c in recreated["spec"]["initContainers"]]
    assert names.count("iamra-credential-helper") == 1
    volumes = [v["name"] for v in recreated["spec"]["volumes"]]
    assert volumes.count("iamra-workload-cert") == 1
    for container in recreated["spec"]["containers"]:
        names_env = [e["name"] for e in container["env"]]
        assert names_env.count("AWS_EC2_METADATA_SERVICE_ENDPOINT") == 1


async def test_native_auto_follows_the_real_server_and_a_stubbed_1_28(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(envtest_cluster, kube, tmp_path / "real"):
        native = await create_when_webhook_live(kube, pod("native", namespace, annotations=ANNOTATIONS))
    assert sidecar_of(native)["restartPolicy"] == "Always"

    async def stub_1_28() -> dict[str, Any]:  # test double of /version only: no 1.28 server runs here
        return {"major": "1", "minor": "28"}

    async with run_webhook(envtest_cluster, kube, tmp_path / "stub", fetch_version=stub_1_28):
        legacy = await create_when_webhook_live(kube, pod("legacy", namespace, annotations=ANNOTATIONS))
    assert legacy["spec"]["containers"][-1]["name"] == "iamra-credential-helper"
    assert "initContainers" not in legacy["spec"]


async def test_not_ready_and_503_until_the_server_version_is_known(
    envtest_cluster: LocalCluster, kube: KubeClient, tmp_path: Path
) -> None:
    async def unreachable() -> dict[str, Any]:
        raise OSError("API server unreachable (test)")

    async with run_webhook(
        envtest_cluster, kube, tmp_path, fetch_version=unreachable, register=False, wait_ready=False
    ) as hook:
        ctx = ssl.create_default_context(cafile=str(envtest_cluster.pki.ca.cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{hook.port}/readyz", ssl=ctx) as r:
                assert r.status == 503
                assert "server version unknown" in await r.text()
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u-1",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE",
                    "namespace": "ns",
                    "userInfo": {"username": "x"},
                    "object": pod("p", "ns", annotations=ANNOTATIONS),
                },
            }
            async with http.post(f"https://127.0.0.1:{hook.port}/mutate", json=review, ssl=ctx) as r:
                body = await r.json()
    assert body["response"]["allowed"] is False
    assert body["response"]["status"]["code"] == 503


async def test_endpoints_over_tls(envtest_cluster: LocalCluster, kube: KubeClient, tmp_path: Path) -> None:
    async with run_webhook(envtest_cluster, kube, tmp_path, register=False) as hook:
        ctx = ssl.create_default_context(cafile=str(envtest_cluster.pki.ca.cert))
        base = f"https://127.0.0.1:{hook.port}"
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    async with http.get(f"{base}/readyz", ssl=ctx) as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)  # poll: native mode becomes known
            async with http.get(f"{base}/healthz", ssl=ctx) as r:
                assert r.status == 200
            async with http.post(
                f"{base}/mutate", data=b"{}", headers={"Content-Type": "text/plain"}, ssl=ctx
            ) as r:
                assert r.status == 415
            async with http.post(
                f"{base}/mutate", data=b"not json", headers={"Content-Type": "application/json"}, ssl=ctx
            ) as r:
                assert r.status == 400
            async with http.get(f"http://127.0.0.1:{hook.metrics_port}/metrics") as r:
                text = await r.text()
    assert "iamra_injector_build_info" in text
    assert 'iamra_injector_native_sidecar{source="server_version"} 1.0' in text
