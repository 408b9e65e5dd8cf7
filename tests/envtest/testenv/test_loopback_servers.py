"""The real API server calls loopback servers: admission webhooks (URL and Service refs), APIServices."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from kubewright.runtime.kube import KubeClient
from kubewright.testenv import loopback, pki
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.envtest


def labelling_webhook(calls: list[dict[str, Any]]) -> web.Application:
    """A mutating webhook that adds the label `injected=yes` to every Pod it sees."""

    async def mutate(request: web.Request) -> web.Response:
        review = await request.json()
        calls.append(review["request"])
        has_labels = "labels" in review["request"]["object"]["metadata"]
        op = (
            {"op": "add", "path": "/metadata/labels/injected", "value": "yes"}
            if has_labels
            else {"op": "add", "path": "/metadata/labels", "value": {"injected": "yes"}}
        )
        patch = base64.b64encode(json.dumps([op]).encode()).decode()
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": review["request"]["uid"],
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": patch,
                },
            }
        )

    app = web.Application()
    app.router.add_post("/mutate", mutate)
    return app


def pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }


POD_CREATE = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]


def only(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


async def create_pod_through_webhook(
    kube: KubeClient, namespace: str, config: dict[str, Any]
) -> dict[str, Any]:
    await kube.apply(config)
    try:
        # A new webhook configuration reaches the API server's admission chain asynchronously.
        async with asyncio.timeout(20):
            attempt = 0
            while True:
                attempt += 1
                created = await kube.create(pod(f"p{attempt}", namespace))
                if created["metadata"]["labels"].get("injected") == "yes":
                    return created
                await asyncio.sleep(0.2)  # poll
    finally:
        await kube.delete(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            config["metadata"]["name"],
            missing_ok=True,
        )


async def test_webhook_by_url(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    serving = pki.issue_serving_cert(tmp_path, envtest_cluster.pki.ca, "webhook", ("localhost",))
    async with loopback.https_server(labelling_webhook(calls), serving) as port:
        config = loopback.mutating_webhook_configuration(
            f"url-{namespace}",
            loopback.url_client_config(port, "/mutate", envtest_cluster.ca_pem),
            rules=POD_CREATE,
            namespace_selector=only(namespace),
        )
        created = await create_pod_through_webhook(kube, namespace, config)
    assert created["metadata"]["labels"] == {"app": "demo", "injected": "yes"}
    assert calls[-1]["operation"] == "CREATE"
    assert calls[-1]["namespace"] == namespace


async def test_webhook_by_external_name_service(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    svc = "hook"
    serving = pki.issue_serving_cert(
        tmp_path, envtest_cluster.pki.ca, "webhook-svc", (loopback.service_dns_name(svc, namespace),)
    )
    async with loopback.https_server(labelling_webhook(calls), serving) as port:
        await kube.apply(loopback.external_name_service(svc, namespace, port))
        config = loopback.mutating_webhook_configuration(
            f"svc-{namespace}",
            loopback.service_client_config(svc, namespace, port, "/mutate", envtest_cluster.ca_pem),
            rules=POD_CREATE,
            namespace_selector=only(namespace),
        )
        created = await create_pod_through_webhook(kube, namespace, config)
    assert created["metadata"]["labels"]["injected"] == "yes"
    assert calls


def whoami_api(group: str, seen: list[dict[str, str]]) -> web.Application:
    """A minimal aggregated API: discovery plus one resource answering with the caller's identity."""

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/v1",
                "resources": [
                    {
                        "name": "whoamis",
                        "singularName": "whoami",
                        "namespaced": False,
                        "kind": "WhoAmI",
                        "verbs": ["get", "list"],
                    }
                ],
            }
        )

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = peer.getpeercert(binary_form=True) if isinstance(peer, ssl.SSLObject) else None
        client_cn = ""
        if der:
            cert = x509.load_der_x509_certificate(der)
            client_cn = str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        identity = {
            "user": request.headers.get("X-Remote-User", ""),
            "groups": ",".join(request.headers.getall("X-Remote-Group", [])),
            "client_cn": client_cn,
        }
        seen.append(identity)
        return web.json_response({"kind": "WhoAmI", "apiVersion": f"{group}/v1", **identity})

    app = web.Application()
    app.router.add_get(f"/apis/{group}/v1", discovery)
    app.router.add_get(f"/apis/{group}/v1/whoamis", whoami)
    return app


async def test_apiservice_through_aggregator_with_front_proxy_identity(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    group = f"{namespace}.test.kubewright.dev"
    seen: list[dict[str, str]] = []
    serving = pki.issue_serving_cert(
        tmp_path,
        envtest_cluster.pki.ca,
        "apiserver-ext",
        (loopback.service_dns_name("loopback-api", namespace),),
    )
    client_ca = envtest_cluster.pki.front_proxy_ca.cert
    async with loopback.https_server(whoami_api(group, seen), serving, client_ca=client_ca) as port:
        await loopback.register_api_service(kube, group, "v1", namespace, port, envtest_cluster.ca_pem)
        try:
            url = f"{envtest_cluster.server}/apis/{group}/v1/whoamis"
            async with aiohttp.ClientSession() as http, asyncio.timeout(30):
                while True:
                    async with http.get(url, ssl=envtest_cluster.admin_ssl_context()) as r:
                        if r.status == 200:
                            body = await r.json()
                            break
                    await asyncio.sleep(0.2)  # poll: the aggregator marks the APIService available
        finally:
            await kube.delete("apiregistration.k8s.io/v1", "APIService", f"v1.{group}", missing_ok=True)
    assert body["user"] == "kubewright-admin"
    assert "system:masters" in body["groups"].split(",")
    assert body["client_cn"] == pki.FRONT_PROXY_CLIENT_NAME
