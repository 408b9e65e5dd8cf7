"""LIST then WATCH, kept correct across broken streams, 410 Gone and API server restarts.

The contract controllers rely on: after `has_synced`, every change to a matching object reaches the
handlers, in order per object, and the cache equals the server's state up to the last event. When a
watch breaks the informer resumes from the last resourceVersion it saw (bookmarks keep that fresh
on quiet collections); when the server answers 410 Gone it re-lists and emits DELETED for objects
that vanished in the gap, so nothing is silently lost. An inactivity deadline catches streams that
die without closing (a half-open TCP connection would otherwise stall a controller forever).

Selectors are sent to the server; metadata-only mode asks for PartialObjectMetadata and projection
mode keeps only named fields, so caches hold what a controller reads and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.kube import Gone, KubeClient, KubeError
from kubewright.runtime.store import (
    Change,
    EventType,
    IndexFunc,
    Obj,
    Store,
    make_projection,
    object_key,
    strip_managed_fields,
)

Handler = Callable[[Change], None]
log = structlog.get_logger("kubewright.informer")


@dataclass(frozen=True)
class InformerConfig:
    """What to watch and what to keep. `fields` is a server-side field selector."""

    api_version: str
    kind: str
    namespace: str | None = None
    labels: Mapping[str, str] | None = None
    fields: Mapping[str, str] | None = None
    metadata_only: bool = False
    projection: tuple[str, ...] = ()
    # Callers that write objects back with update (not apply) may need managedFields kept.
    keep_managed_fields: bool = False
    page_size: int = 500
    # The server closes a watch after this many seconds; the informer resumes from its last version.
    watch_timeout_seconds: int = 300
    # No event and no bookmark for this long means a dead stream. The API server sends bookmarks
    # about once a minute, so the default leaves room for one missed bookmark.
    inactivity_timeout: float = 150.0
    backoff_initial: float = 0.2
    backoff_max: float = 30.0

    def describe(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind}.{self.api_version}{scope}"


@dataclass
class InformerStats:
    lists: int = 0
    relists_after_gone: int = 0
    watch_restarts: int = 0
    events: int = 0
    bookmarks: int = 0
    errors: list[str] = field(default_factory=list)


class InformerMetrics:
    """Per-informer counters, registered once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lists = Counter(
            "kubewright_informer_lists_total", "Full LISTs, including re-lists", ["kind"], registry=registry
        )
        self.gone = Counter(
            "kubewright_informer_relists_after_gone_total",
            "Re-lists forced by 410 Gone on a watch",
            ["kind"],
            registry=registry,
        )
        self.events = Counter(
            "kubewright_informer_events_total",
            "Watch events applied to the cache",
            ["kind", "type"],
            registry=registry,
        )
        self.cached = Gauge(
            "kubewright_informer_cached_objects", "Objects in the cache", ["kind"], registry=registry
        )


def _transform(config: InformerConfig) -> Callable[[Obj], Obj] | None:
    """What the cache keeps of each object: a projection already drops managedFields."""
    if config.projection:
        return make_projection(config.projection)
    if not config.keep_managed_fields:
        return strip_managed_fields
    return None


class Informer:
    def __init__(
        self,
        kube: KubeClient,
        config: InformerConfig,
        *,
        clock: Clock | None = None,
        metrics: InformerMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock or RealClock()
        self.metrics = metrics
        self.store = Store(_transform(config))
        self.stats = InformerStats()
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._resource_version = ""

    # -- reading ------------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def resource_version(self) -> str:
        """The last resourceVersion the cache reflects (from a LIST, an event or a bookmark)."""
        return self._resource_version

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def items(self) -> list[Obj]:
        return self.store.values()

    def by_index(self, name: str, value: str) -> list[Obj]:
        return self.store.by_index(name, value)

    # -- wiring -------------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """`handler(change)` runs for every change, synchronously and in order.

        Handlers must be quick (enqueue a key, bump a counter); the watch loop waits for them. A
        handler added after sync first receives ADDED for everything already cached.
        """
        self._handlers.append(handler)
        if self.has_synced:
            for obj in self.store.values():
                handler(Change(EventType.ADDED, object_key(obj), None, obj))

    def add_index(self, name: str, func: IndexFunc) -> None:
        self.store.add_index(name, func)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """LIST, then WATCH until `stop` is set; survives errors with capped exponential backoff."""
        runner = asyncio.create_task(self._run_forever())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (runner, stopper):
                task.cancel()
            for task in (runner, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if runner.done() and not runner.cancelled() and (err := runner.exception()) is not None:
            raise err

    async def _run_forever(self) -> None:
        backoff = self.config.backoff_initial
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                backoff = self.config.backoff_initial
            except Gone as err:
                self.stats.relists_after_gone += 1
                if self.metrics:
                    self.metrics.gone.labels(self.config.kind).inc()
                log.info("watch expired, re-listing", informer=self.config.describe(), reason=str(err))
                need_list = True
                continue
            except (KubeError, TimeoutError, OSError) as err:
                self.stats.errors.append(f"{type(err).__name__}: {err}")
                del self.stats.errors[:-20]
                log.warning(
                    "watch interrupted", informer=self.config.describe(), error=str(err), retry_in=backoff
                )
                await self.clock.sleep(backoff * random.uniform(1.0, 1.2))
                backoff = min(backoff * 2, self.config.backoff_max)
            self.stats.watch_restarts += 1

    async def _list(self) -> None:
        c = self.config
        items: list[Obj] = []
        continue_token: str | None = None
        while True:
            page = await self.kube.list_page(
                c.api_version,
                c.kind,
                c.namespace,
                labels=c.labels,
                fields=c.fields,
                limit=c.page_size,
                continue_token=continue_token,
                metadata_only=c.metadata_only,
            )
            items.extend(self.store.prepare(o) for o in page.get("items") or [])
            meta = page.get("metadata", {})
            continue_token = meta.get("continue") or None
            if not continue_token:
                break
        self._resource_version = str(meta.get("resourceVersion", ""))
        self.stats.lists += 1
        if self.metrics:
            self.metrics.lists.labels(c.kind).inc()
        self._dispatch(self.store.replace_all(items))
        self._synced.set()

    async def _watch(self) -> None:
        c = self.config
        stream = self.kube.watch_stream(
            c.api_version,
            c.kind,
            c.namespace,
            resource_version=self._resource_version,
            labels=c.labels,
            fields=c.fields,
            timeout_seconds=c.watch_timeout_seconds,
            metadata_only=c.metadata_only,
        )
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(c.inactivity_timeout) as deadline:
            async for event in stream:
                deadline.reschedule(loop.time() + c.inactivity_timeout)
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        obj = event["object"]
        self._resource_version = str(obj.get("metadata", {}).get("resourceVersion", self._resource_version))
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
            return
        self.stats.events += 1
        if self.metrics:
            self.metrics.events.labels(self.config.kind, kind).inc()
        if kind == "DELETED":
            change = self.store.remove(object_key(obj))
            if change is not None:
                self._dispatch([change])
            return
        self._dispatch([self.store.upsert(self.store.prepare(obj))])

    def _dispatch(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for handler in self._handlers:
                handler(change)
        if self.metrics:
            self.metrics.cached.labels(self.config.kind).set(len(self.store))
