"""Admission webhooks: AdmissionReview v1 models and the route that serves a handler.

An add-on writes `async def handler(request: AdmissionRequest) -> Allow | Deny` and registers it with
`add_admission_route`; this module owns the wire contract the API server expects:

- the response echoes the request uid (the API server rejects a mismatched answer);
- mutations travel as a base64 RFC 6902 JSONPatch, sent only when there is something to patch;
- dry-run requests reach the handler exactly like real ones, so `kubectl --dry-run=server` shows the
  same verdict and the same patch (handlers must not have side effects, as the API contract requires);
- a body that is not an AdmissionReview is answered 400 with a message naming the offending field, a
  wrong content type 415, both as JSON errors; a handler that raises yields a 500, which the API server
  then treats according to the webhook's `failurePolicy` (controller-runtime instead answers with a
  denial, which blocks requests even under `failurePolicy: Ignore`);
- per-webhook metrics with controller-runtime names, plus a denial counter.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import jsonpatch
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from kubewright.runtime.https import error_response
from kubewright.runtime.logs import get_logger, log_context
from kubewright.runtime.metrics import runtime_metrics

ADMISSION_API_VERSION: Final = "admission.k8s.io/v1"
ADMISSION_KIND: Final = "AdmissionReview"
# object and oldObject can each approach the API server's 3 MiB request limit; aiohttp's default 1 MiB
# would reject legitimate reviews of large objects. Pass it to `https.new_application`.
ADMISSION_CLIENT_MAX_SIZE = 7 * 1024**2
_MAX_REPORTED_ERRORS = 5

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class _Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields from newer API servers are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class GroupVersionKind(_Wire):
    group: str = ""
    version: str
    kind: str


class GroupVersionResource(_Wire):
    group: str = ""
    version: str
    resource: str


class UserInfo(_Wire):
    username: str = ""
    uid: str = ""
    groups: list[str] = Field(default_factory=list)
    extra: dict[str, list[str]] = Field(default_factory=dict)


class AdmissionRequest(_Wire):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    operation: Operation
    user_info: UserInfo = Field(default_factory=UserInfo)
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool = False
    options: dict[str, Any] | None = None


class Status(_Wire):
    code: int | None = None
    reason: str | None = None
    message: str | None = None


# metav1.StatusReason for the codes denials use, so clients that switch on reason see the usual names.
STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class AdmissionResponse(_Wire):
    uid: str
    allowed: bool
    status: Status | None = None
    patch: str | None = None
    patch_type: Literal["JSONPatch"] | None = None
    warnings: list[str] | None = None
    audit_annotations: dict[str, str] | None = None


class AdmissionReview(_Wire):
    api_version: Literal["admission.k8s.io/v1"] = "admission.k8s.io/v1"
    kind: Literal["AdmissionReview"] = "AdmissionReview"
    request: AdmissionRequest | None = None
    response: AdmissionResponse | None = None


@dataclass(frozen=True)
class Allow:
    """Admit the object, applying `patch_ops` (RFC 6902 operations) if any."""

    patch_ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Deny:
    """Reject the request; `message` is what the user sees in kubectl's error."""

    code: int
    message: str
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 400 <= self.code <= 599:
            raise ValueError(f"a denial needs a 4xx or 5xx code, got {self.code} ({self.message!r})")


class BadReview(ValueError):
    """Raised by a handler when the review is well-formed JSON but unusable (e.g. a CREATE without its
    object): the route answers HTTP 400 with the message, not 500, because retrying cannot help."""


AdmissionHandler = Callable[[AdmissionRequest], Awaitable[Allow | Deny]]


def build_response(uid: str, verdict: Allow | Deny) -> AdmissionResponse:
    """The response half of a review for `verdict`, echoing `uid`."""
    if isinstance(verdict, Deny):
        return AdmissionResponse(
            uid=uid,
            allowed=False,
            status=Status(
                code=verdict.code, reason=STATUS_REASONS.get(verdict.code), message=verdict.message
            ),
            warnings=verdict.warnings or None,
        )
    if not verdict.patch_ops:
        return AdmissionResponse(uid=uid, allowed=True, warnings=verdict.warnings or None)
    patch = json.dumps(verdict.patch_ops, separators=(",", ":")).encode()
    return AdmissionResponse(
        uid=uid,
        allowed=True,
        patch=base64.b64encode(patch).decode("ascii"),
        patch_type="JSONPatch",
        warnings=verdict.warnings or None,
    )


def patch_from_mutation(original: dict[str, Any], mutated: dict[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations turning `original` into `mutated`.

    Mutate a deep copy of the object the API server sent, then diff: the patch then touches only what the
    handler changed, instead of replacing whole fields other webhooks or defaulting may also set.
    """
    ops: list[dict[str, Any]] = jsonpatch.make_patch(original, mutated).patch
    return ops


def add_admission_route(
    app: web.Application, path: str, handler: AdmissionHandler, registry: CollectorRegistry
) -> None:
    """Serve `handler` as an admission webhook at POST `path`, recording metrics on `registry`."""
    app.router.add_post(path, _AdmissionRoute(path, handler, registry).serve)


class _AdmissionRoute:
    def __init__(self, path: str, handler: AdmissionHandler, registry: CollectorRegistry) -> None:
        self._path = path
        self._handler = handler
        families = runtime_metrics(registry).webhook
        self._requests = families.requests
        self._latency = families.latency.labels(path)
        self._in_flight = families.in_flight.labels(path)
        self._denials = families.denials.labels(path)
        self._log = get_logger("kubewright.runtime.admission").bind(webhook=path)

    async def serve(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        self._in_flight.inc()
        try:
            response = await self._answer(request)
        finally:
            self._in_flight.dec()
        self._requests.labels(self._path, str(response.status)).inc()
        self._latency.observe(time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return error_response(415, f"Content-Type must be application/json, got {request.content_type!r}")
        try:
            body = await request.read()
        except web.HTTPException as exc:  # body over client_max_size
            return error_response(exc.status, exc.text or exc.reason)
        if not body:
            return error_response(400, "empty body: expected an admission.k8s.io/v1 AdmissionReview")
        try:
            review = AdmissionReview.model_validate_json(body)
        except ValidationError as exc:
            return error_response(400, f"malformed AdmissionReview: {describe_validation_error(exc)}")
        if review.request is None:
            return error_response(400, "malformed AdmissionReview: request: field required")
        uid = review.request.uid
        try:
            with log_context(admission_uid=uid, webhook=self._path):
                verdict = await self._handler(review.request)
        except BadReview as exc:
            return error_response(400, f"malformed AdmissionReview: {exc}")
        except Exception:
            self._log.exception("admission handler failed", uid=uid)
            return error_response(500, f"admission handler for {self._path} failed on request {uid}")
        if isinstance(verdict, Deny):
            self._denials.inc()
        answer = AdmissionReview(response=build_response(uid, verdict))
        return web.Response(
            body=answer.model_dump_json(by_alias=True, exclude_none=True).encode(),
            content_type="application/json",
        )


def describe_validation_error(exc: ValidationError) -> str:
    """'request.uid: Field required; ...' using wire (camelCase) names, so users can find the field."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)
