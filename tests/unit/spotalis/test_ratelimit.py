"""APIRateLimiter (spec 3.12) driven by a fake clock: bucket, back-off, Retry-After, breaker, keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from kubewright.runtime.clock import FakeClock
from kubewright.spotalis.ratelimit import (
    APIRateLimiter,
    BreakerState,
    KeyBackoff,
    RateLimitSettings,
    TokenBucket,
    WriteCircuitOpen,
    exponential,
    is_throttle_or_server_error,
    parse_retry_after,
)

pytestmark = pytest.mark.unit


def breaker_state(api: APIRateLimiter) -> BreakerState:
    """Read through a call so mypy does not narrow the property across state changes."""
    return api.breaker.state


def limiter(**settings: float) -> tuple[FakeClock, APIRateLimiter]:
    clock = FakeClock(start=1000.0)
    return clock, APIRateLimiter(clock, RateLimitSettings(**settings))  # type: ignore[arg-type]


# --- token bucket -------------------------------------------------------------------------------------------
def test_bucket_allows_the_burst_then_paces_at_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, qps=5, burst=3)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.2)
    assert bucket.try_take()
    assert not bucket.try_take()
    clock.advance(100)
    assert bucket.tokens == 3  # never more than the burst


def test_reservations_queue_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, qps=10, burst=1)
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)


async def test_acquire_waits_for_a_token() -> None:
    clock, api = limiter(qps=2, burst=1)
    await api.acquire()  # the burst
    waiter = asyncio.ensure_future(api.acquire())
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline == pytest.approx(1000.5)
    clock.advance(0.5)
    await asyncio.wait_for(waiter, 1)


async def test_default_settings_are_the_spec_defaults() -> None:
    _, api = limiter()
    assert (api.settings.qps, api.settings.burst) == (50, 100)
    assert sum(api.try_acquire() for _ in range(100)) == 100
    assert not api.try_acquire()


# --- back-off on 429 / 5xx ----------------------------------------------------------------------------------
def test_consecutive_failures_back_off_exponentially_up_to_five_minutes() -> None:
    clock, api = limiter()
    holds = []
    for _ in range(12):
        api.record_response(429)
        holds.append(api.hold_remaining())
        clock.advance(0.001)
    assert holds[:9] == pytest.approx([1, 2, 4, 8, 16, 32, 64, 128, 256], abs=0.01)
    assert holds[9:] == pytest.approx([300, 300, 300], abs=0.01)
    assert api.consecutive_failures == 12


@pytest.mark.parametrize("status", [429, 500, 502, 503, 599])
def test_throttles_and_server_errors_count(status: int) -> None:
    assert is_throttle_or_server_error(status)
    _, api = limiter()
    api.record_response(status)
    assert api.consecutive_failures == 1


@pytest.mark.parametrize("status", [200, 201, 404, 409, 403, 422])
def test_other_answers_end_the_streak(status: int) -> None:
    clock, api = limiter()
    api.record_response(503)
    api.record_response(503)
    assert api.hold_remaining() == pytest.approx(2)
    api.record_response(status)
    assert api.consecutive_failures == 0
    assert api.hold_remaining() == pytest.approx(2)  # a success does not cut a hold short
    clock.advance(2)
    api.record_response(503)
    assert api.hold_remaining() == pytest.approx(1)  # the streak started over


def test_failures_older_than_the_window_stop_counting() -> None:
    clock, api = limiter()
    for _ in range(5):
        api.record_response(503)
    clock.advance(61)
    assert api.consecutive_failures == 0
    api.record_response(503)
    assert api.hold_remaining() == pytest.approx(1)


def test_window_holds_at_most_1000_answers() -> None:
    clock, api = limiter()
    for _ in range(1500):
        api.record_response(200)
        clock.advance(0.01)
    assert api.requests_per_second == pytest.approx(1000 / 60)


def test_transport_errors_count_like_server_errors() -> None:
    _, api = limiter()
    api.record_transport_error()
    assert api.consecutive_failures == 1


def test_retry_after_is_honoured() -> None:
    clock, api = limiter()
    api.record_response(429, retry_after=30)
    assert api.hold_remaining() == pytest.approx(30)
    assert not api.try_acquire()
    clock.advance(30)
    assert api.try_acquire()
    api.record_response(503, retry_after=0.5)  # the second failure in a row: 2 s beats Retry-After
    assert api.hold_remaining() == pytest.approx(2)


async def test_acquire_waits_out_the_hold_then_takes_a_token() -> None:
    clock, api = limiter()
    api.record_response(429, retry_after=10)
    waiter = asyncio.ensure_future(api.acquire())
    await clock.wait_for_sleepers(1)
    clock.advance(9)
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    assert not waiter.done()
    clock.advance(1)
    await asyncio.wait_for(waiter, 1)


def test_exponential_is_bounded() -> None:
    assert exponential(1, 300, 0) == 0
    assert exponential(1, 300, 1) == 1
    assert exponential(1, 300, 10_000) == 300


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), (None, None), ("soon", None), ("-5", None), ("1.5", None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, datetime(2025, 1, 1, tzinfo=UTC)) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0


# --- write circuit breaker ----------------------------------------------------------------------------------
def test_breaker_opens_after_five_consecutive_failures() -> None:
    _, api = limiter()
    for _ in range(4):
        api.record_write_failure()
    assert breaker_state(api) is BreakerState.CLOSED
    api.record_write_success()  # resets the count
    for _ in range(4):
        api.record_write_failure()
    assert api.breaker.allow()
    api.record_write_failure()
    assert breaker_state(api) is BreakerState.OPEN
    with pytest.raises(WriteCircuitOpen) as caught:
        api.ensure_write_allowed()
    assert caught.value.retry_in == pytest.approx(30)


def test_breaker_half_opens_after_30s_and_closes_after_three_successes() -> None:
    clock, api = limiter()
    for _ in range(5):
        api.record_write_failure()
    clock.advance(29.9)
    assert not api.breaker.allow()
    assert api.breaker.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker_state(api) is BreakerState.HALF_OPEN
    api.ensure_write_allowed()
    api.record_write_success()
    api.record_write_success()
    assert breaker_state(api) is BreakerState.HALF_OPEN
    api.record_write_success()
    assert breaker_state(api) is BreakerState.CLOSED
    assert api.breaker.retry_in() == 0


def test_a_failure_while_half_open_reopens() -> None:
    clock, api = limiter()
    for _ in range(5):
        api.record_write_failure()
    clock.advance(30)
    api.record_write_success()
    api.record_write_failure()
    assert breaker_state(api) is BreakerState.OPEN
    clock.advance(30)
    assert breaker_state(api) is BreakerState.HALF_OPEN
    # The success count starts over after reopening.
    for _ in range(2):
        api.record_write_success()
    assert breaker_state(api) is BreakerState.HALF_OPEN


def test_late_failures_while_open_restart_the_recovery_wait() -> None:
    clock, api = limiter()
    for _ in range(5):
        api.record_write_failure()
    clock.advance(20)
    api.record_write_failure()
    clock.advance(20)
    assert breaker_state(api) is BreakerState.OPEN
    clock.advance(10)
    assert breaker_state(api) is BreakerState.HALF_OPEN


# --- per-key back-off ---------------------------------------------------------------------------------------
def test_key_backoff_doubles_from_one_second_to_sixty() -> None:
    keys = KeyBackoff(1, 60)
    assert [keys.next_delay("ns/web") for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert keys.failures("ns/web") == 9
    assert keys.next_delay("ns/api") == 1
    keys.forget("ns/web")
    assert keys.next_delay("ns/web") == 1
    assert len(keys) == 2


def test_limiter_exposes_key_backoff_with_spec_defaults() -> None:
    _, api = limiter()
    assert [api.keys.next_delay("k") for _ in range(8)][-1] == 60


@pytest.mark.parametrize(
    "settings",
    [
        {"qps": 0},
        {"burst": 0},
        {"base_backoff": 0},
        {"base_backoff": 10, "max_backoff": 5},
        {"key_max_backoff": 0.5},
        {"window": 0},
        {"window_entries": 0},
        {"breaker_failures": 0},
        {"breaker_recovery": 0},
    ],
)
def test_settings_are_validated(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimitSettings(**settings)  # type: ignore[arg-type]
