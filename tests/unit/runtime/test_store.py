"""The informer cache: re-list diffs, projection and indexes, checked against simple models."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.runtime.store import (
    EventType,
    Store,
    index_by_node,
    index_by_owner,
    make_projection,
    object_key,
    strip_managed_fields,
)

pytestmark = pytest.mark.unit

names = st.sampled_from([f"o{i}" for i in range(12)])
namespaces = st.sampled_from(["a", "b", None])
nodes = st.sampled_from(["n1", "n2", "n3", None])


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    node = draw(nodes)
    # As on a real server, equal resourceVersions mean equal content.
    meta: dict[str, Any] = {"name": draw(names), "resourceVersion": f"{draw(st.integers(1, 5))}-{node}"}
    ns = draw(namespaces)
    if ns:
        meta["namespace"] = ns
    spec = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec}


def by_key(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {object_key(o): o for o in objs}


@given(before=st.lists(objects(), max_size=15), after=st.lists(objects(), max_size=15))
def test_relist_changes_replay_the_difference(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    store = Store()
    store.replace_all(before)
    replay = dict(by_key(before))
    for change in store.replace_all(after):
        if change.type is EventType.DELETED:
            assert change.key in replay
            del replay[change.key]
        else:
            assert change.new is not None
            replay[change.key] = change.new
    assert replay == by_key(after)
    assert {object_key(o): o for o in store.values()} == by_key(after)


@given(objs=st.lists(objects(), max_size=15))
def test_relist_of_the_same_state_emits_nothing(objs: list[dict[str, Any]]) -> None:
    store = Store()
    store.replace_all(objs)
    assert store.replace_all(list(by_key(objs).values())) == []


@given(ops=st.lists(st.tuples(st.booleans(), objects()), max_size=40))
def test_indexes_match_a_full_scan(ops: list[tuple[bool, dict[str, Any]]]) -> None:
    store = Store()
    store.add_index("node", index_by_node)
    for remove, obj in ops:
        if remove:
            store.remove(object_key(obj))
        else:
            store.upsert(obj)
    for node in ("n1", "n2", "n3"):
        scanned = sorted(object_key(o) for o in store.values() if o["spec"].get("nodeName") == node)
        assert sorted(object_key(o) for o in store.by_index("node", node)) == scanned


def test_projection_keeps_identity_and_named_fields_only() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "7",
            "labels": {"a": "b"},
            "annotations": {"big": "x" * 100},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }
    projected = make_projection(["spec.nodeName", "metadata.labels", "status.missing.deep"])(pod)
    assert projected == {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "7",
            "labels": {"a": "b"},
        },
        "spec": {"nodeName": "n1"},
    }


def test_upsert_and_remove_report_what_happened() -> None:
    store = Store()
    first = {"metadata": {"name": "x", "resourceVersion": "1"}}
    second = {"metadata": {"name": "x", "resourceVersion": "2"}}
    assert store.upsert(first).type is EventType.ADDED
    change = store.upsert(second)
    assert (change.type, change.old, change.new) == (EventType.MODIFIED, first, second)
    removed = store.remove("x")
    assert removed is not None
    assert removed.type is EventType.DELETED
    assert store.remove("x") is None


def test_index_by_owner_and_unknown_index() -> None:
    store = Store()
    store.add_index("owner", index_by_owner)
    store.upsert(
        {
            "metadata": {
                "name": "p",
                "namespace": "n",
                "ownerReferences": [{"kind": "ReplicaSet", "name": "rs"}],
            }
        }
    )
    assert [o["metadata"]["name"] for o in store.by_index("owner", "ReplicaSet/rs")] == ["p"]
    with pytest.raises(KeyError, match="no index 'node'"):
        store.by_index("node", "n1")
    with pytest.raises(ValueError, match="already exists"):
        store.add_index("owner", index_by_owner)


def test_managed_fields_are_dropped_without_touching_the_input() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}]},
        "data": {"a": "b"},
    }
    assert strip_managed_fields(obj) == {"metadata": {"name": "x"}, "data": {"a": "b"}}
    assert "managedFields" in obj["metadata"]
