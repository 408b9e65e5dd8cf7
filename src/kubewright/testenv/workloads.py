"""Sample workloads for sim clusters, shared by the demo and the tests."""

from __future__ import annotations

import asyncio
from typing import Any

from kubewright.runtime.kube import KubeClient

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    """A Deployment of pause containers labelled `app=<name>` (KWOK never pulls the image)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": PAUSE_IMAGE}]},
            },
        },
    }


async def wait_available(kube: KubeClient, namespace: str, name: str, replicas: int, timeout: float) -> None:
    """Until the Deployment has exactly `replicas` replicas, all available; TimeoutError past `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                dep = await kube.get("apps/v1", "Deployment", name, namespace)
                status = dep.get("status", {})
                if status.get("availableReplicas", 0) == replicas and status.get("replicas", 0) == replicas:
                    return
                await asyncio.sleep(0.5)  # poll
    except TimeoutError:
        raise TimeoutError(
            f"Deployment {namespace}/{name} not {replicas}/{replicas} available after {timeout:.0f} s"
        ) from None
