"""The client port against a real API server: typed errors, apply, optimistic concurrency, subresources."""

from __future__ import annotations

import pytest

from kubewright.runtime.kube import Conflict, Invalid, KubeClient, NotFound
from kubewright.testenv.workloads import deployment

pytestmark = pytest.mark.envtest


async def test_typed_errors(kube: KubeClient, namespace: str) -> None:
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "absent", namespace)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}}
    await kube.create(cm)
    with pytest.raises(Conflict, match="already exists"):
        await kube.create(cm)
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid", "namespace": namespace}}
    with pytest.raises(Invalid, match="Not_Valid"):
        await kube.create(bad)
    await kube.delete("v1", "ConfigMap", "absent", namespace, missing_ok=True)
    with pytest.raises(NotFound):
        await kube.delete("v1", "ConfigMap", "absent", namespace)


async def test_replace_with_stale_resource_version_conflicts(kube: KubeClient, namespace: str) -> None:
    cm = await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": namespace},
            "data": {"a": "1"},
        }
    )
    await kube.merge_patch("v1", "ConfigMap", "c", {"data": {"a": "2"}}, namespace)
    cm["data"] = {"a": "3"}
    with pytest.raises(Conflict):
        await kube.replace(cm)
    fresh = await kube.get("v1", "ConfigMap", "c", namespace)
    fresh["data"] = {"a": "3"}
    assert (await kube.replace(fresh))["data"] == {"a": "3"}


async def test_server_side_apply_owns_fields_under_its_manager(kube: KubeClient, namespace: str) -> None:
    applied = await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": namespace},
            "data": {"k": "v"},
        }
    )
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert kube.field_manager in managers


async def test_dry_run_create_stores_nothing(kube: KubeClient, namespace: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry", "namespace": namespace}}
    out = await kube.create(cm, dry_run=True)
    assert out["metadata"]["name"] == "dry"
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "dry", namespace)


async def test_status_and_scale_subresources(kube: KubeClient, namespace: str) -> None:
    await kube.create(deployment("web", namespace, 2))
    scale = await kube.get_scale("apps/v1", "Deployment", "web", namespace)
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    await kube.set_scale("apps/v1", "Deployment", "web", 5, namespace)
    assert (await kube.get("apps/v1", "Deployment", "web", namespace))["spec"]["replicas"] == 5

    # envtest runs no controllers, so status is whatever we write through the subresource.
    await kube.merge_patch_status(
        "apps/v1", "Deployment", "web", {"status": {"observedGeneration": 7}}, namespace
    )
    assert (await kube.get("apps/v1", "Deployment", "web", namespace))["status"]["observedGeneration"] == 7
    with pytest.raises(ValueError, match="no scale subresource"):
        await kube.get_scale("v1", "ConfigMap", "x", namespace)
