"""Event recording: references, the bounded coalescing intake, and create-or-bump aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.events import (
    EVENTS_DROPPED,
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    BumpEvent,
    CreateEvent,
    EventAggregator,
    EventRecorder,
    EventType,
    InvolvedObject,
    PendingEvents,
    event_key,
)
from kubewright.runtime.kube import KubeClient

pytestmark = pytest.mark.unit

WALL = datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1", "resourceVersion": "5"},
}
NODE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "kwok-spot-0001", "uid": "n-1"},
}


def key(reason: str = "Scaled", message: str = "scaled to 3", obj: dict[str, Any] = POD) -> Any:
    return event_key(obj, EventType.NORMAL, reason, message)


# -- references and keys ------------------------------------------------------------------------------


def test_reference_of_a_namespaced_object() -> None:
    involved = InvolvedObject.of(POD)
    assert involved.reference() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "namespace": "shop",
        "uid": "u-1",
    }
    assert involved.event_namespace == "shop"


def test_events_about_cluster_scoped_objects_live_in_default() -> None:
    """The API server rejects a core/v1 Event whose namespace differs from its object's, except this."""
    involved = InvolvedObject.of(NODE)
    assert "namespace" not in involved.reference()
    assert involved.event_namespace == "default"


def test_reference_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"without apiVersion, metadata\.name"):
        InvolvedObject.of({"kind": "Pod", "metadata": {}})


def test_key_requires_a_reason_and_truncates_long_messages() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        key(reason="")
    long = key(message="x" * 5000)
    assert len(long.message) == MAX_MESSAGE_LENGTH
    assert long.message.endswith("...")
    with pytest.raises(ValueError, match="Info"):
        event_key(POD, "Info", "Scaled", "m")  # type: ignore[arg-type]


def test_a_recreated_object_gets_its_own_series() -> None:
    recreated = {**POD, "metadata": {**POD["metadata"], "uid": "u-2"}}
    assert key() != key(obj=recreated)


# -- intake -------------------------------------------------------------------------------------------


def test_pending_events_coalesce_repeats_and_keep_the_latest_time() -> None:
    pending = PendingEvents(capacity=2)
    assert pending.add(key(), 1.0, WALL)
    assert pending.add(key(), 2.0, WALL + timedelta(seconds=1))
    assert pending.add(key(reason="Other"), 3.0, WALL)
    assert len(pending) == 2
    first = pending.pop()
    assert first is not None
    popped_key, occurrences = first
    assert popped_key == key()
    assert (occurrences.count, occurrences.last_monotonic) == (2, 2.0)
    assert occurrences.last_wall == WALL + timedelta(seconds=1)


def test_pending_events_are_bounded_by_distinct_keys() -> None:
    pending = PendingEvents(capacity=2)
    assert pending.add(key(reason="A"), 0, WALL)
    assert pending.add(key(reason="B"), 0, WALL)
    assert not pending.add(key(reason="C"), 0, WALL)
    assert pending.add(key(reason="A"), 0, WALL)  # a repeat of a queued key is always accepted
    assert [pending.pop(), pending.pop(), pending.pop()][2] is None
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        PendingEvents(0)


@given(st.lists(st.sampled_from("ABCDEFG"), max_size=200), st.integers(1, 5))
def test_every_occurrence_is_either_queued_or_dropped(reasons: list[str], capacity: int) -> None:
    pending = PendingEvents(capacity)
    dropped = sum(not pending.add(key(reason=r), 0, WALL) for r in reasons)
    queued: list[tuple[str, int]] = []
    while (item := pending.pop()) is not None:
        queued.append((item[0].reason, item[1].count))
    assert dropped + sum(count for _, count in queued) == len(reasons)
    assert len(queued) <= capacity
    firsts = [r for i, r in enumerate(reasons) if r not in reasons[:i]]
    assert [r for r, _ in queued] == firsts[: len(queued)]  # first come, first written


# -- aggregation --------------------------------------------------------------------------------------


def test_first_occurrence_creates_a_core_v1_event() -> None:
    aggregator = EventAggregator("spotalis-controller", "pod-abc", window=600)
    action = aggregator.plan(key(), 3, 10.0, WALL)
    assert isinstance(action, CreateEvent)
    assert action.body == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"web-0.{int(WALL.timestamp() * 1e9):x}", "namespace": "shop"},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "web-0",
            "namespace": "shop",
            "uid": "u-1",
        },
        "type": "Normal",
        "reason": "Scaled",
        "message": "scaled to 3",
        "source": {"component": "spotalis-controller"},
        "reportingComponent": "spotalis-controller",
        "reportingInstance": "pod-abc",
        "firstTimestamp": "2025-05-06T07:08:09Z",
        "lastTimestamp": "2025-05-06T07:08:09Z",
        "count": 3,
    }


def test_repeats_within_the_window_bump_the_count() -> None:
    aggregator = EventAggregator("c", "i", window=600)
    created = aggregator.plan(key(), 1, 0.0, WALL)
    assert isinstance(created, CreateEvent)
    bumped = aggregator.plan(key(), 2, 600.0, WALL + timedelta(minutes=10))
    assert bumped == BumpEvent(
        key(),
        "shop",
        created.body["metadata"]["name"],
        {"count": 3, "lastTimestamp": "2025-05-06T07:18:09Z"},
    )


def test_the_window_runs_from_the_latest_occurrence() -> None:
    aggregator = EventAggregator("c", "i", window=60)
    aggregator.plan(key(), 1, 0.0, WALL)
    for t in (50.0, 100.0, 150.0):
        assert isinstance(aggregator.plan(key(), 1, t, WALL), BumpEvent)
    assert isinstance(aggregator.plan(key(), 1, 210.1, WALL), CreateEvent)


def test_different_type_reason_or_message_are_different_events() -> None:
    aggregator = EventAggregator("c", "i")
    aggregator.plan(key(), 1, 0.0, WALL)
    others = [
        key(reason="Other"),
        key(message="scaled to 4"),
        event_key(POD, EventType.WARNING, "Scaled", "scaled to 3"),
    ]
    for other in others:
        assert isinstance(aggregator.plan(other, 1, 1.0, WALL), CreateEvent)


def test_forgotten_series_start_again() -> None:
    aggregator = EventAggregator("c", "i")
    aggregator.plan(key(), 1, 0.0, WALL)
    aggregator.forget(key())
    again = aggregator.plan(key(), 4, 1.0, WALL)
    assert isinstance(again, CreateEvent)
    assert again.body["count"] == 4


def test_least_recently_seen_series_are_evicted() -> None:
    aggregator = EventAggregator("c", "i", max_series=2)
    aggregator.plan(key(reason="A"), 1, 0.0, WALL)
    aggregator.plan(key(reason="B"), 1, 1.0, WALL)
    aggregator.plan(key(reason="A"), 1, 2.0, WALL)  # A is now the most recent
    aggregator.plan(key(reason="C"), 1, 3.0, WALL)  # evicts B
    assert isinstance(aggregator.plan(key(reason="A"), 1, 4.0, WALL), BumpEvent)
    assert isinstance(aggregator.plan(key(reason="B"), 1, 5.0, WALL), CreateEvent)


def test_event_names_are_unique_under_a_frozen_clock_and_fit_the_limit() -> None:
    aggregator = EventAggregator("c", "i")
    long_pod = {**POD, "metadata": {**POD["metadata"], "name": "p" * 253}}
    names = set()
    for reason in ("A", "B", "C"):
        action = aggregator.plan(key(reason=reason, obj=long_pod), 1, 0.0, WALL)
        assert isinstance(action, CreateEvent)
        names.add(action.body["metadata"]["name"])
    assert len(names) == 3
    assert all(len(name) <= MAX_NAME_LENGTH for name in names)


def test_a_component_is_required() -> None:
    with pytest.raises(ValueError, match="component name"):
        EventAggregator("", "i")


@given(
    st.lists(
        st.tuples(st.sampled_from("ABC"), st.integers(1, 5), st.floats(min_value=0, max_value=100)),
        max_size=60,
    )
)
def test_counts_always_equal_the_occurrences_since_the_event_was_created(
    steps: list[tuple[str, int, float]],
) -> None:
    aggregator = EventAggregator("c", "i", window=120)
    now = 0.0
    expected: dict[str, int] = {}
    names: set[str] = set()
    for reason, occurrences, step in steps:
        now += step
        action = aggregator.plan(key(reason=reason), occurrences, now, WALL)
        if isinstance(action, CreateEvent):
            expected[reason] = occurrences
            assert action.body["count"] == occurrences
            assert action.body["metadata"]["name"] not in names
            names.add(action.body["metadata"]["name"])
        else:
            expected[reason] += occurrences
            assert action.patch["count"] == expected[reason]
            assert action.name in names


# -- the recorder's intake (no request is made until its runnable runs) --------------------------------


@pytest.fixture
def unreachable_client(tmp_path: Path) -> KubeClient:
    """A real client for an address nothing listens on: proves `record` itself never calls the API."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return KubeClient.from_kubeconfig(kubeconfig)


async def test_record_never_blocks_and_counts_what_it_drops(unreachable_client: KubeClient) -> None:
    registry = CollectorRegistry()
    recorder = EventRecorder(unreachable_client, "c", clock=FakeClock(), registry=registry, queue_size=2)
    for _ in range(1000):
        recorder.normal(POD, "Synced", "ok")  # one queued Event however often it repeats
    recorder.warning(POD, "Failed", "a")
    recorder.warning(POD, "Failed", "b")  # a third distinct Event: no room
    recorder.warning(NODE, "Failed", "c")
    assert recorder.queued == 2
    assert recorder.dropped == 2
    assert registry.get_sample_value(EVENTS_DROPPED, {"reason": "queue_full"}) == 2
    await unreachable_client.close()
