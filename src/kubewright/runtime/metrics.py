"""Prometheus registry and the metric families the runtime records.

Names, label sets and histogram buckets follow controller-runtime and client-go, so dashboards and alerts
written for Go operators keep working after switching. Each process builds its own `CollectorRegistry`
(never prometheus-client's global one) so tests and multiple managers in one interpreter stay isolated;
families are created once per registry by `runtime_metrics`, because registering a name twice on the
same registry is an error.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

# Public contract: metric names as controller-runtime / client-go expose them.
WORKQUEUE_DEPTH = "workqueue_depth"
WORKQUEUE_ADDS = "workqueue_adds_total"
WORKQUEUE_QUEUE_DURATION = "workqueue_queue_duration_seconds"
WORKQUEUE_WORK_DURATION = "workqueue_work_duration_seconds"
WORKQUEUE_RETRIES = "workqueue_retries_total"
RECONCILE_TOTAL = "controller_runtime_reconcile_total"
RECONCILE_ERRORS = "controller_runtime_reconcile_errors_total"
RECONCILE_TIME = "controller_runtime_reconcile_time_seconds"
ACTIVE_WORKERS = "controller_runtime_active_workers"
MAX_CONCURRENT_RECONCILES = "controller_runtime_max_concurrent_reconciles"
LEADER_MASTER_STATUS = "leader_election_master_status"
WEBHOOK_REQUESTS = "controller_runtime_webhook_requests_total"
WEBHOOK_LATENCY = "controller_runtime_webhook_latency_seconds"
WEBHOOK_IN_FLIGHT = "controller_runtime_webhook_requests_in_flight"
# controller-runtime has no denial counter; ours carries the project prefix so it cannot clash.
WEBHOOK_DENIALS = "kubewright_webhook_denials_total"

# client-go: prometheus.ExponentialBuckets(10e-9, 10, 12), i.e. 10 ns .. 1000 s.
WORKQUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
# controller-runtime's reconcile_time_seconds buckets.
RECONCILE_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9),
    *(1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60),
)
# Go's prometheus.DefBuckets, used by controller-runtime's webhook latency histogram.
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class WorkqueueMetrics:
    """client-go work-queue families, labelled by queue `name` and `controller`."""

    depth: Gauge
    adds: Counter
    queue_duration: Histogram
    work_duration: Histogram
    retries: Counter


@dataclass(frozen=True)
class ReconcileMetrics:
    """controller-runtime reconcile families, labelled by `controller` (and `result` for the total)."""

    total: Counter
    errors: Counter
    time: Histogram
    active_workers: Gauge
    max_concurrent: Gauge


@dataclass(frozen=True)
class WebhookMetrics:
    """Admission webhook families, labelled by `webhook` (the route path, as controller-runtime does)."""

    requests: Counter
    latency: Histogram
    in_flight: Gauge
    denials: Counter


@dataclass(frozen=True)
class RuntimeMetrics:
    """Every family the runtime records, all registered on one registry."""

    workqueue: WorkqueueMetrics
    reconcile: ReconcileMetrics
    webhook: WebhookMetrics
    leader_master_status: Gauge


def create_registry() -> CollectorRegistry:
    """A fresh registry for one process, with the process/platform/GC collectors Go exporters mirror."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


_families: weakref.WeakKeyDictionary[CollectorRegistry, RuntimeMetrics] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def runtime_metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    """The runtime's families on `registry`, registering them the first time this registry is seen."""
    with _families_lock:
        found = _families.get(registry)
        if found is None:
            found = _register(registry)
            _families[registry] = found
        return found


def _register(registry: CollectorRegistry) -> RuntimeMetrics:
    queue_labels = ("name", "controller")
    workqueue = WorkqueueMetrics(
        depth=Gauge(WORKQUEUE_DEPTH, "Current depth of workqueue", queue_labels, registry=registry),
        adds=Counter(
            WORKQUEUE_ADDS, "Total number of adds handled by workqueue", queue_labels, registry=registry
        ),
        queue_duration=Histogram(
            WORKQUEUE_QUEUE_DURATION,
            "How long in seconds an item stays in workqueue before being requested",
            queue_labels,
            registry=registry,
            buckets=WORKQUEUE_BUCKETS,
        ),
        work_duration=Histogram(
            WORKQUEUE_WORK_DURATION,
            "How long in seconds processing an item from workqueue takes.",
            queue_labels,
            registry=registry,
            buckets=WORKQUEUE_BUCKETS,
        ),
        retries=Counter(
            WORKQUEUE_RETRIES, "Total number of retries handled by workqueue", queue_labels, registry=registry
        ),
    )
    reconcile = ReconcileMetrics(
        total=Counter(
            RECONCILE_TOTAL,
            "Total number of reconciliations per controller",
            ("controller", "result"),
            registry=registry,
        ),
        errors=Counter(
            RECONCILE_ERRORS,
            "Total number of reconciliation errors per controller",
            ("controller",),
            registry=registry,
        ),
        time=Histogram(
            RECONCILE_TIME,
            "Length of time per reconciliation per controller",
            ("controller",),
            registry=registry,
            buckets=RECONCILE_BUCKETS,
        ),
        active_workers=Gauge(
            ACTIVE_WORKERS,
            "Number of currently used workers per controller",
            ("controller",),
            registry=registry,
        ),
        max_concurrent=Gauge(
            MAX_CONCURRENT_RECONCILES,
            "Maximum number of concurrent reconciles per controller",
            ("controller",),
            registry=registry,
        ),
    )
    webhook = WebhookMetrics(
        requests=Counter(
            WEBHOOK_REQUESTS,
            "Total number of admission requests by HTTP status code.",
            ("webhook", "code"),
            registry=registry,
        ),
        latency=Histogram(
            WEBHOOK_LATENCY,
            "Histogram of the latency of processing admission requests",
            ("webhook",),
            registry=registry,
            buckets=GO_DEFAULT_BUCKETS,
        ),
        in_flight=Gauge(
            WEBHOOK_IN_FLIGHT,
            "Current number of admission requests being served.",
            ("webhook",),
            registry=registry,
        ),
        denials=Counter(
            WEBHOOK_DENIALS,
            "Total number of admission requests denied by the handler.",
            ("webhook",),
            registry=registry,
        ),
    )
    leader = Gauge(
        LEADER_MASTER_STATUS,
        "Gauge of if the reporting system is master of the relevant lease, "
        "0 indicates backup, 1 indicates master.",
        ("name",),
        registry=registry,
    )
    return RuntimeMetrics(
        workqueue=workqueue, reconcile=reconcile, webhook=webhook, leader_master_status=leader
    )


def metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler exposing `registry`, negotiating OpenMetrics when the scraper asks for it."""

    async def serve_metrics(request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    return serve_metrics


def add_metrics_route(app: web.Application, registry: CollectorRegistry, path: str = "/metrics") -> None:
    """Serve `registry` at `path` on `app` (the manager's metrics site)."""
    app.router.add_get(path, metrics_handler(registry))
