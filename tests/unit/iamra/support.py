"""Shared test data for the iamra unit tests: the fixture config, pods, reviews and the patch invariants."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from kubewright.iamra.config import IamraConfig, config_from_mapping
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Injected, Outcome, Skipped
from kubewright.iamra.patch import NonAdditiveChange, additive_patch
from kubewright.runtime.admission import AdmissionRequest

FIXTURES = Path(__file__).parent / "fixtures"
POD_FIXTURES = FIXTURES / "pods"
# Pinned so fixture hashes do not change with every release; the version is an input like any other.
WEBHOOK_VERSION = "0.0.0-test"

TRUST_ANCHOR_ARN = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0f6d3b2e-7c1a-4b8e-9d2f-1a2b3c4d5e6f"
)
PROFILE_ARN = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ROLE_ARN = "arn:aws:iam::123456789012:role/hello-world"
REQUIRED = {"iamra.aws/role-arn": ROLE_ARN, "iamra.aws/signing-profile-arn": PROFILE_ARN}


def base_config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FIXTURES / "config.yaml").read_text())
    return data


def config_with(overrides: dict[str, Any] | None = None) -> IamraConfig:
    """The fixture config with `overrides` merged in (nested mappings merge, other values replace)."""
    return config_from_mapping(merged(base_config_data(), overrides or {}))


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def annotated_pod(
    annotations: dict[str, str] | None = None, containers: int = 1, **spec: Any
) -> dict[str, Any]:
    """A minimal annotated pod: `containers` app containers named app, app-1, ..."""
    names = ["app", *(f"app-{i}" for i in range(1, containers))]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "demo",
            "namespace": "team-a",
            "annotations": {**REQUIRED, **(annotations or {})},
        },
        "spec": {
            "serviceAccountName": "demo",
            "containers": [
                {"name": name, "image": "public.ecr.aws/aws-cli/aws-cli:2.17.0"} for name in names
            ],
            **spec,
        },
    }


def review_request(
    pod: dict[str, Any] | None,
    operation: str = "CREATE",
    kind: tuple[str, str, str] = ("", "v1", "Pod"),
    sub_resource: str = "",
    dry_run: bool = False,
    namespace: str = "team-a",
) -> AdmissionRequest:
    group, version, kind_name = kind
    return AdmissionRequest.model_validate(
        {
            "uid": "7d3c2b1a-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": version, "kind": kind_name},
            "resource": {"group": group, "version": version, "resource": "pods"},
            "subResource": sub_resource,
            "namespace": namespace,
            "operation": operation,
            "object": pod,
            "dryRun": dry_run,
        }
    )


def decide_pod(
    pod: dict[str, Any], config: IamraConfig | None = None, mode: SidecarMode | None = SidecarMode.NATIVE
) -> Outcome:
    return decide(review_request(pod), config or config_with(), mode, WEBHOOK_VERSION)


@dataclass(frozen=True)
class Case:
    """One pod fixture: input (request, config, mode) and the pinned answer."""

    name: str
    data: dict[str, Any]

    @property
    def pod(self) -> dict[str, Any] | None:
        pod: dict[str, Any] | None = self.data["pod"]
        return pod

    @property
    def expect(self) -> dict[str, Any]:
        expect: dict[str, Any] = self.data["expect"]
        return expect

    @property
    def config(self) -> IamraConfig:
        return config_with(self.data.get("config"))

    @property
    def mode(self) -> SidecarMode | None:
        mode = self.data.get("mode", "native")
        return None if mode == "unknown" else SidecarMode(mode)

    def request(self) -> AdmissionRequest:
        req = self.data.get("request", {})
        kind = req.get("kind", {"group": "", "version": "v1", "kind": "Pod"})
        return review_request(
            copy.deepcopy(self.pod),
            operation=req.get("operation", "CREATE"),
            kind=(kind["group"], kind["version"], kind["kind"]),
            sub_resource=req.get("subResource", ""),
            dry_run=req.get("dryRun", False),
            namespace=req.get("namespace", "team-a"),
        )


def load_cases() -> list[Case]:
    return [Case(path.stem, yaml.safe_load(path.read_text())) for path in sorted(POD_FIXTURES.glob("*.yaml"))]


_ALLOWED_PATH = re.compile(
    r"/metadata/annotations/[^/]+"
    r"|/spec/volumes(?:/\d+)?"
    r"|/spec/initContainers(?:/\d+(?:/env(?:/\d+)?)?)?"
    r"|/spec/containers/\d+/env(?:/\d+)?"
)
_CONTAINER_APPEND = re.compile(r"/spec/containers/(\d+)")


def assert_patch_invariants(original: dict[str, Any], outcome: Injected) -> None:
    """Spec 3.5 invariants, checked on every injecting fixture and every generated pod."""
    legacy_sidecar_index = len(original["spec"].get("containers") or [])
    for op in outcome.patch:
        assert op["op"] == "add", op
        path = op["path"]
        if outcome.mode is SidecarMode.LEGACY and (append := _CONTAINER_APPEND.fullmatch(path)):
            assert int(append[1]) == legacy_sidecar_index, path  # only the sidecar, appended last
            continue
        assert _ALLOWED_PATH.fullmatch(path), path
    patched = jsonpatch.apply_patch(original, outcome.patch)
    assert patched == outcome.pod
    assert is_superset(original, patched), "something of the original pod was lost"
    assert "~1" in next(op["path"] for op in outcome.patch if op["path"].startswith("/metadata/annotations/"))


def is_superset(original: Any, patched: Any) -> bool:
    """`patched` keeps every field of `original` (unknown ones included), only adding to it."""
    try:
        additive_patch(original, patched)
    except NonAdditiveChange:
        return False
    return True


def assert_reinvocation_noop(outcome: Injected, config: IamraConfig, mode: SidecarMode | None) -> None:
    again = decide(review_request(outcome.pod), config, mode, WEBHOOK_VERSION)
    assert isinstance(again, Skipped)
    assert again.notices == ()
