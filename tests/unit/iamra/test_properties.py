"""Property tests (any pod in -> the patch applies and re-mutating is a no-op) and the fuzz of spec 5.

The fuzz runs FUZZ_EXAMPLES examples per test (2,000 by default to keep CI quick); the issue's
>= 100,000-case run is `IAMRA_FUZZ_EXAMPLES=100000 pytest tests/unit/iamra/test_properties.py -k fuzz`.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kubewright.iamra.constants import Result, SidecarMode
from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Denied, Injected
from kubewright.iamra.pod import MalformedReview
from kubewright.iamra.review import decide_review
from kubewright.runtime.admission import AdmissionReview, build_response

from .strategies import hostile_annotations, hostile_bodies, pods
from .support import (
    WEBHOOK_VERSION,
    annotated_pod,
    assert_patch_invariants,
    assert_reinvocation_noop,
    config_with,
    review_request,
)

pytestmark = pytest.mark.unit

FUZZ_EXAMPLES = int(os.environ.get("IAMRA_FUZZ_EXAMPLES", "2000"))
CONFIG = config_with()
SECRET_CONFIG = config_with({"workloadCertificate": {"mode": "secret"}})
MODES = st.sampled_from([SidecarMode.NATIVE, SidecarMode.LEGACY])
QUICK = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(pods(), MODES, st.sampled_from([CONFIG, SECRET_CONFIG]))
def test_any_pod_patch_applies_and_reinvocation_is_a_noop(
    pod: dict[str, Any], mode: SidecarMode, config: Any
) -> None:
    before = copy.deepcopy(pod)
    outcome = decide(review_request(pod), config, mode, WEBHOOK_VERSION)
    assert pod == before
    if isinstance(outcome, Injected):
        assert_patch_invariants(pod, outcome)
        assert_reinvocation_noop(outcome, config, mode)
        assert outcome.pod["metadata"]["annotations"]["iamra.aws/injected"] == "true"
    elif isinstance(outcome, Denied):
        assert outcome.code == 400
        assert outcome.messages
    for item in outcome.notices:
        assert len(item.text) <= 120
        assert item.text.startswith("iamra: ")


@QUICK
@given(pods(), MODES)
def test_decision_is_deterministic(pod: dict[str, Any], mode: SidecarMode) -> None:
    first = decide(review_request(pod), CONFIG, mode, WEBHOOK_VERSION)
    second = decide(review_request(copy.deepcopy(pod)), CONFIG, mode, WEBHOOK_VERSION)
    assert first == second


@FUZZ
@given(hostile_annotations(), MODES)
def test_fuzz_annotation_values(annotations: dict[str, Any], mode: SidecarMode) -> None:
    """Any annotation value: skip, deny (400, every message naming an annotation) or a clean injection."""
    pod = annotated_pod()
    pod["metadata"]["annotations"] = annotations
    outcome = decide(review_request(pod), CONFIG, mode, WEBHOOK_VERSION)
    if isinstance(outcome, Injected):
        assert_patch_invariants(pod, outcome)
        assert_reinvocation_noop(outcome, CONFIG, mode)
    if isinstance(outcome, Denied):
        assert outcome.code == 400
        assert all(message.startswith("iamra.aws/") for message in outcome.messages)
    assert all(len(item.text) <= 120 for item in outcome.notices)


@FUZZ
@given(hostile_bodies(), st.sampled_from([SidecarMode.NATIVE, SidecarMode.LEGACY, None]))
def test_fuzz_review_body(body: bytes, mode: SidecarMode | None) -> None:
    """The whole /mutate path short of HTTP: only the specified 400s may be raised, never a 500."""
    try:
        review = AdmissionReview.model_validate_json(body)
    except ValidationError:
        return  # the envelope's 400 (runtime.admission answers it)
    if review.request is None:
        return  # 400 as well
    try:
        decision = decide_review(review.request, CONFIG, mode, WEBHOOK_VERSION)
    except MalformedReview:
        return  # the specified 400 for an object that is not a Pod
    assert decision.error is None, decision.error
    assert decision.result is not Result.ERROR
    answer = AdmissionReview(response=build_response(review.request.uid, decision.verdict))
    assert answer.model_dump_json(by_alias=True, exclude_none=True)
