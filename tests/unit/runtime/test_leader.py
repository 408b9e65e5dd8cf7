"""The leader-election decisions, without any API: configuration, observation, what to write next.

The I/O loop is tested against a real API server (tests/envtest/runtime/test_leader_election.py); here
every branch of the pure functions is pinned, and property tests check the safety argument itself by
simulating a leader and a standby over random schedules and network delays with these functions.
"""

from __future__ import annotations

import heapq
import itertools
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubewright.runtime.leader import default_identity
from kubewright.runtime.leader_decisions import (
    CreateLease,
    ElectionConfig,
    LeaseRecord,
    Observation,
    ObservedLease,
    ReleaseLease,
    RenewLease,
    Standby,
    StepDown,
    TakeOverLease,
    candidate_action,
    expires_at,
    leader_action,
    leading_until,
    micro_time,
    observe,
    parse_lease,
    release_action,
    retry_delay,
)

pytestmark = pytest.mark.unit

WALL = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
CONFIG = ElectionConfig(lease_name="kubewright", namespace="ops", identity="me")


def lease_object(
    holder: str | None = "other",
    rv: str = "7",
    duration: int | None = 15,
    transitions: int = 3,
    **spec_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "acquireTime": "2025-03-01T11:00:00.000000Z",
        "renewTime": "2025-03-01T11:59:59.500000Z",
        "leaseTransitions": transitions,
        **spec_extra,
    }
    if holder is not None:
        spec["holderIdentity"] = holder
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "kubewright",
            "namespace": "ops",
            "resourceVersion": rv,
            "labels": {"team": "a"},
        },
        "spec": spec,
    }


def seen(obj: dict[str, Any] | None, at: float = 100.0) -> Observation:
    return Observation(None if obj is None else parse_lease(obj), at)


# -- configuration ------------------------------------------------------------------------------------


def test_defaults_are_client_go_defaults() -> None:
    assert (CONFIG.lease_duration, CONFIG.renew_deadline, CONFIG.retry_period) == (15.0, 10.0, 2.0)
    assert CONFIG.jitter_factor == 1.2
    assert CONFIG.lease_duration_seconds == 15


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"identity": ""}, "identity must not be empty"),
        ({"lease_name": ""}, "lease_name must not be empty"),
        ({"namespace": ""}, "namespace must not be empty"),
        ({"lease_duration": 10.0}, "lease_duration (10.0) must be greater than renew_deadline (10.0)"),
        ({"renew_deadline": 2.4}, "renew_deadline (2.4) must be greater than jitter_factor * retry_period"),
        ({"retry_period": 0.0}, "retry_period must be > 0"),
        ({"jitter_factor": -0.1}, "jitter_factor >= 0"),
    ],
)
def test_invalid_configuration_names_the_fields(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"lease_name": "l", "namespace": "n", "identity": "i", **overrides}
    with pytest.raises(ValueError, match="leader election") as caught:
        ElectionConfig(**values)
    assert message in str(caught.value)


def test_fractional_lease_duration_is_written_rounded_up() -> None:
    config = ElectionConfig("l", "n", "i", lease_duration=4.2, renew_deadline=3.0, retry_period=0.5)
    assert config.lease_duration_seconds == 5


def test_default_identity_is_hostname_and_a_unique_suffix() -> None:
    first, second = default_identity(), default_identity()
    assert first != second
    assert first.split("_")[0] == socket.gethostname()


def test_retry_delay_is_client_go_jitter() -> None:
    assert retry_delay(CONFIG, 0.0) == 2.0
    assert retry_delay(CONFIG, 0.5) == pytest.approx(2.0 + 0.5 * 1.2 * 2.0)
    assert retry_delay(CONFIG, 0.999999) < 2.0 * 2.2


def test_leader_deadline_counts_from_sending_the_renewal() -> None:
    assert leading_until(50.0, CONFIG) == 60.0


# -- reading the Lease --------------------------------------------------------------------------------


def test_parse_lease_reads_record_and_version() -> None:
    lease = parse_lease(lease_object())
    assert lease.resource_version == "7"
    assert lease.record == LeaseRecord(
        holder="other",
        lease_duration_seconds=15,
        acquire_time=datetime(2025, 3, 1, 11, 0, tzinfo=UTC),
        renew_time=datetime(2025, 3, 1, 11, 59, 59, 500000, tzinfo=UTC),
        transitions=3,
    )


def test_parse_lease_tolerates_missing_fields() -> None:
    lease = parse_lease({"metadata": {"resourceVersion": "1"}})
    assert lease.record == LeaseRecord("", 0, None, None, 0)
    garbled = parse_lease(lease_object(renewTime="yesterday"))
    assert garbled.record.renew_time is None


def test_micro_time_renderings_parse_to_the_same_instant() -> None:
    server = parse_lease(lease_object(renewTime="2025-03-01T11:59:59.000000Z"))
    client = parse_lease(lease_object(renewTime="2025-03-01T11:59:59Z"))
    assert server.record == client.record


def test_micro_time_is_utc_with_microseconds() -> None:
    assert micro_time(WALL) == "2025-03-01T12:00:00.250000Z"
    assert micro_time(WALL.astimezone(timezone(timedelta(hours=2)))) == "2025-03-01T12:00:00.250000Z"


# -- observing ----------------------------------------------------------------------------------------


def test_first_observation_starts_the_clock() -> None:
    lease = parse_lease(lease_object())
    assert observe(None, lease, 5.0) == Observation(lease, 5.0)
    assert observe(None, None, 5.0) == Observation(None, 5.0)


def test_rereading_an_unwritten_lease_keeps_the_clock() -> None:
    lease = parse_lease(lease_object())
    first = observe(None, lease, 5.0)
    assert observe(first, parse_lease(lease_object()), 9.0).observed_at == 5.0
    absent = observe(None, None, 5.0)
    assert observe(absent, None, 9.0).observed_at == 5.0


def test_any_write_restarts_the_clock_even_with_an_identical_record() -> None:
    """A holder with a frozen wall clock renews with the same renewTime: still a renewal."""
    first = observe(None, parse_lease(lease_object(rv="7")), 5.0)
    again = observe(first, parse_lease(lease_object(rv="8")), 9.0)
    assert again.lease is not None
    assert first.lease is not None
    assert again.lease.record == first.lease.record
    assert again.observed_at == 9.0
    assert again.lease.resource_version == "8"


def test_appearing_and_vanishing_restart_the_clock() -> None:
    present = observe(None, parse_lease(lease_object()), 5.0)
    gone = observe(present, None, 6.0)
    assert gone.observed_at == 6.0
    assert observe(gone, parse_lease(lease_object()), 7.0).observed_at == 7.0


# -- candidate decisions ------------------------------------------------------------------------------


def test_absent_lease_is_created_naming_us() -> None:
    action = candidate_action(seen(None), 100.0, CONFIG, WALL)
    assert isinstance(action, CreateLease)
    body = action.body
    assert body["metadata"] == {"name": "kubewright", "namespace": "ops"}
    assert body["spec"] == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2025-03-01T12:00:00.250000Z",
        "renewTime": "2025-03-01T12:00:00.250000Z",
        "leaseTransitions": 0,
    }


def test_lease_held_by_another_is_respected_until_its_duration_passes() -> None:
    observation = seen(lease_object(duration=15), at=100.0)
    action = candidate_action(observation, 114.999, CONFIG, WALL)
    assert action == Standby(holder="other", expires_at=115.0)


def test_expired_lease_is_taken_over_with_one_more_transition() -> None:
    observation = seen(lease_object(transitions=3, strategy="OldestEmulationVersion"), at=100.0)
    action = candidate_action(observation, 115.0, CONFIG, WALL)
    assert isinstance(action, TakeOverLease)
    assert action.previous_holder == "other"
    body = action.body
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["labels"] == {"team": "a"}  # metadata is preserved by the PUT
    assert body["spec"]["strategy"] == "OldestEmulationVersion"  # so are spec fields we do not own
    assert body["spec"]["holderIdentity"] == "me"
    assert body["spec"]["leaseTransitions"] == 4
    assert body["spec"]["acquireTime"] == body["spec"]["renewTime"] == "2025-03-01T12:00:00.250000Z"


def test_released_lease_is_taken_over_at_once() -> None:
    for released in (lease_object(holder=""), lease_object(holder=None)):
        action = candidate_action(seen(released, at=100.0), 100.0, CONFIG, WALL)
        assert isinstance(action, TakeOverLease)
        assert action.body["spec"]["leaseTransitions"] == 4


def test_expiry_uses_the_holders_duration() -> None:
    """The holder declared how long its claim lasts; a standby with shorter settings must honour it."""
    short = ElectionConfig("kubewright", "ops", "me", lease_duration=4, renew_deadline=3, retry_period=0.5)
    observation = seen(lease_object(duration=30), at=100.0)
    assert candidate_action(observation, 129.0, short, WALL) == Standby("other", 130.0)
    assert expires_at(seen(lease_object(duration=None), at=100.0), short) == 104.0


def test_expiry_ignores_wall_clocks() -> None:
    """A renewTime far in the past (a holder with a skewed clock) does not make a fresh lease expired."""
    ancient = seen(lease_object(renewTime="1999-01-01T00:00:00.000000Z"), at=100.0)
    assert isinstance(candidate_action(ancient, 101.0, CONFIG, WALL), Standby)
    future = seen(lease_object(renewTime="2099-01-01T00:00:00.000000Z"), at=100.0)
    assert isinstance(candidate_action(future, 116.0, CONFIG, WALL), TakeOverLease)


def test_candidate_named_in_the_lease_renews_without_a_transition() -> None:
    """client-go's behaviour for a restarted process with a stable identity: it resumes at once."""
    action = candidate_action(seen(lease_object(holder="me")), 100.0, CONFIG, WALL)
    assert isinstance(action, RenewLease)
    spec = action.body["spec"]
    assert spec["leaseTransitions"] == 3
    assert spec["acquireTime"] == "2025-03-01T11:00:00.000000Z"
    assert spec["renewTime"] == "2025-03-01T12:00:00.250000Z"


# -- leader and release decisions ---------------------------------------------------------------------


def test_leader_renews_over_its_observed_version() -> None:
    action = leader_action(seen(lease_object(holder="me", rv="42")), CONFIG, WALL)
    assert isinstance(action, RenewLease)
    assert action.body["metadata"]["resourceVersion"] == "42"
    assert action.body["spec"]["holderIdentity"] == "me"
    assert action.body["spec"]["leaseDurationSeconds"] == 15


def test_renewal_fills_in_a_missing_acquire_time() -> None:
    action = leader_action(seen(lease_object(holder="me", acquireTime=None)), CONFIG, WALL)
    assert isinstance(action, RenewLease)
    assert action.body["spec"]["acquireTime"] == micro_time(WALL)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (None, "the Lease was deleted"),
        (lease_object(holder="other"), "the Lease is held by other"),
        (lease_object(holder=""), "the Lease is held by nobody"),
    ],
)
def test_leader_steps_down_when_the_lease_no_longer_names_it(obj: dict[str, Any] | None, reason: str) -> None:
    assert leader_action(seen(obj), CONFIG, WALL) == StepDown(reason)


def test_release_empties_the_holder_and_keeps_transitions() -> None:
    action = release_action(seen(lease_object(holder="me", rv="9", transitions=5)), CONFIG, WALL)
    assert isinstance(action, ReleaseLease)
    spec = action.body["spec"]
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 5
    assert action.body["metadata"]["resourceVersion"] == "9"


def test_release_never_clears_another_holder() -> None:
    assert release_action(seen(lease_object(holder="other")), CONFIG, WALL) is None
    assert release_action(seen(None), CONFIG, WALL) is None


# -- properties ---------------------------------------------------------------------------------------

HOLDERS = st.sampled_from(["", "me", "other", "third"])
TIMES = st.floats(min_value=0, max_value=1e6, allow_nan=False)
WALLS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    if draw(st.booleans()) and draw(st.booleans()):
        return Observation(None, draw(TIMES))
    obj = lease_object(
        holder=draw(HOLDERS),
        rv=str(draw(st.integers(1, 10**9))),
        duration=draw(st.one_of(st.none(), st.integers(1, 120))),
        transitions=draw(st.integers(0, 1000)),
    )
    return Observation(parse_lease(obj), draw(TIMES))


@given(observations(), st.floats(min_value=0, max_value=200, allow_nan=False), WALLS)
def test_candidate_decision_is_fully_determined_by_holder_and_expiry(
    observation: Observation, elapsed: float, wall: datetime
) -> None:
    now = observation.observed_at + elapsed
    action = candidate_action(observation, now, CONFIG, wall)
    lease = observation.lease
    if lease is None:
        assert isinstance(action, CreateLease)
        assert "resourceVersion" not in action.body["metadata"]
        return
    held = lease.record
    if held.holder == "me":
        assert isinstance(action, RenewLease)
        assert action.body["spec"]["leaseTransitions"] == held.transitions
    elif held.holder and now < expires_at(observation, CONFIG):
        assert action == Standby(held.holder, expires_at(observation, CONFIG))
    else:
        assert isinstance(action, TakeOverLease)
        assert action.body["spec"]["leaseTransitions"] == held.transitions + 1
    if not isinstance(action, Standby):
        # every write is conditional on the version we read
        assert action.body["metadata"]["resourceVersion"] == lease.resource_version


@given(observations(), st.floats(min_value=0, max_value=200, allow_nan=False), WALLS, WALLS)
def test_wall_time_never_changes_a_decision(
    observation: Observation, elapsed: float, wall: datetime, other_wall: datetime
) -> None:
    now = observation.observed_at + elapsed
    first = candidate_action(observation, now, CONFIG, wall)
    second = candidate_action(observation, now, CONFIG, other_wall)
    assert type(first) is type(second)
    if isinstance(first, Standby):
        assert first == second


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(min_value=0, max_value=10)), max_size=30))
def test_observed_at_never_moves_backwards(reads: list[tuple[int, float]]) -> None:
    """However reads interleave, the expiry clock only moves forward (expiry is never brought closer)."""
    observation: Observation | None = None
    now = 0.0
    for version, step in reads:
        now += step
        lease = None if version == 0 else parse_lease(lease_object(rv=str(version)))
        updated = observe(observation, lease, now)
        if observation is not None:
            assert updated.observed_at >= observation.observed_at
        observation = updated


# -- the safety argument, simulated --------------------------------------------------------------------


@dataclass
class Store:
    """The API server's view of one Lease: conditional writes by resourceVersion."""

    body: dict[str, Any] | None = None
    version: int = 0

    def read(self) -> ObservedLease | None:
        return None if self.body is None else parse_lease(self.body)

    def write(self, body: dict[str, Any], *, create: bool) -> dict[str, Any] | None:
        expected = body["metadata"].get("resourceVersion")
        if create and self.body is not None:
            return None
        if not create and (self.body is None or expected != str(self.version)):
            return None
        self.version += 1
        self.body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.body


@dataclass
class Simulation:
    """A leader and a standby sharing a Lease over a network that delays, drops and reorders.

    Renewal attempts may overlap (more adversarial than the elector, which runs one at a time).

    Events run in time order. Each process keeps the elector's state (observation, leading deadline)
    and decides only with the real pure functions; each has its own wall clock, arbitrarily skewed.
    """

    config: ElectionConfig
    delays: list[float]
    drops: list[bool]
    store: Store = field(default_factory=Store)
    queue: list[tuple[float, int, str, Any]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    leader_obs: Observation | None = None
    leader_until: float = 0.0
    leader_end: float | None = None
    standby_obs: Observation | None = None
    standby_start: float | None = None

    def delay(self) -> float:
        return self.delays[next(self.seq) % len(self.delays)]

    def dropped(self) -> bool:
        return self.drops[next(self.seq) % len(self.drops)]

    def at(self, when: float, what: str, payload: Any = None) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), what, payload))


def run_simulation(
    sim: Simulation, standby_polls: list[float], skew: float, horizon: float, leader_clock_rate: float = 1.0
) -> None:
    """`skew` offsets the standby's wall clock; `leader_clock_rate` 0 freezes the leader's wall clock."""
    config = sim.config
    leader = ElectionConfig(config.lease_name, config.namespace, "leader", *_timings(config))
    standby = ElectionConfig(config.lease_name, config.namespace, "standby", *_timings(config))
    wall_leader = datetime(2025, 1, 1, tzinfo=UTC)
    wall_standby = wall_leader + timedelta(seconds=skew)

    creation = candidate_action(Observation(None, 0.0), 0.0, leader, wall_leader)
    assert isinstance(creation, CreateLease)
    created = sim.store.write(creation.body, create=True)
    assert created is not None
    sim.leader_obs = Observation(parse_lease(created), 0.0)
    sim.leader_until = leading_until(0.0, leader)
    sim.at(config.retry_period, "leader-renew")
    sim.at(sim.leader_until, "leader-check")
    poll = 0.0
    for gap in standby_polls:
        poll += gap
        sim.at(poll, "standby-poll")

    while sim.queue:
        now, _, what, payload = heapq.heappop(sim.queue)
        if now > horizon or sim.standby_start is not None:
            break
        if what == "leader-check" and sim.leader_end is None and now >= sim.leader_until:
            sim.leader_end = sim.leader_until
        elif what == "leader-renew" and sim.leader_end is None:
            assert sim.leader_obs is not None
            wall = wall_leader + timedelta(seconds=now * leader_clock_rate)
            action = leader_action(sim.leader_obs, leader, wall)
            if isinstance(action, StepDown):
                sim.leader_end = now
                continue
            sim.at(now + sim.delay(), "leader-lands", (now, action.body))
            sim.at(now + config.retry_period, "leader-renew")
        elif what == "leader-lands":
            # A dropped request never lands; a dropped answer leaves the leader not knowing it renewed.
            if sim.dropped():
                continue
            sent, body = payload
            written = sim.store.write(body, create=False)
            if not sim.dropped():
                sim.at(now + sim.delay(), "leader-ack", (sent, written, sim.store.read()))
        elif what == "leader-ack" and sim.leader_end is None:
            sent, written, current = payload
            # An answer after the deadline is abandoned: the attempt was bounded by it.
            if now >= sim.leader_until:
                continue
            if written is not None:
                sim.leader_obs = Observation(parse_lease(written), now)
                sim.leader_until = leading_until(sent, leader)
                sim.at(sim.leader_until, "leader-check")
            else:
                sim.leader_obs = observe(sim.leader_obs, current, now)
        elif what == "standby-poll":
            sim.at(now + sim.delay(), "standby-reads")
        elif what == "standby-reads":
            sim.at(now + sim.delay(), "standby-sees", sim.store.read())
        elif what == "standby-sees":
            sim.standby_obs = observe(sim.standby_obs, payload, now)
            choice = candidate_action(sim.standby_obs, now, standby, wall_standby + timedelta(seconds=now))
            if isinstance(choice, (TakeOverLease, CreateLease)):
                sim.at(
                    now + sim.delay(), "standby-lands", (now, choice.body, isinstance(choice, CreateLease))
                )
        elif what == "standby-lands":
            decided, body, create = payload
            if sim.store.write(body, create=create) is not None:
                sim.at(now + sim.delay(), "standby-leads", decided)
        elif what == "standby-leads":
            sim.standby_start = now
            # The theorem: the standby decided to take over only after the leader had stopped.
            assert sim.leader_end is not None, f"standby leads at {now} while the leader still leads"
            assert payload >= sim.leader_end


def _timings(config: ElectionConfig) -> tuple[float, float, float]:
    return config.lease_duration, config.renew_deadline, config.retry_period


@settings(max_examples=300, deadline=None)
@given(
    timings=st.sampled_from([(15.0, 10.0, 2.0), (4.0, 3.0, 0.5), (2.0, 1.5, 0.4), (1.0, 0.7, 0.25)]),
    delays=st.lists(
        st.one_of(st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, 3.0)), min_size=1, max_size=20
    ),
    drops=st.lists(st.booleans(), min_size=1, max_size=10),
    polls=st.lists(st.floats(min_value=0.01, max_value=5.0), min_size=1, max_size=60),
    skew=st.floats(min_value=-1e7, max_value=1e7),
    leader_clock_rate=st.sampled_from([1.0, 0.0, -1.0, 1000.0]),
)
# A leader whose wall clock is frozen writes identical records; only the resourceVersion shows renewal.
@example(
    timings=(4.0, 3.0, 0.5), delays=[0.0], drops=[False], polls=[0.3] * 60, skew=0.0, leader_clock_rate=0.0
)
def test_standby_never_takes_over_while_the_leader_leads(
    timings: tuple[float, float, float],
    delays: list[float],
    drops: list[bool],
    polls: list[float],
    skew: float,
    leader_clock_rate: float,
) -> None:
    """Whatever the delays, drops and polling schedule, and whatever the wall clocks do (skewed, frozen,
    running backwards or fast), the standby decides to take over only after the leader stopped."""
    lease_duration, renew_deadline, retry_period = timings
    config = ElectionConfig("l", "n", "x", lease_duration, renew_deadline, retry_period)
    sim = Simulation(config, delays, drops)
    run_simulation(sim, polls, skew, horizon=120.0, leader_clock_rate=leader_clock_rate)
    if sim.standby_start is not None:
        assert sim.leader_end is not None


def test_simulation_exercises_takeover_after_a_silent_leader() -> None:
    """Sanity check of the model: when every renewal is lost, the standby does take over, after expiry."""
    config = ElectionConfig("l", "n", "x", 4.0, 3.0, 0.5)
    sim = Simulation(config, delays=[0.01], drops=[True])
    run_simulation(sim, [0.5] * 40, skew=0.0, horizon=60.0)
    assert sim.leader_end == pytest.approx(3.0)
    assert sim.standby_start is not None
    assert sim.standby_start >= 4.0
