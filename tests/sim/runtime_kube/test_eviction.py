"""Eviction through the real Eviction API with the disruption controller computing PDB status."""

from __future__ import annotations

import asyncio

import pytest

from kubewright.runtime.kube import KubeClient, NotFound, TooManyRequests
from kubewright.testenv.workloads import deployment, wait_available

pytestmark = pytest.mark.sim


def pdb(name: str, namespace: str, min_available: int) -> dict[str, object]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": name}}},
    }


async def wait_pdb_allows(kube: KubeClient, namespace: str, name: str, allowed: int) -> None:
    async with asyncio.timeout(60):
        while True:
            status = (await kube.get("policy/v1", "PodDisruptionBudget", name, namespace)).get("status", {})
            if status.get("disruptionsAllowed") == allowed and status.get("currentHealthy", 0) == 3:
                return
            await asyncio.sleep(0.5)  # poll: the disruption controller computes status


async def test_eviction_honours_the_disruption_budget(kube: KubeClient, namespace: str) -> None:
    await kube.apply(deployment("guarded", namespace, 3))
    await wait_available(kube, namespace, "guarded", 3, timeout=120)
    await kube.apply(pdb("guarded", namespace, 3))
    await wait_pdb_allows(kube, namespace, "guarded", 0)
    victim = (await kube.list("v1", "Pod", namespace, labels={"app": "guarded"}))[0]["metadata"]["name"]
    with pytest.raises(TooManyRequests, match="disruption budget"):
        await kube.evict(victim, namespace)

    await kube.apply(pdb("guarded", namespace, 2))
    await wait_pdb_allows(kube, namespace, "guarded", 1)
    await kube.evict(victim, namespace, dry_run=True)
    assert (await kube.get("v1", "Pod", victim, namespace))["metadata"]["name"] == victim
    await kube.evict(victim, namespace)
    async with asyncio.timeout(60):
        while True:
            try:
                pod = await kube.get("v1", "Pod", victim, namespace)
            except NotFound:
                break
            if pod["metadata"].get("deletionTimestamp"):
                break
            await asyncio.sleep(0.2)  # poll
