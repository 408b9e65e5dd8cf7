"""Scenario 8: serving-certificate rotation under load: no failed creates, every pod injected."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from kubewright.runtime.kube import KubeClient
from kubewright.testenv import pki
from kubewright.testenv.pytest_plugin import LocalCluster
from tests.support.iamra_webhook import (
    ANNOTATIONS,
    create_when_webhook_live,
    metric,
    opt_in,
    pod,
    run_webhook,
)

pytestmark = pytest.mark.envtest

RATE = 50  # creates per second
SECONDS = 20
ROTATIONS = 5


class SecretVolume:
    """A directory laid out like kubelet's secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<n>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True)
        for name in ("tls.crt", "tls.key"):
            (root / name).symlink_to(Path("..data") / name)

    def publish(self, cert: bytes, key: bytes) -> None:
        """Write a new generation, then swap ..data atomically (rename over the old link)."""
        self.generation += 1
        gen = self.root / f"..gen{self.generation}"
        gen.mkdir()
        (gen / "tls.crt").write_bytes(cert)
        (gen / "tls.key").write_bytes(key)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(gen.name)
        os.replace(tmp, self.root / "..data")


def leaf(cluster: LocalCluster, directory: Path, n: int) -> pki.KeyPair:
    return pki.issue_serving_cert(directory, cluster.pki.ca, f"webhook-{n}", ("localhost",))


async def served_serial(port: int, cafile: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(cafile))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


async def test_rotation_under_load(
    envtest_cluster: LocalCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await opt_in(kube, namespace)
    volume = SecretVolume(tmp_path / "secret")
    first = leaf(envtest_cluster, tmp_path / "leaves", 0)
    volume.publish(first.cert.read_bytes(), first.key.read_bytes())
    server = {"certFile": str(volume.root / "tls.crt"), "keyFile": str(volume.root / "tls.key")}
    async with run_webhook(envtest_cluster, kube, tmp_path, config_overrides={"server": server}) as hook:
        await create_when_webhook_live(kube, pod("warm", namespace, annotations=ANNOTATIONS))
        failures: list[str] = []
        uninjected: list[str] = []

        async def create(i: int) -> None:
            try:
                created = await kube.create(
                    pod(f"load-{i}", namespace, annotations=ANNOTATIONS, containers=1)
                )
            except Exception as err:  # every failure is a finding, whatever its type
                failures.append(f"load-{i}: {err}")
                return
            if "iamra.aws/injected" not in created["metadata"]["annotations"]:
                uninjected.append(created["metadata"]["name"])

        async def rotate() -> int:
            serial = 0
            for n in range(1, ROTATIONS + 1):
                await asyncio.sleep(SECONDS / (ROTATIONS + 2))  # poll: spread rotations over the run
                pair = leaf(envtest_cluster, tmp_path / "leaves", n)
                volume.publish(pair.cert.read_bytes(), pair.key.read_bytes())
                serial = x509.load_pem_x509_certificate(pair.cert.read_bytes()).serial_number
                if n == 3:
                    # A half-updated secret: a new certificate with the previous key. Must be refused.
                    await asyncio.sleep(0.5)  # poll: let the good pair load first
                    other = leaf(envtest_cluster, tmp_path / "leaves", 100)
                    volume.publish(other.cert.read_bytes(), pair.key.read_bytes())
                    await asyncio.sleep(0.5)  # poll: the reloader sees and rejects it
                    volume.publish(pair.cert.read_bytes(), pair.key.read_bytes())
            return serial

        rotation = asyncio.create_task(rotate())
        started = time.monotonic()
        tasks = []
        for i in range(RATE * SECONDS):
            due = started + i / RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # poll: open-loop pacing
            tasks.append(asyncio.create_task(create(i)))
        await asyncio.gather(*tasks)
        last_serial = await rotation
        async with asyncio.timeout(10):
            while await served_serial(hook.port, envtest_cluster.pki.ca.cert) != last_serial:
                await asyncio.sleep(0.2)  # poll: the reloader's interval
        reloads = hook.extra.setdefault("reloads", {})
        reloads["success"] = await metric(
            hook.metrics_port, 'iamra_injector_tls_reloads_total{result="success"}'
        )
        reloads["error"] = await metric(hook.metrics_port, 'iamra_injector_tls_reloads_total{result="error"}')
    shutil.rmtree(volume.root, ignore_errors=True)
    assert failures == []
    assert uninjected == []
    assert reloads["success"] >= ROTATIONS
    assert reloads["error"] >= 1
