"""The envtest control plane itself: ready, CRDs served and watched, RBAC enforced."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from kubewright.runtime.kube import CustomKind, Forbidden, KubeClient, NotFound
from kubewright.testenv import pki
from kubewright.testenv.layout import kubeconfig_document
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.envtest

WIDGETS = CustomKind(
    group="test.kubewright.dev", version="v1", kind="Widget", plural="widgets", namespaced=True
)


async def test_apiserver_ready_and_pinned_version(envtest_cluster: LocalCluster) -> None:
    ctx = envtest_cluster.admin_ssl_context()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{envtest_cluster.server}/readyz", ssl=ctx) as r:
            assert r.status == 200
        async with http.get(f"{envtest_cluster.server}/version", ssl=ctx) as r:
            version = await r.json()
    assert version["gitVersion"] == "v1.35.4"


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{WIDGETS.plural}.{WIDGETS.group}"},
        "spec": {
            "group": WIDGETS.group,
            "scope": "Namespaced",
            "names": {"plural": WIDGETS.plural, "singular": "widget", "kind": WIDGETS.kind},
            "versions": [
                {
                    "name": WIDGETS.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }


async def wait_established(kube: KubeClient, name: str, timeout: float = 30) -> None:
    async def established() -> bool:
        crd = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
        conds = crd.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    async with asyncio.timeout(timeout):
        while not await established():
            await asyncio.sleep(0.1)  # poll


async def test_crd_installed_and_watched(kube: KubeClient, namespace: str) -> None:
    crd = widget_crd()
    await kube.apply(crd)
    await wait_established(kube, crd["metadata"]["name"])
    KubeClient.register(WIDGETS)
    api_version = f"{WIDGETS.group}/{WIDGETS.version}"
    # Established can precede the new resource being served by a moment: list until it answers.
    async with asyncio.timeout(20):
        while True:
            try:
                await kube.list(api_version, WIDGETS.kind, namespace)
                break
            except NotFound:
                await asyncio.sleep(0.1)  # poll

    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def watch() -> None:
        async for event in kube.events(api_version, WIDGETS.kind, namespace):
            await seen.put(event)

    watcher = asyncio.create_task(watch())
    try:
        await kube.create(
            {
                "apiVersion": api_version,
                "kind": WIDGETS.kind,
                "metadata": {"name": "w1", "namespace": namespace},
                "spec": {"size": 3},
            }
        )
        async with asyncio.timeout(20):
            while True:
                getter = asyncio.ensure_future(seen.get())
                await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    watcher.result()  # the watch ended: surface its error instead of timing out
                    raise AssertionError("the watch ended without an ADDED event for w1")
                event = getter.result()
                if event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "w1":
                    break
        assert event["object"]["spec"] == {"size": 3}
        got = await kube.get(api_version, WIDGETS.kind, "w1", namespace)
        assert got["spec"]["size"] == 3
    finally:
        watcher.cancel()


async def test_rbac_denies_unprivileged_user(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Any
) -> None:
    cluster_pki = envtest_cluster.pki
    jane = pki.issue_client_cert(tmp_path, cluster_pki.ca, "jane", ("developers",))
    config = tmp_path / "jane.kubeconfig"
    config.write_text(kubeconfig_document(envtest_cluster.server, cluster_pki.ca.cert, jane.cert, jane.key))

    async with KubeClient.from_kubeconfig(config) as as_jane:
        with pytest.raises(Forbidden, match="jane"):
            await as_jane.list("v1", "ConfigMap", namespace)

        # Granting a Role makes the same call succeed: RBAC decides, not a blanket denial.
        await kube.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-cm", "namespace": namespace},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            }
        )
        await kube.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "jane-read-cm", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
            }
        )
        async with asyncio.timeout(10):
            while True:
                try:
                    assert await as_jane.list("v1", "ConfigMap", namespace) is not None
                    break
                except Forbidden:
                    await asyncio.sleep(0.1)  # poll: RBAC caches catch up within a moment
        with pytest.raises(Forbidden):
            await as_jane.list("v1", "Secret", namespace)
