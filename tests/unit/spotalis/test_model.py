"""The entities of spec 3.1: configuration, replica state and next action, leadership, PDBs, scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kubewright.spotalis.constants import DisruptionReason
from kubewright.spotalis.model import (
    DisruptionPolicy,
    FilterReason,
    LeadershipHealth,
    LeadershipState,
    NamespaceFilter,
    NamespaceVerdicts,
    NextAction,
    NodeType,
    PodDisruptionBudgetView,
    ReplicaState,
    WorkloadConfiguration,
    scaled,
)
from kubewright.spotalis.split import Split

pytestmark = pytest.mark.unit

ENABLED = {"spotalis.io/enabled": "true"}


# --- WorkloadConfiguration ----------------------------------------------------------------------------------
def test_min_on_demand_above_replicas_is_valid_and_clamps() -> None:
    config = WorkloadConfiguration(spot_percentage=70, min_on_demand=5)
    assert config.split(3) == Split(0, 3)
    assert config.split(10) == Split(5, 5)


@pytest.mark.parametrize(
    "fields",
    [
        {"spot_percentage": 101},
        {"spot_percentage": -1},
        {"min_on_demand": 10_001},
        {"min_on_demand": -1},
        {"spot_percentage": "70"},  # strict: the annotation parser converts, nobody else
        {"fallback_timeout": timedelta(seconds=9)},
        {"fallback_timeout": timedelta(seconds=-10)},
        {"unknown": 1},
    ],
)
def test_configuration_bounds(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkloadConfiguration(**fields)


def test_effective_fallback_timeout() -> None:
    five_minutes = timedelta(minutes=5)
    assert WorkloadConfiguration().effective_fallback_timeout(five_minutes) == five_minutes
    assert WorkloadConfiguration().effective_fallback_timeout(None) is None
    own = WorkloadConfiguration(fallback_timeout=timedelta(seconds=30))
    assert own.effective_fallback_timeout(five_minutes) == timedelta(seconds=30)
    off = WorkloadConfiguration(fallback_timeout=timedelta(0))
    assert off.effective_fallback_timeout(five_minutes) is None


def test_node_types_share_the_intent_label_values() -> None:
    assert [t.value for t in NodeType] == ["spot", "on-demand", "unknown"]


# --- ReplicaState -------------------------------------------------------------------------------------------
P70_M1 = WorkloadConfiguration(spot_percentage=70, min_on_demand=1)
STABLE: dict[str, Any] = {"stable": True}


def state(
    spot: int, on_demand: int, total: int = 10, config: WorkloadConfiguration = P70_M1, **flags: Any
) -> ReplicaState:
    flags.setdefault("ready_spot", spot)
    return ReplicaState(total=total, config=config, spot=spot, on_demand=on_demand, **flags)


def test_at_target_does_nothing() -> None:
    decision = state(7, 3, **STABLE).decide()
    assert (decision.action, decision.reason, decision.target) == (NextAction.NONE, "at target", Split(7, 3))


def test_zero_replicas_and_floor_above_replicas_are_no_ops() -> None:
    assert state(0, 0, total=0).next_action() is NextAction.NONE
    assert state(0, 0, total=0, fallback_candidates=0).decide().reason == "no replicas"
    floor_above = WorkloadConfiguration(spot_percentage=100, min_on_demand=5)
    assert state(0, 3, total=3, config=floor_above, **STABLE).next_action() is NextAction.NONE


def test_ratio_drift_moves_one_pod_each_way() -> None:
    assert state(5, 5, **STABLE).next_action() is NextAction.MOVE_TO_SPOT
    assert state(8, 2, **STABLE).next_action() is NextAction.MOVE_TO_ON_DEMAND


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"stable": False}, "workload not stable"),
        ({"stable": True, "leaving": 1}, "pods on leaving nodes"),
        ({"stable": True, "in_cooldown": True}, "in cooldown"),
        ({"stable": True, "backoff_pending": True}, "eviction back-off pending"),
        ({"stable": True, "window_open": False}, "outside disruption window"),
        ({"stable": True, "spot_unavailable": True}, "spot unavailable (fallback marker)"),
    ],
)
def test_rebalance_gates_block(flags: dict[str, Any], reason: str) -> None:
    decision = state(5, 5, **flags).decide()
    assert (decision.action, decision.wanted, decision.reason) == (
        NextAction.BLOCKED,
        NextAction.MOVE_TO_SPOT,
        reason,
    )


def test_spot_unavailable_still_allows_moving_to_on_demand() -> None:
    assert state(8, 2, stable=True, spot_unavailable=True).next_action() is NextAction.MOVE_TO_ON_DEMAND


def test_fallback_comes_first_and_ignores_gates() -> None:
    gated: dict[str, Any] = {
        "in_cooldown": True,
        "backoff_pending": True,
        "window_open": False,
        "stable": False,
    }
    assert state(7, 3, fallback_candidates=2, **gated).next_action() is NextAction.FALLBACK
    # Late spot-intent Pending pods while the marker is active go at once.
    assert state(7, 3, spot_unavailable=True, pending_spot_intent=1).next_action() is NextAction.FALLBACK
    assert state(7, 3, pending_spot_intent=1, **STABLE).next_action() is NextAction.NONE
    assert (
        state(7, 3, fallback_candidates=2, fallback_enabled=False, **STABLE).next_action() is NextAction.NONE
    )


def test_floor_repair_skips_window_and_stability() -> None:
    # P=100, M=1: the floor pod's node was cordoned, so it is leaving.
    config = WorkloadConfiguration(spot_percentage=100, min_on_demand=1)
    breached = state(9, 0, config=config, leaving=1, evictable_leaving=1, window_open=False, stable=False)
    decision = breached.decide()
    assert decision.action is NextAction.FLOOR_REPAIR
    assert "leaving" in decision.reason


def test_floor_repair_evicts_a_ready_spot_pod_outside_rollouts() -> None:
    config = WorkloadConfiguration(spot_percentage=100, min_on_demand=2)
    # A scale-down removed on-demand pods: 9 spot, 0 on-demand, T=9, floor 2.
    decision = state(9, 0, total=9, config=config).decide()
    assert (decision.action, decision.reason) == (
        NextAction.FLOOR_REPAIR,
        "on-demand floor breached; evict a Ready spot pod",
    )
    blocked = state(9, 0, total=9, config=config, rollout_in_progress=True).decide()
    assert (blocked.action, blocked.wanted) == (NextAction.BLOCKED, NextAction.FLOOR_REPAIR)


def test_floor_repair_waits_for_replacements_already_coming() -> None:
    config = WorkloadConfiguration(spot_percentage=100, min_on_demand=1)
    decision = state(9, 0, total=10, config=config).decide()
    assert (decision.action, decision.reason) == (
        NextAction.NONE,
        "on-demand floor breached; replacements pending",
    )


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"in_cooldown": True}, "in cooldown"),
        ({"backoff_pending": True}, "eviction back-off pending"),
        ({"ready_spot": 0}, "no evictable pod (not-ready nodes are left)"),
    ],
)
def test_floor_repair_respects_cooldown_and_back_off(flags: dict[str, Any], reason: str) -> None:
    config = WorkloadConfiguration(spot_percentage=100, min_on_demand=2)
    decision = state(9, 0, total=9, config=config, **flags).decide()
    assert (decision.action, decision.wanted, decision.reason) == (
        NextAction.BLOCKED,
        NextAction.FLOOR_REPAIR,
        reason,
    )


def test_inconsistent_counts_are_rejected() -> None:
    with pytest.raises(ValidationError, match="evictable_leaving"):
        state(7, 3, leaving=1, evictable_leaving=2)
    with pytest.raises(ValidationError, match="ready_spot"):
        state(7, 3, ready_spot=8)


@st.composite
def replica_states(draw: st.DrawFn) -> ReplicaState:
    total = draw(st.integers(0, 60))
    spot = draw(st.integers(0, total))
    on_demand = draw(st.integers(0, total - spot))
    leaving = draw(st.integers(0, total - spot - on_demand))
    return ReplicaState(
        total=total,
        config=WorkloadConfiguration(
            spot_percentage=draw(st.integers(0, 100)), min_on_demand=draw(st.integers(0, 70))
        ),
        spot=spot,
        on_demand=on_demand,
        leaving=leaving,
        evictable_leaving=draw(st.integers(0, leaving)),
        ready_spot=draw(st.integers(0, spot)),
        fallback_candidates=draw(st.integers(0, 2)),
        pending_spot_intent=draw(st.integers(0, 2)),
        spot_unavailable=draw(st.booleans()),
        fallback_enabled=draw(st.booleans()),
        stable=draw(st.booleans()),
        rollout_in_progress=draw(st.booleans()),
        in_cooldown=draw(st.booleans()),
        backoff_pending=draw(st.booleans()),
        window_open=draw(st.booleans()),
    )


@given(replica_states())
def test_actions_respect_the_rules(replica: ReplicaState) -> None:
    decision = replica.decide()
    target = replica.target
    action = decision.action
    assert (decision.wanted is not None) == (action is NextAction.BLOCKED)
    if action is NextAction.FALLBACK:
        assert replica.fallback_enabled
    if action in {NextAction.FLOOR_REPAIR, NextAction.MOVE_TO_ON_DEMAND, NextAction.MOVE_TO_SPOT}:
        # Every disruptive eviction waits for cooldown and back-off.
        assert not replica.in_cooldown
        assert not replica.backoff_pending
    if action is NextAction.FLOOR_REPAIR:
        assert replica.on_demand < min(replica.config.min_on_demand, replica.total)
        assert replica.evictable_leaving > 0 or (replica.ready_spot > 0 and not replica.rollout_in_progress)
    if action in {NextAction.MOVE_TO_ON_DEMAND, NextAction.MOVE_TO_SPOT}:
        assert replica.stable
        assert replica.window_open
        assert replica.leaving == 0
    if action is NextAction.MOVE_TO_ON_DEMAND:
        assert replica.on_demand < target.on_demand
    if action is NextAction.MOVE_TO_SPOT:
        assert not replica.spot_unavailable
        assert replica.spot < target.spot
        assert replica.on_demand - 1 >= target.on_demand  # never below the on-demand target, so the floor


@given(
    total=st.integers(1, 60),
    pct=st.integers(0, 100),
    floor=st.integers(0, 70),
    start_spot=st.integers(0, 60),
)
def test_rebalancing_converges_one_step_at_a_time(total: int, pct: int, floor: int, start_spot: int) -> None:
    """Apply each action (the replacement lands on the other type) until none: no oscillation."""
    config = WorkloadConfiguration(spot_percentage=pct, min_on_demand=floor)
    spot = min(start_spot, total)
    on_demand = total - spot
    target = config.split(total)
    for _ in range(total + 1):
        action = state(spot, on_demand, total=total, config=config, stable=True).next_action()
        if action is NextAction.NONE:
            break
        assert action in {NextAction.MOVE_TO_ON_DEMAND, NextAction.MOVE_TO_SPOT, NextAction.FLOOR_REPAIR}
        distance = abs(spot - target.spot)
        step = 1 if action is NextAction.MOVE_TO_SPOT else -1
        spot, on_demand = spot + step, on_demand - step
        assert abs(spot - target.spot) == distance - 1
    assert (spot, on_demand) == tuple(target)


# --- LeadershipState ----------------------------------------------------------------------------------------
def leader(last_renew: float | None = 100.0) -> LeadershipState:
    return LeadershipState(identity="a", is_leader=True, holder="a", last_renew=last_renew)


@pytest.mark.parametrize(
    ("since", "health", "step_down", "expired"),
    [
        (0.0, LeadershipHealth.HEALTHY, False, False),
        (2.0, LeadershipHealth.HEALTHY, False, False),
        (2.01, LeadershipHealth.WARNING, False, False),
        (10.0, LeadershipHealth.WARNING, False, False),
        (10.01, LeadershipHealth.UNHEALTHY, True, False),
        (15.0, LeadershipHealth.UNHEALTHY, True, False),
        (15.01, LeadershipHealth.UNHEALTHY, True, True),
    ],
)
def test_leadership_health_by_time_since_renew(
    since: float, health: LeadershipHealth, step_down: bool, expired: bool
) -> None:
    now = 100.0 + since
    assert leader().health(now) is health
    assert leader().should_step_down(now) is step_down
    assert leader().lease_expired(now) is expired


def test_never_renewed_and_followers() -> None:
    assert leader(None).health(0.0) is LeadershipHealth.UNHEALTHY
    assert leader(None).should_step_down(0.0)
    follower = LeadershipState(identity="b", holder="a", last_renew=100.0)
    assert follower.health(1000.0) is LeadershipHealth.HEALTHY
    assert not follower.should_step_down(1000.0)
    assert follower.lease_expired(115.5)
    assert not follower.lease_expired(114.0)


def test_leadership_transitions() -> None:
    follower = LeadershipState(identity="b", holder="a", last_renew=0.0)
    assert follower.observed_holder("a", 5.0) is follower
    taken = follower.became_leader(20.0)
    assert (taken.is_leader, taken.holder, taken.transitions, taken.last_renew) == (True, "b", 1, 20.0)
    assert taken.renewed(22.0).last_renew == 22.0
    lost = taken.observed_holder("c", 40.0)
    assert (lost.is_leader, lost.holder, lost.transitions) == (False, "c", 2)
    assert not taken.stepped_down().is_leader


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(15.0, 15.0, 2.0), (15.0, 10.0, 10.0), (10.0, 15.0, 2.0), (15.0, 10.0, 0.0)]
)
def test_leadership_timings_are_ordered(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValidationError):
        LeadershipState(identity="a", lease_duration=lease, renew_deadline=renew, retry_period=retry)


# --- DisruptionPolicy ---------------------------------------------------------------------------------------
def pdb(name: str = "web", **fields: Any) -> PodDisruptionBudgetView:
    return PodDisruptionBudgetView(name=name, **fields)


def test_no_pdb_allows() -> None:
    verdict = DisruptionPolicy(total_replicas=5, healthy=5).check()
    assert (verdict.allowed, verdict.reason) == (True, DisruptionReason.NO_PDB)


def test_window_and_in_flight_come_first() -> None:
    assert DisruptionPolicy(total_replicas=5, healthy=5, window_open=False).check().reason is (
        DisruptionReason.OUTSIDE_DISRUPTION_WINDOW
    )
    assert DisruptionPolicy(total_replicas=5, healthy=5, in_flight=1).check().reason is (
        DisruptionReason.TOO_MANY_DISRUPTED
    )


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [(2, 5, 2), ("50%", 5, 3), ("25%", 5, 2), ("10%", 10, 1), ("1%", 10, 1), ("0%", 10, 0), ("100%", 7, 7)],
)
def test_percentages_round_up(value: int | str, total: int, expected: int) -> None:
    assert scaled(value, total) == expected


@pytest.mark.parametrize(
    ("budget", "healthy", "allowed", "reason", "left"),
    [
        ({"min_available": "50%"}, 5, True, DisruptionReason.ALLOWED, 2),  # needs 3 (upstream: 2)
        ({"min_available": "50%"}, 3, False, DisruptionReason.MIN_AVAILABLE_VIOLATED, 0),
        ({"min_available": 5}, 5, False, DisruptionReason.MIN_AVAILABLE_VIOLATED, 0),
        ({"max_unavailable": 1}, 5, True, DisruptionReason.ALLOWED, 1),
        ({"max_unavailable": 1}, 4, False, DisruptionReason.MAX_UNAVAILABLE_REACHED, 0),
        ({"max_unavailable": "25%"}, 4, True, DisruptionReason.ALLOWED, 1),  # ceil(1.25) = 2 unavailable
        ({"max_unavailable": 0}, 5, False, DisruptionReason.MAX_UNAVAILABLE_REACHED, 0),
        (
            {"max_unavailable": 2, "disruptions_allowed": 0},
            5,
            False,
            DisruptionReason.MAX_UNAVAILABLE_REACHED,
            0,
        ),
        ({"disruptions_allowed": 0}, 5, False, DisruptionReason.MIN_AVAILABLE_VIOLATED, 0),
        ({"disruptions_allowed": 3}, 5, True, DisruptionReason.ALLOWED, 3),
        ({}, 5, True, DisruptionReason.ALLOWED, None),
    ],
)
def test_pdb_pre_check(
    budget: dict[str, Any], healthy: int, allowed: bool, reason: DisruptionReason, left: int | None
) -> None:
    verdict = DisruptionPolicy(total_replicas=5, healthy=healthy, pdbs=(pdb(**budget),)).check()
    assert (verdict.allowed, verdict.reason, verdict.disruptions_allowed) == (allowed, reason, left)
    assert verdict.pdb_name == (None if allowed else "web")


def test_any_blocking_pdb_blocks_and_is_named() -> None:
    policy = DisruptionPolicy(
        total_replicas=5, healthy=5, pdbs=(pdb("loose", max_unavailable=2), pdb("tight", min_available=5))
    )
    verdict = policy.check()
    assert (verdict.allowed, verdict.pdb_name) == (False, "tight")
    both_fine = DisruptionPolicy(
        total_replicas=5, healthy=5, pdbs=(pdb("a", max_unavailable=2), pdb("b", min_available=4))
    )
    assert both_fine.check().disruptions_allowed == 1


@pytest.mark.parametrize("value", ["50", "150%", "-1%", "x", -1, "1.5%"])
def test_pdb_values_are_validated(value: int | str) -> None:
    with pytest.raises(ValidationError):
        pdb(min_available=value)


# --- NamespaceFilter ----------------------------------------------------------------------------------------
def test_scenario_6_only_labelled_watched_non_excluded_namespaces() -> None:
    namespace_filter = NamespaceFilter(watch_namespaces=("a", "b", "c", "default"), exclude_names=("c",))
    namespaces = {"a": ENABLED, "b": {}, "c": ENABLED, "default": ENABLED, "d": ENABLED}
    managed = {
        name
        for name, labels in namespaces.items()
        if namespace_filter.workload_verdict(name, labels, ENABLED).allowed
    }
    assert managed == {"a", "default"}


@pytest.mark.parametrize(
    ("name", "labels", "reason"),
    [
        ("kube-system", ENABLED, FilterReason.EXCLUDED_NAME),
        ("kube-public", ENABLED, FilterReason.EXCLUDED_NAME),
        ("kube-node-lease", ENABLED, FilterReason.EXCLUDED_NAME),
        ("default", ENABLED, FilterReason.ALLOWED),
        ("team", None, FilterReason.NAMESPACE_MISSING),
        ("team", {"spotalis.io/enabled": "True"}, FilterReason.NAMESPACE_NOT_ENABLED),
        ("team", ENABLED, FilterReason.ALLOWED),
    ],
)
def test_default_filter(name: str, labels: dict[str, str] | None, reason: FilterReason) -> None:
    assert NamespaceFilter().namespace_verdict(name, labels).reason is reason


def test_order_of_checks() -> None:
    namespace_filter = NamespaceFilter(
        watch_namespaces=("team-a", "team-b", "ops", "sandbox-1"),
        exclude_names=("ops",),
        exclude_patterns=("sandbox-.*",),
        include_patterns=("team-.*",),
    )
    verdict = namespace_filter.namespace_verdict
    assert verdict("other", None).reason is FilterReason.NOT_WATCHED  # before "missing"
    assert verdict("ops", None).reason is FilterReason.EXCLUDED_NAME
    assert verdict("sandbox-1", ENABLED).reason is FilterReason.EXCLUDED_PATTERN
    assert verdict("team-a", None).reason is FilterReason.NAMESPACE_MISSING
    assert verdict("team-b", {}).reason is FilterReason.NAMESPACE_NOT_ENABLED
    assert verdict("team-a", ENABLED).allowed
    assert (
        namespace_filter.workload_verdict("team-a", ENABLED, {}).reason is FilterReason.WORKLOAD_NOT_ENABLED
    )
    assert (
        namespace_filter.workload_verdict("team-a", ENABLED, None).reason is FilterReason.WORKLOAD_NOT_ENABLED
    )
    assert namespace_filter.workload_verdict("team-a", ENABLED, ENABLED).allowed


def test_patterns_must_match_the_whole_name() -> None:
    namespace_filter = NamespaceFilter(exclude_patterns=("dev",), include_names=("x-dev", "dev"))
    assert namespace_filter.namespace_verdict("x-dev", ENABLED).allowed
    assert namespace_filter.namespace_verdict("dev", ENABLED).reason is FilterReason.EXCLUDED_PATTERN
    assert namespace_filter.namespace_verdict("prod", ENABLED).reason is FilterReason.NOT_INCLUDED


def test_namespace_label_can_be_optional() -> None:
    namespace_filter = NamespaceFilter(require_namespace_label=False)
    assert namespace_filter.namespace_verdict("team", {}).allowed
    assert namespace_filter.namespace_verdict("team", None).reason is FilterReason.NAMESPACE_MISSING


def test_filter_reads_camel_case_config_keys_and_rejects_bad_patterns() -> None:
    namespace_filter = NamespaceFilter.model_validate(
        {"watchNamespaces": ["a"], "excludePatterns": ["b.*"], "requireNamespaceLabel": False}
    )
    assert namespace_filter.watches("a")
    assert not namespace_filter.watches("b")
    assert NamespaceFilter().watches("anything")
    with pytest.raises(ValidationError, match="invalid regular expression"):
        NamespaceFilter(include_patterns=("team-(",))


def test_is_stale() -> None:
    fresh = NamespaceFilter().updated(100.0)
    assert fresh.is_stale(0)
    assert fresh.is_stale(0, now=100.0)
    assert not fresh.is_stale(10, now=105.0)
    assert fresh.is_stale(10, now=110.5)
    assert fresh.is_stale(10)  # without a time it cannot be shown fresh
    assert NamespaceFilter().is_stale(10, now=0.0)


def test_verdicts_are_cached_per_namespace_until_invalidated() -> None:
    verdicts = NamespaceVerdicts(NamespaceFilter())
    assert verdicts.verdict("team", ENABLED).allowed
    assert verdicts.verdict("team", {}).allowed  # cached; labels are only read on a miss
    verdicts.invalidate("team")
    assert not verdicts.verdict("team", {}).allowed
    assert verdicts.verdict("new", None).reason is FilterReason.NAMESPACE_MISSING
    assert verdicts.verdict("new", ENABLED).allowed  # misses are not cached
    assert len(verdicts) == 2
    verdicts.replace_filter(NamespaceFilter(exclude_names=("team",)))
    assert len(verdicts) == 0
    assert verdicts.verdict("team", ENABLED).reason is FilterReason.EXCLUDED_NAME
    assert verdicts.filter.exclude_names == ("team",)
