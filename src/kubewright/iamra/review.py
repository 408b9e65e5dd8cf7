"""Wiring: the pure decision (`mutate.decide`) as the runtime's admission verdict, plus spec 3.1 step 5.

One function, `decide_review`, is what the server's `/mutate` handler, the offline `kubewright iamra
mutate` preview and the benchmark call, so all three give the same answer for the same review. It also
applies the failure policy to an unexpected exception: the handler must answer with an AdmissionReview
in that case (allowed:false 500 under `Fail`, allowed:true plus a warning under `Ignore`), because a bare
HTTP 500 would leave the choice to the API server, which reads it as `Fail`/`Ignore` of the MWC while the
spec asks for the resolved `failurePolicy` of the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubewright import __version__
from kubewright.iamra import constants as c
from kubewright.iamra.config import IamraConfig
from kubewright.iamra.constants import Reason, Result, SidecarMode, WarningKind
from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Denied, Injected, Notice, Outcome, Skipped
from kubewright.iamra.pod import MalformedReview
from kubewright.runtime.admission import AdmissionRequest, AdmissionResponse, Allow, Deny, build_response

INTERNAL_ERROR_MESSAGE = "iamra: injection failed (internal error); see the webhook log"


@dataclass(frozen=True)
class Decision:
    """The verdict for the API server plus what the server records about it (metrics, log line)."""

    verdict: Allow | Deny
    result: Result
    reason: Reason
    notices: tuple[Notice, ...]
    injection_hash: str | None = None
    mode: SidecarMode | None = None
    error: Exception | None = None  # step 5: log it with its traceback


def decide_review(
    request: AdmissionRequest,
    config: IamraConfig,
    mode: SidecarMode | None,
    webhook_version: str = __version__,
) -> Decision:
    """Decide `request`; `MalformedReview` propagates (the caller answers HTTP 400 in plain text)."""
    try:
        outcome = decide(request, config, mode, webhook_version)
    except MalformedReview:
        raise
    except Exception as err:  # spec 3.1 step 5: never a bare 500, the config's failurePolicy decides
        return internal_error_decision(config, err)
    return decision_for(outcome)


def decision_for(outcome: Outcome) -> Decision:
    warnings = [item.text for item in outcome.notices]
    if isinstance(outcome, Injected):
        return Decision(
            Allow(outcome.patch, warnings),
            outcome.result,
            outcome.reason,
            outcome.notices,
            injection_hash=outcome.injection_hash,
            mode=outcome.mode,
        )
    if isinstance(outcome, Denied):
        return Decision(
            Deny(outcome.code, outcome.message, warnings), outcome.result, outcome.reason, outcome.notices
        )
    skipped: Skipped = outcome
    return Decision(Allow([], warnings), skipped.result, skipped.reason, skipped.notices)


def internal_error_decision(config: IamraConfig, err: Exception) -> Decision:
    if config.failurePolicy == "Ignore":
        warning = Notice(WarningKind.INTERNAL_ERROR, c.INTERNAL_ERROR_WARNING)
        return Decision(Allow([], [warning.text]), Result.ERROR, Reason.ERROR, (warning,), error=err)
    return Decision(Deny(500, INTERNAL_ERROR_MESSAGE), Result.ERROR, Reason.ERROR, (), error=err)


def review_response(
    request: AdmissionRequest,
    config: IamraConfig,
    mode: SidecarMode | None,
    webhook_version: str = __version__,
) -> AdmissionResponse:
    """The response half of the AdmissionReview the server sends for `request`."""
    return build_response(request.uid, decide_review(request, config, mode, webhook_version).verdict)
