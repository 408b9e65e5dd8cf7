"""Spec 3.5: the additive differ: `add` ops only, valid indices in order, escaping, loud on other changes."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubewright.iamra.patch import NonAdditiveChange, additive_patch, json_copy, pointer_token

pytestmark = pytest.mark.unit


def roundtrip(original: Any, mutated: Any) -> list[dict[str, Any]]:
    ops = additive_patch(original, mutated)
    assert all(op["op"] == "add" for op in ops)
    assert jsonpatch.apply_patch(original, ops) == mutated
    return ops


def test_insert_before_an_edited_item_uses_shifted_indices() -> None:
    original: dict[str, Any] = {
        "spec": {"initContainers": [{"name": "migrate"}, {"name": "shipper", "restartPolicy": "Always"}]}
    }
    mutated = copy.deepcopy(original)
    for container in mutated["spec"]["initContainers"]:
        container["env"] = [{"name": "E", "value": "1"}]
    mutated["spec"]["initContainers"].insert(0, {"name": "helper", "restartPolicy": "Always"})
    assert roundtrip(original, mutated) == [
        {
            "op": "add",
            "path": "/spec/initContainers/0",
            "value": {"name": "helper", "restartPolicy": "Always"},
        },
        {"op": "add", "path": "/spec/initContainers/1/env", "value": [{"name": "E", "value": "1"}]},
        {"op": "add", "path": "/spec/initContainers/2/env", "value": [{"name": "E", "value": "1"}]},
    ]


def test_jsonpatch_make_patch_would_replace_here() -> None:
    """Why this differ exists: when the shifted item was also edited, the generic diff rewrites it field by
    field (`remove`/`replace`), which clobbers whatever another webhook set on it."""
    original = {"c": [{"name": "a", "image": "x", "env": [1]}]}
    mutated = {
        "c": [{"name": "helper", "restartPolicy": "Always"}, {"name": "a", "image": "x", "env": [1, 2]}]
    }
    generic = jsonpatch.make_patch(original, mutated).patch
    assert {op["op"] for op in generic} - {"add"}
    assert roundtrip(original, mutated) == [
        {"op": "add", "path": "/c/0", "value": {"name": "helper", "restartPolicy": "Always"}},
        {"op": "add", "path": "/c/1/env/1", "value": 2},
    ]


def test_append_to_existing_and_create_missing() -> None:
    original = {"env": [{"name": "A"}], "metadata": {}}
    mutated = {"env": [{"name": "A"}, {"name": "B"}], "metadata": {"annotations": {"x": "1"}}}
    assert roundtrip(original, mutated) == [
        {"op": "add", "path": "/env/1", "value": {"name": "B"}},
        {"op": "add", "path": "/metadata/annotations", "value": {"x": "1"}},
    ]


def test_null_becomes_a_value_with_add() -> None:
    assert roundtrip({"env": None}, {"env": [1]}) == [{"op": "add", "path": "/env", "value": [1]}]


def test_pointer_escaping() -> None:
    assert pointer_token("iamra.aws/injected") == "iamra.aws~1injected"
    assert pointer_token("a~b/c") == "a~0b~1c"
    ops = roundtrip({"m": {}}, {"m": {"a~b/c": "v"}})
    assert ops == [{"op": "add", "path": "/m/a~0b~1c", "value": "v"}]


@pytest.mark.parametrize(
    ("original", "mutated", "path"),
    [
        ({"a": 1}, {"a": 2}, "/a"),
        ({"a": 1}, {}, "/a"),
        ({"a": [1, 2]}, {"a": [2]}, "/a/0"),
        ({"a": [1, 2]}, {"a": [2, 1]}, "/a/1"),
        ({"a": "1"}, {"a": 1}, "/a"),
        ({"a": {"b": 1}}, {"a": [1]}, "/a"),
    ],
)
def test_anything_but_additions_is_a_bug(original: Any, mutated: Any, path: str) -> None:
    with pytest.raises(NonAdditiveChange) as caught:
        additive_patch(original, mutated)
    assert caught.value.path == path


def test_no_change_no_ops() -> None:
    pod = {"spec": {"containers": [{"name": "a"}]}}
    assert additive_patch(pod, json_copy(pod)) == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
@settings(max_examples=300)
def test_json_copy_is_equal_and_disjoint(value: Any) -> None:
    copied = json_copy(value)
    assert copied == value
    if isinstance(value, dict | list) and value:
        assert copied is not value


@given(st.dictionaries(st.text(max_size=4), JSON, max_size=5), st.data())
@settings(max_examples=300)
def test_random_additions_roundtrip(original: dict[str, Any], data: st.DataObject) -> None:
    mutated = json_copy(original)
    for key, value in data.draw(st.dictionaries(st.text(max_size=4), JSON, max_size=3)).items():
        if key not in mutated:
            mutated[key] = value
    lists = [value for value in mutated.values() if isinstance(value, list)]
    for items in lists:
        items.insert(data.draw(st.integers(0, len(items))), data.draw(JSON))
    roundtrip(original, mutated)
