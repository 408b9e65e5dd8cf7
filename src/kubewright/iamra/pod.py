"""Read what the webhook needs from a raw Pod dict, checking shapes instead of trusting them.

The API server sends well-formed Pods, but the webhook also serves anything that reaches `/mutate` and the
offline `mutate` preview reads files by hand: a `containers` that is not a list must end in a clear
"malformed" answer (HTTP 400), never in a `TypeError` that turns into a 500. The pod is read once into
plain tuples, so the decision code works with checked values and the mutation edits only the raw copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubewright.iamra import constants as c


class MalformedReview(ValueError):
    """The review cannot be decided on: answered HTTP 400 with this message (spec 3.1 step 1), which the API
    server then treats according to the failure policy. Never raised for a well-formed Pod."""


class MalformedPod(MalformedReview):
    """The object is not shaped like a Pod; `path` names the field (e.g. `spec.containers[1].name`)."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"object.{path}: must be {expected}")
        self.path = path


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None  # None when set through valueFrom


@dataclass(frozen=True)
class Container:
    name: str
    env: tuple[EnvVar, ...]
    container_ports: tuple[int, ...]
    restart_policy: str | None


@dataclass(frozen=True)
class PodFacts:
    """The parts of a Pod the validation and mutation decide on."""

    labels: Mapping[str, str]
    owner_kinds: tuple[str, ...]
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...]
    volume_names: tuple[str, ...]
    host_network: bool
    os_name: str | None
    node_selector_os: str | None

    @property
    def is_job_pod(self) -> bool:
        """Owned by a Job, or labelled as one (the label survives a Job's orphaned pods)."""
        return "Job" in self.owner_kinds or c.JOB_NAME_LABEL in self.labels

    def has_sidecar(self) -> bool:
        return any(ctr.name == c.SIDECAR_NAME for ctr in (*self.containers, *self.init_containers))


def metadata_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(pod.get("metadata"), "metadata")


def annotations_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    """`metadata.annotations` (null or absent = empty), every value a string as Kubernetes requires."""
    return _string_map(metadata_of(pod).get("annotations"), "metadata.annotations")


def is_deleting(pod: Mapping[str, Any]) -> bool:
    return metadata_of(pod).get("deletionTimestamp") is not None


def read_pod(pod: Mapping[str, Any]) -> PodFacts:
    """Everything the decision needs, or `MalformedPod` naming the first field of the wrong shape."""
    metadata = metadata_of(pod)
    spec = _mapping(pod.get("spec"), "spec")
    os_spec = _mapping(spec.get("os"), "spec.os")
    os_name = os_spec.get("name")
    if os_name is not None and not isinstance(os_name, str):
        raise MalformedPod("spec.os.name", "a string")
    node_selector = _string_map(spec.get("nodeSelector"), "spec.nodeSelector")
    return PodFacts(
        labels=_string_map(metadata.get("labels"), "metadata.labels"),
        owner_kinds=_owner_kinds(metadata.get("ownerReferences")),
        containers=_containers(spec.get("containers"), "spec.containers"),
        init_containers=_containers(spec.get("initContainers"), "spec.initContainers"),
        volume_names=tuple(
            _name(volume, f"spec.volumes[{i}]")
            for i, volume in enumerate(_list(spec.get("volumes"), "spec.volumes"))
        ),
        host_network=spec.get("hostNetwork") is True,
        os_name=os_name,
        node_selector_os=node_selector.get(c.WINDOWS_OS_LABEL),
    )


def _containers(value: object, path: str) -> tuple[Container, ...]:
    return tuple(_container(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))


def _container(value: object, path: str) -> Container:
    container = _mapping(value, path)
    name = _name(container, path)
    env = tuple(
        _env_var(item, f"{path}.env[{i}]")
        for i, item in enumerate(_list(container.get("env"), f"{path}.env"))
    )
    ports = []
    for i, item in enumerate(_list(container.get("ports"), f"{path}.ports")):
        port = _mapping(item, f"{path}.ports[{i}]").get("containerPort")
        if isinstance(port, int) and not isinstance(port, bool):
            ports.append(port)
    restart_policy = container.get("restartPolicy")
    return Container(
        name=name,
        env=env,
        container_ports=tuple(ports),
        restart_policy=restart_policy if isinstance(restart_policy, str) else None,
    )


def _env_var(value: object, path: str) -> EnvVar:
    entry = _mapping(value, path)
    text = entry.get("value")
    return EnvVar(name=_name(entry, path), value=text if isinstance(text, str) else None)


def _owner_kinds(value: object) -> tuple[str, ...]:
    kinds = []
    for i, item in enumerate(_list(value, "metadata.ownerReferences")):
        kind = _mapping(item, f"metadata.ownerReferences[{i}]").get("kind")
        if isinstance(kind, str):
            kinds.append(kind)
    return tuple(kinds)


def _name(item: Mapping[str, Any], path: str) -> str:
    name = item.get("name")
    if not isinstance(name, str):
        raise MalformedPod(f"{path}.name", "a string")
    return name


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPod(path, "an object")
    return value


def _list(value: object, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPod(path, "a list")
    return value


def _string_map(value: object, path: str) -> Mapping[str, str]:
    mapping = _mapping(value, path)
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise MalformedPod(f"{path}[{key!r}]", "keyed by a string")
        if not isinstance(item, str):
            raise MalformedPod(f"{path}[{key!r}]", "a string")
    return mapping
