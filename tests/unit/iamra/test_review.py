"""The decision as the runtime's admission verdict, and spec 3.1 step 5 (unexpected errors)."""

from __future__ import annotations

import base64
import json
from typing import NoReturn

import pytest

from kubewright.iamra import review
from kubewright.iamra.constants import Reason, Result, SidecarMode, WarningKind
from kubewright.iamra.pod import MalformedReview
from kubewright.iamra.review import decide_review, review_response
from kubewright.runtime.admission import AdmissionReview, Allow, Deny

from .support import WEBHOOK_VERSION, annotated_pod, config_with, review_request

pytestmark = pytest.mark.unit


def explode(*_: object) -> NoReturn:
    raise RuntimeError("bug")


def test_injection_becomes_allow_with_patch_and_metric_labels() -> None:
    decision = decide_review(
        review_request(annotated_pod()), config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION
    )
    assert isinstance(decision.verdict, Allow)
    assert decision.verdict.patch_ops
    assert (decision.result, decision.reason, decision.mode) == (
        Result.INJECTED,
        Reason.NATIVE,
        SidecarMode.NATIVE,
    )
    assert decision.injection_hash is not None
    assert decision.error is None


def test_denial_becomes_deny_400_with_joined_messages() -> None:
    pod = annotated_pod({"iamra.aws/region": "x", "iamra.aws/token-duration": "15m"})
    decision = decide_review(review_request(pod), config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION)
    assert isinstance(decision.verdict, Deny)
    assert decision.verdict.code == 400
    assert decision.verdict.message == (
        'iamra.aws/token-duration: "15m" must be whole seconds in [900, 43200]; '
        'iamra.aws/region: "x" must be an AWS region such as us-east-1'
    )
    assert (decision.result, decision.reason) == (Result.DENIED, Reason.INVALID_ANNOTATION)


def test_skip_becomes_allow_without_patch() -> None:
    pod = annotated_pod()
    pod["metadata"]["annotations"].pop("iamra.aws/role-arn")
    decision = decide_review(review_request(pod), config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION)
    assert decision.verdict == Allow([], ["iamra: not injected: iamra.aws/role-arn missing or blank"])
    assert (decision.result, decision.reason) == (Result.SKIPPED, Reason.NOT_ANNOTATED)


def test_internal_error_under_fail_denies_with_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "decide", explode)
    decision = decide_review(review_request(annotated_pod()), config_with(), SidecarMode.NATIVE)
    assert isinstance(decision.verdict, Deny)
    assert decision.verdict.code == 500
    assert (decision.result, decision.reason) == (Result.ERROR, Reason.ERROR)
    assert isinstance(decision.error, RuntimeError)


def test_internal_error_under_ignore_allows_with_the_spec_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "decide", explode)
    decision = decide_review(review_request(annotated_pod()), config_with({"failurePolicy": "Ignore"}), None)
    assert decision.verdict == Allow([], ["iamra: injection skipped (internal error)"])
    assert [n.kind for n in decision.notices] == [WarningKind.INTERNAL_ERROR]
    assert decision.result is Result.ERROR


def test_malformed_review_is_not_swallowed() -> None:
    with pytest.raises(MalformedReview):
        decide_review(review_request({"metadata": []}), config_with(), SidecarMode.NATIVE)


def test_response_on_the_wire() -> None:
    request = review_request(annotated_pod())
    response = review_response(request, config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION)
    wire = json.loads(AdmissionReview(response=response).model_dump_json(by_alias=True, exclude_none=True))
    assert wire["apiVersion"] == "admission.k8s.io/v1"
    assert wire["kind"] == "AdmissionReview"
    body = wire["response"]
    assert body["uid"] == request.uid
    assert body["allowed"] is True
    assert body["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(body["patch"]))
    assert {op["op"] for op in ops} == {"add"}
    assert "warnings" not in body  # no warnings, no field


def test_denial_on_the_wire() -> None:
    request = review_request(annotated_pod(hostNetwork=True))
    response = review_response(request, config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION)
    wire = json.loads(AdmissionReview(response=response).model_dump_json(by_alias=True, exclude_none=True))
    assert wire["response"]["allowed"] is False
    assert wire["response"]["status"]["code"] == 400
    assert wire["response"]["status"]["message"].startswith("spec.hostNetwork: ")
    assert "patch" not in wire["response"]
