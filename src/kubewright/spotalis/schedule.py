"""Disruption windows: a 5-field UTC cron matcher, the window test and which level's window applies.

The window is open when some cron fire time f satisfies `now - D < f <= now` (upstream
`internal/annotations/disruption_window.go`, which used robfig/cron's 5-field parser). The grammar is
robfig's standard one: `*` and `?`, numbers, `a-b` ranges, `,` lists, `/n` steps (`a/n` means `a-max/n`),
month and weekday names; plus `7` for Sunday as crontab(5) allows. Descriptors such as `@daily` and
`TZ=` prefixes are refused: the spec fixes UTC and five fields, and a window that cannot be read
suspends rebalancing (fail closed) rather than silently meaning "always".

Day matching follows cron: when both day-of-month and day-of-week are restricted (neither starts with
`*` or `?`), a day matches if either does; otherwise both must.

Searches are bounded by `SEARCH_HORIZON`: any satisfiable schedule fires at least once in that span (the
rarest, 29 February, skips at most eight years across a non-leap century), so an unsatisfiable one such
as `0 0 31 2 *` ends the search instead of looping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

SEARCH_HORIZON = timedelta(days=9 * 366)
_MAX_NUMBER_DIGITS = 4

_MONTH_NAMES = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_WEEKDAY_NAMES = {name: index for index, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


class CronError(ValueError):
    """A cron expression that cannot be read; the message says which field and what is allowed."""

    def __init__(self, expression: str, problem: str) -> None:
        super().__init__(f"invalid cron expression {_shown(expression)}: {problem}")
        self.expression = expression
        self.problem = problem


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    # Weekday 7 is Sunday (crontab(5)); the value is folded onto 0 after parsing.
    alias_high: int | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day-of-week", 0, 6, _WEEKDAY_NAMES, alias_high=7),
)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 5-field schedule, evaluated in UTC. Build it with `parse_cron`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    day_of_month_star: bool
    day_of_week_star: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = day.isoweekday() % 7 in self.days_of_week
        if self.day_of_month_star or self.day_of_week_star:
            return dom and dow
        return dom or dow

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires in the minute containing `moment` (UTC)."""
        moment = _as_utc(moment)
        return moment.minute in self.minutes and moment.hour in self.hours and self.matches_day(moment.date())

    def latest_fire(self, at_or_before: datetime, after: datetime) -> datetime | None:
        """The latest fire time f with `after < f <= at_or_before`, or None."""
        end = _as_utc(at_or_before).replace(second=0, microsecond=0)
        after = _as_utc(after)
        hours = sorted(self.hours, reverse=True)
        minutes = sorted(self.minutes, reverse=True)
        for day in _days_backward(end.date(), max(after, _minus(end, SEARCH_HORIZON)).date()):
            if not self.matches_day(day):
                continue
            for hour in hours:
                if day == end.date() and hour > end.hour:
                    continue
                for minute in minutes:
                    if day == end.date() and hour == end.hour and minute > end.minute:
                        continue
                    fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    # Walking backwards, the first fire found is the latest; earlier ones are older still.
                    return fire if fire > after else None
        return None

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, or None if the schedule can never fire."""
        start = _plus(_as_utc(after).replace(second=0, microsecond=0), timedelta(minutes=1))
        if start <= after:
            return None
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        for day in _days_forward(start.date(), _plus(start, SEARCH_HORIZON).date()):
            if not self.matches_day(day):
                continue
            for hour in hours:
                if day == start.date() and hour < start.hour:
                    continue
                for minute in minutes:
                    if day == start.date() and hour == start.hour and minute < start.minute:
                        continue
                    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        return None


def parse_cron(expression: str) -> CronSchedule:
    """Parse a 5-field UTC cron expression; raises CronError naming the field and the rule."""
    text = expression.strip()
    if text.startswith("@"):
        raise CronError(expression, "descriptors such as @daily are not accepted; write five fields")
    if "=" in text:
        raise CronError(expression, "time zone prefixes are not accepted; schedules are always UTC")
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(
            expression,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    values: list[frozenset[int]] = []
    stars: list[bool] = []
    for spec, part in zip(_FIELDS, parts, strict=True):
        field_values, star = _parse_field(expression, spec, part)
        values.append(field_values)
        stars.append(star)
    return CronSchedule(
        expression=text,
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=values[4],
        day_of_month_star=stars[2],
        day_of_week_star=stars[4],
    )


def _parse_field(expression: str, spec: _Field, text: str) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for item in text.split(","):
        range_text, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(expression, spec, step_text, names=None)
            if step < 1:
                raise CronError(expression, f"{spec.name}: step {step_text!r} must be a positive number")
        high = spec.alias_high if spec.alias_high is not None else spec.high
        if range_text in {"*", "?"}:
            start, end = spec.low, spec.high
            star = True
        else:
            start_text, dash, end_text = range_text.partition("-")
            start = _number(expression, spec, start_text, spec.names)
            # `a/n` means `a-max/n` (robfig); a bare `a` is the single value.
            end = spec.high if slash else start
            if dash:
                end = _number(expression, spec, end_text, spec.names)
            for value in (start, end):
                if not spec.low <= value <= high:
                    raise CronError(
                        expression, f"{spec.name}: {value} is outside {spec.low}..{high} in {item!r}"
                    )
            if start > end:
                raise CronError(expression, f"{spec.name}: range {range_text!r} runs backwards")
        values.update(range(start, end + 1, step))
    if spec.alias_high is not None:
        values = {value % (spec.alias_high) for value in values}
    return frozenset(values), star


def _number(expression: str, spec: _Field, text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not text or len(text) > _MAX_NUMBER_DIGITS or not all("0" <= char <= "9" for char in text):
        allowed = "a number" + (" or a name (e.g. " + next(iter(names)) + ")" if names else "")
        raise CronError(expression, f"{spec.name}: {text!r} is not {allowed}")
    return int(text)


def window_open(schedule: CronSchedule, duration: timedelta, now: datetime) -> bool:
    """True when some fire time f satisfies now - duration < f <= now."""
    if duration <= timedelta(0):
        return False
    return schedule.latest_fire(now, _minus(_as_utc(now), duration)) is not None


def next_window_start(schedule: CronSchedule, duration: timedelta, now: datetime) -> datetime | None:
    """When the window is next open: `now` if it is open, else the next fire; None if it never fires.

    A controller outside the window requeues at this time (capped at its poll interval).
    """
    if window_open(schedule, duration, now):
        return _as_utc(now)
    if duration <= timedelta(0):
        return None
    return schedule.next_fire(now)


@dataclass(frozen=True)
class DisruptionWindow:
    schedule: CronSchedule
    duration: timedelta

    def is_open(self, now: datetime) -> bool:
        return window_open(self.schedule, self.duration, now)

    def next_start(self, now: datetime) -> datetime | None:
        return next_window_start(self.schedule, self.duration, now)


# --- which window applies (spec 3.10)  ----------------------------------------------------------------------
class WindowLevel(StrEnum):
    WORKLOAD = "workload"
    NAMESPACE = "namespace"
    OPERATOR = "operator"


@dataclass(frozen=True)
class WindowSetting:
    """What one level (workload annotations, Namespace annotations, operator config) says.

    `window` is set when the level is valid; `error` when it is set but unreadable (half a window, bad
    cron, bad duration). Neither means the level does not set a window.
    """

    level: WindowLevel
    window: DisruptionWindow | None = None
    error: str | None = None

    @property
    def is_set(self) -> bool:
        return self.window is not None or self.error is not None


class WindowState(StrEnum):
    ALWAYS_OPEN = "always-open"
    SCHEDULED = "scheduled"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class ResolvedWindow:
    """The window a workload's rebalancing obeys. Placement, fallback and floor repair ignore it."""

    state: WindowState
    level: WindowLevel | None = None
    window: DisruptionWindow | None = None
    error: str | None = None

    def is_open(self, now: datetime) -> bool:
        if self.window is not None:
            return self.window.is_open(now)
        return self.state is WindowState.ALWAYS_OPEN

    def next_open(self, now: datetime) -> datetime | None:
        """When rebalancing may next run; None while suspended or if the schedule never fires."""
        if self.window is not None:
            return self.window.next_start(now)
        return _as_utc(now) if self.state is WindowState.ALWAYS_OPEN else None


ALWAYS_OPEN = ResolvedWindow(WindowState.ALWAYS_OPEN)


def resolve_window(*settings: WindowSetting) -> ResolvedWindow:
    """The first level that sets a window decides, in the order given (workload, Namespace, operator).

    An invalid level suspends rebalancing and does not fall through: a typo in a workload's window must
    not widen it to the Namespace's (or to "always").
    """
    for setting in settings:
        if setting.error is not None:
            return ResolvedWindow(WindowState.SUSPENDED, setting.level, error=setting.error)
        if setting.window is not None:
            return ResolvedWindow(WindowState.SCHEDULED, setting.level, window=setting.window)
    return ALWAYS_OPEN


# --- helpers  -----------------------------------------------------------------------------------------------
def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a time zone aware datetime is required, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _minus(moment: datetime, duration: timedelta) -> datetime:
    try:
        return moment - duration
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _plus(moment: datetime, duration: timedelta) -> datetime:
    try:
        return moment + duration
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _days_backward(first: date, last: date) -> Iterator[date]:
    day = first
    while day >= last:
        yield day
        if day == date.min:
            return
        day -= timedelta(days=1)


def _days_forward(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        if day == date.max:
            return
        day += timedelta(days=1)


def _shown(text: str, limit: int = 64) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
