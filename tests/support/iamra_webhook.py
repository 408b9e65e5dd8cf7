"""A real iamra webhook (in this process) behind the chart's own MutatingWebhookConfiguration.

The chart is rendered with the real helm; its MWC keeps every selector and matchCondition and only
its clientConfig is pointed at the loopback server (URL + the cluster CA), as spec 9 describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kubewright.iamra.config import IamraConfig, config_from_mapping
from kubewright.iamra.local import (
    EXAMPLE_ANNOTATIONS,
    local_mwc,
    render_chart,
    webhook_config,
)
from kubewright.iamra.server import serve
from kubewright.runtime.clock import RealClock
from kubewright.runtime.kube import KubeClient
from kubewright.testenv import pki
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.supervisor import free_ports

ANNOTATIONS = EXAMPLE_ANNOTATIONS
VersionFetcher = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class RunningWebhook:
    port: int
    metrics_port: int | None
    config: IamraConfig
    mwc_name: str
    stop: asyncio.Event
    task: asyncio.Task[int]
    serving: pki.KeyPair
    cert_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def run_webhook(
    cluster: LocalCluster,
    kube: KubeClient,
    tmp: Path,
    *,
    sets: tuple[str, ...] = (),
    fetch_version: VersionFetcher | None = None,
    register: bool = True,
    wait_ready: bool = True,
    config_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[RunningWebhook]:
    docs = render_chart(cluster.binary("helm"), *sets)
    data = webhook_config(docs)
    serving = pki.issue_serving_cert(tmp / "tls", cluster.pki.ca, "iamra-webhook", ("localhost",))
    port, metrics_port = free_ports(2)
    data["server"].update(
        {
            "port": port,
            "certFile": str(serving.cert),
            "keyFile": str(serving.key),
            "reloadIntervalSeconds": 0.2,
            "shutdownDelaySeconds": 0,
        }
    )
    data["metrics"]["port"] = metrics_port
    for key, value in (config_overrides or {}).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    config = config_from_mapping(data)
    started: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    fetch = fetch_version or kube.server_version
    task = asyncio.create_task(
        serve(config, fetch, clock=RealClock(), stop=stop, on_started=lambda p, m: started.set_result((p, m)))
    )
    async with asyncio.timeout(20):
        waiters: set[asyncio.Future[Any]] = {started, task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        raise RuntimeError(f"webhook exited early with {task.result()}")
    if wait_ready:
        # As in a Deployment: endpoints (here: the MWC) only once /readyz says so.
        await until_ready(port, cluster)
    mwc = local_mwc(docs, f"iamra-test-{port}", port, cluster.ca_pem)
    webhook = RunningWebhook(
        port, metrics_port, config, mwc["metadata"]["name"], stop, task, serving, tmp / "tls"
    )
    webhook.extra["mwc"] = mwc
    if register:
        await kube.apply(mwc)
    try:
        yield webhook
    finally:
        await kube.delete(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            webhook.mwc_name,
            missing_ok=True,
        )
        stop.set()
        async with asyncio.timeout(20):
            await task


async def until_ready(port: int, cluster: LocalCluster, timeout: float = 20) -> None:
    ctx = ssl.create_default_context(cafile=str(cluster.pki.ca.cert))
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            async with http.get(f"https://127.0.0.1:{port}/readyz", ssl=ctx) as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.1)  # poll


async def opt_in(kube: KubeClient, namespace: str, **labels: str) -> None:
    await kube.merge_patch(
        "v1", "Namespace", namespace, {"metadata": {"labels": {"iamra.aws/enable": "true", **labels}}}
    )


def pod(
    name: str,
    namespace: str,
    *,
    annotations: dict[str, str] | None = None,
    containers: int = 2,
    restricted: bool = False,
) -> dict[str, Any]:
    security = (
        {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        if restricted
        else None
    )
    spec_containers = []
    for i in range(containers):
        cont: dict[str, Any] = {"name": f"app{i}", "image": "registry.k8s.io/pause:3.10"}
        if security:
            cont["securityContext"] = security
        spec_containers.append(cont)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"containers": spec_containers},
    }


async def create_when_webhook_live(kube: KubeClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """A new MWC reaches the admission chain asynchronously: retry (renaming) until it acted."""
    base = manifest["metadata"]["name"]
    async with asyncio.timeout(30):
        attempt = 0
        while True:
            attempt += 1
            manifest["metadata"]["name"] = f"{base}-{attempt}"
            created = await kube.create(manifest)
            if "iamra.aws/injected" in (created["metadata"].get("annotations") or {}):
                return created
            await kube.delete("v1", "Pod", created["metadata"]["name"], manifest["metadata"]["namespace"])
            await asyncio.sleep(0.2)  # poll


async def metric(webhook_port: int | None, name: str) -> float:
    """Sum of a metric family's samples whose line starts with `name` (labels included in `name`)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{webhook_port}/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))
