"""Keyed work queue with client-go semantics, for asyncio.

Guarantees a controller relies on:
- a key queued several times is handed out once (dedup), so bursts of events cost one reconcile;
- a key being processed is never handed to a second worker; adds that arrive meanwhile are remembered
  and the key is queued again at `done(key)`, so the change that arrived mid-reconcile is not lost;
- distinct ready keys come out in the order they became ready;
- `add_after` / `add_rate_limited` park a key until its time (earliest deadline wins per key), and
  per-key exponential backoff grows until `forget(key)`.

Time comes from an injected `Clock`: delayed keys become ready when a queue operation observes that their
deadline passed, and idle workers sleep on the clock until the next deadline, so a `FakeClock` drives the
whole queue deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock
from kubewright.runtime.metrics import runtime_metrics

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

DEFAULT_BASE_DELAY = 0.005
DEFAULT_MAX_DELAY = 1000.0


class RateLimiter(Protocol[K_contra]):
    """Decides how long a failing key waits before its next attempt."""

    def when(self, key: K_contra) -> float:
        """Delay in seconds for the next retry of `key`; counts the retry."""
        ...

    def forget(self, key: K_contra) -> None:
        """Stop tracking `key` (it succeeded), resetting its backoff."""
        ...

    def num_requeues(self, key: K_contra) -> int: ...


class ExponentialBackoff(Generic[K]):
    """Per-key delay `base * 2**failures`, capped; client-go's default is 5 ms to 1000 s."""

    def __init__(self, base: float = DEFAULT_BASE_DELAY, cap: float = DEFAULT_MAX_DELAY) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self._base = base
        self._cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        exponent = self._failures.get(key, 0)
        self._failures[key] = exponent + 1
        # Past 2**63 the product overflows float conversion; the cap has long been reached by then.
        if exponent >= 63:
            return self._cap
        return min(self._base * (1 << exponent), self._cap)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """Dedup'ing, one-worker-per-key, delay-capable queue of keys (see the module docstring).

    Workers loop on `key = await queue.get()` until it returns None (shut down and drained), and call
    `queue.done(key)` after each key, whatever the outcome.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        registry: CollectorRegistry | None = None,
        rate_limiter: RateLimiter[K] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._rate_limiter: RateLimiter[K] = rate_limiter or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # Parked keys: a heap of (ready_at, seq, key) with stale entries skipped via `_waiting`.
        self._waiting: dict[K, tuple[float, int]] = {}
        self._waiting_heap: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False
        families = runtime_metrics(registry if registry is not None else CollectorRegistry()).workqueue
        self._depth = families.depth.labels(name, name)
        self._adds = families.adds.labels(name, name)
        self._queue_duration = families.queue_duration.labels(name, name)
        self._work_duration = families.work_duration.labels(name, name)
        self._retries = families.retries.labels(name, name)

    # -- intake ---------------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue `key` for processing, unless it is already queued; ignored after shutdown."""
        self._promote_due()
        self._add(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed; an earlier pending deadline for it wins."""
        if self._shutting_down:
            return
        self._retries.inc()  # client-go counts every delayed add as a retry; dashboards expect that
        self._promote_due()
        if delay <= 0:
            self._add(key)
            return
        ready_at = self._clock.monotonic() + delay
        parked = self._waiting.get(key)
        if parked is not None and parked[0] <= ready_at:
            return
        earliest = self._next_deadline()
        sequence = next(self._sequence)
        self._waiting[key] = (ready_at, sequence)
        heapq.heappush(self._waiting_heap, (ready_at, sequence, key))
        if earliest is None or ready_at < earliest:
            # Idle workers sleep until the previous earliest deadline; let them recompute.
            self._wake_all_getters()

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after its backoff delay, which doubles on each call until `forget(key)`."""
        self.add_after(key, self._rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset `key`'s backoff; call after a successful reconcile."""
        self._rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._rate_limiter.num_requeues(key)

    # -- processing -----------------------------------------------------------------------------------

    def get_nowait(self) -> K | None:
        """Hand out the next ready key and mark it as processing, or None when nothing is ready."""
        self._promote_due()
        if not self._queue:
            return None
        key = self._queue.popleft()
        now = self._clock.monotonic()
        self._processing.add(key)
        self._dirty.discard(key)
        self._depth.dec()
        self._queue_duration.observe(now - self._added_at.pop(key, now))
        self._started_at[key] = now
        return key

    async def get(self) -> K | None:
        """Wait for the next ready key; None once the queue is shut down and has nothing left to hand out."""
        while True:
            key = self.get_nowait()
            if key is not None:
                return key
            if self._shutting_down:
                return None
            await self._wait_for_work()

    def done(self, key: K) -> None:
        """Mark `key` finished; if it was added again meanwhile, it is queued again now."""
        if key not in self._processing:
            raise ValueError(
                f"done({key!r}) on work queue {self.name!r}, but that key is not being processed"
            )
        self._processing.discard(key)
        now = self._clock.monotonic()
        self._work_duration.observe(now - self._started_at.pop(key, now))
        self._promote_due()
        if key in self._dirty:
            self._push_ready(key)
        self._notify_drained()

    # -- lifecycle ------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop intake and drop parked keys; workers still receive what is already queued, then None."""
        self._shutting_down = True
        self._waiting.clear()
        self._waiting_heap.clear()
        self._wake_all_getters()
        self._notify_drained()

    async def drain(self) -> None:
        """Wait until, after `shutdown()`, nothing is queued or being processed; bound it with a deadline."""
        if self._is_drained():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(future)
        await future

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to hand out (parked and processing keys excluded), like client-go's Len()."""
        self._promote_due()
        return len(self._queue)

    # -- internals ------------------------------------------------------------------------------------

    def _add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._adds.inc()
        self._depth.inc()
        self._dirty.add(key)
        self._added_at[key] = self._clock.monotonic()
        if key not in self._processing:
            self._push_ready(key)

    def _push_ready(self, key: K) -> None:
        self._queue.append(key)
        self._wake_one_getter()

    def _promote_due(self) -> None:
        """Move parked keys whose deadline passed into the ready queue, earliest deadline first."""
        heap = self._waiting_heap
        if not heap:
            return
        now = self._clock.monotonic()
        while heap and heap[0][0] <= now:
            ready_at, sequence, key = heapq.heappop(heap)
            if self._waiting.get(key) == (ready_at, sequence):
                del self._waiting[key]
                self._add(key)

    def _next_deadline(self) -> float | None:
        heap = self._waiting_heap
        while heap and self._waiting.get(heap[0][2]) != (heap[0][0], heap[0][1]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    async def _wait_for_work(self) -> None:
        """Sleep until a key may be ready: an add wakes us, or the earliest parked deadline passes."""
        getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        deadline = self._next_deadline()
        timer = (
            None
            if deadline is None
            else asyncio.ensure_future(self._clock.sleep(deadline - self._clock.monotonic()))
        )
        try:
            if timer is None:
                await getter
            else:
                await asyncio.wait((getter, timer), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # A wake-up delivered to a cancelled worker must go to another one, or a ready key would idle.
            if getter.done() and not getter.cancelled() and self._queue:
                self._wake_one_getter()
            raise
        finally:
            getter.cancel()
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):  # already popped by a wake-up
                self._getters.remove(getter)

    def _wake_one_getter(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _wake_all_getters(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    def _is_drained(self) -> bool:
        return self._shutting_down and not self._queue and not self._processing

    def _notify_drained(self) -> None:
        if not self._is_drained():
            return
        waiters, self._drain_waiters = self._drain_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
