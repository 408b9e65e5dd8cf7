"""Pinned answers for every spec 3.2 rule and section 4 edge case (fixtures/pods/*.yaml, eks testdata style).

Each fixture holds the request, config overrides and sidecar mode, and the exact expected answer: result,
metric reason, warnings, and for injections the exact JSONPatch ops. Every injecting fixture is also
checked against the spec 3.5 invariants and for a no-op re-invocation; the wire path (verdict -> base64
patch in the AdmissionReview response) must carry the same ops.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Denied, Injected
from kubewright.iamra.review import decide_review
from kubewright.runtime.admission import build_response

from .support import WEBHOOK_VERSION, Case, assert_patch_invariants, assert_reinvocation_noop, load_cases

pytestmark = pytest.mark.unit

CASES = load_cases()


def test_fixture_set_covers_the_spec() -> None:
    names = {case.name for case in CASES}
    assert len(names) >= 55
    for prefix in ("inject-", "skip-", "deny-"):
        assert any(name.startswith(prefix) for name in names)
    for case in CASES:
        assert case.data.get("description"), f"{case.name} says why it exists"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_pinned_answer(case: Case) -> None:
    request = case.request()
    before = copy.deepcopy(request.object)
    outcome = decide(request, case.config, case.mode, WEBHOOK_VERSION)
    expect = case.expect
    assert outcome.result.value == expect["result"]
    assert outcome.reason.value == expect["reason"]
    assert [item.text for item in outcome.notices] == expect["warnings"]
    assert all(len(item.text) <= 120 and item.text.startswith("iamra: ") for item in outcome.notices)
    assert request.object == before, "the request's pod must not be edited in place"
    if isinstance(outcome, Denied):
        assert (outcome.code, outcome.message) == (expect["code"], expect["message"])
    if isinstance(outcome, Injected):
        assert outcome.patch == expect["patch"]
    else:
        assert "patch" not in expect


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.expect["result"] == "injected"], ids=lambda c: c.name
)
def test_patch_invariants_and_reinvocation(case: Case) -> None:
    request = case.request()
    assert request.object is not None
    outcome = decide(request, case.config, case.mode, WEBHOOK_VERSION)
    assert isinstance(outcome, Injected)
    assert_patch_invariants(request.object, outcome)
    assert_reinvocation_noop(outcome, case.config, case.mode)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_wire_answer_matches(case: Case) -> None:
    request = case.request()
    response = build_response(
        request.uid, decide_review(request, case.config, case.mode, WEBHOOK_VERSION).verdict
    )
    expect = case.expect
    assert response.uid == request.uid
    assert response.allowed is (expect["result"] != "denied")
    assert (response.warnings or []) == expect["warnings"]
    if "patch" in expect:
        assert response.patch_type == "JSONPatch"
        assert response.patch is not None
        assert json.loads(base64.b64decode(response.patch)) == expect["patch"]
    else:
        assert response.patch is None
        assert response.patch_type is None
    if expect["result"] == "denied":
        assert response.status is not None
        assert (response.status.code, response.status.message) == (expect["code"], expect["message"])
