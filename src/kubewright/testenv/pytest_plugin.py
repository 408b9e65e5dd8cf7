"""pytest plugin: session-scoped local clusters, a namespace per test, a kube client, loopback helpers.

Tests marked `envtest` get etcd + kube-apiserver; tests marked `sim` (or `e2e`) get the sim cluster.
When the binaries are not built the tier is skipped with the reason, unless
`KUBEWRIGHT_REQUIRE_CONTROLPLANE` is set (as CI does), in which case the test fails instead, so a
missing install step can never pass as a green run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubewright.runtime.kube import KubeClient
from kubewright.testenv import binaries, cluster, pki
from kubewright.testenv.layout import ClusterDir, ClusterSpec, ClusterState, Mode, kubeconfig_document

REQUIRE_ENV = "KUBEWRIGHT_REQUIRE_CONTROLPLANE"
SIM_NODES_ENV = "KUBEWRIGHT_TEST_SIM_NODES"
KEEP_STATE_ENV = "KUBEWRIGHT_KEEP_CLUSTER_STATE"
CERT_MANAGER_COMPONENTS = ("cert-manager-controller", "cert-manager-cainjector")
CONTROL_PLANE_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster as tests see it: where it is and how to authenticate to it."""

    cdir: ClusterDir
    state: ClusterState
    spec: ClusterSpec

    @property
    def kubeconfig(self) -> Path:
        return self.cdir.kubeconfig

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state.ports['apiserver']}"

    @property
    def pki(self) -> pki.ClusterPKI:
        return pki.load(self.cdir.pki)

    @property
    def ca_pem(self) -> bytes:
        return self.pki.ca.cert.read_bytes()

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS context that trusts the API server and authenticates as the admin (system:masters)."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return ctx

    async def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (through etcd's JSON gateway); returns the revision.

        Afterwards no watch can resume from an older resourceVersion: the server answers 410 Gone.
        """
        base = f"http://127.0.0.1:{self.state.ports['etcd']}/v3/kv"
        async with aiohttp.ClientSession() as http:
            probe = {"key": base64.b64encode(b"/").decode(), "limit": 1}
            async with http.post(f"{base}/range", json=probe) as r:
                r.raise_for_status()
                revision = int((await r.json())["header"]["revision"])
            async with http.post(f"{base}/compaction", json={"revision": revision, "physical": True}) as r:
                r.raise_for_status()
        return revision

    def restart(self, component: str) -> None:
        """Restart one control-plane component with the same flags and ports; returns once it is ready."""
        cluster.restart_component(self.cdir, component)

    def audit_entries(self) -> list[dict[str, Any]]:
        """The API server's audit log (Metadata level): what clients actually asked for."""
        lines = self.cdir.audit_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line]

    def kubeconfig_via(self, port: int, path: Path) -> Path:
        """An admin kubeconfig that reaches the API server through a loopback port (e.g. a proxy)."""
        cluster_pki = self.pki
        server = f"https://127.0.0.1:{port}"
        path.write_text(
            kubeconfig_document(server, cluster_pki.ca.cert, cluster_pki.admin.cert, cluster_pki.admin.key)
        )
        return path

    def client(self, field_manager: str = "kubewright-tests") -> KubeClient:
        return KubeClient.from_kubeconfig(self.kubeconfig, field_manager=field_manager)

    def binary(self, component: str) -> str:
        return str(binaries.path_of(component))

    def env(self) -> dict[str, str]:
        """This process's environment with KUBECONFIG pointing at the cluster (for kubectl, helm)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; the caller checks returncode and output."""
        return self.run_tool("kubectl", *args, timeout=timeout)

    def helm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run the pinned helm against this cluster; the caller checks returncode and output."""
        return self.run_tool("helm", *args, timeout=timeout)

    def run_tool(self, tool: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary(tool), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _require_binaries(components: tuple[str, ...]) -> None:
    try:
        missing = binaries.missing(components)
    except (binaries.ControlPlaneUnavailable, OSError) as err:
        missing = [f"({err})"]
    if not missing:
        return
    reason = (
        f"control-plane binaries not built: {', '.join(missing)} (run `make setup` or `kubewright dev build`)"
    )
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _start(name: str, spec: ClusterSpec) -> Iterator[LocalCluster]:
    needed: tuple[str, ...] = ("etcd", "kube-apiserver")
    if spec.mode is Mode.SIM:
        needed = CONTROL_PLANE_COMPONENTS
    if spec.cert_manager:
        needed += CERT_MANAGER_COMPONENTS
    _require_binaries(needed)
    cdir = ClusterDir.named(name)
    state = cluster.up(cdir, spec, timeout=300, exit_with_parent=True)
    try:
        yield LocalCluster(cdir, state, spec)
    finally:
        cluster.down(cdir)
        # Session clusters are throwaway; keep their logs only when asked (debugging a failure).
        if not os.environ.get(KEEP_STATE_ENV):
            shutil.rmtree(cdir.root, ignore_errors=True)


@pytest.fixture(scope="session")
def envtest_cluster() -> Iterator[LocalCluster]:
    yield from _start(f"pytest-envtest-{os.getpid()}", ClusterSpec(mode=Mode.ENVTEST, nodes=0))


@pytest.fixture(scope="session")
def sim_cluster() -> Iterator[LocalCluster]:
    nodes = int(os.environ.get(SIM_NODES_ENV, "50"))
    yield from _start(f"pytest-sim-{os.getpid()}", ClusterSpec(mode=Mode.SIM, nodes=nodes, spot_fraction=0.5))


@pytest.fixture(scope="session")
def e2e_cluster() -> Iterator[LocalCluster]:
    """A sim cluster with cert-manager's controller and cainjector running."""
    nodes = int(os.environ.get(SIM_NODES_ENV, "50"))
    spec = ClusterSpec(mode=Mode.SIM, nodes=nodes, spot_fraction=0.5, cert_manager=True)
    yield from _start(f"pytest-e2e-{os.getpid()}", spec)


@pytest.fixture
def local_cluster(request: pytest.FixtureRequest) -> LocalCluster:
    """The cluster for this test's tier: e2e, sim, or envtest by the test's marker."""
    if request.node.get_closest_marker("e2e"):
        fixture = "e2e_cluster"
    elif request.node.get_closest_marker("sim"):
        fixture = "sim_cluster"
    else:
        fixture = "envtest_cluster"
    found: LocalCluster = request.getfixturevalue(fixture)
    return found


@pytest.fixture
async def kube(local_cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    client = local_cluster.client()
    try:
        yield client
    finally:
        await client.close()


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
async def namespace(
    request: pytest.FixtureRequest, kube: KubeClient, local_cluster: LocalCluster
) -> AsyncIterator[str]:
    """A fresh namespace for the test, deleted afterwards.

    envtest has no controller-manager to create the `default` ServiceAccount, and Pod admission
    rejects pods until it exists, so the fixture creates it there.
    """
    name = _namespace_name(request.node.name)
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if local_cluster.spec.mode is Mode.ENVTEST:
        await kube.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}}
        )
    try:
        yield name
    finally:
        await kube.delete("v1", "Namespace", name, missing_ok=True)
