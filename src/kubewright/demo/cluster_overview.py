"""Demo step 0: the sim cluster itself: nodes by capacity type, and a Deployment spread across them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv.nodes import KARPENTER_CAPACITY_TYPE

DEMO_NAMESPACE = "kubewright-demo"
DEMO_DEPLOYMENT = "hello-sim"
REPLICAS = 20


def sample_deployment(replicas: int = REPLICAS) -> dict[str, object]:
    labels = {"app": DEMO_DEPLOYMENT}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEMO_DEPLOYMENT, "namespace": DEMO_NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }


async def wait_available(kube: KubeClient, namespace: str, name: str, replicas: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dep = await kube.get("apps/v1", "Deployment", name, namespace)
        if dep.get("status", {}).get("availableReplicas", 0) >= replicas:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Deployment {namespace}/{name} not Available after {timeout:.0f} s")
        await asyncio.sleep(0.5)  # poll


async def show_cluster(kubeconfig: Path) -> None:
    console = Console()
    async with KubeClient.from_kubeconfig(kubeconfig, field_manager="kubewright-demo") as kube:
        nodes = await kube.list("v1", "Node")
        capacity = {
            n["metadata"]["name"]: n["metadata"]["labels"].get(KARPENTER_CAPACITY_TYPE, "?") for n in nodes
        }
        table = Table(title="Nodes by capacity type")
        table.add_column(KARPENTER_CAPACITY_TYPE)
        table.add_column("nodes", justify="right")
        for kind, count in sorted(Counter(capacity.values()).items()):
            table.add_row(kind, str(count))
        console.print(table)

        try:
            await kube.get("v1", "Namespace", DEMO_NAMESPACE)
        except NotFound:
            await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}})
        await kube.apply(sample_deployment())
        console.print(
            f"Deployment {DEMO_NAMESPACE}/{DEMO_DEPLOYMENT}: {REPLICAS} replicas, waiting for Available ..."
        )
        await wait_available(kube, DEMO_NAMESPACE, DEMO_DEPLOYMENT, REPLICAS, timeout=120)
        pods = await kube.list("v1", "Pod", DEMO_NAMESPACE, labels={"app": DEMO_DEPLOYMENT})
        placed = Counter(capacity.get(p["spec"].get("nodeName", ""), "unscheduled") for p in pods)
        spread = Table(
            title=f"{DEMO_DEPLOYMENT} pods by node capacity type (default scheduler, no Spotalis yet)"
        )
        spread.add_column(KARPENTER_CAPACITY_TYPE)
        spread.add_column("pods", justify="right")
        for kind, count in sorted(placed.items()):
            spread.add_row(kind, str(count))
        console.print(spread)
        console.print(
            f"{len({p['spec'].get('nodeName') for p in pods})} distinct nodes run the {len(pods)} pods."
        )
