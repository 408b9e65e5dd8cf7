"""Spec 3.5: an RFC 6902 patch of `add` operations only, from the pod and its mutated copy.

Why not `jsonpatch.make_patch`: when the native sidecar is inserted before an init container that also
gains env, it emits `remove`/`replace` ops rewriting that container field by field. Against the exact
object diffed that is still correct, but it breaks the spec's invariant (only `add`, only under known
paths), reads badly in audit logs, and a patch that rewrites existing containers is the shape in which
fields get lost (eks #208 / kops#16802: `restartPolicy: Always`). This differ emits only `add` and raises
`NonAdditiveChange` if the mutation ever changed or removed something, so a bug in the mutation fails
loudly (the failure-policy path) instead of shipping a destructive patch.

Ops are emitted left to right with indices valid at the time each op applies (inserted list items take
their final index, later items shift), and a missing or `null` map or list is created by one `add`.
"""

from __future__ import annotations

from typing import Any


class NonAdditiveChange(RuntimeError):
    """The mutation changed or removed a value at `path`: a bug in the mutation, never user input."""

    def __init__(self, path: str) -> None:
        super().__init__(f"the mutation changed or removed {path or '/'} instead of only adding to the pod")
        self.path = path


def additive_patch(original: Any, mutated: Any) -> list[dict[str, Any]]:
    """`add` ops turning `original` into `mutated` (which must only add to it)."""
    ops: list[dict[str, Any]] = []
    _diff(original, mutated, "", ops)
    return ops


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON tree (dicts, lists, scalars); several times faster than `copy.deepcopy`,
    which the admission hot path cannot afford on a many-container pod."""
    if type(value) is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if type(value) is list:
        return [json_copy(item) for item in value]
    return value


def pointer_token(key: str) -> str:
    """RFC 6901 escaping: `iamra.aws/injected` -> `iamra.aws~1injected`, `~` -> `~0`."""
    return key.replace("~", "~0").replace("/", "~1")


def _diff(original: Any, mutated: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if type(original) is dict and type(mutated) is dict:
        _diff_dict(original, mutated, path, ops)
    elif type(original) is list and type(mutated) is list:
        _diff_list(original, mutated, path, ops)
    elif type(original) is not type(mutated) or original != mutated:
        raise NonAdditiveChange(path)


def _diff_dict(
    original: dict[Any, Any], mutated: dict[Any, Any], path: str, ops: list[dict[str, Any]]
) -> None:
    if not original.keys() <= mutated.keys():
        removed = next(key for key in original if key not in mutated)
        raise NonAdditiveChange(f"{path}/{pointer_token(str(removed))}")
    for key, value in mutated.items():
        if key in original:
            old = original[key]
            # Untouched subtrees are the common case: comparing them in C keeps a many-container pod cheap.
            # (Values Python calls equal across JSON types, such as 1 and 1.0, pass as unchanged; the
            # copy keeps types, so only a mutation bug could produce one.)
            if old == value:
                continue
            if old is not None or value is None:
                _diff(old, value, f"{path}/{pointer_token(str(key))}", ops)
                continue
        # New, or `null` turned into a value: RFC 6902 `add` on an existing member replaces it.
        ops.append({"op": "add", "path": f"{path}/{pointer_token(str(key))}", "value": value})


def _diff_list(original: list[Any], mutated: list[Any], path: str, ops: list[dict[str, Any]]) -> None:
    if original == mutated:
        return
    pending = 0  # next original item not yet matched
    for index, item in enumerate(mutated):
        if pending < len(original) and _extends(original[pending], item):
            _diff(original[pending], item, f"{path}/{index}", ops)
            pending += 1
        else:
            ops.append({"op": "add", "path": f"{path}/{index}", "value": item})
    if pending != len(original):
        raise NonAdditiveChange(f"{path}/{pending}")


def _extends(original: Any, mutated: Any) -> bool:
    """Whether `mutated` is `original` plus additions (so it is that item, edited, not an inserted one)."""
    if original == mutated:
        return True
    if type(original) is dict and type(mutated) is dict:
        return all(
            key in mutated and (value is None or _extends(value, mutated[key]))
            for key, value in original.items()
        )
    if type(original) is list and type(mutated) is list:
        pending = 0
        for item in mutated:
            if pending < len(original) and _extends(original[pending], item):
                pending += 1
        return pending == len(original)
    return False
