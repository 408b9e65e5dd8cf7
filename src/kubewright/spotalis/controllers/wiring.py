"""Wiring of the workload controller (spec 3.7 triggers) onto a built Spotalis process.

The cache's informers run on every replica (always-on, a warm cache for a fast takeover); the controller
subscribes to them only once this process leads (`runtime.controller.Controller` adds its handlers after
the cache's own, so `ClusterState` is already updated when a key is enqueued). Changes map to workload
keys `ns/Kind/name`:

- Deployments and StatefulSets: themselves; ReplicaSets: their owning Deployment;
- Pods: their StatefulSet, or their ReplicaSet's Deployment;
- Nodes: the workloads of every pod on the node (a reclaim or readiness change moves counts);
- Namespaces (the Controller's primary source): every workload of the namespace.

A resync enqueues every workload each `reconcileInterval` (+-10 % jitter).

`run_command.build` creates the cache inside, so the runnable is bound after it:

    controller = WorkloadController(kube)
    process = build(kube, config, controllers=[(WORKLOAD_CONTROLLER, controller)], ...)
    controller.bind(process)

or, equivalently, `attach_workload_controller(process, kube)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable
from typing import Any

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.controller import Controller, Result
from kubewright.runtime.events import EventRecorder
from kubewright.runtime.informer import Informer
from kubewright.runtime.kube import KubeClient
from kubewright.runtime.logs import get_logger
from kubewright.runtime.store import Change
from kubewright.spotalis import constants as c
from kubewright.spotalis.cache import SpotalisCache
from kubewright.spotalis.controllers.workload import (
    WORKLOAD_KINDS,
    KubeWriter,
    WorkloadReconciler,
    workload_key,
)
from kubewright.spotalis.records import DEPLOYMENT, REPLICA_SET, STATEFUL_SET
from kubewright.spotalis.run_command import SpotalisProcess
from kubewright.spotalis.state import ClusterState

WORKLOAD_CONTROLLER = "spotalis-workload"
RESYNC_JITTER = 0.1

log = get_logger("kubewright.spotalis.controllers.wiring")


def _meta(change: Change) -> dict[str, Any]:
    obj = change.new if change.new is not None else change.old
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _controller_owner(meta: dict[str, Any]) -> tuple[str, str] | None:
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return str(ref.get("kind") or ""), str(ref.get("name") or "")
    return None


class KeyMapper:
    """Maps informer changes to workload keys, reading the cache and `ClusterState`."""

    def __init__(self, cache: SpotalisCache, state: ClusterState) -> None:
        self._cache = cache
        self._state = state

    def owner_key(self, namespace: str, kind: str, name: str) -> str | None:
        """The workload key of a pod owner or counting group member (`ReplicaSet` -> its Deployment)."""
        if kind in (STATEFUL_SET, DEPLOYMENT):
            return workload_key(namespace, kind, name)
        if kind == REPLICA_SET:
            rs = self._cache.workload(REPLICA_SET, namespace, name)
            if rs is not None and rs.owner is not None and rs.owner.kind == DEPLOYMENT:
                return workload_key(namespace, DEPLOYMENT, rs.owner.name)
        return None

    def for_workload(self, kind: str) -> Any:
        def keys(change: Change) -> list[str]:
            meta = _meta(change)
            namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
            if kind == REPLICA_SET:
                owner = _controller_owner(meta)
                if owner is None or owner[0] != DEPLOYMENT:
                    return []
                return [workload_key(namespace, DEPLOYMENT, owner[1])]
            return [workload_key(namespace, kind, name)]

        return keys

    def for_pod(self, change: Change) -> list[str]:
        meta = _meta(change)
        owner = _controller_owner(meta)
        if owner is None:
            return []
        key = self.owner_key(str(meta.get("namespace") or ""), *owner)
        return [key] if key is not None else []

    def for_node(self, change: Change) -> list[str]:
        name = str(_meta(change).get("name") or "")
        keys: set[str] = set()
        for pod in self._state.pods_on(name):
            if pod.owner is not None and (
                key := self.owner_key(pod.namespace, pod.owner.kind, pod.owner.name)
            ):
                keys.add(key)
        return sorted(keys)


class WorkloadController:
    """The leader-gated runnable: the runtime Controller, the Event recorder and the resync loop."""

    def __init__(
        self, kube: KubeClient, *, clock: Clock | None = None, writer: KubeWriter | None = None
    ) -> None:
        self._kube = kube
        self._writer: KubeWriter = writer if writer is not None else kube
        self._clock = clock
        self.process: SpotalisProcess | None = None
        self.reconciler: WorkloadReconciler | None = None
        self.controller: Controller | None = None
        self.recorder: EventRecorder | None = None
        self._leading = False

    def bind(self, process: SpotalisProcess) -> None:
        clock = self._clock or RealClock()
        cache, state, config, registry = process.cache, process.state, process.config, process.registry
        self.process = process
        self.recorder = EventRecorder(self._kube, c.EVENT_COMPONENT, clock=clock, registry=registry)
        self.reconciler = WorkloadReconciler(
            self._writer,
            cache,
            state,
            config,
            self.recorder,
            clock,
            registry=registry,
            is_leader=lambda: self._leading,
        )
        namespaces = self._informers(cache, "Namespace")
        self.controller = Controller(
            WORKLOAD_CONTROLLER,
            namespaces[0],
            self._dispatch,
            clock,
            registry,
            workers=config.controllers.maxConcurrentReconciles,
        )
        mapper = KeyMapper(cache, state)
        for kind in (*WORKLOAD_KINDS, REPLICA_SET):
            for informer in self._informers(cache, kind):
                self.controller.watch(informer, mapper.for_workload(kind))
        for informer in self._informers(cache, "Pod"):
            self.controller.watch(informer, mapper.for_pod)
        for informer in self._informers(cache, "Node"):
            self.controller.watch(informer, mapper.for_node)
        self._clock = clock

    @staticmethod
    def _informers(cache: SpotalisCache, kind: str) -> list[Informer]:
        return [i for i in cache.informers if i.config.kind == kind]

    def workload_keys(self, namespace: str | None = None) -> list[str]:
        """Every Deployment and StatefulSet in the cache (of `namespace`, when given)."""
        assert self.process is not None
        keys = []
        for kind in WORKLOAD_KINDS:
            for informer in self._informers(self.process.cache, kind):
                for obj in informer.items():
                    meta = obj.get("metadata") or {}
                    ns = str(meta.get("namespace") or "")
                    if namespace is None or ns == namespace:
                        keys.append(workload_key(ns, kind, str(meta.get("name") or "")))
        return keys

    async def _dispatch(self, key: str) -> Result | None:
        """Workload keys reconcile; a bare name is a Namespace change, fanned out to its workloads."""
        assert self.reconciler is not None
        assert self.controller is not None
        if "/" not in key:
            for workload in self.workload_keys(key):
                self.controller.queue.add(workload)
            return None
        return await self.reconciler.reconcile(key)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        assert self.controller is not None
        for key in keys:
            self.controller.queue.add(key)

    async def _resync(self, stop: asyncio.Event) -> None:
        assert self.process is not None
        assert self.reconciler is not None
        assert self._clock is not None
        await self.process.cache.wait_synced()
        while not stop.is_set():
            interval = self.reconciler.interval * (1 + random.uniform(-RESYNC_JITTER, RESYNC_JITTER))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
            if stop.is_set():
                return
            self._enqueue_all(self.workload_keys())

    async def start(self, stop: asyncio.Event) -> None:
        if self.controller is None or self.reconciler is None or self.recorder is None:
            raise RuntimeError("WorkloadController.bind(process) must be called before it starts")
        self.reconciler.begin_tenure()
        self._leading = True
        log.info("workload controller leading", cooldown=self.reconciler.cooldown)
        try:
            await asyncio.gather(self.controller.start(stop), self.recorder.start(stop), self._resync(stop))
        finally:
            self._leading = False


def workload_controllers(
    kube: KubeClient, *, clock: Clock | None = None
) -> list[tuple[str, WorkloadController]]:
    """The leader-gated runnables for `run_command.build(controllers=...)`; `bind(process)` each after."""
    return [(WORKLOAD_CONTROLLER, WorkloadController(kube, clock=clock))]


def attach_workload_controller(
    process: SpotalisProcess, kube: KubeClient, *, clock: Clock | None = None
) -> WorkloadController:
    """Add the workload controller to an already built process (leader-gated), bound to its cache."""
    controller = WorkloadController(kube, clock=clock)
    controller.bind(process)
    process.manager.add_leader_gated(WORKLOAD_CONTROLLER, controller)
    return controller
