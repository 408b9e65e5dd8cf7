"""A ConfigMap controller on the kubewright runtime: labels every ConfigMap with a hash of its data.

A workload that copies the label into its pod template rolls out whenever the ConfigMap changes. The
informer and the probe/metrics site run on every replica; the controller runs only on the leader.

Run: python examples/runtime_controller.py NAMESPACE  (in a pod: its service account; else $KUBECONFIG)
RBAC in NAMESPACE: get, list, watch, patch on configmaps; get, create, update, watch on
coordination.k8s.io leases.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.controller import Controller
from kubewright.runtime.health import HealthEndpoint
from kubewright.runtime.https import RunningSite, new_application, start_site
from kubewright.runtime.informer import Informer, InformerConfig, InformerMetrics
from kubewright.runtime.kube import KubeClient, Obj
from kubewright.runtime.leader import ElectionConfig, LeaderElector, default_identity
from kubewright.runtime.logs import configure_logging, get_logger
from kubewright.runtime.manager import Election, Manager, exit_process, run_with_signal_handlers
from kubewright.runtime.metrics import add_metrics_route, create_registry

CONTROLLER = "configmap-data-hash"
HASH_LABEL = "example.kubewright.dev/data-hash"

log = get_logger("examples.runtime_controller")


def data_hash(configmap: Obj) -> str:
    """A digest of data and binaryData that fits a label value (32 hex characters; 63 allowed)."""
    content = {"data": configmap.get("data") or {}, "binaryData": configmap.get("binaryData") or {}}
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


class DataHashReconciler:
    """Level-based: reads the cached ConfigMap, never the event that woke it, and converges."""

    def __init__(self, kube: KubeClient, configmaps: Informer) -> None:
        self._kube = kube
        self._configmaps = configmaps

    async def reconcile(self, key: str) -> None:
        configmap = self._configmaps.get(key)
        if configmap is None:
            return  # deleted; the label went with it
        digest = data_hash(configmap)
        metadata = configmap["metadata"]
        if (metadata.get("labels") or {}).get(HASH_LABEL) == digest:
            return  # also what ends the loop: our own write comes back as an event
        # Server-side apply under our field manager: we own this one label and nothing else.
        labelled = {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": {HASH_LABEL: digest},
        }
        await self._kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": labelled})
        log.info("labelled", configmap=key, hash=digest)


class OpsSite:
    """/metrics, /healthz and /readyz (ready once the cache is filled), on every replica."""

    def __init__(self, registry: CollectorRegistry, informer: Informer, host: str, port: int) -> None:
        def cache_synced() -> None:
            if not informer.has_synced:
                raise RuntimeError(f"{informer.config.describe()} not listed yet")

        readyz = HealthEndpoint("readyz")
        readyz.add_check("configmap-cache", cache_synced)
        self.app = new_application()
        add_metrics_route(self.app, registry)
        HealthEndpoint("healthz").add_routes(self.app)
        readyz.add_routes(self.app)
        self._host, self._port = host, port
        self.running: RunningSite | None = None

    async def start(self, stop: asyncio.Event) -> None:
        self.running = await start_site(self.app, self._host, self._port)
        try:
            await stop.wait()
        finally:
            await self.running.stop()


@dataclass
class DataHashController:
    manager: Manager
    informer: Informer
    controller: Controller
    ops: OpsSite


def build(
    kube: KubeClient,
    namespace: str,
    election: Election | None,
    registry: CollectorRegistry,
    clock: Clock,
    host: str = "0.0.0.0",
    ops_port: int = 8080,
) -> DataHashController:
    # The cache keeps what reconcile reads (labels and data), not whole objects.
    config = InformerConfig(
        "v1", "ConfigMap", namespace, projection=("metadata.labels", "data", "binaryData")
    )
    informer = Informer(kube, config, clock=clock, metrics=InformerMetrics(registry))
    reconciler = DataHashReconciler(kube, informer)
    controller = Controller(CONTROLLER, informer, reconciler.reconcile, clock, registry)
    ops = OpsSite(registry, informer, host, ops_port)
    manager = Manager(election=election, clock=clock)
    manager.add_always_on("configmap-informer", informer.run)  # a standby keeps a warm cache
    manager.add_always_on("ops", ops)
    manager.add_leader_gated(CONTROLLER, controller)
    return DataHashController(manager, informer, controller, ops)


async def main(namespace: str) -> int:
    configure_logging()
    registry = create_registry()
    async with KubeClient.from_environment(field_manager=CONTROLLER) as kube:
        lease = ElectionConfig(CONTROLLER, namespace, default_identity())
        election = LeaderElector(kube, lease, registry=registry)
        running = build(kube, namespace, election, registry, RealClock())
        return await run_with_signal_handlers(running.manager)


if __name__ == "__main__":
    exit_process(lambda: main(sys.argv[1]))
