"""Scenario 10: the chart installed by the real helm into the local control plane."""

from __future__ import annotations

import pytest

from kubewright.iamra.local import CHART, TRUST_ANCHOR
from kubewright.runtime.kube import KubeClient
from kubewright.testenv import binaries
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.envtest

BASE = ("--set", f"trustAnchorArn={TRUST_ANCHOR}", "--set", "region=us-east-1")


async def test_chart_guards_and_install(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    release_ns = namespace
    install = ("install", "iamra", str(CHART), "-n", release_ns, *BASE)

    # G3: without cert-manager's APIs the render fails before anything is created.
    crds_present = any(
        c["spec"]["group"] == "cert-manager.io"
        for c in await kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    )
    if not crds_present:
        out = envtest_cluster.helm(*install, "--dry-run=server")
        assert out.returncode != 0
        assert (
            "cert-manager (including cainjector) is required: cert-manager.io/v1 APIs not detected"
            in out.stderr
        )
        crds = binaries.bin_dir() / "cert-manager-crds.yaml"
        applied = envtest_cluster.kubectl("apply", "--server-side", "-f", str(crds))
        assert applied.returncode == 0, applied.stderr
        envtest_cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

    # G5 / G10 (reachable cluster, --dry-run=server performs lookups): no cainjector, no csi driver.
    empty_cm_ns = f"{namespace}-cm"
    out = envtest_cluster.helm(*install, "--dry-run=server", "--set", f"certManager.namespace={empty_cm_ns}")
    assert out.returncode != 0
    assert f"cert-manager cainjector Deployment not found in namespace {empty_cm_ns}" in out.stderr
    out = envtest_cluster.helm(*install, "--dry-run=server", "--set", "certManager.cainjector.lookup=false")
    assert out.returncode != 0
    assert (
        "cert-manager csi-driver not found; install it or set workloadCertificate.mode=secret" in out.stderr
    )

    # G11: a ServiceMonitor without its CRD fails the render.
    out = envtest_cluster.helm(
        *install,
        "--dry-run=server",
        "--set",
        "certManager.cainjector.lookup=false",
        "--set",
        "certManager.csiDriver.lookup=false",
        "--set",
        "prometheus.enabled=true",
        "--set",
        "prometheus.serviceMonitor.enabled=true",
    )
    assert out.returncode != 0
    assert (
        "prometheus.serviceMonitor.enabled requires the monitoring.coreos.com/v1 ServiceMonitor CRD"
        in out.stderr
    )

    # A real install: every rendered object is accepted by the API server.
    out = envtest_cluster.helm(
        *install,
        "--set",
        "certManager.cainjector.lookup=false",
        "--set",
        "certManager.csiDriver.lookup=false",
        "--set",
        f"certManager.namespace={namespace}",
    )
    assert out.returncode == 0, out.stderr
    try:
        await kube.discover_custom_kinds()
        mwc = await kube.get(
            "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "iamra-iamra-injector"
        )
        assert mwc["webhooks"][0]["name"] == "inject.iamra.aws"
        assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
        svc = await kube.get("v1", "Service", "iamra-webhook", release_ns)
        assert {p["port"] for p in svc["spec"]["ports"]} == {443, 9090}
        cert = await kube.get("cert-manager.io/v1", "Certificate", "iamra-webhook-tls", release_ns)
        assert cert["spec"]["issuerRef"]["name"] == "iamra-webhook-ca"
        ca = await kube.get("cert-manager.io/v1", "Certificate", "iamra-workload-ca", namespace)
        assert ca["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    finally:
        envtest_cluster.helm("uninstall", "iamra", "-n", release_ns)
        await kube.delete(
            "cert-manager.io/v1", "Certificate", "iamra-workload-ca", namespace, missing_ok=True
        )
