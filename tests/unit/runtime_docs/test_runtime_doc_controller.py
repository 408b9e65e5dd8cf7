"""docs/runtime.md's controller example: the page shows the tested file, and its parts behave as described.

The example is loaded from `examples/runtime_controller.py` by path (examples are scripts, not a
package). Here its pieces run on a fake clock with an in-memory informer and client;
tests/envtest/runtime/test_controller_example.py runs it whole against the real API server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.controller import Controller, Result
from kubewright.runtime.informer import Informer
from kubewright.runtime.kube import KubeClient
from kubewright.runtime.metrics import RECONCILE_ERRORS, RECONCILE_TOTAL
from kubewright.runtime.store import Change, EventType, object_key

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "runtime_controller.py"
DOC = REPO / "docs" / "runtime.md"
EXAMPLE_BLOCK = re.compile(
    r"<!-- example: examples/runtime_controller\.py -->\n```python\n(?P<code>.*?)```\n", re.DOTALL
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubewright_examples_runtime_controller", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module through sys.modules
    spec.loader.exec_module(module)
    return module


example = load_example()


def test_the_doc_shows_the_example_file_verbatim() -> None:
    blocks = EXAMPLE_BLOCK.findall(DOC.read_text())
    assert len(blocks) == 1, "docs/runtime.md must show examples/runtime_controller.py in one marked block"
    assert blocks[0] == EXAMPLE.read_text()


# -- the hash -----------------------------------------------------------------------------------------


def configmap(data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "settings", "namespace": "shop", "resourceVersion": "7"}
    if labels is not None:
        metadata["labels"] = labels
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        obj["data"] = data
    return obj


def test_hash_is_a_valid_label_value_independent_of_key_order() -> None:
    digest = example.data_hash(configmap({"a": "1", "b": "2"}))
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert example.data_hash(configmap({"b": "2", "a": "1"})) == digest


def test_hash_changes_with_data_and_binary_data_but_not_with_labels() -> None:
    base = configmap({"a": "1"})
    assert example.data_hash(configmap({"a": "2"})) != example.data_hash(base)
    assert example.data_hash({**base, "binaryData": {"blob": "AAE="}}) != example.data_hash(base)
    assert example.data_hash(configmap({"a": "1"}, labels={example.HASH_LABEL: "old"})) == (
        example.data_hash(base)
    )
    assert example.data_hash(configmap()) == example.data_hash(configmap({}))


# -- the reconciler -----------------------------------------------------------------------------------


class FakeInformer:
    """Stands in for Informer: a dict cache; like the real one, a handler added after sync gets a replay."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.handlers: list[Callable[[Change], None]] = []
        self.synced = asyncio.Event()

    async def wait_synced(self) -> None:
        await self.synced.wait()

    def add_handler(self, handler: Callable[[Change], None]) -> None:
        self.handlers.append(handler)
        if self.synced.is_set():
            for key, obj in self.objects.items():
                handler(Change(EventType.ADDED, key, None, obj))

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)

    def put(self, obj: dict[str, Any]) -> str:
        key = object_key(obj)
        old = self.objects.get(key)
        self.objects[key] = obj
        for handler in self.handlers:
            handler(Change(EventType.ADDED if old is None else EventType.MODIFIED, key, old, obj))
        return key


class FakeKube:
    """Records server-side applies instead of sending them."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj


def reconciler(informer: FakeInformer, kube: FakeKube) -> Any:
    return example.DataHashReconciler(cast(KubeClient, kube), cast(Informer, informer))


async def test_unlabelled_configmap_gets_only_the_hash_label_applied() -> None:
    informer, kube = FakeInformer(), FakeKube()
    key = informer.put(configmap({"a": "1"}, labels={"app": "shop"}))

    await reconciler(informer, kube).reconcile(key)

    digest = example.data_hash(configmap({"a": "1"}))
    assert kube.applied == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop", "labels": {example.HASH_LABEL: digest}},
        }
    ]


async def test_up_to_date_or_deleted_configmaps_cause_no_write() -> None:
    informer, kube = FakeInformer(), FakeKube()
    digest = example.data_hash(configmap({"a": "1"}))
    key = informer.put(configmap({"a": "1"}, labels={example.HASH_LABEL: digest}))

    await reconciler(informer, kube).reconcile(key)
    await reconciler(informer, kube).reconcile("shop/deleted")

    assert kube.applied == []


# -- the controller loop ------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Yield to the loop until `condition` holds; no real time passes (the clock is fake)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    raise AssertionError("condition not reached")


class Scripted:
    """A reconcile function whose outcomes the test scripts: a Result, None, or an exception to raise."""

    def __init__(self, *outcomes: Result | Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[str] = []

    async def __call__(self, key: str) -> Result | None:
        self.calls.append(key)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def total(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value(RECONCILE_TOTAL, {"controller": "test", "result": result}) or 0.0


async def started(
    reconcile: Scripted, informer: FakeInformer, clock: FakeClock, registry: CollectorRegistry
) -> tuple[Any, asyncio.Event, asyncio.Task[None]]:
    controller = Controller("test", cast(Informer, informer), reconcile, clock, registry, workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.start(stop))
    informer.synced.set()
    await until(lambda: bool(informer.handlers))
    return controller, stop, task


async def test_controller_waits_for_the_cache_and_stops_cleanly_before_it_is_filled() -> None:
    informer, reconcile = FakeInformer(), Scripted()
    controller = Controller("test", cast(Informer, informer), reconcile, FakeClock(), CollectorRegistry())
    stop = asyncio.Event()
    task = asyncio.create_task(controller.start(stop))
    for _ in range(10):
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
    assert not task.done()
    assert informer.handlers == []  # not subscribed: a reconcile must never see a half-filled cache

    stop.set()
    await asyncio.wait_for(task, 1)
    assert informer.handlers == []


async def test_cached_objects_are_replayed_once_leading_and_success_forgets_backoff() -> None:
    informer, reconcile, clock, registry = FakeInformer(), Scripted(), FakeClock(), CollectorRegistry()
    key = informer.put(configmap({"a": "1"}))
    controller, stop, task = await started(reconcile, informer, clock, registry)

    await until(lambda: reconcile.calls == [key] and total(registry, "success") == 1)
    assert controller.queue.num_requeues(key) == 0

    stop.set()
    await asyncio.wait_for(task, 1)


async def test_failure_retries_with_backoff_and_requeue_after_comes_back_later() -> None:
    informer, clock, registry = FakeInformer(), FakeClock(), CollectorRegistry()
    reconcile = Scripted(RuntimeError("API server said no"), Result(requeue_after=30.0), None)
    controller, stop, task = await started(reconcile, informer, clock, registry)
    key = informer.put(configmap({"a": "1"}))

    await until(lambda: total(registry, "error") == 1)
    assert registry.get_sample_value(RECONCILE_ERRORS, {"controller": "test"}) == 1
    assert controller.queue.num_requeues(key) == 1
    await clock.wait_for_sleepers(1)
    clock.advance(0.005)  # the first backoff step
    await until(lambda: total(registry, "requeue_after") == 1)
    assert controller.queue.num_requeues(key) == 0  # a reconcile that did not fail resets backoff

    await clock.wait_for_sleepers(1)
    clock.advance(29.9)
    await clock.wait_for_sleepers(1)
    assert reconcile.calls == [key, key]
    clock.advance(0.1)
    await until(lambda: total(registry, "success") == 1)
    assert reconcile.calls == [key, key, key]

    stop.set()
    await asyncio.wait_for(task, 1)


async def test_stop_lets_queued_keys_finish_then_returns() -> None:
    informer, clock, registry = FakeInformer(), FakeClock(), CollectorRegistry()
    reconcile = Scripted()
    _, stop, task = await started(reconcile, informer, clock, registry)
    first = informer.put(configmap({"a": "1"}))
    second = informer.put({**configmap({"a": "1"}), "metadata": {"name": "other", "namespace": "shop"}})
    stop.set()

    await asyncio.wait_for(task, 1)
    assert reconcile.calls == [first, second]
