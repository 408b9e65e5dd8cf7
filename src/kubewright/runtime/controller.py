"""A controller: informer changes -> keys in a WorkQueue -> workers calling a reconcile function.

The shape of controller-runtime's: a reconcile is a plain async function of a key that reads caches,
writes through the client and answers with a `Result` (or None: done). Raising means failed: the key
is retried with per-key exponential backoff. The controller is a leader-gated runnable: it subscribes
to its informers only once leading and only after every one has synced (the subscription replays each
cached object, so a new leader reconciles everything, and never from a half-filled cache).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import Clock
from kubewright.runtime.informer import Informer
from kubewright.runtime.logs import get_logger, log_context
from kubewright.runtime.metrics import runtime_metrics
from kubewright.runtime.store import Change
from kubewright.runtime.workqueue import WorkQueue

log = get_logger("kubewright.runtime.controller")


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing (the default), or another look after `requeue_after`
    seconds. `requeue=True` retries with the key's backoff without counting an error."""

    requeue_after: float | None = None
    requeue: bool = False


Reconcile = Callable[[str], Awaitable[Result | None]]
KeysFor = Callable[[Change], Iterable[str]]


def same_key(change: Change) -> list[str]:
    return [change.key]


class Controller:
    def __init__(
        self,
        name: str,
        informer: Informer,
        reconcile: Reconcile,
        clock: Clock,
        registry: CollectorRegistry,
        workers: int = 2,
    ) -> None:
        self.name = name
        self.queue: WorkQueue[str] = WorkQueue(name, clock, registry)
        self._sources: list[tuple[Informer, KeysFor]] = [(informer, same_key)]
        self._reconcile = reconcile
        self._clock = clock
        self._workers = workers
        self._metrics = runtime_metrics(registry).reconcile
        self._metrics.max_concurrent.labels(name).set(workers)

    def watch(self, informer: Informer, keys_for: KeysFor) -> None:
        """Also enqueue `keys_for(change)` for changes of another informer (e.g. pods -> their workload)."""
        self._sources.append((informer, keys_for))

    async def start(self, stop: asyncio.Event) -> None:
        synced = asyncio.gather(*(informer.wait_synced() for informer, _ in self._sources))
        if not await _first(synced, stop):
            return  # stopped before the caches were filled: never act on a partial cache
        for informer, keys_for in self._sources:
            informer.add_handler(self._enqueuer(keys_for))
        workers = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            await stop.wait()
            self.queue.shutdown()  # workers finish what is queued, then get() returns None
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()  # only matters when cancelled (leadership lost): stop at once

    def _enqueuer(self, keys_for: KeysFor) -> Callable[[Change], None]:
        def enqueue(change: Change) -> None:
            for key in keys_for(change):
                self.queue.add(key)

        return enqueue

    async def _work(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                with log_context(controller=self.name, key=key):
                    await self._reconcile_one(key)
            finally:
                self.queue.done(key)

    async def _reconcile_one(self, key: str) -> None:
        started = self._clock.monotonic()
        self._metrics.active_workers.labels(self.name).inc()
        try:
            result = await self._reconcile(key)
        except Exception:
            log.exception("reconcile failed", retries=self.queue.num_requeues(key))
            self._metrics.errors.labels(self.name).inc()
            self._metrics.total.labels(self.name, "error").inc()
            self.queue.add_rate_limited(key)
            return
        finally:
            self._metrics.active_workers.labels(self.name).dec()
            self._metrics.time.labels(self.name).observe(self._clock.monotonic() - started)
        if result is not None and result.requeue:
            self._metrics.total.labels(self.name, "requeue").inc()
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if result is None or result.requeue_after is None:
            self._metrics.total.labels(self.name, "success").inc()
        else:
            self._metrics.total.labels(self.name, "requeue_after").inc()
            self.queue.add_after(key, result.requeue_after)


async def _first(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first; True if `work` finished."""
    waits = {asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())}
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return not stop.is_set()
