"""The contract strings (spec 2.1, 2.2, 2.5, 3.10, 7) and the reading of labels and annotations (2.1, 4)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.spotalis import constants as c
from kubewright.spotalis.annotations import (
    AnnotationError,
    ConfigurationError,
    DurationError,
    Management,
    format_go_duration,
    is_enabled,
    parse_fallback_timeout,
    parse_go_duration,
    parse_go_duration_ns,
    parse_min_on_demand,
    parse_spot_percentage,
    parse_window,
    parse_window_duration,
    parse_window_values,
    parse_workload_configuration,
    read_workload,
)
from kubewright.spotalis.model import WorkloadConfiguration
from kubewright.spotalis.schedule import WindowLevel, WindowSetting, WindowState

pytestmark = pytest.mark.unit

ENABLED = {"spotalis.io/enabled": "true"}
MONDAY_0230 = datetime(2025, 1, 6, 2, 30, tzinfo=UTC)


# --- contract strings ---------------------------------------------------------------------------------------
def test_user_facing_keys_match_spec_2_1() -> None:
    assert c.ENABLED_LABEL == "spotalis.io/enabled"
    assert c.ENABLED_VALUE == "true"
    assert c.SPOT_PERCENTAGE_ANNOTATION == "spotalis.io/spot-percentage"
    assert c.MIN_ON_DEMAND_ANNOTATION == "spotalis.io/min-on-demand"
    assert c.DISRUPTION_SCHEDULE_ANNOTATION == "spotalis.io/disruption-schedule"
    assert c.DISRUPTION_DURATION_ANNOTATION == "spotalis.io/disruption-duration"
    assert c.FALLBACK_TIMEOUT_ANNOTATION == "spotalis.io/fallback-timeout"


def test_written_keys_match_spec_2_2() -> None:
    assert c.CAPACITY_INTENT_LABEL == "spotalis.io/capacity-intent"
    assert {t.value for t in c.CapacityType} == {"spot", "on-demand"}
    assert c.ADMISSION_ID_ANNOTATION == "spotalis.io/admission-id"
    assert c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION == "spotalis.io/spot-unavailable-until"
    assert c.SPOT_FALLBACKS_ANNOTATION == "spotalis.io/spot-fallbacks"


def test_endpoint_and_review_strings_match_spec_2_4_and_2_5() -> None:
    assert c.LEASE_NAME == "spotalis-controller-leader"
    assert c.WEBHOOK_NAME == "pod.spotalis.io"
    assert c.WEBHOOK_PATHS == ("/mutate", "/mutate-v1-pod")
    assert c.MAX_REVIEW_BYTES == 3 * 1024 * 1024
    assert c.REVIEW_UNSUPPORTED_KIND == "unsupported resource kind"
    assert c.REVIEW_NOT_MANAGED == "not managed by Spotalis"
    assert c.REVIEW_CONFIG_ERROR == "failed to get workload config"
    assert c.ERROR_CODE_INVALID_REQUEST == "INVALID_ADMISSION_REQUEST"
    assert c.ERROR_CODE_EMPTY_REQUEST == "EMPTY_ADMISSION_REQUEST"


def test_disruption_reasons_match_spec_3_10() -> None:
    assert {r.value for r in c.DisruptionReason} == {
        "allowed",
        "no-pdb",
        "min-available-violated",
        "max-unavailable-reached",
        "outside-disruption-window",
        "too-many-disrupted",
    }


def test_metric_names_match_spec_7_1() -> None:
    assert c.COMPAT_METRICS == (
        "spotalis_workload_replicas",
        "spotalis_reconciliations_total",
        "spotalis_reconciliation_errors_total",
        "spotalis_rebalancing_blocked_by_pdb_total",
        "spotalis_webhook_requests_total",
        "spotalis_webhook_mutations_total",
        "spotalis_controller_last_seen_timestamp",
        "spotalis_leader_election_status",
    )
    assert c.METRIC_WORKLOAD_DESIRED_REPLICAS == "spotalis_workload_desired_replicas"
    # The spec abbreviates the rest as `_leaving_replicas`, `_spot_unavailable`, ...: each ends so.
    suffixes = [
        "_leaving_replicas",
        "_spot_unavailable",
        "_spot_fallbacks_total",
        "_evictions_total",
        "_webhook_decisions_total",
        "_webhook_decision_duration_seconds",
        "_nodes",
        "_resync_duration_seconds",
        "_config_reload_total",
    ]
    assert len(c.NEW_METRICS) == 1 + len(suffixes)
    for name, suffix in zip(c.NEW_METRICS[1:], suffixes, strict=True):
        assert name.startswith("spotalis_")
        assert name.endswith(suffix)
    assert len(set(c.COMPAT_METRICS + c.NEW_METRICS)) == len(c.COMPAT_METRICS) + len(c.NEW_METRICS)


def test_metric_labels_and_values_match_spec_7_1() -> None:
    assert c.WORKLOAD_LABELS == ("namespace", "workload", "workload_type")
    assert (c.LABEL_REPLICA_TYPE, c.LABEL_ACTION, c.LABEL_RESULT, c.LABEL_ERROR_TYPE) == (
        "replica_type",
        "action",
        "result",
        "error_type",
    )
    assert (c.LABEL_PDB_NAME, c.LABEL_OPERATION, c.LABEL_RESOURCE_KIND) == (
        "pdb_name",
        "operation",
        "resource_kind",
    )
    assert (c.LABEL_MUTATION_TYPE, c.LABEL_CONTROLLER_NAME) == ("mutation_type", "controller_name")
    assert {a.value for a in c.ReconcileAction} == {"rebalance", "fallback", "floor_repair"}
    assert {r.value for r in c.ReconcileResult} == {"success", "error", "blocked", "dry_run"}
    assert {e.value for e in c.ReconcileErrorType} == {"reconciliation", "configuration", "api"}
    assert {r.value for r in c.WebhookResult} == {"mutated", "skipped", "error"}
    assert {"error", "restart_required"} <= {r.value for r in c.ConfigReloadResult}


def test_events_and_logs_match_spec_7_2() -> None:
    assert c.EVENT_COMPONENT == "spotalis-controller"
    assert c.EVENT_DEDUP_SECONDS == 600
    assert {e.value for e in c.WARNING_EVENTS} == {
        "ConfigurationError",
        "SpotFallback",
        "FloorRepair",
        "RebalanceBlockedByPDB",
    }
    assert {e.value for e in c.NORMAL_EVENTS} == {"RebalanceEviction", "SpotRestored"}
    assert set(c.EventReason) == c.WARNING_EVENTS | c.NORMAL_EVENTS
    fields = (
        c.LOG_CURRENT_SPOT,
        c.LOG_DESIRED_SPOT,
        c.LOG_CURRENT_ON_DEMAND,
        c.LOG_DESIRED_ON_DEMAND,
        c.LOG_SPOT_PERCENTAGE,
        c.LOG_MIN_ON_DEMAND,
        c.LOG_PDB,
        c.LOG_DISRUPTIONS_ALLOWED,
    )
    assert fields == (
        "current_spot",
        "desired_spot",
        "current_on_demand",
        "desired_on_demand",
        "spot_percentage",
        "min_on_demand",
        "pdb",
        "disruptions_allowed",
    )
    assert (c.MSG_REBALANCING, c.MSG_EVICTING, c.MSG_BLOCKED_BY_PDB) == (
        "Rebalancing deployment pods",
        "Evicting pod for rebalancing",
        "Rebalancing blocked by PDB",
    )
    assert c.MSG_OUTSIDE_WINDOW == "Outside disruption window, deferring rebalancing"
    assert c.MSG_IN_COOLDOWN == "In cooldown period, skipping rebalancing"


# --- the gate -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "enabled"),
    [
        ({"spotalis.io/enabled": "true"}, True),
        ({"spotalis.io/enabled": "True"}, False),
        ({"spotalis.io/enabled": "TRUE"}, False),
        ({"spotalis.io/enabled": " true"}, False),
        ({"spotalis.io/enabled": "1"}, False),
        ({"spotalis.io/enabled": ""}, False),
        ({"other": "true"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_gate_is_exactly_true(labels: dict[str, str] | None, enabled: bool) -> None:
    assert is_enabled(labels) is enabled


# --- single values ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("70", 70), ("70%", 70), ("+70", 70), ("+70%", 70), ("0", 0), ("100", 100), ("100%", 100), ("007", 7)],
)
def test_valid_spot_percentages(value: str, expected: int) -> None:
    assert parse_spot_percentage(value) == expected


@pytest.mark.parametrize(
    "value",
    [" 70", "70 ", "7.5", "0x10", "150", "101", "-1", "", "%", "+", "70%%", "\u0667\u0660", "70\n", "1e2"],
)
def test_invalid_spot_percentages_name_key_value_and_rule(value: str) -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_spot_percentage(value)
    message = str(caught.value)
    assert caught.value.key == "spotalis.io/spot-percentage"
    assert "spotalis.io/spot-percentage" in message
    assert repr(value) in message
    assert "0..100" in message


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("+3", 3), ("10000", 10_000), ("0004", 4)])
def test_valid_min_on_demand(value: str, expected: int) -> None:
    assert parse_min_on_demand(value) == expected


@pytest.mark.parametrize("value", ["10001", "3%", "-1", "1.0", " 1", "0x1", "", "one"])
def test_invalid_min_on_demand(value: str) -> None:
    with pytest.raises(AnnotationError, match=r"spotalis\.io/min-on-demand.*0\.\.10000"):
        parse_min_on_demand(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", timedelta(0)), ("0s", timedelta(0)), ("10s", timedelta(seconds=10)), ("5m", timedelta(minutes=5))],
)
def test_valid_fallback_timeouts(value: str, expected: timedelta) -> None:
    assert parse_fallback_timeout(value) == expected


@pytest.mark.parametrize("value", ["9s", "9.999s", "-10s", "500ns", "5", "5 m", "forever", ""])
def test_invalid_fallback_timeouts(value: str) -> None:
    with pytest.raises(AnnotationError, match=r"spotalis\.io/fallback-timeout.*at least 10s"):
        parse_fallback_timeout(value)


@pytest.mark.parametrize("value", ["0", "0s", "-1h", "1", "1d", "@2h"])
def test_invalid_window_durations(value: str) -> None:
    with pytest.raises(AnnotationError, match=r"spotalis\.io/disruption-duration"):
        parse_window_duration(value)


# --- Go durations -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("1h30m", 5_400_000_000_000),
        ("500ms", 500_000_000),
        ("2.5s", 2_500_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("1h1m1s1ms1us1ns", 3_661_001_001_001),
        ("1\u00b5s", 1_000),
        ("1\u03bcs", 1_000),
        ("0.000000001s", 1),
        ("0.0000000019s", 1),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("2562047h47m16.854775807s", (1 << 63) - 1),
    ],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "-",
        ".",
        ".s",
        "1",
        "1x",
        "1 s",
        " 1s",
        "1s ",
        "1S",
        "1H",
        "s",
        "1.s2",
        "9223372036854775808ns",
        "3000000h",
    ],
)
def test_go_duration_errors(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_go_duration_ns(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(microseconds=1), "1\u00b5s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(milliseconds=1500), "1.5s"),
        (timedelta(minutes=5), "5m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(hours=-2), "-2h0m0s"),
    ],
)
def test_format_like_go(value: timedelta, text: str) -> None:
    assert format_go_duration(value) == text


@given(st.timedeltas(min_value=timedelta(days=-100_000), max_value=timedelta(days=100_000)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_go_duration(format_go_duration(value)) == value


UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))), min_size=1, max_size=6))
def test_composite_durations_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    total = sum(amount * UNITS[unit] for amount, unit in parts)
    if total > 2**63 - 1:  # Go's Duration is an int64 of nanoseconds (about 292 years)
        with pytest.raises(DurationError, match="out of range"):
            parse_go_duration_ns(text)
    else:
        assert parse_go_duration_ns(text) == total


# --- fuzzing: only the typed errors ever escape -------------------------------------------------------------
NEAR_MISSES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="+-0123456789%.xsmhunµμ ", max_size=30),
    st.from_regex(r"\A[+-]?[0-9]{0,30}(\.[0-9]{0,30})?[a-zµμ%]{0,3}\Z"),
    st.integers().map(str),
)


@given(NEAR_MISSES)
def test_value_parsers_raise_only_annotation_errors(value: str) -> None:
    for parse in (parse_spot_percentage, parse_min_on_demand, parse_fallback_timeout, parse_window_duration):
        caught: AnnotationError | None = None
        try:
            parse(value)
        except AnnotationError as error:
            caught = error
        assert caught is None or caught.value == value


@given(NEAR_MISSES)
def test_go_duration_raises_only_duration_errors(value: str) -> None:
    with contextlib.suppress(DurationError):
        parse_go_duration(value)


@given(
    st.dictionaries(
        st.sampled_from([*c.WORKLOAD_ANNOTATIONS, "other"]),
        NEAR_MISSES | st.sampled_from(["0 2 * * *", "@daily", "2h", "70%", "+1"]),
    )
)
def test_workload_reading_never_raises(annotations: dict[str, str]) -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels=ENABLED,
        namespace_annotations=annotations,
        workload_labels=ENABLED,
        workload_annotations=annotations,
    )
    assert reading.management in {Management.MANAGED, Management.INVALID}
    assert (reading.config is None) == (reading.management is Management.INVALID)
    assert (reading.error is None) == (reading.management is Management.MANAGED)
    reading.window.is_open(MONDAY_0230)


@given(st.integers(0, 100), st.sampled_from(["{}", "+{}", "{}%", "+{}%", "0{}"]))
def test_every_valid_percentage_spelling(number: int, spelling: str) -> None:
    assert parse_spot_percentage(spelling.format(number)) == number


@given(st.integers(101, 10**30) | st.integers(max_value=-1))
def test_out_of_range_percentages_are_refused(number: int) -> None:
    with pytest.raises(AnnotationError):
        parse_spot_percentage(str(number))


# --- the workload configuration -----------------------------------------------------------------------------
def test_label_without_annotations_takes_workload_defaults() -> None:
    defaults = WorkloadConfiguration(spot_percentage=50, min_on_demand=1)
    config = parse_workload_configuration({}, defaults)
    assert (config.spot_percentage, config.min_on_demand, config.from_defaults) == (50, 1, True)
    assert parse_workload_configuration(None).from_defaults


def test_absent_keys_take_defaults_individually() -> None:
    defaults = WorkloadConfiguration(spot_percentage=50, min_on_demand=1)
    config = parse_workload_configuration({"spotalis.io/spot-percentage": "70%"}, defaults)
    assert (config.spot_percentage, config.min_on_demand, config.from_defaults) == (70, 1, False)
    assert config.fallback_timeout is None
    config = parse_workload_configuration({"spotalis.io/fallback-timeout": "0"}, defaults)
    assert config.fallback_timeout == timedelta(0)
    assert config.from_defaults


def test_one_invalid_annotation_invalidates_the_whole_config() -> None:
    annotations = {
        "spotalis.io/spot-percentage": "70",
        "spotalis.io/min-on-demand": "-1",
        "spotalis.io/fallback-timeout": "1s",
    }
    with pytest.raises(ConfigurationError) as caught:
        parse_workload_configuration(annotations)
    keys = [error.key for error in caught.value.errors]
    assert keys == ["spotalis.io/min-on-demand", "spotalis.io/fallback-timeout"]
    assert "'-1'" in str(caught.value)
    assert "'1s'" in str(caught.value)


def test_broken_window_does_not_unmanage_the_workload() -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels=ENABLED,
        namespace_annotations=None,
        workload_labels=ENABLED,
        workload_annotations={
            "spotalis.io/spot-percentage": "70",
            "spotalis.io/disruption-schedule": "@daily",
            "spotalis.io/disruption-duration": "1h",
        },
    )
    assert reading.managed
    assert reading.window.state is WindowState.SUSPENDED
    assert reading.window.error is not None
    assert "@daily" in reading.window.error
    assert not reading.window.is_open(MONDAY_0230)


@pytest.mark.parametrize(
    ("namespace_labels", "workload_labels", "management"),
    [
        (ENABLED, ENABLED, Management.MANAGED),
        ({"spotalis.io/enabled": "True"}, ENABLED, Management.NAMESPACE_NOT_ENABLED),
        (None, ENABLED, Management.NAMESPACE_NOT_ENABLED),
        (ENABLED, {"spotalis.io/enabled": "True"}, Management.WORKLOAD_NOT_ENABLED),
        (ENABLED, None, Management.WORKLOAD_NOT_ENABLED),
    ],
)
def test_gate_on_namespace_and_workload(
    namespace_labels: dict[str, str] | None, workload_labels: dict[str, str] | None, management: Management
) -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels=namespace_labels,
        namespace_annotations=None,
        workload_labels=workload_labels,
        # Annotations without the label: unmanaged [fix].
        workload_annotations={"spotalis.io/spot-percentage": "70"},
    )
    assert reading.management is management
    assert reading.managed is (management is Management.MANAGED)


def test_invalid_reading_carries_the_error() -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels=ENABLED,
        namespace_annotations=None,
        workload_labels=ENABLED,
        workload_annotations={"spotalis.io/spot-percentage": "150"},
    )
    assert reading.management is Management.INVALID
    assert reading.error is not None
    assert "150" in str(reading.error)


# --- windows ------------------------------------------------------------------------------------------------
WINDOW = {"spotalis.io/disruption-schedule": "0 2 * * *", "spotalis.io/disruption-duration": "1h"}
OTHER_WINDOW = {"spotalis.io/disruption-schedule": "0 12 * * *", "spotalis.io/disruption-duration": "1h"}


def _window_of(
    workload: dict[str, str] | None, namespace: dict[str, str] | None, operator: WindowSetting | None = None
) -> tuple[WindowState, WindowLevel | None]:
    reading = read_workload(
        namespace="team",
        namespace_labels=ENABLED,
        namespace_annotations=namespace,
        workload_labels=ENABLED,
        workload_annotations=workload,
        operator_window=operator,
    )
    return reading.window.state, reading.window.level


def test_window_precedence_workload_then_namespace_then_operator() -> None:
    operator = parse_window_values("0 4 * * *", "30m", WindowLevel.OPERATOR)
    assert _window_of(WINDOW, OTHER_WINDOW, operator) == (WindowState.SCHEDULED, WindowLevel.WORKLOAD)
    assert _window_of(None, OTHER_WINDOW, operator) == (WindowState.SCHEDULED, WindowLevel.NAMESPACE)
    assert _window_of(None, None, operator) == (WindowState.SCHEDULED, WindowLevel.OPERATOR)
    assert _window_of(None, None) == (WindowState.ALWAYS_OPEN, None)


def test_invalid_level_suspends_and_does_not_fall_through() -> None:
    half = {"spotalis.io/disruption-duration": "1h"}
    assert _window_of(half, WINDOW) == (WindowState.SUSPENDED, WindowLevel.WORKLOAD)
    assert _window_of(None, {**WINDOW, "spotalis.io/disruption-duration": "1d"}) == (
        WindowState.SUSPENDED,
        WindowLevel.NAMESPACE,
    )
    broken_operator = parse_window_values("0 4 * *", "30m", WindowLevel.OPERATOR)
    assert _window_of(None, None, broken_operator) == (WindowState.SUSPENDED, WindowLevel.OPERATOR)


def test_workload_window_is_evaluated_in_utc() -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels=ENABLED,
        namespace_annotations=None,
        workload_labels=ENABLED,
        workload_annotations=WINDOW,
    )
    assert reading.window.is_open(MONDAY_0230)
    assert not reading.window.is_open(MONDAY_0230 + timedelta(hours=1))


@pytest.mark.parametrize(
    ("annotations", "problem"),
    [
        ({"spotalis.io/disruption-schedule": "0 2 * * *"}, "without spotalis.io/disruption-duration"),
        ({"spotalis.io/disruption-duration": "1h"}, "without spotalis.io/disruption-schedule"),
        ({**WINDOW, "spotalis.io/disruption-schedule": "@daily"}, "@daily"),
        ({**WINDOW, "spotalis.io/disruption-schedule": "0 2 * *"}, "5 fields"),
        ({**WINDOW, "spotalis.io/disruption-duration": "0s"}, "not positive"),
        ({**WINDOW, "spotalis.io/disruption-duration": "1d"}, "unknown unit"),
    ],
)
def test_window_errors_say_what_is_wrong(annotations: dict[str, str], problem: str) -> None:
    setting = parse_window(annotations, WindowLevel.WORKLOAD)
    assert setting.window is None
    assert setting.error is not None
    assert problem in setting.error


def test_empty_window_values_count_as_unset() -> None:
    empty = {"spotalis.io/disruption-schedule": "", "spotalis.io/disruption-duration": ""}
    assert not parse_window(empty, WindowLevel.WORKLOAD).is_set
    assert not parse_window_values("", "", WindowLevel.OPERATOR).is_set


def test_operator_window_errors_name_config_keys() -> None:
    setting = parse_window_values(
        "0 2 * * *",
        None,
        WindowLevel.OPERATOR,
        schedule_key="operator.disruptionWindow.schedule",
        duration_key="operator.disruptionWindow.duration",
    )
    assert setting.error is not None
    assert "operator.disruptionWindow.duration" in setting.error


def test_window_keys_as_namespace_labels_are_ignored_with_a_warning() -> None:
    reading = read_workload(
        namespace="team",
        namespace_labels={**ENABLED, "spotalis.io/disruption-duration": "1h"},
        namespace_annotations=None,
        workload_labels=ENABLED,
        workload_annotations=None,
    )
    assert reading.window.state is WindowState.ALWAYS_OPEN
    assert len(reading.warnings) == 1
    assert "spotalis.io/disruption-duration" in reading.warnings[0]
    assert "annotations" in reading.warnings[0]


@pytest.mark.parametrize("digits", ["9" * 5000, "0" * 5000 + "1"])
def test_huge_numbers_are_refused_or_read_without_hitting_int_limits(digits: str) -> None:
    # Python refuses int() of more than 4300 digits; the parsers must bound lengths first.
    leading_zeros = digits.startswith("0")
    for parse in (parse_spot_percentage, parse_min_on_demand):
        if leading_zeros:
            assert parse(digits) == 1
        else:
            with pytest.raises(AnnotationError, match="above"):
                parse(digits)
    if leading_zeros:
        assert parse_go_duration_ns(digits + "s") == 1_000_000_000
    else:
        with pytest.raises(DurationError, match="out of range"):
            parse_go_duration_ns(digits + "s")
    assert parse_go_duration_ns("1." + digits + "s") == (1_000_000_000 if leading_zeros else 1_999_999_999)
