"""Spec 3.1 steps 2-4: from one admission request to skip, deny or inject (with its patch).

Pure: no I/O, no clock, no globals; the config, the sidecar mode (resolved from the server version by the
caller) and the webhook version come in as arguments, so the server, the offline `mutate` preview and the
tests get byte-identical answers for the same input, dry-run or not.

The pod is never round-tripped through a typed model: the webhook edits a copy of the raw dict and diffs
it (`patch.additive_patch`), so fields this code does not know, including ones newer API servers add,
survive untouched (eks #208 / kops#16802 lost `restartPolicy: Always` exactly that way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kubewright.iamra import constants as c
from kubewright.iamra.config import IamraConfig
from kubewright.iamra.constants import Reason, SidecarMode, WarningKind
from kubewright.iamra.effective import EffectiveConfig, effective_config
from kubewright.iamra.env import add_missing_env, wanted_env
from kubewright.iamra.outcome import Denied, Injected, Notice, Outcome, Skipped, notice
from kubewright.iamra.patch import additive_patch, json_copy
from kubewright.iamra.pod import MalformedReview, PodFacts, annotations_of, is_deleting, read_pod
from kubewright.iamra.sidecar import build_sidecar, build_volume
from kubewright.iamra.validate import validate


class KindLike(Protocol):
    @property
    def group(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def kind(self) -> str: ...


class ReviewRequest(Protocol):
    """What the decision reads from an AdmissionReview request (`runtime.admission.AdmissionRequest`
    satisfies it; a Protocol keeps this module free of the runtime's HTTP side)."""

    @property
    def kind(self) -> KindLike: ...
    @property
    def sub_resource(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def object(self) -> dict[str, Any] | None: ...


def decide(
    request: ReviewRequest, config: IamraConfig, mode: SidecarMode | None, webhook_version: str
) -> Outcome:
    """The answer for `request`; `mode` None means the server version is not known yet (spec 3.6).

    Raises `MalformedReview` (HTTP 400) when a CREATE carries no object or an object not shaped like a Pod.
    """
    kind = request.kind
    if (kind.group, kind.version, kind.kind) != ("", "v1", "Pod") or request.sub_resource:
        return Skipped(Reason.NOT_POD)
    if request.operation != "CREATE":
        return Skipped(Reason.NOT_CREATE)
    pod = request.object
    if not isinstance(pod, dict):
        raise MalformedReview("request.object: a CREATE review must carry the Pod")
    if is_deleting(pod):
        return Skipped(Reason.DELETING)
    annotations = annotations_of(pod)
    missing = [key for key in c.REQUIRED_ANNOTATIONS if not annotations.get(key, "").strip()]
    if missing:
        return Skipped(Reason.NOT_ANNOTATED, _partial_notices(annotations, missing))
    facts = read_pod(pod)
    marked, has_sidecar = c.INJECTED_ANNOTATION in annotations, facts.has_sidecar()
    if marked or has_sidecar:
        return Skipped(Reason.ALREADY_INJECTED, _marker_notices(marked, has_sidecar))
    validation = validate(annotations, facts, config)
    if validation.annotations is None:
        problems = validation.problems
        return Denied(400, problems[0].reason, tuple(p.message for p in problems), validation.notices)
    if mode is None:
        return Denied(
            503, Reason.SERVER_VERSION_UNKNOWN, (c.SERVER_VERSION_UNKNOWN_MESSAGE,), validation.notices
        )
    effective = effective_config(validation.annotations, config, mode, webhook_version)
    return inject(pod, facts, effective, config, validation.notices)


def inject(
    pod: dict[str, Any],
    facts: PodFacts,
    effective: EffectiveConfig,
    config: IamraConfig,
    notices: tuple[Notice, ...] = (),
) -> Injected:
    """Edit a copy of `pod` (spec 3.4) and diff it into `add` ops (3.5)."""
    mutated: dict[str, Any] = json_copy(pod)
    spec = mutated.get("spec")
    if spec is None:
        spec = mutated["spec"] = {}
    found = list(notices)
    found += _add_env(spec, facts, effective)
    _append(spec, "volumes", build_volume(effective, config))
    sidecar = build_sidecar(effective, config)
    if effective.sidecar_mode is SidecarMode.NATIVE:
        # First, so it starts (and has its credentials) before other init containers and the app.
        init_containers = spec.get("initContainers")
        if init_containers is None:
            spec["initContainers"] = [sidecar]
        else:
            init_containers.insert(0, sidecar)
    else:
        _append(spec, "containers", sidecar)
        if facts.is_job_pod:
            found.append(
                notice(
                    WarningKind.LEGACY_JOB,
                    "legacy sidecar in a Job pod: the Job will not complete while it runs",
                )
            )
    digest = effective.injection_hash()
    annotations = mutated["metadata"]["annotations"]
    annotations[c.INJECTED_ANNOTATION] = c.INJECTED_VALUE
    annotations[c.INJECTION_HASH_ANNOTATION] = digest
    return Injected(
        patch=additive_patch(pod, mutated),
        pod=mutated,
        injection_hash=digest,
        mode=effective.sidecar_mode,
        notices=tuple(found),
    )


def _add_env(spec: dict[str, Any], facts: PodFacts, effective: EffectiveConfig) -> list[Notice]:
    """Env for every app container and, native only, every pre-existing init container (legacy init
    containers run before the helper exists), except the skip list."""
    skip = set(effective.skip_containers)
    wanted = wanted_env(effective)
    found: list[Notice] = []
    groups = [(spec.get("containers") or [], facts.containers)]
    if effective.sidecar_mode is SidecarMode.NATIVE:
        groups.append((spec.get("initContainers") or [], facts.init_containers))
    for raw_containers, checked in groups:
        for raw, container in zip(raw_containers, checked, strict=True):
            if container.name not in skip:
                found += add_missing_env(raw, container, wanted)
    if facts.containers and all(container.name in skip for container in facts.containers):
        found.append(notice(WarningKind.ALL_SKIPPED, f"{c.SKIP_CONTAINERS_ANNOTATION} skips every container"))
    return found


def _append(spec: dict[str, Any], key: str, item: dict[str, Any]) -> None:
    items = spec.get(key)
    if items is None:
        spec[key] = [item]
    else:
        items.append(item)


def _partial_notices(annotations: Mapping[str, str], missing: list[str]) -> tuple[Notice, ...]:
    """Half an opt-in is most likely a typo: say why nothing happened (no warning for plain pods)."""
    if not any(key in annotations for key in c.REQUIRED_ANNOTATIONS):
        return ()
    return (
        notice(WarningKind.PARTIAL_ANNOTATIONS, f"not injected: {' and '.join(missing)} missing or blank"),
    )


def _marker_notices(marked: bool, has_sidecar: bool) -> tuple[Notice, ...]:
    if marked and not has_sidecar:
        detail = f"{c.INJECTED_ANNOTATION} is set but there is no {c.SIDECAR_NAME} container; not injected"
    elif has_sidecar and not marked:
        detail = f"container {c.SIDECAR_NAME} exists without {c.INJECTED_ANNOTATION}; not injected"
    else:
        return ()
    return (notice(WarningKind.MARKER_MISMATCH, detail),)
