"""Scenario 11: the chart with the real cert-manager: Certificates Ready, caBundle injected and kept."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from kubewright.iamra.local import CHART, TRUST_ANCHOR
from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.e2e

MWC = "iamra-iamra-injector"


async def wait_ready(kube: KubeClient, name: str, namespace: str) -> None:
    async with asyncio.timeout(90):
        while True:
            try:
                cert = await kube.get("cert-manager.io/v1", "Certificate", name, namespace)
            except NotFound:
                cert = {}
            conds = cert.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                return
            await asyncio.sleep(0.5)  # poll: cert-manager issues


async def ca_bundle(kube: KubeClient) -> str | None:
    mwc = await kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", MWC)
    bundle: str | None = mwc["webhooks"][0]["clientConfig"].get("caBundle")
    return bundle


async def test_certificates_ready_and_ca_bundle_injected_and_kept(
    e2e_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    await kube.discover_custom_kinds()
    args = (
        "iamra",
        str(CHART),
        "-n",
        namespace,
        "--set",
        f"trustAnchorArn={TRUST_ANCHOR}",
        "--set",
        "region=us-east-1",
        # cainjector and the controller run as local processes here, not as Deployments, and no
        # CSI driver runs on KWOK nodes: the lookups (G5/G10) have nothing to find.
        "--set",
        "certManager.cainjector.lookup=false",
        "--set",
        "certManager.csiDriver.lookup=false",
    )
    out = e2e_cluster.helm("install", *args)
    assert out.returncode == 0, out.stderr
    try:
        for name in ("iamra-webhook-ca", "iamra-webhook-tls"):
            await wait_ready(kube, name, namespace)
        await wait_ready(kube, "iamra-workload-ca", "cert-manager")
        secret: dict[str, Any] = await kube.get("v1", "Secret", "iamra-webhook-tls", namespace)
        expected = base64.b64decode(secret["data"]["ca.crt"])
        async with asyncio.timeout(60):
            while (bundle := await ca_bundle(kube)) is None:
                await asyncio.sleep(0.5)  # poll: cainjector reconciles
        assert base64.b64decode(bundle) == expected

        upgraded = e2e_cluster.helm("upgrade", *args, "--set", "webhook.timeoutSeconds=9")
        assert upgraded.returncode == 0, upgraded.stderr
        after = await ca_bundle(kube)
        assert after is not None, "helm upgrade dropped the injected caBundle"
        assert base64.b64decode(after) == expected
    finally:
        e2e_cluster.helm("uninstall", "iamra", "-n", namespace)
        await kube.delete(
            "cert-manager.io/v1", "Certificate", "iamra-workload-ca", "cert-manager", missing_ok=True
        )
