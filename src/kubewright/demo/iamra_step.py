"""Demo step: iamra-injector puts the credential-helper sidecar and IMDS env into an annotated Deployment.

The webhook runs on this machine (`kubewright iamra serve`, KWOK nodes run no containers) behind the
chart's own MutatingWebhookConfiguration; a labelled namespace gets an annotated Deployment and the
demo prints what the API server stored. Afterwards the webhook configuration is removed and the
webhook stopped, so the cluster is left as it was found apart from the demo namespace.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kubewright.demo.local_process import labelled_namespace, local_addon, registered
from kubewright.iamra.local import EXAMPLE_ANNOTATIONS, local_mwc, render_chart, webhook_config
from kubewright.runtime.kube import KubeClient
from kubewright.testenv import binaries, pki
from kubewright.testenv.layout import ClusterDir
from kubewright.testenv.supervisor import free_ports
from kubewright.testenv.workloads import deployment, wait_available

NAMESPACE = "iamra-demo"
MWC_NAME = "iamra-demo-local"


async def show_iamra(cdir: ClusterDir) -> None:
    console = Console()
    console.rule("iamra-injector")
    cluster_pki = pki.load(cdir.pki)
    docs = render_chart(str(binaries.path_of("helm")))
    with tempfile.TemporaryDirectory(prefix="iamra-demo-") as scratch:
        work = Path(scratch)
        serving = pki.issue_serving_cert(work, cluster_pki.ca, "iamra-webhook", ("localhost",))
        port, metrics_port = free_ports(2)
        config = webhook_config(docs)
        config["server"].update({"port": port, "certFile": str(serving.cert), "keyFile": str(serving.key)})
        config["metrics"]["port"] = metrics_port
        config_file = work / "config.json"
        config_file.write_text(json.dumps(config))
        readyz = f"https://127.0.0.1:{port}/readyz"
        trust = ssl.create_default_context(cafile=str(cluster_pki.ca.cert))
        serve = ["iamra", "serve", "--config", str(config_file)]
        async with (
            local_addon(serve, work / "serve.log", readyz, kubeconfig=cdir.kubeconfig, ready_ssl=trust),
            KubeClient.from_kubeconfig(cdir.kubeconfig, field_manager="kubewright-demo") as kube,
        ):
            console.print(f"webhook serving on https://127.0.0.1:{port}/mutate (metrics :{metrics_port})")
            async with registered(kube, local_mwc(docs, MWC_NAME, port, cluster_pki.ca.cert.read_bytes())):
                await _demo_deployment(kube, console)


async def _demo_deployment(kube: KubeClient, console: Console) -> None:
    await labelled_namespace(kube, NAMESPACE, {"iamra.aws/enable": "true"})
    console.print(f"namespace {NAMESPACE} labelled iamra.aws/enable=true")
    app = deployment("aws-app", NAMESPACE, 2)
    app["spec"]["template"]["metadata"]["annotations"] = dict(EXAMPLE_ANNOTATIONS)
    await kube.delete("apps/v1", "Deployment", "aws-app", NAMESPACE, missing_ok=True)
    pod = await _first_injected_pod(kube, app)
    await wait_available(kube, NAMESPACE, "aws-app", 2, timeout=120)
    sidecar = pod["spec"]["initContainers"][0]
    table = Table(title=f"pod {pod['metadata']['name']} as stored by the API server")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("native sidecar", f"{sidecar['name']} (restartPolicy: {sidecar.get('restartPolicy')})")
    table.add_row("sidecar args", " ".join(sidecar["args"]))
    table.add_row(
        "volume", ", ".join(f"{v['name']} ({next(iter(set(v) - {'name'}))})" for v in pod["spec"]["volumes"])
    )
    env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}
    for name, value in env.items():
        table.add_row(f"env {name}", value)
    annotations = pod["metadata"]["annotations"]
    table.add_row("iamra.aws/injection-hash", annotations.get("iamra.aws/injection-hash", "-"))
    console.print(table)


async def _first_injected_pod(kube: KubeClient, app: dict[str, Any]) -> dict[str, Any]:
    """Apply the Deployment once the webhook configuration is live, then return one of its pods."""
    await kube.apply(app)
    async with asyncio.timeout(60):
        while True:
            pods = await kube.list("v1", "Pod", NAMESPACE, labels={"app": "aws-app"})
            injected = [p for p in pods if "iamra.aws/injected" in (p["metadata"].get("annotations") or {})]
            if injected:
                return injected[0]
            if pods:
                # Created before the new webhook configuration reached the API server: recreate them.
                for p in pods:
                    await kube.delete("v1", "Pod", p["metadata"]["name"], NAMESPACE, missing_ok=True)
            await asyncio.sleep(0.5)  # poll
