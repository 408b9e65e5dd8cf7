"""cert-manager runs for real in the e2e cluster: CA chains issue, cainjector fills caBundles."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv import loopback

pytestmark = pytest.mark.e2e


def certificate(name: str, namespace: str, issuer: dict[str, str], *, is_ca: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"secretName": name, "issuerRef": issuer, "commonName": name}
    if is_ca:
        spec["isCA"] = True
    else:
        spec["dnsNames"] = [f"{name}.{namespace}.svc"]
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


async def wait_ready(kube: KubeClient, kind: str, name: str, namespace: str) -> None:
    async with asyncio.timeout(60):
        while True:
            obj = await kube.get("cert-manager.io/v1", kind, name, namespace)
            conds = obj.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                return
            await asyncio.sleep(0.3)  # poll


async def secret_data(kube: KubeClient, name: str, namespace: str) -> dict[str, str]:
    async with asyncio.timeout(30):
        while True:
            try:
                data: dict[str, str] = (await kube.get("v1", "Secret", name, namespace))["data"]
                return data
            except NotFound:
                await asyncio.sleep(0.3)  # poll


async def test_ca_chain_and_ca_injection(kube: KubeClient, namespace: str) -> None:
    await kube.discover_custom_kinds()
    await kube.apply(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "root", "namespace": namespace},
            "spec": {"selfSigned": {}},
        }
    )
    await kube.apply(certificate("ca", namespace, {"name": "root", "kind": "Issuer"}, is_ca=True))
    await wait_ready(kube, "Certificate", "ca", namespace)
    await kube.apply(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "ca", "namespace": namespace},
            "spec": {"ca": {"secretName": "ca"}},
        }
    )
    await kube.apply(certificate("serving", namespace, {"name": "ca", "kind": "Issuer"}))
    await wait_ready(kube, "Certificate", "serving", namespace)
    serving = await secret_data(kube, "serving", namespace)
    ca = await secret_data(kube, "ca", namespace)
    assert serving["ca.crt"] == ca["tls.crt"]

    config = loopback.mutating_webhook_configuration(
        f"inject-{namespace}",
        loopback.service_client_config("svc", namespace, 443, "/mutate", b""),
        rules=[{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": f"{namespace}-never"}},
    )
    del config["webhooks"][0]["clientConfig"]["caBundle"]
    config["metadata"]["annotations"] = {"cert-manager.io/inject-ca-from": f"{namespace}/serving"}
    await kube.apply(config)
    try:
        async with asyncio.timeout(60):
            while True:
                mwc = await kube.get(
                    "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", f"inject-{namespace}"
                )
                bundle = mwc["webhooks"][0]["clientConfig"].get("caBundle")
                if bundle:
                    break
                await asyncio.sleep(0.3)  # poll: cainjector reconciles
        assert base64.b64decode(bundle) == base64.b64decode(serving["ca.crt"])
    finally:
        await kube.delete(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            f"inject-{namespace}",
            missing_ok=True,
        )
