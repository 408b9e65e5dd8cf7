"""The informer against a real API server: delivery, restarts, 410 Gone, selectors, cache modes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kubewright.runtime.informer import Informer, InformerConfig
from kubewright.runtime.kube import KubeClient, KubeError
from kubewright.runtime.store import Change, EventType, index_by_node
from kubewright.testenv.pytest_plugin import LocalCluster
from kubewright.testenv.tcpproxy import CuttableProxy

pytestmark = pytest.mark.envtest


def configmap(
    name: str, namespace: str, value: str = "1", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {"value": value},
    }


class Recorder:
    """Collects changes; `until` waits (with a deadline) for a condition over them."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._event = asyncio.Event()

    def __call__(self, change: Change) -> None:
        self.changes.append(change)
        self._event.set()

    def of(self, kind: EventType) -> list[str]:
        return [c.key for c in self.changes if c.type is kind]

    async def until(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._event.clear()
                await self._event.wait()


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        async with asyncio.timeout(30):
            await informer.wait_synced()
        yield informer
    finally:
        stop.set()
        await task


async def retrying(action: Callable[[], Any], timeout: float = 60) -> Any:
    """Repeat a write while the API server is restarting."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await action()
            except KubeError as err:
                if err.code not in (0, 500, 503):
                    raise
            except OSError:
                pass
            await asyncio.sleep(0.2)  # poll


async def test_add_update_delete_delivered(kube: KubeClient, namespace: str) -> None:
    rec = Recorder()
    informer = Informer(kube, InformerConfig("v1", "ConfigMap", namespace))
    informer.add_handler(rec)
    async with running(informer):
        await kube.create(configmap("a", namespace))
        await rec.until(lambda: f"{namespace}/a" in rec.of(EventType.ADDED))
        await kube.merge_patch("v1", "ConfigMap", "a", {"data": {"value": "2"}}, namespace)
        await rec.until(lambda: f"{namespace}/a" in rec.of(EventType.MODIFIED))
        assert rec.changes[-1].old is not None
        assert rec.changes[-1].old["data"] == {"value": "1"}
        assert rec.changes[-1].new is not None
        assert rec.changes[-1].new["data"] == {"value": "2"}
        await kube.delete("v1", "ConfigMap", "a", namespace)
        await rec.until(lambda: f"{namespace}/a" in rec.of(EventType.DELETED))
        assert informer.get(f"{namespace}/a") is None


async def test_apiserver_restart_mid_watch_misses_nothing(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    rec = Recorder()
    informer = Informer(kube, InformerConfig("v1", "ConfigMap", namespace, backoff_max=1.0))
    informer.add_handler(rec)
    async with running(informer):
        for i in range(20):
            await kube.create(configmap(f"before-{i}", namespace))
        restart = asyncio.create_task(asyncio.to_thread(envtest_cluster.restart, "kube-apiserver"))
        written = []
        for i in range(40):
            name = f"during-{i}"
            await retrying(lambda name=name: kube.create(configmap(name, namespace)))  # type: ignore[misc]
            written.append(name)
        await restart
        for i in range(10):
            await retrying(lambda i=i: kube.create(configmap(f"after-{i}", namespace)))  # type: ignore[misc]
        server = {o["metadata"]["name"] for o in await kube.list("v1", "ConfigMap", namespace)}
        await rec.until(lambda: {k.split("/")[1] for k in informer.store} == server, timeout=60)
    added = {k.split("/")[1] for k in rec.of(EventType.ADDED)}
    assert {f"before-{i}" for i in range(20)} | set(written) | {f"after-{i}" for i in range(10)} <= added


async def test_gone_after_compaction_relists_and_emits_deletes(
    envtest_cluster: LocalCluster, namespace: str, tmp_path: Path, kube: KubeClient
) -> None:
    proxy = CuttableProxy(envtest_cluster.state.ports["apiserver"])
    await proxy.start()
    via_proxy = KubeClient.from_kubeconfig(envtest_cluster.kubeconfig_via(proxy.port, tmp_path / "kc"))
    rec = Recorder()
    informer = Informer(via_proxy, InformerConfig("v1", "ConfigMap", namespace, backoff_max=0.5))
    informer.add_handler(rec)
    try:
        for i in range(10):
            await kube.create(configmap(f"cm-{i}", namespace))
        async with running(informer):
            await rec.until(lambda: len(informer.store) == 10)
            proxy.cut()
            # While the informer is cut off: deletes and a change it cannot see, then history erased.
            for i in range(4):
                await kube.delete("v1", "ConfigMap", f"cm-{i}", namespace)
            await kube.merge_patch("v1", "ConfigMap", "cm-9", {"data": {"value": "changed"}}, namespace)
            await kube.create(configmap("late", namespace))
            await envtest_cluster.compact_etcd()
            await asyncio.to_thread(envtest_cluster.restart, "kube-apiserver")
            proxy.restore()
            expected = {f"{namespace}/cm-{i}" for i in range(4, 10)} | {f"{namespace}/late"}
            await rec.until(lambda: set(informer.store) == expected, timeout=60)
            assert informer.stats.relists_after_gone >= 1
            assert {f"{namespace}/cm-{i}" for i in range(4)} <= set(rec.of(EventType.DELETED))
            assert f"{namespace}/cm-9" in rec.of(EventType.MODIFIED)
            assert f"{namespace}/late" in rec.of(EventType.ADDED)
            cm9 = informer.get(f"{namespace}/cm-9")
            assert cm9 is not None
            assert cm9["data"] == {"value": "changed"}
    finally:
        await via_proxy.close()
        await proxy.stop()


def requests_for(cluster: LocalCluster, namespace: str, verb: str) -> list[str]:
    return [
        e["requestURI"]
        for e in cluster.audit_entries()
        if e.get("verb") == verb
        and e.get("objectRef", {}).get("resource") == "configmaps"
        and e.get("objectRef", {}).get("namespace") == namespace
    ]


async def test_selectors_are_sent_to_the_server(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    await kube.create(configmap("wanted", namespace, labels={"tier": "web"}))
    await kube.create(configmap("other", namespace, labels={"tier": "db"}))
    informer = Informer(
        kube,
        InformerConfig(
            "v1", "ConfigMap", namespace, labels={"tier": "web"}, fields={"metadata.name": "wanted"}
        ),
    )
    async with running(informer):
        assert list(informer.store) == [f"{namespace}/wanted"]
    lists = requests_for(envtest_cluster, namespace, "list")
    watches = requests_for(envtest_cluster, namespace, "watch")
    assert any(
        "labelSelector=tier%3Dweb" in uri and "fieldSelector=metadata.name%3Dwanted" in uri for uri in lists
    )
    assert any("labelSelector=tier%3Dweb" in uri and "allowWatchBookmarks=true" in uri for uri in watches)


async def test_metadata_only_and_projection_modes(kube: KubeClient, namespace: str) -> None:
    await kube.create(configmap("big", namespace, value="x" * 1000, labels={"app": "a"}))
    meta = Informer(kube, InformerConfig("v1", "ConfigMap", namespace, metadata_only=True))
    projected = Informer(kube, InformerConfig("v1", "ConfigMap", namespace, projection=("metadata.labels",)))
    async with running(meta), running(projected):
        m = meta.get(f"{namespace}/big")
        p = projected.get(f"{namespace}/big")
    assert m is not None
    assert "data" not in m
    assert m["metadata"]["labels"] == {"app": "a"}
    assert p is not None
    assert set(p) == {"metadata"}
    assert set(p["metadata"]) == {"name", "namespace", "uid", "resourceVersion", "labels"}


async def test_index_pods_by_node(kube: KubeClient, namespace: str) -> None:
    informer = Informer(kube, InformerConfig("v1", "Pod", namespace, projection=("spec.nodeName",)))
    informer.add_index("node", index_by_node)
    async with running(informer):
        for i, node in enumerate(["n1", "n1", "n2"]):
            await kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"p{i}", "namespace": namespace},
                    "spec": {
                        "nodeName": node,
                        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                    },
                }
            )
        rec = Recorder()
        informer.add_handler(rec)
        await rec.until(lambda: len(informer.store) == 3)
        assert sorted(o["metadata"]["name"] for o in informer.by_index("node", "n1")) == ["p0", "p1"]
        assert [o["metadata"]["name"] for o in informer.by_index("node", "n2")] == ["p2"]
