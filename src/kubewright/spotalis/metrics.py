"""Spotalis' own metric families (spec 7.1), registered on the process registry beside the runtime's.

This slice registers the webhook families ([compat] names, corrected values: `result` is `mutated`,
`skipped` or `error`, never upstream's constant `allowed`) and the [new] decision counter and latency.
Families carry labels, so no row exists until a request records one (no empty-label rows). The
controller families join this class when the controllers land.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from kubewright.spotalis import constants as c

# The decision is sub-millisecond; the tail shows event-loop stalls and owner GETs (1 s timeout).
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 2.5)


class SpotalisMetrics:
    """One instance per registry (prometheus_client refuses a second registration of a name)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhook_requests = Counter(
            c.METRIC_WEBHOOK_REQUESTS.removesuffix("_total"),
            "Admission reviews answered by the Spotalis webhook, by operation, kind and result",
            [c.LABEL_OPERATION, c.LABEL_RESOURCE_KIND, c.LABEL_RESULT],
            registry=registry,
        )
        self.webhook_mutations = Counter(
            c.METRIC_WEBHOOK_MUTATIONS.removesuffix("_total"),
            "Pods the webhook patched, by kind and the capacity type they were given",
            [c.LABEL_RESOURCE_KIND, c.LABEL_MUTATION_TYPE],
            registry=registry,
        )
        self.webhook_decisions = Counter(
            c.METRIC_WEBHOOK_DECISIONS.removesuffix("_total"),
            "Placement decisions (spec 3.6), by capacity type and reason",
            ["capacity", "reason"],
            registry=registry,
        )
        self.webhook_decision_duration = Histogram(
            c.METRIC_WEBHOOK_DECISION_DURATION,
            "Time from receiving an admission review to its answer",
            [c.LABEL_RESULT],
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
