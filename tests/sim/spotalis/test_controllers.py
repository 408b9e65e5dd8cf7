"""Spec 9 scenarios 3(a) and 2(b) in the sim cluster: the leader-only workload controller at work.

Spotalis runs in this process as `run_command.build` wires it, plus the workload controller attached
leader-gated (`attach_workload_controller`), with spec 9's short timings (cooldown 2 s, interval 5 s,
fallback 15 s, back-off 30 s). The webhook is registered by URL as in `test_basic_deployment`. Counts come
from the nodes of Ready pods; evictions from the controller's own record (one entry per Eviction call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubewright.runtime.kube import KubeClient
from kubewright.spotalis import constants as c
from kubewright.spotalis.controllers.wiring import WorkloadController
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.workloads import wait_available
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

COOLDOWN = 2.0


@contextlib.asynccontextmanager
async def spotalis_with_controller(
    cluster: LocalCluster, kube: KubeClient, namespace: str, tmp: Path
) -> AsyncIterator[WorkloadController]:
    """Spotalis (webhook + workload controller) running, its webhook registered and live for `namespace`."""
    timings = {
        "reconcileInterval": "5s",
        "workloadTiming": {"cooldownPeriod": "2s", "disruptionRetryInterval": "30s"},
        "fallback": {"timeout": "15s", "backoff": "30s"},
    }
    await kube.merge_patch("v1", "Namespace", namespace, {"metadata": {"labels": {c.ENABLED_LABEL: "true"}}})
    mwc_name = f"spotalis-ctl-{namespace}"
    async with running_spotalis(cluster, tmp, controllers=timings, with_controller=True) as local:
        server = local.process.webhook_server
        assert server is not None
        assert server.running is not None
        assert local.controller is not None
        try:
            await register_webhook(kube, cluster, mwc_name, server.running.port)
            await wait_webhook_live(kube, namespace)
            yield local.controller
        finally:
            await kube.delete(MWC_API, "MutatingWebhookConfiguration", mwc_name, missing_ok=True)


async def split_of(kube: KubeClient, namespace: str, app: str) -> Counter[str]:
    nodes = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in await kube.list("v1", "Node")}
    pods = await ready_pods(kube, namespace, app)
    return Counter(str(nodes.get(p["spec"]["nodeName"], {}).get(CAPACITY_LABEL)) for p in pods)


async def wait_split(
    kube: KubeClient, namespace: str, app: str, spot: int, on_demand: int, timeout: float
) -> None:
    want = Counter({"spot": spot, "on-demand": on_demand})
    last: Counter[str] = Counter()
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await split_of(kube, namespace, app)
                pods = await kube.list("v1", "Pod", namespace, labels={"app": app})
                if last == want and len(pods) == spot + on_demand:
                    return
                await asyncio.sleep(0.5)  # poll: until exactly the wanted Ready split, nothing else
    except TimeoutError:
        raise AssertionError(f"{app}: wanted {dict(want)}, last saw {dict(last)}") from None


async def events_with_reason(kube: KubeClient, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in await kube.list("v1", "Event", namespace) if e.get("reason") == reason]


async def test_annotation_change_50_to_80_rebalances_in_exactly_two_evictions(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    async with spotalis_with_controller(sim_cluster, kube, namespace, tmp_path) as controller:
        annotations = {c.SPOT_PERCENTAGE_ANNOTATION: "50", c.MIN_ON_DEMAND_ANNOTATION: "1"}
        await kube.create(managed_deployment("web", namespace, 8, annotations))
        await wait_available(kube, namespace, "web", 8, timeout=180)
        await wait_split(kube, namespace, "web", 4, 4, timeout=60)
        assert controller.reconciler is not None
        assert controller.reconciler.history == []
        before = await kube.get("apps/v1", "Deployment", "web", namespace)

        patch = {"metadata": {"annotations": {c.SPOT_PERCENTAGE_ANNOTATION: "80"}}}
        # A Deployment's generation also counts annotation changes: this patch is the last write to it.
        patched = await kube.merge_patch("apps/v1", "Deployment", "web", patch, namespace)
        await wait_split(kube, namespace, "web", 6, 2, timeout=180)
        await asyncio.sleep(5 + COOLDOWN)  # one more interval: nothing further may be evicted

        key = f"{namespace}/Deployment/web"
        evictions = [e for e in controller.reconciler.history if e.key == key]
        assert [e.action for e in evictions] == [c.ReconcileAction.REBALANCE] * 2
        assert evictions[1].at - evictions[0].at >= COOLDOWN
        assert await split_of(kube, namespace, "web") == Counter({"spot": 6, "on-demand": 2})
        deployment = await kube.get("apps/v1", "Deployment", "web", namespace)
        assert deployment["spec"]["replicas"] == 8
        # Spotalis wrote nothing to the Deployment: no replicas, no template, not even an annotation.
        assert deployment["metadata"]["generation"] == patched["metadata"]["generation"]
        assert deployment["spec"]["template"] == before["spec"]["template"]
        assert len(await events_with_reason(kube, namespace, c.EventReason.REBALANCE_EVICTION)) >= 1


async def test_cordoning_the_floor_node_repairs_the_floor_on_demand(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    async with spotalis_with_controller(sim_cluster, kube, namespace, tmp_path) as controller:
        annotations = {c.SPOT_PERCENTAGE_ANNOTATION: "100", c.MIN_ON_DEMAND_ANNOTATION: "1"}
        await kube.create(managed_deployment("web", namespace, 3, annotations))
        await wait_available(kube, namespace, "web", 3, timeout=180)
        await wait_split(kube, namespace, "web", 2, 1, timeout=60)

        nodes = {
            n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in await kube.list("v1", "Node")
        }
        [floor_pod] = [
            p
            for p in await ready_pods(kube, namespace, "web")
            if nodes[p["spec"]["nodeName"]].get(CAPACITY_LABEL) == "on-demand"
        ]
        floor_node = floor_pod["spec"]["nodeName"]
        await kube.merge_patch("v1", "Node", floor_node, {"spec": {"unschedulable": True}})
        try:
            async with asyncio.timeout(120):
                while True:
                    pods = await ready_pods(kube, namespace, "web")
                    names = {p["metadata"]["name"] for p in pods}
                    on_demand = [
                        p for p in pods if nodes[p["spec"]["nodeName"]].get(CAPACITY_LABEL) == "on-demand"
                    ]
                    if (
                        floor_pod["metadata"]["name"] not in names
                        and len(pods) == 3
                        and len(on_demand) == 1
                        and on_demand[0]["spec"]["nodeName"] != floor_node
                    ):
                        break
                    await asyncio.sleep(0.5)  # poll: until the replacement is Ready on another OD node
            assert controller.reconciler is not None
            repairs = [e for e in controller.reconciler.history if e.action is c.ReconcileAction.FLOOR_REPAIR]
            assert [e.pod for e in repairs] == [floor_pod["metadata"]["name"]]
            async with asyncio.timeout(30):
                while not await events_with_reason(kube, namespace, c.EventReason.FLOOR_REPAIR):
                    await asyncio.sleep(0.5)  # poll: the recorder writes asynchronously
            assert await split_of(kube, namespace, "web") == Counter({"spot": 2, "on-demand": 1})
        finally:
            await kube.merge_patch("v1", "Node", floor_node, {"spec": {"unschedulable": False}})
