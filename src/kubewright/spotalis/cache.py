"""Spec 3.5: the informers every replica runs, feeding `ClusterState` and the workload/namespace caches.

Each informer keeps a projection (`records.POD_FIELDS` and friends), and every event is decoded once into
a slotted record. Pod events update the per-group counters (`state.upsert_pod`) and, in the same
synchronous callback, drop the in-flight record of the admission that created the pod
(`inflight.seen`): between the two there is no `await`, so a placement decision never sees a pod counted
twice (cached and in flight) or not at all.

Scope: with `controllers.watchNamespaces` set, namespaced kinds get one informer per namespace; Nodes and
Namespaces are always cluster-wide. PodDisruptionBudgets are for the controllers and join them.

`fetch_workload` is the webhook's fallback on a cache miss (spec 3.6 step 1): one GET, 1 s at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.informer import Informer, InformerConfig, InformerMetrics
from kubewright.runtime.kube import KubeClient, NotFound, Obj
from kubewright.runtime.logs import get_logger
from kubewright.runtime.store import Change, EventType
from kubewright.spotalis.classify import Capacity, LabelSelector, NodeClassifier, Provider
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.inflight import InflightTracker
from kubewright.spotalis.model import NamespaceFilter
from kubewright.spotalis.records import (
    DEPLOYMENT,
    NODE_FIELDS,
    POD_FIELDS,
    REPLICA_SET,
    STATEFUL_SET,
    WORKLOAD_FIELDS,
    RecordDecoder,
    WorkloadRecord,
)
from kubewright.spotalis.state import ClusterState

NAMESPACE_FIELDS = ("metadata.labels", "metadata.annotations")
OWNER_GET_TIMEOUT = 1.0  # spec 3.6 step 1
WORKLOAD_API_VERSION = "apps/v1"
WORKLOAD_KINDS = (DEPLOYMENT, REPLICA_SET, STATEFUL_SET)

log = get_logger("kubewright.spotalis.cache")


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


class OwnerLookupError(Exception):
    """The owner GET on a cache miss failed or timed out: the pod stays unmutated (counted as an error)."""


def build_classifier(config: SpotalisConfig) -> NodeClassifier:
    """`controllers.nodeClassifier` as the pure classifier."""
    section = config.controllers.nodeClassifier

    def selectors(raw: Iterable[object]) -> tuple[LabelSelector, ...]:
        out = []
        for item in raw:
            dumped = item.model_dump(mode="json") if hasattr(item, "model_dump") else item
            assert isinstance(dumped, dict)
            out.append(LabelSelector.from_dict(dumped))
        return tuple(out)

    return NodeClassifier(
        spot_labels=selectors(section.spotLabels),
        on_demand_labels=selectors(section.onDemandLabels),
        builtin_providers=tuple(Provider(p) for p in section.builtinProviders),
        unknown_node_type=Capacity(section.unknownNodeType),
        reclaim_taints=frozenset(section.reclaimTaints),
        reclaim_conditions=frozenset(section.reclaimConditions),
    )


def build_namespace_filter(config: SpotalisConfig) -> NamespaceFilter:
    """`controllers.watchNamespaces` and `controllers.namespaceFilter` as the shared filter (spec 3.3)."""
    section = config.controllers.namespaceFilter
    return NamespaceFilter(
        watch_namespaces=tuple(config.controllers.watchNamespaces),
        exclude_names=tuple(section.excludeNamespaces),
        exclude_patterns=tuple(section.excludePatterns),
        include_names=tuple(section.includeNamespaces),
        include_patterns=tuple(section.includePatterns),
        require_namespace_label=section.requireNamespaceLabel,
    )


def workload_key(kind: str, namespace: str, name: str) -> str:
    return f"{namespace}/{kind}/{name}"


class SpotalisCache:
    """The informers and what they feed. `start(stop)` is an always-on runnable for the Manager."""

    def __init__(
        self,
        kube: KubeClient,
        config: SpotalisConfig,
        state: ClusterState,
        inflight: InflightTracker,
        decoder: RecordDecoder,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.kube = kube
        self.state = state
        self.inflight = inflight
        self.decoder = decoder
        self._clock = clock or RealClock()
        self._metrics = InformerMetrics(registry) if registry is not None else None
        self._workloads: dict[str, WorkloadRecord] = {}
        self._namespaces: dict[str, NamespaceRecord] = {}
        self.informers: list[Informer] = []
        scopes: tuple[str | None, ...] = tuple(config.controllers.watchNamespaces) or (None,)
        for scope in scopes:
            self._informer("v1", "Pod", scope, POD_FIELDS, self._on_pod)
            for kind in WORKLOAD_KINDS:
                self._informer(WORKLOAD_API_VERSION, kind, scope, WORKLOAD_FIELDS, self._on_workload(kind))
        self._informer("v1", "Node", None, NODE_FIELDS, self._on_node)
        self._informer("v1", "Namespace", None, NAMESPACE_FIELDS, self._on_namespace)

    def _informer(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        projection: tuple[str, ...],
        handler: Callable[[Change], None],
    ) -> None:
        config = InformerConfig(api_version, kind, namespace, projection=projection)
        informer = Informer(self.kube, config, clock=self._clock, metrics=self._metrics)
        informer.add_handler(handler)
        self.informers.append(informer)

    # -- handlers (synchronous: no await between a pod's count and its in-flight record) ------------

    def _on_pod(self, change: Change) -> None:
        if change.type is EventType.DELETED:
            meta = (change.old or {}).get("metadata") or {}
            self.state.remove_pod(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            return
        assert change.new is not None
        record = self.decoder.pod(change.new)
        self.state.upsert_pod(record)
        self.inflight.seen(record.admission_id)

    def _on_node(self, change: Change) -> None:
        if change.type is EventType.DELETED:
            meta = (change.old or {}).get("metadata") or {}
            self.state.remove_node(str(meta.get("name") or ""))
            return
        assert change.new is not None
        self.state.upsert_node(self.decoder.node(change.new))

    def _on_workload(self, kind: str) -> Callable[[Change], None]:
        def handle(change: Change) -> None:
            if change.type is EventType.DELETED:
                meta = (change.old or {}).get("metadata") or {}
                self._workloads.pop(
                    workload_key(kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")), None
                )
                return
            assert change.new is not None
            record = self.decoder.workload(change.new, kind)
            self._workloads[record.key] = record

        return handle

    def _on_namespace(self, change: Change) -> None:
        obj = change.new if change.new is not None else change.old
        meta = (obj or {}).get("metadata") or {}
        name = str(meta.get("name") or "")
        if change.type is EventType.DELETED:
            self._namespaces.pop(name, None)
            return
        self._namespaces[name] = NamespaceRecord(
            name, _frozen(meta.get("labels")), _frozen(meta.get("annotations"))
        )

    # -- reading ------------------------------------------------------------------------------------

    def workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None:
        return self._workloads.get(workload_key(kind, namespace, name))

    def namespace(self, name: str) -> NamespaceRecord | None:
        return self._namespaces.get(name)

    async def fetch_workload(
        self, kind: str, namespace: str, name: str, timeout: float = OWNER_GET_TIMEOUT
    ) -> WorkloadRecord | None:
        """One GET for a workload missing from the cache; None when it does not exist.

        Raises OwnerLookupError on any other failure, including the timeout.
        """
        try:
            async with asyncio.timeout(timeout):
                obj: Obj = await self.kube.get(WORKLOAD_API_VERSION, kind, name, namespace)
        except NotFound:
            return None
        except Exception as err:  # timeout, transport, 403: the pod must not wait on it
            raise OwnerLookupError(f"GET {kind} {namespace}/{name}: {type(err).__name__}: {err}") from err
        return self.decoder.workload(obj, kind)

    @property
    def has_synced(self) -> bool:
        return all(informer.has_synced for informer in self.informers)

    def unsynced(self) -> list[str]:
        return [informer.config.describe() for informer in self.informers if not informer.has_synced]

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.wait_synced() for informer in self.informers))

    async def start(self, stop: asyncio.Event) -> None:
        """Run every informer until `stop` is set."""
        log.info("starting informers", informers=[i.config.describe() for i in self.informers])
        await asyncio.gather(*(informer.run(stop) for informer in self.informers))


def _frozen(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)})
