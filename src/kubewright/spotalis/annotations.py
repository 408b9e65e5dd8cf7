"""Reading what app teams wrote: the gate label, the workload annotations and the disruption window.

The rules are spec 2.1 and section 4:
- The gate is the label `spotalis.io/enabled` with exactly `true` on the Namespace and on the workload
  (upstream also accepted `True`, and then its parser evicted every spot pod).
- The ratio annotations keep upstream's grammar (`70`, `+70` and `70%` are valid; ` 70`, `7.5`, `0x10`,
  `150` and `-1` are not) and one invalid annotation invalidates the whole configuration, so the
  workload is left alone instead of being driven by half of what its owner asked for.
- A gated workload without annotations is managed with `workloadDefaults`, in the webhook and the
  controller alike (upstream's controller forced those to on-demand while its webhook skipped them).
- A broken disruption window does not unmanage the workload: it suspends rebalancing only (fail closed)
  while placement, fallback and floor repair go on.

Durations use Go's `time.ParseDuration` syntax (`1h30m`, `500ms`, `2.5s`); `parse_go_duration` is also
what the config loader uses, so annotations and config files agree on one grammar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from kubewright.spotalis import constants as c
from kubewright.spotalis.model import WorkloadConfiguration
from kubewright.spotalis.schedule import (
    CronError,
    DisruptionWindow,
    ResolvedWindow,
    WindowLevel,
    WindowSetting,
    parse_cron,
    resolve_window,
)

MAX_SPOT_PERCENTAGE = 100
MAX_MIN_ON_DEMAND = 10_000
MIN_FALLBACK_TIMEOUT = timedelta(seconds=10)

SPOT_PERCENTAGE_RULE = "an integer 0..100, optionally with a leading '+' or a trailing '%' (e.g. 70 or 70%)"
MIN_ON_DEMAND_RULE = "an integer 0..10000, optionally with a leading '+' (e.g. 2)"
FALLBACK_TIMEOUT_RULE = "a Go duration of at least 10s (e.g. 5m), or 0 to turn fallback off"
WINDOW_DURATION_RULE = "a positive Go duration (e.g. 2h or 1h30m)"
CRON_RULE = "a 5-field UTC cron expression (minute hour day-of-month month day-of-week, e.g. '0 2 * * 1-5')"

_SPOT_PERCENTAGE = re.compile(r"\+?[0-9]+%?")
_MIN_ON_DEMAND = re.compile(r"\+?[0-9]+")


class AnnotationError(ValueError):
    """One unreadable value: which key, what it holds, why it is wrong and what is allowed."""

    def __init__(self, key: str, value: str, problem: str, allowed: str) -> None:
        super().__init__(f"{key}: invalid value {_shown(value)} ({problem}); allowed: {allowed}")
        self.key = key
        self.value = value
        self.problem = problem
        self.allowed = allowed


class ConfigurationError(ValueError):
    """A workload whose annotations cannot be read; it stays unmanaged (event `ConfigurationError`)."""

    def __init__(self, errors: tuple[AnnotationError, ...]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


class DurationError(ValueError):
    """Text that Go's time.ParseDuration would refuse."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid duration {_shown(text)}: {problem}")
        self.text = text
        self.problem = problem


# --- Go durations -------------------------------------------------------------------------------------------
_UNIT_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NANOSECONDS = (1 << 63) - 1
_DIGITS = frozenset("0123456789")
# Go keeps at most int64 precision of a fraction; more digits cannot change the nanoseconds.
_MAX_FRACTION_DIGITS = 19


def parse_go_duration_ns(text: str) -> int:
    """Nanoseconds of a Go duration string, exactly as `time.ParseDuration` reads it (sign included)."""
    rest = text
    negative = False
    if rest[:1] in {"+", "-"}:
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(text, "empty")
    total = 0
    while rest:
        whole, rest = _leading(rest, _DIGITS)
        fraction = ""
        if rest.startswith("."):
            fraction, rest = _leading(rest[1:], _DIGITS)
        if not whole and not fraction:
            raise DurationError(text, "expected a number")
        unit, rest = _leading_unit(rest)
        if not unit:
            raise DurationError(text, "missing unit (ns, us, ms, s, m or h)")
        if unit not in _UNIT_NANOSECONDS:
            raise DurationError(text, f"unknown unit {unit!r}")
        scale = _UNIT_NANOSECONDS[unit]
        whole = whole.lstrip("0")
        if len(whole) > len(str(_MAX_NANOSECONDS)):
            raise DurationError(text, "out of range")
        value = int(whole or "0") * scale
        fraction = fraction[:_MAX_FRACTION_DIGITS]
        if fraction:
            value += int(fraction) * scale // 10 ** len(fraction)
        total += value
        if total > _MAX_NANOSECONDS + (1 if negative else 0):
            raise DurationError(text, "out of range")
    return -total if negative else total


def parse_go_duration(text: str) -> timedelta:
    """A Go duration as a timedelta (sub-microsecond parts are truncated toward zero)."""
    nanoseconds = parse_go_duration_ns(text)
    micro = abs(nanoseconds) // 1_000
    return timedelta(microseconds=-micro if nanoseconds < 0 else micro)


def format_go_duration(value: timedelta) -> str:
    """Render like Go's Duration.String (`1h30m0s`, `500ms`, `0s`), for messages and check-config."""
    micro = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    if micro == 0:
        return "0s"
    if micro < 1_000:
        return f"{sign}{micro}\u00b5s"
    if micro < 1_000_000:
        return f"{sign}{_decimal(micro, 1_000)}ms"
    hours, micro = divmod(micro, 3_600_000_000)
    minutes, micro = divmod(micro, 60_000_000)
    text = f"{_decimal(micro, 1_000_000)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(amount: int, unit: int) -> str:
    whole, part = divmod(amount, unit)
    if not part:
        return str(whole)
    digits = str(part).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _leading(text: str, allowed: frozenset[str]) -> tuple[str, str]:
    index = 0
    while index < len(text) and text[index] in allowed:
        index += 1
    return text[:index], text[index:]


def _leading_unit(text: str) -> tuple[str, str]:
    index = 0
    while index < len(text) and text[index] != "." and text[index] not in _DIGITS:
        index += 1
    return text[:index], text[index:]


# --- single values ------------------------------------------------------------------------------------------
def parse_spot_percentage(value: str, key: str = c.SPOT_PERCENTAGE_ANNOTATION) -> int:
    if not _SPOT_PERCENTAGE.fullmatch(value):
        raise AnnotationError(key, value, "not an integer percentage", SPOT_PERCENTAGE_RULE)
    return _bounded(key, value, value.lstrip("+").rstrip("%"), MAX_SPOT_PERCENTAGE, SPOT_PERCENTAGE_RULE)


def parse_min_on_demand(value: str, key: str = c.MIN_ON_DEMAND_ANNOTATION) -> int:
    if not _MIN_ON_DEMAND.fullmatch(value):
        raise AnnotationError(key, value, "not a non-negative integer", MIN_ON_DEMAND_RULE)
    return _bounded(key, value, value.lstrip("+"), MAX_MIN_ON_DEMAND, MIN_ON_DEMAND_RULE)


def parse_fallback_timeout(value: str, key: str = c.FALLBACK_TIMEOUT_ANNOTATION) -> timedelta:
    """`0` turns fallback off for the workload; anything else must be at least 10s."""
    timeout = _duration(key, value, FALLBACK_TIMEOUT_RULE)
    if timeout == timedelta(0) and parse_go_duration_ns(value) == 0:
        return timeout
    if timeout < MIN_FALLBACK_TIMEOUT:
        raise AnnotationError(key, value, "below 10s", FALLBACK_TIMEOUT_RULE)
    return timeout


def parse_window_duration(value: str, key: str = c.DISRUPTION_DURATION_ANNOTATION) -> timedelta:
    duration = _duration(key, value, WINDOW_DURATION_RULE)
    if duration <= timedelta(0):
        raise AnnotationError(key, value, "not positive", WINDOW_DURATION_RULE)
    return duration


def _duration(key: str, value: str, rule: str) -> timedelta:
    try:
        return parse_go_duration(value)
    except DurationError as error:
        raise AnnotationError(key, value, error.problem, rule) from None


def _bounded(key: str, value: str, digits: str, maximum: int, rule: str) -> int:
    significant = digits.lstrip("0")
    if len(significant) > len(str(maximum)) or int(significant or "0") > maximum:
        raise AnnotationError(key, value, f"above {maximum}", rule)
    return int(significant or "0")


# --- the workload's configuration ---------------------------------------------------------------------------
DEFAULT_WORKLOAD_CONFIGURATION = WorkloadConfiguration()


def is_enabled(labels: Mapping[str, str] | None) -> bool:
    """The gate: `spotalis.io/enabled` is exactly `true` (not `True`, not ` true`)."""
    return labels is not None and labels.get(c.ENABLED_LABEL) == c.ENABLED_VALUE


def parse_workload_configuration(
    annotations: Mapping[str, str] | None,
    defaults: WorkloadConfiguration = DEFAULT_WORKLOAD_CONFIGURATION,
) -> WorkloadConfiguration:
    """The ratio and fallback settings of a gated workload; raises ConfigurationError listing every bad key.

    Absent annotations take `defaults` (the operator's `workloadDefaults`); the window annotations are
    read separately (`workload_window`) because a bad window does not unmanage the workload.
    """
    annotations = annotations or {}
    errors: list[AnnotationError] = []
    spot_percentage = defaults.spot_percentage
    min_on_demand = defaults.min_on_demand
    fallback_timeout = defaults.fallback_timeout
    if (raw := annotations.get(c.SPOT_PERCENTAGE_ANNOTATION)) is not None:
        try:
            spot_percentage = parse_spot_percentage(raw)
        except AnnotationError as error:
            errors.append(error)
    if (raw := annotations.get(c.MIN_ON_DEMAND_ANNOTATION)) is not None:
        try:
            min_on_demand = parse_min_on_demand(raw)
        except AnnotationError as error:
            errors.append(error)
    if (raw := annotations.get(c.FALLBACK_TIMEOUT_ANNOTATION)) is not None:
        try:
            fallback_timeout = parse_fallback_timeout(raw)
        except AnnotationError as error:
            errors.append(error)
    if errors:
        raise ConfigurationError(tuple(errors))
    from_defaults = (
        c.SPOT_PERCENTAGE_ANNOTATION not in annotations and c.MIN_ON_DEMAND_ANNOTATION not in annotations
    )
    return WorkloadConfiguration(
        spot_percentage=spot_percentage,
        min_on_demand=min_on_demand,
        fallback_timeout=fallback_timeout,
        from_defaults=from_defaults,
    )


# --- disruption windows -------------------------------------------------------------------------------------
def parse_window_values(
    schedule: str | None,
    duration: str | None,
    level: WindowLevel,
    schedule_key: str = c.DISRUPTION_SCHEDULE_ANNOTATION,
    duration_key: str = c.DISRUPTION_DURATION_ANNOTATION,
) -> WindowSetting:
    """One level's window from its two strings. Empty counts as unset, as upstream's map lookup did.

    Both or neither: half a window is an error (it suspends rebalancing), never "no window".
    """
    schedule = schedule or None
    duration = duration or None
    if schedule is None and duration is None:
        return WindowSetting(level)
    if schedule is None or duration is None:
        missing, present = (schedule_key, duration_key) if schedule is None else (duration_key, schedule_key)
        return WindowSetting(level, error=f"{present} is set without {missing}; set both or neither")
    try:
        cron = parse_cron(schedule)
    except CronError as error:
        return WindowSetting(
            level, error=str(AnnotationError(schedule_key, schedule, error.problem, CRON_RULE))
        )
    try:
        length = parse_window_duration(duration, duration_key)
    except AnnotationError as error:
        return WindowSetting(level, error=str(error))
    return WindowSetting(level, window=DisruptionWindow(cron, length))


def parse_window(annotations: Mapping[str, str] | None, level: WindowLevel) -> WindowSetting:
    annotations = annotations or {}
    return parse_window_values(
        annotations.get(c.DISRUPTION_SCHEDULE_ANNOTATION),
        annotations.get(c.DISRUPTION_DURATION_ANNOTATION),
        level,
    )


def namespace_label_warnings(namespace: str, labels: Mapping[str, str] | None) -> tuple[str, ...]:
    """Window keys set as Namespace labels are ignored (labels cannot hold a cron); say so once."""
    return tuple(
        f"Namespace {namespace}: label {key} is ignored; disruption windows are read from annotations"
        for key in c.WINDOW_ANNOTATIONS
        if labels and key in labels
    )


# --- the whole reading --------------------------------------------------------------------------------------
class Management(StrEnum):
    MANAGED = "managed"
    NAMESPACE_NOT_ENABLED = "namespace-not-enabled"
    WORKLOAD_NOT_ENABLED = "workload-not-enabled"
    INVALID = "invalid"


@dataclass(frozen=True)
class WorkloadReading:
    """Everything the webhook and the controller need from a workload's and its Namespace's metadata.

    `config` is set only when managed; `error` only when invalid. `window` is the resolved rebalancing
    window (always open unless managed). `warnings` are for the log, once per content.
    """

    management: Management
    config: WorkloadConfiguration | None = None
    error: ConfigurationError | None = None
    window: ResolvedWindow = field(default_factory=resolve_window)
    warnings: tuple[str, ...] = ()

    @property
    def managed(self) -> bool:
        return self.management is Management.MANAGED


def read_workload(
    *,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    namespace_annotations: Mapping[str, str] | None,
    workload_labels: Mapping[str, str] | None,
    workload_annotations: Mapping[str, str] | None,
    defaults: WorkloadConfiguration = DEFAULT_WORKLOAD_CONFIGURATION,
    operator_window: WindowSetting | None = None,
) -> WorkloadReading:
    """Gate, configuration and window of one workload, in the order spec 2.1 and 3.10 give."""
    warnings = namespace_label_warnings(namespace, namespace_labels)
    if not is_enabled(namespace_labels):
        return WorkloadReading(Management.NAMESPACE_NOT_ENABLED, warnings=warnings)
    if not is_enabled(workload_labels):
        return WorkloadReading(Management.WORKLOAD_NOT_ENABLED, warnings=warnings)
    try:
        config = parse_workload_configuration(workload_annotations, defaults)
    except ConfigurationError as error:
        return WorkloadReading(Management.INVALID, error=error, warnings=warnings)
    window = resolve_window(
        parse_window(workload_annotations, WindowLevel.WORKLOAD),
        parse_window(namespace_annotations, WindowLevel.NAMESPACE),
        operator_window or WindowSetting(WindowLevel.OPERATOR),
    )
    return WorkloadReading(Management.MANAGED, config=config, window=window, warnings=warnings)


def _shown(text: str, limit: int = 64) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
