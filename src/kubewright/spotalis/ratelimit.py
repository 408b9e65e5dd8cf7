"""Client-side API load management (spec 3.12): what the operator does before and after each request.

- A token bucket (`qps`/`burst`) paces non-watch requests; a `Retry-After` from the server holds all
  requests until it has passed.
- Consecutive 429/5xx answers back off 1s*2^(n-1), capped at 5m. Answers are kept for 60 s, at most
  1000 of them (upstream `pkg/apis/runtime_state.go`), so an old burst of errors stops counting.
- Writes pass a circuit breaker (upstream `pkg/utils/rate_limiter.go`): 5 consecutive failures open it,
  30 s later it is half-open, 3 successes close it and any failure reopens it.
- Work-queue keys back off 1s -> 60s per key.

Time comes from an injected `Clock` (monotonic seconds), so tests drive it with `FakeClock`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from kubewright.runtime.clock import Clock

TOO_MANY_REQUESTS = 429
_SERVER_ERROR_MIN = 500
_SERVER_ERROR_MAX = 599


@dataclass(frozen=True)
class RateLimitSettings:
    qps: float = 50.0
    burst: int = 100
    base_backoff: float = 1.0
    max_backoff: float = 300.0
    window: float = 60.0
    window_entries: int = 1000
    breaker_failures: int = 5
    breaker_recovery: float = 30.0
    breaker_successes: int = 3
    key_base_backoff: float = 1.0
    key_max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.qps <= 0 or self.burst < 1:
            raise ValueError(
                f"rate limit: qps must be > 0 and burst >= 1, got qps={self.qps}, burst={self.burst}"
            )
        if (
            not 0 < self.base_backoff <= self.max_backoff
            or not 0 < self.key_base_backoff <= self.key_max_backoff
        ):
            raise ValueError("rate limit: back-offs must satisfy 0 < base <= max")
        if self.window <= 0 or self.window_entries < 1:
            raise ValueError("rate limit: the error window needs a positive length and size")
        if self.breaker_failures < 1 or self.breaker_successes < 1 or self.breaker_recovery <= 0:
            raise ValueError("rate limit: circuit breaker thresholds must be positive")


def exponential(base: float, maximum: float, attempt: int) -> float:
    """base * 2^(attempt-1) for attempt >= 1, capped; the exponent is bounded so it cannot overflow."""
    if attempt < 1:
        return 0.0
    return min(base * 2.0 ** min(attempt - 1, 64), maximum)


def is_throttle_or_server_error(status: int) -> bool:
    return status == TOO_MANY_REQUESTS or _SERVER_ERROR_MIN <= status <= _SERVER_ERROR_MAX


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


class TokenBucket:
    """qps tokens a second up to `burst`; `reserve` may go into debt so waiters are served in order."""

    def __init__(self, clock: Clock, qps: float, burst: int) -> None:
        self._clock = clock
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now

    def try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def reserve(self) -> float:
        """Take a token now and return how long to wait before using it."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class WriteCircuitOpen(Exception):
    """Writes are refused for now; `retry_in` seconds until the breaker lets a trial through."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"write circuit breaker is open; retry in {retry_in:.1f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    def __init__(self, clock: Clock, failures: int, recovery: float, successes: int) -> None:
        self._clock = clock
        self._failure_threshold = failures
        self._recovery = recovery
        self._success_threshold = successes
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock.monotonic() - self._opened_at >= self._recovery:
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
        return self._state

    def allow(self) -> bool:
        return self.state is not BreakerState.OPEN

    def retry_in(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return self._opened_at + self._recovery - self._clock.monotonic()

    def record_success(self) -> None:
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self._success_threshold:
                self._state = BreakerState.CLOSED
                self._failures = 0
        elif state is BreakerState.CLOSED:
            self._failures = 0

    def record_failure(self) -> None:
        state = self.state
        self._failures += 1
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self._failure_threshold
        ):
            self._open()
        elif state is BreakerState.OPEN:
            # A write that was already under way when the breaker opened; restart the recovery wait.
            self._opened_at = self._clock.monotonic()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock.monotonic()
        self._successes = 0


class KeyBackoff:
    """Per-key exponential back-off for the work queue: 1s, 2s, 4s ... 60s; `forget` on success."""

    def __init__(self, base: float, maximum: float) -> None:
        self._base = base
        self._maximum = maximum
        self._failures: dict[str, int] = {}

    def next_delay(self, key: str) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return exponential(self._base, self._maximum, failures)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class APIRateLimiter:
    """Paces requests, honours the server's push-back and guards writes; one per process."""

    def __init__(self, clock: Clock, settings: RateLimitSettings | None = None) -> None:
        self._clock = clock
        self._settings = settings or RateLimitSettings()
        s = self._settings
        self._bucket = TokenBucket(clock, s.qps, s.burst)
        self._answers: deque[tuple[float, bool]] = deque(maxlen=s.window_entries)
        self._held_until = 0.0
        self.breaker = CircuitBreaker(clock, s.breaker_failures, s.breaker_recovery, s.breaker_successes)
        self.keys = KeyBackoff(s.key_base_backoff, s.key_max_backoff)

    @property
    def settings(self) -> RateLimitSettings:
        return self._settings

    # -- before a request ------------------------------------------------------------------------------
    def hold_remaining(self) -> float:
        """Seconds until back-off and Retry-After let requests through again."""
        return max(self._held_until - self._clock.monotonic(), 0.0)

    def try_acquire(self) -> bool:
        """Take a token if nothing holds requests and one is available, without waiting."""
        return self.hold_remaining() <= 0 and self._bucket.try_take()

    async def acquire(self) -> None:
        """Wait for any hold to pass, then for a token."""
        while (remaining := self.hold_remaining()) > 0:
            await self._clock.sleep(remaining)
        delay = self._bucket.reserve()
        if delay > 0:
            await self._clock.sleep(delay)

    def ensure_write_allowed(self) -> None:
        if not self.breaker.allow():
            raise WriteCircuitOpen(self.breaker.retry_in())

    # -- after a request -------------------------------------------------------------------------------
    def record_response(self, status: int, retry_after: float | None = None) -> None:
        """Every answer of a non-watch request; 429 and 5xx extend the hold, others end the streak."""
        now = self._clock.monotonic()
        self._trim(now)
        failed = is_throttle_or_server_error(status)
        self._answers.append((now, failed))
        hold = 0.0
        if failed:
            hold = exponential(
                self._settings.base_backoff, self._settings.max_backoff, self.consecutive_failures
            )
        if retry_after is not None and retry_after > 0:
            hold = max(hold, retry_after)
        if hold > 0:
            self._held_until = max(self._held_until, now + hold)

    def record_transport_error(self) -> None:
        """A request that got no answer (connection refused, reset, timeout) counts like a 503."""
        self.record_response(503)

    def record_write_success(self) -> None:
        self.breaker.record_success()

    def record_write_failure(self) -> None:
        self.breaker.record_failure()

    # -- state -----------------------------------------------------------------------------------------
    @property
    def consecutive_failures(self) -> int:
        self._trim(self._clock.monotonic())
        count = 0
        for _, failed in reversed(self._answers):
            if not failed:
                break
            count += 1
        return count

    @property
    def requests_per_second(self) -> float:
        """Answers recorded over the window, per second (upstream's RequestsPerSecond)."""
        self._trim(self._clock.monotonic())
        return len(self._answers) / self._settings.window

    def _trim(self, now: float) -> None:
        cutoff = now - self._settings.window
        while self._answers and self._answers[0][0] < cutoff:
            self._answers.popleft()
