"""Kubernetes Event recorder: core/v1 Events (what `kubectl describe` lists), aggregated, never blocking.

Contracts:
- Recording never blocks and never fails the caller on API trouble: `record()` only enqueues. A
  controller that emits an Event per reconcile must not slow down, or stall, because the API server is
  slow. Intake is bounded; when full, new occurrences are dropped and counted
  (`kubewright_events_dropped_total{reason="queue_full"}`).
- Repeats aggregate instead of flooding etcd: occurrences of the same (object, type, reason, message)
  within `window` seconds of the previous one update the existing Event's `count` and
  `lastTimestamp` (shown as "(x5 over 10m)"), as client-go's recorder does. Occurrences still queued
  coalesce before any request is made, so a burst costs one write.
- Events are the legacy core/v1 shape (firstTimestamp/lastTimestamp/count, no eventTime), which the
  API server validates only for namespace agreement: an Event about a cluster-scoped object lives in
  `default`.

`EventAggregator` and `PendingEvents` are pure and unit-tested; `EventRecorder` wires them to the API
and is itself a runnable (`start(stop)`) for the manager.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter

from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.kube import KubeClient, NotFound, Obj
from kubewright.runtime.logs import get_logger

EVENTS_DROPPED = "kubewright_events_dropped_total"
DEFAULT_WINDOW = 600.0
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_MAX_SERIES = 4096
# events.k8s.io's note limit; core/v1 does not enforce one, but etcd and `kubectl describe` suffer.
MAX_MESSAGE_LENGTH = 1024
MAX_NAME_LENGTH = 253
CLUSTER_SCOPED_EVENT_NAMESPACE = "default"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class InvolvedObject:
    """The object an Event is about, as an ObjectReference."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, obj: Obj) -> InvolvedObject:
        """The reference for an object as the API returns it; names what is missing if it cannot."""
        meta = obj.get("metadata") or {}
        missing = [
            path
            for path, value in (
                ("apiVersion", obj.get("apiVersion")),
                ("kind", obj.get("kind")),
                ("metadata.name", meta.get("name")),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"cannot record an Event for an object without {', '.join(missing)}")
        return cls(
            obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace") or "", meta.get("uid") or ""
        )

    def reference(self) -> Obj:
        ref: Obj = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref

    @property
    def event_namespace(self) -> str:
        return self.namespace or CLUSTER_SCOPED_EVENT_NAMESPACE


@dataclass(frozen=True)
class EventKey:
    """What makes two occurrences "the same Event". The uid keeps a recreated object's Events apart."""

    involved: InvolvedObject
    type: EventType
    reason: str
    message: str


def event_key(obj: Obj, event_type: EventType, reason: str, message: str) -> EventKey:
    if not reason:
        raise ValueError("an Event needs a reason (a short UpperCamelCase word, e.g. ScaledUp)")
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return EventKey(InvolvedObject.of(obj), EventType(event_type), reason, message)


# -- intake -------------------------------------------------------------------------------------------


@dataclass
class Pending:
    """Occurrences of one key waiting to be written, with the time of the latest."""

    count: int
    last_monotonic: float
    last_wall: datetime


class PendingEvents:
    """Bounded, coalescing intake: at most `capacity` distinct keys; repeats of a queued key only count.

    Bounding distinct keys rather than occurrences means a hot loop repeating one Event can never
    crowd out others.
    """

    def __init__(self, capacity: int = DEFAULT_QUEUE_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"event queue capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._items: OrderedDict[EventKey, Pending] = OrderedDict()

    def add(self, key: EventKey, monotonic: float, wall: datetime) -> bool:
        """Queue one occurrence; False when it was dropped because the queue is full."""
        pending = self._items.get(key)
        if pending is not None:
            pending.count += 1
            pending.last_monotonic, pending.last_wall = monotonic, wall
            return True
        if len(self._items) >= self._capacity:
            return False
        self._items[key] = Pending(1, monotonic, wall)
        return True

    def pop(self) -> tuple[EventKey, Pending] | None:
        """The oldest queued key and its occurrences, or None when empty."""
        return self._items.popitem(last=False) if self._items else None

    def __len__(self) -> int:
        return len(self._items)


# -- aggregation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateEvent:
    key: EventKey
    body: Obj


@dataclass(frozen=True)
class BumpEvent:
    """Merge-patch an existing Event's count and lastTimestamp."""

    key: EventKey
    namespace: str
    name: str
    patch: Obj


@dataclass
class _Series:
    namespace: str
    name: str
    count: int
    last_seen: float


class EventAggregator:
    """Decides whether occurrences create an Event or bump an existing one (pure; no I/O).

    `plan` assumes its write will succeed; the caller calls `forget` when a create fails or the Event
    turns out to be gone (Events expire after the API server's --event-ttl), so the next occurrence
    starts a new Event. At most `max_series` keys are remembered (least recently seen evicted).
    """

    def __init__(
        self,
        component: str,
        instance: str,
        window: float = DEFAULT_WINDOW,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        if not component:
            raise ValueError("an event recorder needs a component name (e.g. spotalis-controller)")
        self._component = component
        self._instance = instance
        self._window = window
        self._max_series = max_series
        self._series: OrderedDict[EventKey, _Series] = OrderedDict()
        self._last_nanos = 0

    def plan(
        self, key: EventKey, occurrences: int, now: float, wall_now: datetime
    ) -> CreateEvent | BumpEvent:
        stamp = _time(wall_now)
        series = self._series.get(key)
        if series is not None and now - series.last_seen <= self._window:
            series.count += occurrences
            series.last_seen = now
            self._series.move_to_end(key)
            patch = {"count": series.count, "lastTimestamp": stamp}
            return BumpEvent(key, series.namespace, series.name, patch)
        name = self._event_name(key.involved.name, wall_now)
        namespace = key.involved.event_namespace
        self._series[key] = _Series(namespace, name, occurrences, now)
        self._series.move_to_end(key)
        while len(self._series) > self._max_series:
            self._series.popitem(last=False)
        return CreateEvent(key, self._body(key, namespace, name, occurrences, stamp))

    def forget(self, key: EventKey) -> None:
        self._series.pop(key, None)

    def _event_name(self, object_name: str, wall_now: datetime) -> str:
        # client-go's "<object>.<unix nanos in hex>", kept strictly increasing so a frozen or coarse
        # clock cannot produce the same name twice.
        nanos = max(int(wall_now.timestamp() * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        suffix = f".{nanos:x}"
        return object_name[: MAX_NAME_LENGTH - len(suffix)] + suffix

    def _body(self, key: EventKey, namespace: str, name: str, count: int, stamp: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": key.involved.reference(),
            "type": str(key.type),
            "reason": key.reason,
            "message": key.message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": count,
        }


def _time(moment: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the recorder -------------------------------------------------------------------------------------

_dropped_families: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_dropped_lock = threading.Lock()


def _dropped_counter(registry: CollectorRegistry) -> Counter:
    with _dropped_lock:
        counter = _dropped_families.get(registry)
        if counter is None:
            counter = Counter(
                EVENTS_DROPPED,
                "Kubernetes Events not written, by reason (queue_full, write_failed).",
                ("reason",),
                registry=registry,
            )
            _dropped_families[registry] = counter
        return counter


class EventRecorder:
    """Records Events for a component; run `start` (a manager runnable) to write them.

    `dropped` counts occurrences refused because the queue was full (also exported as a metric).
    """

    def __init__(
        self,
        client: KubeClient,
        component: str,
        *,
        instance: str | None = None,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self._client = client
        self._clock = clock or RealClock()
        self._pending = PendingEvents(queue_size)
        self._aggregator = EventAggregator(component, instance or socket.gethostname(), window)
        self._wake = asyncio.Event()
        dropped = _dropped_counter(registry if registry is not None else CollectorRegistry())
        self._queue_full = dropped.labels("queue_full")
        self._write_failed = dropped.labels("write_failed")
        self.dropped = 0
        self._log = get_logger("kubewright.runtime.events").bind(component=component)

    def record(self, obj: Obj, event_type: EventType, reason: str, message: str) -> None:
        """Queue an Event about `obj` (as read from the API); returns at once. Call on the event loop.

        Raises ValueError only for a caller's mistake (no reason, object without kind or name).
        """
        key = event_key(obj, event_type, reason, message)
        if self._pending.add(key, self._clock.monotonic(), self._clock.now()):
            self._wake.set()
            return
        self.dropped += 1
        self._queue_full.inc()

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, EventType.NORMAL, reason, message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, EventType.WARNING, reason, message)

    @property
    def queued(self) -> int:
        """Distinct Events waiting to be written."""
        return len(self._pending)

    async def start(self, stop: asyncio.Event) -> None:
        """Write queued Events until `stop`, then flush what is queued (the manager bounds how long)."""
        while True:
            item = self._pending.pop()
            if item is None:
                if stop.is_set():
                    return
                self._wake.clear()
                await _first_set(self._wake, stop)
                continue
            await self._write(*item)

    async def _write(self, key: EventKey, pending: Pending) -> None:
        action = self._aggregator.plan(key, pending.count, pending.last_monotonic, pending.last_wall)
        try:
            if isinstance(action, BumpEvent):
                try:
                    await self._client.merge_patch(
                        "v1", "Event", action.name, action.patch, namespace=action.namespace
                    )
                    return
                except NotFound:
                    # Expired (--event-ttl) or deleted: start a new Event carrying these occurrences.
                    self._aggregator.forget(key)
                    action = self._aggregator.plan(
                        key, pending.count, pending.last_monotonic, pending.last_wall
                    )
            assert isinstance(action, CreateEvent)  # a forgotten key always plans a create
            await self._client.create(action.body)
        except Exception as err:
            if isinstance(action, CreateEvent):
                self._aggregator.forget(key)
            self._write_failed.inc()
            self._log.warning(
                "writing an Event failed",
                reason=key.reason,
                object=f"{key.involved.kind}/{key.involved.namespace}/{key.involved.name}",
                error=str(err),
            )


async def _first_set(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
