"""Scenario 2: the hello-world Job's generateName pod carries the native sidecar (sim cluster)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubewright.iamra.local import PROFILE, ROLE
from kubewright.runtime.kube import KubeClient
from kubewright.testenv.pytest_plugin import LocalCluster
from tests.support.iamra_webhook import opt_in, run_webhook

pytestmark = pytest.mark.sim

HELLO_WORLD = Path(__file__).resolve().parents[3] / "examples" / "iamra-hello-world"


async def job_pods(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    return await kube.list("v1", "Pod", namespace, labels={"app.kubernetes.io/instance": "hello"})


async def test_hello_world_job_pod_gets_the_native_sidecar(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    async with run_webhook(sim_cluster, kube, tmp_path):
        out = subprocess.run(
            [
                sim_cluster.binary("helm"),
                "install",
                "hello",
                str(HELLO_WORLD),
                "-n",
                namespace,
                "--set",
                f"roleArn={ROLE}",
                "--set",
                f"profileArn={PROFILE}",
            ],
            env=sim_cluster.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        async with asyncio.timeout(60):
            while not (pods := await job_pods(kube, namespace)):
                await asyncio.sleep(0.5)  # poll: the Job controller creates the pod
    (pod,) = pods
    assert pod["metadata"]["generateName"].startswith("hello-")
    sidecar = pod["spec"]["initContainers"][0]
    assert sidecar["name"] == "iamra-credential-helper"
    assert sidecar["restartPolicy"] == "Always"
    assert pod["metadata"]["annotations"]["iamra.aws/injected"] == "true"
    assert pod["spec"]["serviceAccountName"] == "iamra-hello-world"
    app = pod["spec"]["containers"][0]
    assert app["args"] == ["sts", "get-caller-identity"]
