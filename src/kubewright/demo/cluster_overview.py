"""Demo step 0: the sim cluster itself: nodes by capacity type, and a Deployment spread across them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv.nodes import KARPENTER_CAPACITY_TYPE
from kubewright.testenv.workloads import deployment, wait_available

DEMO_NAMESPACE = "kubewright-demo"
DEMO_DEPLOYMENT = "hello-sim"
REPLICAS = 20


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
        await kube.apply(deployment(DEMO_DEPLOYMENT, DEMO_NAMESPACE, REPLICAS))
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
