"""Demo step: Spotalis places a 10-replica Deployment at 70 % spot / min 1 on-demand as exactly 7/3.

`kubewright spotalis run` runs on this machine (KWOK nodes run no containers) and the API server
reaches its webhook by URL. The webhook configuration is removed and the process stopped afterwards.
The drift controllers (fallback, floor repair, rebalance) are not built yet, so this step shows
admission-time placement only.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from kubewright.demo.local_process import labelled_namespace, local_addon, registered
from kubewright.runtime.kube import KubeClient
from kubewright.spotalis import constants as c
from kubewright.testenv import pki
from kubewright.testenv.layout import ClusterDir
from kubewright.testenv.nodes import KARPENTER_CAPACITY_TYPE
from kubewright.testenv.supervisor import free_ports
from kubewright.testenv.workloads import deployment, wait_available

NAMESPACE = "spotalis-demo"
MWC_NAME = "spotalis-demo-local"
NAME = "web"


def _mwc(port: int, ca_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": MWC_NAME},
        "webhooks": [
            {
                "name": "pod.spotalis.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/mutate",
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {c.ENABLED_LABEL: c.ENABLED_VALUE}},
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 5,
            }
        ],
    }


async def show_spotalis(cdir: ClusterDir) -> None:
    console = Console()
    console.rule("spotalis")
    cluster_pki = pki.load(cdir.pki)
    with tempfile.TemporaryDirectory(prefix="spotalis-demo-") as scratch:
        work = Path(scratch)
        serving = pki.issue_serving_cert(work, cluster_pki.ca, "spotalis-webhook", ("localhost",))
        webhook_port, health_port, metrics_port = free_ports(3)
        config = {
            "operator": {"leaderElection": {"enabled": False}, "preShutdownDelay": "0s"},
            "webhook": {
                "port": webhook_port,
                "certDir": str(work),
                "certName": serving.cert.name,
                "keyName": serving.key.name,
            },
            "observability": {
                "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
                "health": {"bindAddress": f"127.0.0.1:{health_port}"},
            },
        }
        config_file = work / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        run = ["spotalis", "run", f"--config={config_file}", f"--kubeconfig={cdir.kubeconfig}"]
        readyz = f"http://127.0.0.1:{health_port}/readyz"
        async with (
            local_addon(run, work / "run.log", readyz, kubeconfig=cdir.kubeconfig),
            KubeClient.from_kubeconfig(cdir.kubeconfig, field_manager="kubewright-demo") as kube,
        ):
            console.print(f"spotalis webhook serving on https://127.0.0.1:{webhook_port}/mutate")
            async with registered(kube, _mwc(webhook_port, cluster_pki.ca.cert.read_bytes())):
                await _place(kube, console)


async def _place(kube: KubeClient, console: Console) -> None:
    await labelled_namespace(kube, NAMESPACE, {c.ENABLED_LABEL: c.ENABLED_VALUE})
    await kube.delete("apps/v1", "Deployment", NAME, NAMESPACE, missing_ok=True)
    async with asyncio.timeout(60):  # the old pods must be gone before counting the new ones
        while await kube.list("v1", "Pod", NAMESPACE, labels={"app": NAME}):
            await asyncio.sleep(0.5)  # poll
    manifest = deployment(NAME, NAMESPACE, 10)
    manifest["metadata"]["labels"] = {c.ENABLED_LABEL: c.ENABLED_VALUE}
    manifest["metadata"]["annotations"] = {
        c.SPOT_PERCENTAGE_ANNOTATION: "70",
        c.MIN_ON_DEMAND_ANNOTATION: "1",
    }
    await kube.apply(manifest)
    console.print(f"Deployment {NAMESPACE}/{NAME}: 10 replicas, spot-percentage 70, min-on-demand 1")
    await wait_available(kube, NAMESPACE, NAME, 10, timeout=120)
    nodes = {
        n["metadata"]["name"]: n["metadata"]["labels"].get(KARPENTER_CAPACITY_TYPE, "?")
        for n in await kube.list("v1", "Node")
    }
    pods = await kube.list("v1", "Pod", NAMESPACE, labels={"app": NAME})
    placed = Counter(nodes.get(p["spec"].get("nodeName", ""), "unscheduled") for p in pods)
    table = Table(title=f"{NAME} pods by node capacity type (Spotalis placement)")
    table.add_column(KARPENTER_CAPACITY_TYPE)
    table.add_column("pods", justify="right")
    for kind, count in sorted(placed.items()):
        table.add_row(kind, str(count))
    console.print(table)
