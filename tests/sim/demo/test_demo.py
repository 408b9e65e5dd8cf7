"""`make demo` runs these steps; they must keep working against a sim cluster."""

from __future__ import annotations

import pytest

from kubewright.demo import spotalis_step
from kubewright.demo.cluster_overview import show_cluster
from kubewright.demo.iamra_step import MWC_NAME, NAMESPACE, show_iamra
from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.sim


async def test_demo_steps(
    sim_cluster: LocalCluster, kube: KubeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    await show_cluster(sim_cluster.kubeconfig)
    await show_iamra(sim_cluster.cdir)
    await spotalis_step.show_spotalis(sim_cluster.cdir)
    out = capsys.readouterr().out
    assert "Nodes by capacity type" in out
    assert "iamra-credential-helper" in out
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT" in out
    pods = await kube.list("v1", "Pod", NAMESPACE, labels={"app": "aws-app"})
    assert pods
    assert all(p["spec"]["initContainers"][0]["name"] == "iamra-credential-helper" for p in pods)
    # The demo leaves no webhook configuration behind that could block later pod creations.
    with pytest.raises(NotFound):
        await kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", MWC_NAME)
    pods = await kube.list("v1", "Pod", spotalis_step.NAMESPACE, labels={"app": spotalis_step.NAME})
    nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"]["karpenter.sh/capacity-type"]
        for n in await kube.list("v1", "Node")
    }
    assert sorted(nodes[p["spec"]["nodeName"]] for p in pods) == ["on-demand"] * 3 + ["spot"] * 7
    with pytest.raises(NotFound):
        await kube.get(
            "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", spotalis_step.MWC_NAME
        )
