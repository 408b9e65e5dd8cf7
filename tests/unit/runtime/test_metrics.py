from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kubewright.runtime import metrics
from kubewright.runtime.metrics import add_metrics_route, create_registry, runtime_metrics

pytestmark = pytest.mark.unit

# controller-runtime / client-go names and label sets, as dashboards query them.
EXPECTED_FAMILIES = {
    "workqueue_depth": ("gauge", {"name", "controller"}),
    "workqueue_adds": ("counter", {"name", "controller"}),
    "workqueue_queue_duration_seconds": ("histogram", {"name", "controller"}),
    "workqueue_work_duration_seconds": ("histogram", {"name", "controller"}),
    "workqueue_retries": ("counter", {"name", "controller"}),
    "controller_runtime_reconcile": ("counter", {"controller", "result"}),
    "controller_runtime_reconcile_errors": ("counter", {"controller"}),
    "controller_runtime_reconcile_time_seconds": ("histogram", {"controller"}),
    "controller_runtime_active_workers": ("gauge", {"controller"}),
    "controller_runtime_max_concurrent_reconciles": ("gauge", {"controller"}),
    "leader_election_master_status": ("gauge", {"name"}),
    "controller_runtime_webhook_requests": ("counter", {"webhook", "code"}),
    "controller_runtime_webhook_latency_seconds": ("histogram", {"webhook"}),
    "controller_runtime_webhook_requests_in_flight": ("gauge", {"webhook"}),
    "kubewright_webhook_denials": ("counter", {"webhook"}),
}


def touch_every_family(registry: CollectorRegistry) -> None:
    families = runtime_metrics(registry)
    families.workqueue.depth.labels("q", "q").set(3)
    families.workqueue.adds.labels("q", "q").inc()
    families.workqueue.queue_duration.labels("q", "q").observe(0.1)
    families.workqueue.work_duration.labels("q", "q").observe(0.2)
    families.workqueue.retries.labels("q", "q").inc()
    families.reconcile.total.labels("c", "success").inc()
    families.reconcile.errors.labels("c").inc()
    families.reconcile.time.labels("c").observe(0.3)
    families.reconcile.active_workers.labels("c").set(1)
    families.reconcile.max_concurrent.labels("c").set(4)
    families.leader_master_status.labels("lease").set(1)
    families.webhook.requests.labels("/mutate", "200").inc()
    families.webhook.latency.labels("/mutate").observe(0.001)
    families.webhook.in_flight.labels("/mutate").set(0)
    families.webhook.denials.labels("/mutate").inc()


def test_families_have_controller_runtime_names_and_labels() -> None:
    registry = CollectorRegistry()
    touch_every_family(registry)
    from prometheus_client import generate_latest

    exposed = {
        family.name: family for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        assert exposed[name].type == kind, name
        sample_labels = set(exposed[name].samples[0].labels) - {"le"}
        assert sample_labels == labels, name
    assert metrics.WORKQUEUE_ADDS == "workqueue_adds_total"
    assert metrics.RECONCILE_TOTAL == "controller_runtime_reconcile_total"
    assert registry.get_sample_value(
        "controller_runtime_reconcile_total", {"controller": "c", "result": "success"}
    )


def test_buckets_match_go() -> None:
    assert metrics.WORKQUEUE_BUCKETS[0] == pytest.approx(1e-8)
    assert metrics.WORKQUEUE_BUCKETS[-1] == pytest.approx(1000.0)
    assert len(metrics.WORKQUEUE_BUCKETS) == 12
    assert metrics.GO_DEFAULT_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    assert metrics.RECONCILE_BUCKETS[0] == 0.005
    assert metrics.RECONCILE_BUCKETS[-1] == 60


def test_families_are_registered_once_per_registry() -> None:
    registry = CollectorRegistry()
    assert runtime_metrics(registry) is runtime_metrics(registry)
    assert runtime_metrics(CollectorRegistry()) is not runtime_metrics(registry)


def test_process_registry_includes_process_collectors() -> None:
    registry = create_registry()
    assert registry.get_sample_value("python_info", {**_python_info_labels()}) == 1.0


def _python_info_labels() -> dict[str, str]:
    import platform

    major, minor, patch = platform.python_version_tuple()
    return {
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patch,
        "version": platform.python_version(),
    }


async def test_metrics_endpoint_serves_text_and_openmetrics() -> None:
    registry = CollectorRegistry()
    touch_every_family(registry)
    app = web.Application()
    add_metrics_route(app, registry)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        body = await response.text()
        assert 'workqueue_depth{controller="q",name="q"} 3.0' in body
        assert "controller_runtime_reconcile_total" in body

        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).endswith("# EOF\n")
