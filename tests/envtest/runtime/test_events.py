"""The Event recorder's write path against a real API server: aggregation, namespaces, limits, intake.

What the unit tests (tests/unit/runtime/test_events.py) decide in memory is checked here as the API
server stores it: `kubectl describe` must show one Event "(x5 over ...)", not five.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kubewright.runtime.events import (
    CLUSTER_SCOPED_EVENT_NAMESPACE,
    EVENTS_DROPPED,
    MAX_MESSAGE_LENGTH,
    EventRecorder,
)
from kubewright.runtime.kube import KubeClient

pytestmark = pytest.mark.envtest

COMPONENT = "events-envtest"
TIMEOUT = 30.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for: {what}"
        await asyncio.sleep(0.05)  # poll


async def events_about(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    return await kube.list("v1", "Event", namespace, fields={"involvedObject.name": name})


@contextlib.asynccontextmanager
async def running(recorder: EventRecorder) -> AsyncIterator[EventRecorder]:
    """The recorder as a manager runs it; on exit it is stopped and must flush and return promptly."""
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.start(stop))
    try:
        yield recorder
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


@pytest.fixture
async def subject(kube: KubeClient, namespace: str) -> dict[str, Any]:
    """An object as read from the API (with uid), for Events to be about."""
    return await kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "subject", "namespace": namespace}}
    )


async def test_repeats_aggregate_into_one_event_with_their_count(
    kube: KubeClient, namespace: str, subject: dict[str, Any]
) -> None:
    async with running(EventRecorder(kube, COMPONENT)) as recorder:
        recorder.normal(subject, "Synced", "configuration synced")

        async def first_written() -> bool:
            return len(await events_about(kube, namespace, "subject")) == 1

        await eventually(first_written, "the first Event")
        for _ in range(4):  # after the create, repeats bump that Event (merge patch), never a new one
            recorder.normal(subject, "Synced", "configuration synced")

        async def counted_five() -> bool:
            events = await events_about(kube, namespace, "subject")
            return [e.get("count") for e in events] == [5]

        await eventually(counted_five, "count 5 on the one Event")

    (event,) = await events_about(kube, namespace, "subject")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "subject",
        "namespace": namespace,
        "uid": subject["metadata"]["uid"],
    }
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Synced", "configuration synced")
    assert event["source"] == {"component": COMPONENT}
    assert event["firstTimestamp"] <= event["lastTimestamp"]


async def test_a_burst_before_the_first_write_costs_one_create(
    kube: KubeClient, namespace: str, subject: dict[str, Any]
) -> None:
    recorder = EventRecorder(kube, COMPONENT)
    for _ in range(7):  # queued while the writer is not running yet: coalesced in memory
        recorder.warning(subject, "BackOff", "retrying")
    assert recorder.queued == 1
    async with running(recorder):
        pass  # stopping flushes what is queued

    events = await events_about(kube, namespace, "subject")
    assert [(e["type"], e["reason"], e["count"]) for e in events] == [("Warning", "BackOff", 7)]


async def test_an_event_about_a_cluster_scoped_object_lands_in_default(
    kube: KubeClient, namespace: str
) -> None:
    # The test's own namespace is a cluster-scoped object unique to this test.
    about = await kube.get("v1", "Namespace", namespace)
    try:
        async with running(EventRecorder(kube, COMPONENT)) as recorder:
            recorder.normal(about, "Prepared", "namespace prepared")

        (event,) = await events_about(kube, CLUSTER_SCOPED_EVENT_NAMESPACE, namespace)
        assert event["metadata"]["namespace"] == "default"
        assert event["involvedObject"] == {
            "apiVersion": "v1",
            "kind": "Namespace",
            "name": namespace,
            "uid": about["metadata"]["uid"],
        }
    finally:
        for event in await events_about(kube, CLUSTER_SCOPED_EVENT_NAMESPACE, namespace):
            name = event["metadata"]["name"]
            await kube.delete("v1", "Event", name, CLUSTER_SCOPED_EVENT_NAMESPACE, missing_ok=True)


async def test_long_messages_are_truncated_to_the_limit(
    kube: KubeClient, namespace: str, subject: dict[str, Any]
) -> None:
    message = "x" * 5000
    async with running(EventRecorder(kube, COMPONENT)) as recorder:
        recorder.warning(subject, "TooChatty", message)

    (event,) = await events_about(kube, namespace, "subject")
    assert len(event["message"]) == MAX_MESSAGE_LENGTH
    assert event["message"] == message[: MAX_MESSAGE_LENGTH - 3] + "..."


async def test_a_full_queue_drops_and_counts_instead_of_blocking(
    kube: KubeClient, namespace: str, subject: dict[str, Any]
) -> None:
    registry = CollectorRegistry()
    recorder = EventRecorder(kube, COMPONENT, queue_size=3, registry=registry)
    async with running(recorder):
        # record() is synchronous: the writer cannot run between these calls, so the bounded intake is
        # all that stands between a hot loop and unbounded memory. It returns at once either way.
        for i in range(10):
            recorder.normal(subject, f"Step{i}", f"step {i}")
        assert recorder.queued == 3
        assert recorder.dropped == 7
        # Repeats of a queued Event still count: only new distinct Events are refused.
        recorder.normal(subject, "Step0", "step 0")
        assert recorder.dropped == 7

    dropped = registry.get_sample_value(EVENTS_DROPPED, {"reason": "queue_full"})
    assert dropped == 7
    events = await events_about(kube, namespace, "subject")
    assert sorted((e["reason"], e["count"]) for e in events) == [("Step0", 2), ("Step1", 1), ("Step2", 1)]
    assert registry.get_sample_value(EVENTS_DROPPED, {"reason": "write_failed"}) == 0


async def test_recording_does_not_wait_for_an_unreachable_api_server(
    kube: KubeClient, namespace: str, subject: dict[str, Any], unreachable: KubeClient
) -> None:
    registry = CollectorRegistry()
    recorder = EventRecorder(unreachable, COMPONENT, registry=registry)
    async with running(recorder):
        recorder.normal(subject, "Synced", "configuration synced")  # returns; the write fails later

        async def counted_as_failed() -> bool:
            return registry.get_sample_value(EVENTS_DROPPED, {"reason": "write_failed"}) == 1

        await eventually(counted_as_failed, "the failed write is counted")
    assert await events_about(kube, namespace, "subject") == []


@pytest.fixture
async def unreachable(tmp_path: Path) -> AsyncIterator[KubeClient]:
    """A client for an API server that is not there (a closed loopback port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: gone, user: {}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: gone}}]\n"
    )
    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        yield client
    finally:
        await client.close()
