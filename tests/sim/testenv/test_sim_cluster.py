"""The sim cluster: KWOK nodes labelled by capacity type run Deployments, reschedule, and serve exec/logs."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from kubewright.runtime.kube import KubeClient, KubeError
from kubewright.testenv.nodes import KARPENTER_CAPACITY_TYPE, spot_count
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.workloads import deployment, wait_available

pytestmark = pytest.mark.sim


async def test_nodes_are_ready_and_labelled(sim_cluster: LocalCluster, kube: KubeClient) -> None:
    nodes = await kube.list("v1", "Node")
    assert len(nodes) == sim_cluster.spec.nodes
    kinds = Counter(n["metadata"]["labels"][KARPENTER_CAPACITY_TYPE] for n in nodes)
    spots = spot_count(sim_cluster.spec.nodes, sim_cluster.spec.spot_fraction)
    assert kinds == {"spot": spots, "on-demand": sim_cluster.spec.nodes - spots}
    for n in nodes:
        conds = {c["type"]: c["status"] for c in n["status"]["conditions"]}
        assert conds["Ready"] == "True", n["metadata"]["name"]


async def test_deployment_of_100_becomes_available_across_nodes(kube: KubeClient, namespace: str) -> None:
    await kube.apply(deployment("web", namespace, 100))
    await wait_available(kube, namespace, "web", 100, timeout=120)
    pods = await kube.list("v1", "Pod", namespace, labels={"app": "web"})
    assert len(pods) == 100
    assert all(p["status"]["phase"] == "Running" for p in pods)
    used = {p["spec"]["nodeName"] for p in pods}
    assert len(used) > 5, f"100 pods packed onto {len(used)} nodes"


async def test_deleting_a_node_reschedules_its_pods(kube: KubeClient, namespace: str) -> None:
    await kube.apply(deployment("moves", namespace, 30))
    await wait_available(kube, namespace, "moves", 30, timeout=120)
    pods = await kube.list("v1", "Pod", namespace, labels={"app": "moves"})
    victim = Counter(p["spec"]["nodeName"] for p in pods).most_common(1)[0][0]
    node = await kube.get("v1", "Node", victim)
    await kube.delete("v1", "Node", victim)
    try:
        # podgc removes pods bound to a vanished node after its 40 s quarantine; the ReplicaSet replaces them.
        async with asyncio.timeout(180):
            while True:
                pods = await kube.list("v1", "Pod", namespace, labels={"app": "moves"})
                running = [p for p in pods if p["status"].get("phase") == "Running"]
                if len(running) == 30 and all(p["spec"].get("nodeName") != victim for p in pods):
                    break
                await asyncio.sleep(1)  # poll
    finally:
        restored = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {k: node["metadata"][k] for k in ("name", "labels", "annotations")},
        }
        await kube.apply(restored)


async def running_pod(kube: KubeClient, namespace: str, name: str) -> str:
    await kube.apply(deployment(name, namespace, 1))
    await wait_available(kube, namespace, name, 1, timeout=60)
    pods = await kube.list("v1", "Pod", namespace, labels={"app": name})
    pod_name: str = pods[0]["metadata"]["name"]
    return pod_name


async def test_kubectl_exec_runs_the_local_command(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    pod = await running_pod(kube, namespace, "shell")
    out = sim_cluster.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", "echo exec:$KUBEWRIGHT_SIM")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "exec:1"

    code, stdout, _ = await kube.exec(pod, namespace, ["sh", "-c", "echo via-websocket"])
    assert stdout.strip() == "via-websocket"
    assert code == 0
    # A real kubelet reports a non-zero exit as Status reason NonZeroExitCode; KWOK (v0.7) reports an
    # InternalError carrying the exit status, which reaches callers as a typed KubeError.
    with pytest.raises(KubeError, match="exit status 3"):
        await kube.exec(pod, namespace, ["sh", "-c", "exit 3"])


async def test_kubectl_logs_served_by_kwok(
    sim_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    pod = await running_pod(kube, namespace, "talker")
    out = sim_cluster.kubectl("logs", "-n", namespace, pod)
    assert out.returncode == 0, out.stderr
    assert "kubewright simulated pod" in out.stdout
