"""The cron matcher, the window test and its resolution, against a minute-by-minute reference."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubewright.spotalis.schedule import (
    ALWAYS_OPEN,
    CronError,
    CronSchedule,
    DisruptionWindow,
    WindowLevel,
    WindowSetting,
    WindowState,
    next_window_start,
    parse_cron,
    resolve_window,
    window_open,
)

pytestmark = pytest.mark.unit

MONDAY = datetime(2025, 1, 6, tzinfo=UTC)


def at(
    day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 1, year: int = 2025
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- parsing ------------------------------------------------------------------------------------------------
def test_fields_lists_ranges_steps() -> None:
    cron = parse_cron("*/15 1,3-5 10-20/5 */4 *")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {1, 3, 4, 5}
    assert cron.days_of_month == {10, 15, 20}
    assert cron.months == {1, 5, 9}
    assert cron.days_of_week == set(range(7))
    assert not cron.day_of_month_star
    assert cron.day_of_week_star


def test_single_value_with_step_runs_to_the_maximum() -> None:
    assert parse_cron("50/3 * * * *").minutes == {50, 53, 56, 59}
    assert parse_cron("* * * * 1/2").days_of_week == {1, 3, 5}


def test_names_are_case_insensitive() -> None:
    cron = parse_cron("0 0 * jan-MAR,Dec mon-fri")
    assert cron.months == {1, 2, 3, 12}
    assert cron.days_of_week == {1, 2, 3, 4, 5}


def test_sunday_is_zero_or_seven_and_question_mark_is_star() -> None:
    assert parse_cron("0 0 * * 7").days_of_week == {0}
    assert parse_cron("0 0 * * 5-7").days_of_week == {5, 6, 0}
    cron = parse_cron("0 0 ? * ?")
    assert cron.day_of_month_star
    assert cron.day_of_week_star


def test_surrounding_and_repeated_whitespace_is_accepted() -> None:
    assert parse_cron("  0\t2  *  * *  ").hours == {2}


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("@daily", "@daily"),
        ("@every 1h", "descriptors"),
        ("CRON_TZ=UTC 0 2 * * *", "UTC"),
        ("0 2 * *", "5 fields"),
        ("0 0 2 * * *", "5 fields"),
        ("", "5 fields"),
        ("60 * * * *", "minute: 60 is outside 0..59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day-of-month: 0"),
        ("* * 32 * *", "day-of-month: 32"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day-of-week: 8"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("1,,2 * * * *", "minute"),
        ("a * * * *", "not a number"),
        ("* * * foo *", "or a name"),
        ("1-2-3 * * * *", "minute"),
        ("1/2/3 * * * *", "minute"),
        ("00000 * * * *", "minute"),
        ("+5 * * * *", "minute"),
    ],
)
def test_errors_name_the_field(expression: str, problem: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert problem in str(caught.value)


@given(st.text(max_size=40) | st.text(alphabet="0123456789*/,-? @JANMONjanmon", max_size=30))
def test_parser_raises_only_cron_errors(expression: str) -> None:
    with contextlib.suppress(CronError):
        parse_cron(expression)


# --- matching -----------------------------------------------------------------------------------------------
def test_day_of_month_and_week_are_or_when_both_restricted() -> None:
    cron = parse_cron("0 0 13 * 5")  # the 13th, or any Friday
    assert cron.matches(at(13))  # Monday the 13th
    assert cron.matches(at(10))  # Friday the 10th
    assert not cron.matches(at(11))


def test_day_of_month_and_week_are_and_when_one_is_star() -> None:
    assert not parse_cron("0 0 13 * *").matches(at(14))
    assert parse_cron("0 0 * * 1").matches(at(13))
    # A stepped star is still a star (cron's and robfig's rule): odd days AND Mondays.
    stepped_star = parse_cron("0 0 */2 * 1")
    assert stepped_star.matches(at(13))
    assert not stepped_star.matches(at(6))
    assert not stepped_star.matches(at(7))
    # The same days written as a range are restricted: odd days OR Mondays.
    restricted = parse_cron("0 0 1-31/2 * 1")
    assert restricted.matches(at(6))
    assert restricted.matches(at(7))
    assert not restricted.matches(at(8))


def test_matches_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_cron("* * * * *").matches(datetime(2025, 1, 1))


def test_other_time_zones_are_converted_to_utc() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.matches(datetime(2025, 1, 6, 4, 0, tzinfo=timezone(timedelta(hours=2))))


# --- the window ---------------------------------------------------------------------------------------------
def test_window_is_now_minus_duration_exclusive_to_now_inclusive() -> None:
    cron = parse_cron("0 2 * * *")
    hour = timedelta(hours=1)
    assert window_open(cron, hour, at(6, 2, 0))  # f == now
    assert window_open(cron, hour, at(6, 2, 59, 59))
    assert not window_open(cron, hour, at(6, 3, 0))  # now - D == f: closed
    assert not window_open(cron, hour, at(6, 1, 59, 59))


def test_windows_longer_than_the_period_are_always_open() -> None:
    assert all(
        window_open(parse_cron("0 * * * *"), timedelta(hours=2), MONDAY + timedelta(minutes=m))
        for m in range(180)
    )


def test_weekday_window_across_midnight() -> None:
    cron = parse_cron("0 22 * * fri")
    window = timedelta(hours=4)
    assert window_open(cron, window, at(10, 23))
    assert window_open(cron, window, at(11, 1, 59))  # Saturday early morning, still Friday's window
    assert not window_open(cron, window, at(11, 2, 0))


def test_rare_and_impossible_schedules() -> None:
    leap = parse_cron("0 0 29 2 *")
    assert leap.next_fire(at(1, year=2097)) == at(29, month=2, year=2104)
    assert window_open(leap, timedelta(days=3000), at(1, year=2104))  # 2096-02-29 is within 3000 days
    impossible = parse_cron("0 0 31 2 *")
    assert impossible.next_fire(MONDAY) is None
    assert not window_open(impossible, timedelta(days=10_000), MONDAY)
    assert next_window_start(impossible, timedelta(hours=1), MONDAY) is None


def test_non_positive_durations_never_open() -> None:
    cron = parse_cron("* * * * *")
    assert not window_open(cron, timedelta(0), MONDAY)
    assert not window_open(cron, timedelta(seconds=-1), MONDAY)
    assert next_window_start(cron, timedelta(0), MONDAY) is None


def test_huge_durations_do_not_overflow() -> None:
    assert window_open(parse_cron("0 0 1 1 *"), timedelta(days=999_999_999), at(2, year=2))
    assert parse_cron("59 23 31 12 *").next_fire(datetime.max.replace(tzinfo=UTC)) is None


def test_next_window_start() -> None:
    cron = parse_cron("30 2 * * mon")
    assert next_window_start(cron, timedelta(hours=1), at(6, 3)) == at(6, 3)  # open now
    assert next_window_start(cron, timedelta(hours=1), at(6, 3, 30)) == at(13, 2, 30)
    assert next_window_start(cron, timedelta(hours=1), at(6, 2, 29, 59)) == at(6, 2, 30)


# --- against a brute-force reference ------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldCase:
    text: str
    values: frozenset[int]
    star: bool


def _field(low: int, high: int) -> st.SearchStrategy[FieldCase]:
    def one_item(draw: st.DrawFn) -> tuple[str, set[int], bool]:
        kind = draw(st.sampled_from(["star", "value", "range", "star-step", "range-step", "value-step"]))
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 1))
        if kind == "star":
            return "*", set(range(low, high + 1)), True
        if kind == "star-step":
            return f"*/{step}", set(range(low, high + 1, step)), True
        if kind == "value":
            return str(a), {a}, False
        if kind == "range":
            return f"{a}-{b}", set(range(a, b + 1)), False
        if kind == "range-step":
            return f"{a}-{b}/{step}", set(range(a, b + 1, step)), False
        return f"{a}/{step}", set(range(a, high + 1, step)), False

    @st.composite
    def build(draw: st.DrawFn) -> FieldCase:
        items = [one_item(draw) for _ in range(draw(st.integers(1, 3)))]
        return FieldCase(
            ",".join(text for text, _, _ in items),
            frozenset().union(*(values for _, values, _ in items)),
            any(star for _, _, star in items),
        )

    return build()


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, tuple[FieldCase, ...]]:
    fields = (
        draw(_field(0, 59)),
        draw(_field(0, 23)),
        draw(_field(1, 31)),
        draw(_field(1, 12)),
        draw(_field(0, 6)),
    )
    return " ".join(f.text for f in fields), fields


def reference_matches(fields: tuple[FieldCase, ...], moment: datetime) -> bool:
    minute, hour, dom, month, dow = fields
    weekday = moment.isoweekday() % 7
    dom_ok, dow_ok = moment.day in dom.values, weekday in dow.values
    day_ok = (dom_ok and dow_ok) if (dom.star or dow.star) else (dom_ok or dow_ok)
    return (
        moment.minute in minute.values
        and moment.hour in hour.values
        and moment.month in month.values
        and day_ok
    )


def reference_window_open(cron: CronSchedule, duration: timedelta, now: datetime) -> bool:
    minute = now.replace(second=0, microsecond=0)
    while minute > now - duration:
        if cron.matches(minute):
            return True
        minute -= timedelta(minutes=1)
    return False


MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300)
@given(schedules(), MOMENTS)
def test_matcher_agrees_with_the_field_sets(
    case: tuple[str, tuple[FieldCase, ...]], moment: datetime
) -> None:
    expression, fields = case
    cron = parse_cron(expression)
    assert (cron.minutes, cron.hours, cron.days_of_month, cron.months, cron.days_of_week) == tuple(
        f.values for f in fields
    )
    assert cron.matches(moment) == reference_matches(fields, moment)


@st.composite
def dense_schedules(draw: st.DrawFn) -> str:
    """Schedules that fire often enough that a minute-by-minute search over days finds fires."""
    minute = draw(st.sampled_from(["*", "0", "*/7", "15,45", "59", "10-20"]))
    hour = draw(st.sampled_from(["*", "2", "*/5", "22-23", "0,12"]))
    dom = draw(st.sampled_from(["*", "1-15", "*/3", "6", "31"]))
    month = draw(st.sampled_from(["*", "1-6", "feb", "*/2"]))
    dow = draw(st.sampled_from(["*", "mon-fri", "0", "6", "3"]))
    return f"{minute} {hour} {dom} {month} {dow}"


@settings(max_examples=150, deadline=None)
@given(
    dense_schedules() | schedules().map(lambda case: case[0]),
    MOMENTS,
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=2)),
)
def test_window_open_agrees_with_minute_by_minute_reference(
    expression: str, now: datetime, duration: timedelta
) -> None:
    cron = parse_cron(expression)
    assert window_open(cron, duration, now) == reference_window_open(cron, duration, now)


@settings(max_examples=150, deadline=None)
@given(dense_schedules(), MOMENTS)
def test_next_fire_agrees_with_minute_by_minute_reference(expression: str, now: datetime) -> None:
    cron = parse_cron(expression)
    expected = None
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(3 * 24 * 60):
        if cron.matches(minute):
            expected = minute
            break
        minute += timedelta(minutes=1)
    found = cron.next_fire(now)
    if expected is not None:
        assert found == expected
    else:
        assert found is None or found > now + timedelta(days=3)


@settings(max_examples=150, deadline=None)
@given(dense_schedules(), MOMENTS, st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=1)))
def test_next_window_start_is_open_and_nothing_earlier_is(
    expression: str, now: datetime, duration: timedelta
) -> None:
    cron = parse_cron(expression)
    start = next_window_start(cron, duration, now)
    if start is None:
        return
    assert start >= now
    assert window_open(cron, duration, start)
    if start > now:
        # Closed until then: the last minute boundary before the start is still closed.
        assert not window_open(cron, duration, start - timedelta(microseconds=1))


# --- resolution ---------------------------------------------------------------------------------------------
NIGHTLY = DisruptionWindow(parse_cron("0 2 * * *"), timedelta(hours=1))
NOON = DisruptionWindow(parse_cron("0 12 * * *"), timedelta(hours=1))


def test_first_level_that_sets_a_window_wins() -> None:
    resolved = resolve_window(
        WindowSetting(WindowLevel.WORKLOAD),
        WindowSetting(WindowLevel.NAMESPACE, window=NOON),
        WindowSetting(WindowLevel.OPERATOR, window=NIGHTLY),
    )
    assert (resolved.state, resolved.level, resolved.window) == (
        WindowState.SCHEDULED,
        WindowLevel.NAMESPACE,
        NOON,
    )
    assert resolved.is_open(at(6, 12, 30))
    assert not resolved.is_open(at(6, 2, 30))
    assert resolved.next_open(at(6, 14)) == at(7, 12)


def test_invalid_level_suspends() -> None:
    resolved = resolve_window(
        WindowSetting(WindowLevel.WORKLOAD, error="bad"),
        WindowSetting(WindowLevel.NAMESPACE, window=NOON),
    )
    assert (resolved.state, resolved.level, resolved.error) == (
        WindowState.SUSPENDED,
        WindowLevel.WORKLOAD,
        "bad",
    )
    assert not resolved.is_open(at(6, 12, 30))
    assert resolved.next_open(at(6, 12, 30)) is None


def test_no_level_means_always_open() -> None:
    resolved = resolve_window(WindowSetting(WindowLevel.WORKLOAD), WindowSetting(WindowLevel.OPERATOR))
    assert resolved == ALWAYS_OPEN
    assert resolved.is_open(MONDAY)
    assert resolved.next_open(MONDAY) == MONDAY
    assert resolve_window() == ALWAYS_OPEN
