from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from kubewright.runtime.admission import (
    AdmissionRequest,
    AdmissionReview,
    Allow,
    Deny,
    build_response,
    describe_validation_error,
    patch_from_mutation,
)

from .support import JSON_OBJECTS, pod_review

pytestmark = pytest.mark.unit


def test_request_parses_every_field() -> None:
    review = AdmissionReview.model_validate(pod_review(subResource="status", dryRun=True))
    request = review.request
    assert request is not None
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert (request.kind.group, request.kind.version, request.kind.kind) == ("", "v1", "Pod")
    assert request.resource.resource == "pods"
    assert request.sub_resource == "status"
    assert request.request_kind is not None
    assert request.request_kind.kind == "Pod"
    assert request.request_resource is not None
    assert request.request_resource.resource == "pods"
    assert (request.name, request.namespace, request.operation) == ("web-0", "shop", "CREATE")
    assert request.user_info.groups == ["system:serviceaccounts", "system:authenticated"]
    assert request.user_info.extra == {"authentication.kubernetes.io/pod-name": ["x"]}
    assert request.object is not None
    assert request.object["metadata"]["labels"] == {"app": "web"}
    assert request.old_object is None
    assert request.dry_run is True
    assert request.options == {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}


def test_minimal_request_defaults() -> None:
    request = AdmissionRequest.model_validate(
        {
            "uid": "u",
            "kind": {"version": "v1", "kind": "Pod"},
            "resource": {"version": "v1", "resource": "pods"},
            "operation": "DELETE",
        }
    )
    assert request.dry_run is False
    assert request.user_info.username == ""
    assert request.object is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"apiVersion": "admission.k8s.io/v1beta1"}, "apiVersion"),
        ({"kind": "Pod"}, "kind"),
        ({"request": {**pod_review()["request"], "uid": ""}}, "request.uid"),
        ({"request": {**pod_review()["request"], "operation": "PATCH"}}, "request.operation"),
        ({"request": {**pod_review()["request"], "object": [1]}}, "request.object"),
        (
            {"request": {**pod_review()["request"], "userInfo": {"groups": "admins"}}},
            "request.userInfo.groups",
        ),
    ],
)
def test_validation_errors_name_the_wire_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AdmissionReview.model_validate({**pod_review(), **change})
    assert describe_validation_error(caught.value).startswith(f"{named}: ")


def test_many_errors_are_summarised() -> None:
    with pytest.raises(ValidationError) as caught:
        AdmissionReview.model_validate({"apiVersion": 1, "kind": 2, "request": {"uid": 3, "kind": 4}})
    message = describe_validation_error(caught.value)
    assert message.count(";") == 5
    assert message.endswith("more")


def decoded_patch(response_patch: str | None) -> Any:
    assert response_patch is not None
    return json.loads(base64.b64decode(response_patch))


def test_allow_with_patch_is_base64_jsonpatch() -> None:
    ops = [{"op": "add", "path": "/metadata/labels/spot", "value": "true"}]
    response = build_response("uid-1", Allow(ops, ["sidecar added"]))
    dumped = response.model_dump(by_alias=True, exclude_none=True)
    assert dumped == {
        "uid": "uid-1",
        "allowed": True,
        "patch": response.patch,
        "patchType": "JSONPatch",
        "warnings": ["sidecar added"],
    }
    assert decoded_patch(response.patch) == ops


def test_allow_without_patch_sends_no_patch_fields() -> None:
    dumped = build_response("uid-2", Allow()).model_dump(by_alias=True, exclude_none=True)
    assert dumped == {"uid": "uid-2", "allowed": True}


def test_deny_carries_status() -> None:
    dumped = build_response("uid-3", Deny(403, "spot pods need a PDB")).model_dump(
        by_alias=True, exclude_none=True
    )
    assert dumped == {
        "uid": "uid-3",
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "spot pods need a PDB"},
    }


def test_deny_code_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Deny(200, "fine")


def test_review_round_trip_uses_camel_case() -> None:
    review = AdmissionReview(response=build_response("u", Allow([{"op": "remove", "path": "/a"}])))
    wire = json.loads(review.model_dump_json(by_alias=True, exclude_none=True))
    assert wire["apiVersion"] == "admission.k8s.io/v1"
    assert wire["kind"] == "AdmissionReview"
    assert set(wire["response"]) == {"uid", "allowed", "patch", "patchType"}
    assert AdmissionReview.model_validate(wire) == review


def test_patch_from_mutation_of_a_deep_copy() -> None:
    pod: dict[str, Any] = {
        "metadata": {"name": "web", "annotations": {"example.com/role": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    mutated = copy.deepcopy(pod)
    mutated["metadata"]["annotations"]["example.com/role"] = "spot"
    mutated["spec"]["containers"].append({"name": "helper", "image": "helper:2"})
    ops = patch_from_mutation(pod, mutated)
    assert {"op": "replace", "path": "/metadata/annotations/example.com~1role", "value": "spot"} in ops
    assert {
        "op": "add",
        "path": "/spec/containers/1",
        "value": {"name": "helper", "image": "helper:2"},
    } in ops
    assert jsonpatch.apply_patch(pod, ops) == mutated
    assert patch_from_mutation(pod, copy.deepcopy(pod)) == []


def canonical(value: Any) -> str:
    """Type-exact comparison: JSON distinguishes 1 from true, Python's == does not."""
    return json.dumps(value, sort_keys=True)


@settings(max_examples=300)
@given(original=JSON_OBJECTS, mutated=JSON_OBJECTS)
def test_patch_turns_original_into_mutated(original: dict[str, Any], mutated: dict[str, Any]) -> None:
    before = canonical(original)
    ops = patch_from_mutation(original, mutated)
    assert canonical(original) == before, "diffing must not modify the original"
    wire_ops = json.loads(json.dumps(ops))  # what the API server receives
    assert canonical(jsonpatch.apply_patch(original, wire_ops)) == canonical(mutated)
