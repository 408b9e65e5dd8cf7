"""Spotalis run in-process against a sim cluster, its webhook registered by URL, and sample workloads.

The API server reaches the webhook at `https://127.0.0.1:<port>/mutate`, trusting the cluster CA; the
MutatingWebhookConfiguration has the chart's shape (CREATE pods, `failurePolicy: Ignore`,
namespaceSelector `spotalis.io/enabled=true`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubewright.runtime.kube import KubeClient, KubeError
from kubewright.spotalis import constants as c
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.controllers.wiring import WorkloadController, attach_workload_controller
from kubewright.spotalis.run_command import SpotalisProcess, build
from kubewright.testenv import loopback, pki
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.supervisor import free_ports
from kubewright.testenv.workloads import deployment

CAPACITY_LABEL = "karpenter.sh/capacity-type"
MWC_API = "admissionregistration.k8s.io/v1"


@dataclass
class LocalSpotalis:
    process: SpotalisProcess
    controller: WorkloadController | None


@contextlib.asynccontextmanager
async def running_spotalis(
    cluster: LocalCluster,
    tmp: Path,
    *,
    controllers: dict[str, Any] | None = None,
    with_controller: bool = False,
) -> AsyncIterator[LocalSpotalis]:
    """Spotalis in-process against `cluster`, ready (informers synced, certificate loaded).

    `controllers` overrides the `controllers` config section; `with_controller` attaches the
    leader-gated workload controller as `kubewright spotalis run` does.
    """
    serving = pki.issue_serving_cert(tmp / "certs", cluster.pki.ca, "spotalis-webhook", ("localhost",))
    webhook_port, health_port, metrics_port = free_ports(3)
    config = SpotalisConfig.model_validate(
        {
            "operator": {"leaderElection": {"enabled": False}, "preShutdownDelay": "0s"},
            "controllers": controllers or {},
            "webhook": {
                "port": webhook_port,
                "certDir": str(serving.cert.parent),
                "certName": serving.cert.name,
                "keyName": serving.key.name,
            },
            "observability": {
                "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
                "health": {"bindAddress": f"127.0.0.1:{health_port}"},
            },
        }
    )
    async with cluster.client(field_manager="spotalis-controller") as kube:
        process = build(kube, config, webhook_host="127.0.0.1")
        controller = attach_workload_controller(process, kube) if with_controller else None
        task = asyncio.create_task(process.manager.run())
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(60):
                while True:
                    if task.done():
                        raise RuntimeError(f"spotalis exited early: {task.result()}")
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"http://127.0.0.1:{health_port}/readyz") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.2)  # poll: until /readyz passes
            yield LocalSpotalis(process, controller)
        finally:
            process.manager.request_stop()
            async with asyncio.timeout(30):
                await task


def managed_deployment(
    name: str, namespace: str, replicas: int, annotations: dict[str, str]
) -> dict[str, Any]:
    manifest = deployment(name, namespace, replicas)
    manifest["metadata"]["labels"] = {c.ENABLED_LABEL: c.ENABLED_VALUE}
    manifest["metadata"]["annotations"] = annotations
    return manifest


async def register_webhook(kube: KubeClient, cluster: LocalCluster, name: str, port: int) -> None:
    mwc = loopback.mutating_webhook_configuration(
        name,
        loopback.url_client_config(port, "/mutate", cluster.ca_pem),
        rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        namespace_selector={"matchLabels": {c.ENABLED_LABEL: c.ENABLED_VALUE}},
        failure_policy="Ignore",
    )
    await kube.apply(mwc)


async def wait_webhook_live(kube: KubeClient, namespace: str) -> None:
    """A new MWC reaches the admission chain asynchronously: dry-run a managed pod until it is mutated.

    The probe pod is owned by the ReplicaSet of a managed zero-replica Deployment (dry run: nothing is
    stored and no in-flight record is kept).
    """
    await kube.create(managed_deployment("probe", namespace, 0, {c.SPOT_PERCENTAGE_ANNOTATION: "50"}))
    async with asyncio.timeout(60):
        while True:
            sets = await kube.list("apps/v1", "ReplicaSet", namespace, labels={"app": "probe"})
            if sets:
                break
            await asyncio.sleep(0.2)  # poll: until the deployment controller made the ReplicaSet
        rs = sets[0]["metadata"]
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["name"], "uid": rs["uid"]}
        probe = deployment("probe", namespace, 1)["spec"]["template"]
        attempt = 0
        while True:
            attempt += 1
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    **probe["metadata"],
                    "name": f"probe-{attempt}",
                    "namespace": namespace,
                    "ownerReferences": [{**owner, "controller": True}],
                },
                "spec": probe["spec"],
            }
            with contextlib.suppress(KubeError):  # e.g. the default ServiceAccount is not there yet
                created = await kube.create(pod, dry_run=True)
                if c.CAPACITY_INTENT_LABEL in (created["metadata"].get("labels") or {}):
                    return
            await asyncio.sleep(0.3)  # poll: until the webhook answers for this namespace


async def ready_pods(kube: KubeClient, namespace: str, app: str) -> list[dict[str, Any]]:
    pods = await kube.list("v1", "Pod", namespace, labels={"app": app})
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            cond.get("type") == "Ready" and cond.get("status") == "True"
            for cond in (p.get("status") or {}).get("conditions") or []
        )
    ]
