"""Spec 9 scenario 1 in the sim cluster: a T=10, P=70, M=1 Deployment lands 7 spot / 3 on-demand.

Spotalis runs in this process (`run_command.build`: informers, the TLS webhook, probes, metrics) and the
API server reaches it by URL, `https://127.0.0.1:<port>/mutate`, trusting the cluster CA; the
MutatingWebhookConfiguration has the chart's shape (CREATE pods, `failurePolicy: Ignore`,
namespaceSelector `spotalis.io/enabled=true`). Counts come from the nodes of Ready pods.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kubewright.runtime.kube import KubeClient
from kubewright.spotalis import constants as c
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.workloads import deployment, wait_available
from tests.support.spotalis import (
    CAPACITY_LABEL,
    MWC_API,
    managed_deployment,
    ready_pods,
    register_webhook,
    running_spotalis,
    wait_webhook_live,
)

pytestmark = pytest.mark.sim


async def test_basic_deployment_with_annotations_lands_seven_three(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await kube.merge_patch("v1", "Namespace", namespace, {"metadata": {"labels": {c.ENABLED_LABEL: "true"}}})
    mwc_name = f"spotalis-{namespace}"
    async with running_spotalis(sim_cluster, tmp_path) as local:
        spotalis = local.process
        assert spotalis.webhook_server is not None
        assert spotalis.webhook_server.running is not None
        await register_webhook(kube, sim_cluster, mwc_name, spotalis.webhook_server.running.port)
        try:
            await wait_webhook_live(kube, namespace)
            annotations = {c.SPOT_PERCENTAGE_ANNOTATION: "70", c.MIN_ON_DEMAND_ANNOTATION: "1"}
            await kube.create(managed_deployment("web", namespace, 10, annotations))
            await kube.create(deployment("plain", namespace, 2))
            await wait_available(kube, namespace, "web", 10, timeout=180)
            await wait_available(kube, namespace, "plain", 2, timeout=180)

            nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in await kube.list("v1", "Node")}
            pods = await ready_pods(kube, namespace, "web")
            assert len(pods) == 10
            by_capacity = Counter(nodes[p["spec"]["nodeName"]].get(CAPACITY_LABEL) for p in pods)
            assert by_capacity == Counter({"spot": 7, "on-demand": 3})
            for p in pods:
                meta = p["metadata"]
                intent = meta["labels"][c.CAPACITY_INTENT_LABEL]
                assert intent == nodes[p["spec"]["nodeName"]][CAPACITY_LABEL]
                assert meta["annotations"][c.ADMISSION_ID_ANNOTATION]
                required = p["spec"]["affinity"]["nodeAffinity"][
                    "requiredDuringSchedulingIgnoredDuringExecution"
                ]
                keys = {e["key"] for t in required["nodeSelectorTerms"] for e in t["matchExpressions"]}
                assert keys == {CAPACITY_LABEL}
            assert len({p["metadata"]["annotations"][c.ADMISSION_ID_ANNOTATION] for p in pods}) == 10

            for p in await ready_pods(kube, namespace, "plain"):
                assert c.CAPACITY_INTENT_LABEL not in (p["metadata"].get("labels") or {})
                assert c.ADMISSION_ID_ANNOTATION not in (p["metadata"].get("annotations") or {})
                assert "affinity" not in p["spec"]
            mutated = spotalis.registry.get_sample_value(
                "spotalis_webhook_mutations_total", {"resource_kind": "Pod", "mutation_type": "spot"}
            )
            assert mutated is not None
            assert mutated >= 7
        finally:
            await kube.delete(MWC_API, "MutatingWebhookConfiguration", mwc_name, missing_ok=True)
