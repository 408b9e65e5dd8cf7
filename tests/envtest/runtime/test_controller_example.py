"""docs/runtime.md's controller example against the real API server, wired as its `main` wires it.

The example (`examples/runtime_controller.py`, loaded by path: examples are scripts, not a package) runs
with a real LeaderElector, so these tests cover the whole kit together: the informer's projection cache,
the work queue, server-side apply, leader-gating, the probe and metrics site, the Lease release on stop
and the JSON logs (quiet about individual HTTP requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import structlog
from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import RealClock
from kubewright.runtime.kube import KubeClient
from kubewright.runtime.leader import LeaderElector
from kubewright.runtime.leader_decisions import LEASE_API_VERSION, LEASE_KIND, ElectionConfig, micro_time
from kubewright.runtime.logs import QUIET_LIBRARY_LOGGERS, configure_logging
from kubewright.runtime.manager import ExitCode
from kubewright.runtime.metrics import LEADER_MASTER_STATUS, RECONCILE_TOTAL, WORKQUEUE_ADDS

pytestmark = pytest.mark.envtest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "runtime_controller.py"
TIMEOUT = 30.0  # a condition the controller reaches in well under a second; slack for a busy machine


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubewright_examples_runtime_controller_envtest", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module through sys.modules
    spec.loader.exec_module(module)
    return module


example = load_example()


def configmap(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for: {what}"
        await asyncio.sleep(0.05)  # poll


async def hash_label(kube: KubeClient, name: str, namespace: str) -> str | None:
    found = await kube.get("v1", "ConfigMap", name, namespace)
    label: str | None = (found["metadata"].get("labels") or {}).get(example.HASH_LABEL)
    return label


async def labelled_with_its_hash(kube: KubeClient, name: str, namespace: str) -> bool:
    found = await kube.get("v1", "ConfigMap", name, namespace)
    expected: str = example.data_hash(found)
    return (found["metadata"].get("labels") or {}).get(example.HASH_LABEL) == expected


@contextlib.asynccontextmanager
async def running_controller(
    kube: KubeClient, namespace: str, identity: str, registry: CollectorRegistry
) -> AsyncIterator[Any]:
    """The example as `main` builds it (real elector, real clock), its ops site on a free loopback port.

    On exit the manager is stopped as SIGTERM would stop it, and must end with ExitCode.OK.
    """
    election = LeaderElector(kube, ElectionConfig(example.CONTROLLER, namespace, identity), registry=registry)
    running = example.build(kube, namespace, election, registry, RealClock(), host="127.0.0.1", ops_port=0)
    run = asyncio.create_task(running.manager.run())
    try:
        yield running
    finally:
        running.manager.request_stop()
        assert await asyncio.wait_for(run, TIMEOUT) is ExitCode.OK


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The process-wide logging `main` configures, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet_levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARY_LOGGERS}
    stream = io.StringIO()
    configure_logging("info", stream, log_format="json")
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, quiet_level in quiet_levels.items():
            logging.getLogger(name).setLevel(quiet_level)


async def test_leader_labels_configmaps_with_their_data_hash_and_keeps_them_current(
    kube: KubeClient, namespace: str, json_logs: io.StringIO
) -> None:
    registry = CollectorRegistry()
    await kube.create(configmap("before-start", namespace, {"mode": "blue"}))
    async with running_controller(kube, namespace, "replica-a", registry) as running:
        # Present before the controller started: reached through the subscription's replay.
        await eventually(lambda: labelled_with_its_hash(kube, "before-start", namespace), "first label")
        await kube.create(configmap("after-start", namespace, {"mode": "green"}))
        await eventually(lambda: labelled_with_its_hash(kube, "after-start", namespace), "second label")

        first_hash = await hash_label(kube, "before-start", namespace)
        await kube.merge_patch("v1", "ConfigMap", "before-start", {"data": {"mode": "red"}}, namespace)
        await eventually(lambda: labelled_with_its_hash(kube, "before-start", namespace), "hash follows data")
        assert await hash_label(kube, "before-start", namespace) != first_hash

        # Level-based: a hand-edited label is put back, because the state, not the event, decides.
        tampered = {"metadata": {"labels": {example.HASH_LABEL: "tampered"}}}
        await kube.merge_patch("v1", "ConfigMap", "after-start", tampered, namespace)
        await eventually(lambda: labelled_with_its_hash(kube, "after-start", namespace), "label restored")

        # The controller owns only its label: data stays with whoever wrote it.
        written = await kube.get("v1", "ConfigMap", "after-start", namespace)
        owners = {entry["manager"] for entry in written["metadata"]["managedFields"]}
        assert kube.field_manager in owners
        assert written["data"] == {"mode": "green"}

        ops = running.ops.running
        assert ops is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{ops.url}/readyz", params={"verbose": "1"}) as probe:
                assert probe.status == 200
                assert "[+]configmap-cache ok" in await probe.text()
            async with http.get(f"{ops.url}/metrics") as scrape:
                assert scrape.status == 200
                assert RECONCILE_TOTAL in await scrape.text()
        labels = {"controller": example.CONTROLLER, "result": "success"}
        assert (registry.get_sample_value(RECONCILE_TOTAL, labels) or 0) >= 4
        assert registry.get_sample_value(LEADER_MASTER_STATUS, {"name": example.CONTROLLER}) == 1
        assert running.manager.leading

    # Stopped as on SIGTERM: the Lease is handed over, not left to expire.
    lease = await kube.get(LEASE_API_VERSION, LEASE_KIND, example.CONTROLLER, namespace)
    assert lease["spec"].get("holderIdentity", "") == ""
    # httpx2 logs every request at INFO (renewals, watches, applies); none of that reaches the output.
    loggers = {str(json.loads(line).get("logger")) for line in json_logs.getvalue().splitlines()}
    assert "kubewright.runtime.leader" in loggers
    assert not {name for name in loggers if name.startswith(("httpx2", "httpcore2"))}


async def test_standby_keeps_a_warm_cache_but_reconciles_nothing_until_it_leads(
    kube: KubeClient, namespace: str
) -> None:
    now = micro_time(datetime.now(UTC))
    await kube.create(
        {
            "apiVersion": LEASE_API_VERSION,
            "kind": LEASE_KIND,
            "metadata": {"name": example.CONTROLLER, "namespace": namespace},
            "spec": {
                "holderIdentity": "replica-elsewhere",
                "leaseDurationSeconds": 3600,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
    )
    await kube.create(configmap("waiting", namespace, {"mode": "blue"}))
    registry = CollectorRegistry()
    key = f"{namespace}/waiting"
    async with running_controller(kube, namespace, "replica-b", registry) as running:

        async def cached() -> bool:
            return running.informer.get(key) is not None

        await eventually(cached, "the standby's cache holds the ConfigMap")
        # The subscription is made only when leading: the queue has never been fed, so no reconcile
        # can have run or be about to run, which an absent label alone could not show.
        queue_adds = {"name": example.CONTROLLER, "controller": example.CONTROLLER}
        assert (registry.get_sample_value(WORKQUEUE_ADDS, queue_adds) or 0) == 0
        assert not running.manager.leading
        assert await hash_label(kube, "waiting", namespace) is None

        # The other replica hands over (what its release on SIGTERM writes): the standby leads at once.
        release = {"spec": {"holderIdentity": "", "leaseDurationSeconds": 1}}
        await kube.merge_patch(LEASE_API_VERSION, LEASE_KIND, example.CONTROLLER, release, namespace)
        await eventually(lambda: labelled_with_its_hash(kube, "waiting", namespace), "label after takeover")
        assert running.manager.leading
        lease = await kube.get(LEASE_API_VERSION, LEASE_KIND, example.CONTROLLER, namespace)
        assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseTransitions"]) == ("replica-b", 1)
