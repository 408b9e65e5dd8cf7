"""The webhook's own metrics (spec 7), registered on the process registry beside the runtime's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubewright.iamra import constants as c

# 0.5 ms .. 0.5 s: the mutation itself is sub-millisecond; the tail shows loop stalls.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


class IamraMetrics:
    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.requests = Counter(
            c.METRIC_ADMISSION_REQUESTS.removesuffix("_total"),
            "Admission reviews answered, by result and reason",
            ["result", "reason", "dry_run"],
            registry=registry,
        )
        self.duration = Histogram(
            c.METRIC_ADMISSION_DURATION,
            "Time to answer an admission review",
            ["result"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.warnings = Counter(
            c.METRIC_WARNINGS.removesuffix("_total"),
            "Warnings returned to pod creators, by kind",
            ["kind"],
            registry=registry,
        )
        self.tls_reloads = Counter(
            c.METRIC_TLS_RELOADS.removesuffix("_total"),
            "Serving certificate reload attempts, by result",
            ["result"],
            registry=registry,
        )
        self.tls_expiry = Gauge(
            c.METRIC_TLS_CERTIFICATE_EXPIRY,
            "notAfter of the serving certificate in use (Unix seconds)",
            registry=registry,
        )
        self.native = Gauge(
            c.METRIC_NATIVE_SIDECAR,
            "1 when pods get a native sidecar, 0 for legacy; source says how it was decided",
            ["source"],
            registry=registry,
        )
        self.build_info = Gauge(c.METRIC_BUILD_INFO, "Build of the webhook", ["version"], registry=registry)
        self.build_info.labels(version).set(1)
