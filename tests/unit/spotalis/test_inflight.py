"""Spec 3.6 step 6: in-flight admission records: per group, TTL, dropped when the pod is cached."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.spotalis.classify import Capacity
from kubewright.spotalis.inflight import DEFAULT_TTL, InflightRecord, InflightTracker

pytestmark = pytest.mark.unit

SPOT, OD = Capacity.SPOT, Capacity.ON_DEMAND


def test_default_ttl_is_the_spec_default() -> None:
    assert DEFAULT_TTL == 30.0
    assert InflightTracker().ttl == 30.0


def test_records_count_per_group_until_seen() -> None:
    tracker = InflightTracker(ttl=30)
    rec = tracker.record("g", "uid-1", SPOT, now=100.0)
    assert rec == InflightRecord("g", "uid-1", SPOT, 130.0)
    tracker.record("g", "uid-2", OD, now=101.0)
    tracker.record("other", "uid-3", SPOT, now=101.0)
    assert tracker.pending("g", now=102.0) == (1, 1)
    assert tracker.pending("other", now=102.0) == (1, 0)
    assert tracker.pending("none", now=102.0) == (0, 0)
    assert len(tracker) == 3
    assert "uid-1" in tracker
    assert tracker.get("uid-1") == rec
    # The pod with admission-id uid-1 reached the cache: the cache counts it now.
    assert tracker.seen("uid-1") == rec
    assert tracker.pending("g", now=102.0) == (0, 1)
    # Seen twice, unknown, or no admission-id at all: nothing to drop.
    assert tracker.seen("uid-1") is None
    assert tracker.seen("uid-from-another-replica") is None
    assert tracker.seen(None) is None
    assert len(tracker) == 2


def test_records_expire_at_ttl() -> None:
    tracker = InflightTracker(ttl=30)
    tracker.record("g", "a", SPOT, now=0.0)
    tracker.record("g", "b", SPOT, now=10.0)
    assert tracker.pending("g", now=29.9) == (2, 0)
    assert tracker.pending("g", now=30.0) == (1, 0)  # expires at exactly now + ttl
    assert "a" not in tracker
    assert tracker.pending("g", now=40.0) == (0, 0)
    assert len(tracker) == 0


def test_sweep_expires_groups_nobody_asks_about() -> None:
    tracker = InflightTracker(ttl=5)
    for i in range(10):
        tracker.record(f"g{i}", f"u{i}", OD, now=float(i))
    assert tracker.expire(now=7.0) == 3
    assert len(tracker) == 7
    assert tracker.expire(now=100.0) == 7
    assert tracker._by_group == {}


def test_ttl_change_applies_to_new_records_only() -> None:
    tracker = InflightTracker(ttl=30)
    tracker.record("g", "a", SPOT, now=0.0)
    tracker.ttl = 5
    tracker.record("g", "b", SPOT, now=0.0)
    assert tracker.pending("g", now=6.0) == (1, 0)
    assert tracker.get("a") is not None


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
def test_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="inflightTTL"):
        InflightTracker(ttl=ttl)


def test_recording_a_uid_again_replaces_it() -> None:
    tracker = InflightTracker()
    tracker.record("g", "a", SPOT, now=0.0)
    tracker.record("h", "a", OD, now=1.0)
    assert tracker.pending("g", now=2.0) == (0, 0)
    assert tracker.pending("h", now=2.0) == (0, 1)
    assert len(tracker) == 1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.sampled_from("gh"), st.integers(0, 9), st.sampled_from([SPOT, OD])),
        st.tuples(st.just("seen"), st.integers(0, 9)),
        st.tuples(st.just("tick"), st.floats(0, 20)),
        st.tuples(st.just("sweep")),
    ),
    max_size=60,
)


@given(ops)
def test_pending_matches_a_model(steps: list[tuple[object, ...]]) -> None:
    tracker = InflightTracker(ttl=10)
    model: dict[str, tuple[str, Capacity, float]] = {}
    now = 0.0
    for step in steps:
        if step[0] == "record":
            _, group, n, capacity = step
            assert isinstance(group, str)
            assert isinstance(capacity, Capacity)
            tracker.record(group, f"u{n}", capacity, now)
            model[f"u{n}"] = (group, capacity, now + 10)
        elif step[0] == "seen":
            tracker.seen(f"u{step[1]}")
            model.pop(f"u{step[1]}", None)
        elif step[0] == "tick":
            assert isinstance(step[1], float)
            now += step[1]
        else:
            tracker.expire(now)
        for group in "gh":
            live = [c for g, c, exp in model.values() if g == group and exp > now]
            assert tracker.pending(group, now) == (live.count(SPOT), live.count(OD))
