"""Spec 2.5 and 3.6: the `/mutate` admission webhook, served by every replica.

The wire contract is upstream's [compat], so this module answers HTTP itself instead of using the
runtime's `add_admission_route` (whose errors carry numeric codes):

| input | answer |
|---|---|
| kind != Pod | allowed, status message `unsupported resource kind` |
| not CREATE, or `spec.nodeName` preset | allowed, no patch |
| unsupported owner, or unmanaged | allowed, status message `not managed by Spotalis` |
| unreadable annotations | allowed, no patch, `failed to get workload config` (+ a warning with the detail) |
| undecodable Pod; owner GET failed; any internal error | allowed, no patch, with a warning [fix] |
| read-only mode | allowed, no patch [fix] |
| managed | allowed, `patchType: JSONPatch`, uid echoed |
| bad JSON / not an AdmissionReview | 400 `{"error", "code": "INVALID_ADMISSION_REQUEST"}` |
| no `request` | 400 `{"error", "code": "EMPTY_ADMISSION_REQUEST"}` |
| body > 3 MiB | 413 |

Never a denial: placement is advice the controllers can correct, a blocked pod is an outage. A v1beta1
review is answered as v1beta1 (the same shape). The decision itself (`placement.admit`) is synchronous:
no `await` separates reading the counters from recording the in-flight admission.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from kubewright.runtime.admission import AdmissionRequest, describe_validation_error
from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.logs import get_logger
from kubewright.runtime.metrics import runtime_metrics
from kubewright.spotalis import constants as c
from kubewright.spotalis import placement
from kubewright.spotalis.annotations import Management, read_workload
from kubewright.spotalis.cache import NamespaceRecord, OwnerLookupError, build_namespace_filter
from kubewright.spotalis.classify import Requirement
from kubewright.spotalis.config import SpotalisConfig
from kubewright.spotalis.constants import WebhookResult
from kubewright.spotalis.inflight import InflightTracker
from kubewright.spotalis.metrics import SpotalisMetrics
from kubewright.spotalis.model import NamespaceFilter, WorkloadConfiguration
from kubewright.spotalis.records import (
    DEPLOYMENT,
    REPLICA_SET,
    STATEFUL_SET,
    WorkloadRecord,
    group_key,
    parse_time,
)
from kubewright.spotalis.state import ClusterState

ADMISSION_V1 = "admission.k8s.io/v1"
ADMISSION_V1BETA1 = "admission.k8s.io/v1beta1"
ADMISSION_VERSIONS = (ADMISSION_V1, ADMISSION_V1BETA1)
CODE_TOO_LARGE = "REQUEST_TOO_LARGE"
# aiohttp must not refuse first: its limit sits above ours, so an oversized body gets our 413.
APP_CLIENT_MAX_SIZE = c.MAX_REVIEW_BYTES + 1024**2
_CHUNK = 64 * 1024
UNDECODABLE_POD = "spotalis: could not read the Pod; created without placement"

log = get_logger("kubewright.spotalis.webhook")


class WorkloadSource(Protocol):
    """What the webhook reads (implemented by `cache.SpotalisCache`)."""

    def workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None: ...

    def namespace(self, name: str) -> NamespaceRecord | None: ...

    async def fetch_workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None: ...


def build_policy(config: SpotalisConfig) -> placement.PlacementPolicy:
    """`webhook.placement` (presets already resolved by the config) as the pure placement policy."""
    section = config.webhook.placement
    return placement.placement_policy(
        placement.PlacementProvider(section.provider),
        placement.PlacementMode(section.mode),
        spot_term=[Requirement.from_dict(r.model_dump(mode="json")) for r in section.spotTerm],
        on_demand_term=[Requirement.from_dict(r.model_dump(mode="json")) for r in section.onDemandTerm],
        spot_tolerations=[
            placement.Toleration.from_dict(t.model_dump(mode="json", exclude_none=True))
            for t in section.spotTolerations
        ],
    )


@dataclass(frozen=True)
class Outcome:
    """How one review was answered; always allowed."""

    result: WebhookResult
    reason: str  # for logs: unsupported-kind, not-create, node-name-set, not-managed, ..., placed
    patch: placement.JsonPatch = field(default_factory=list)
    message: str | None = None  # status.message [compat]
    warnings: tuple[str, ...] = ()
    admission: placement.Admission | None = None


class ReviewError(Exception):
    """A body that is not a usable AdmissionReview: answered with `status` and a string code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _skip(reason: str, message: str | None = None) -> Outcome:
    return Outcome(WebhookResult.SKIPPED, reason, message=message)


def _not_managed(reason: str) -> Outcome:
    return Outcome(WebhookResult.SKIPPED, reason, message=c.REVIEW_NOT_MANAGED)


class SpotalisWebhook:
    """The placement webhook. `config` may be swapped by a reload (webhook keys apply at once)."""

    def __init__(
        self,
        config: SpotalisConfig,
        source: WorkloadSource,
        state: ClusterState,
        inflight: InflightTracker,
        metrics: SpotalisMetrics,
        *,
        policy: placement.PlacementPolicy | None = None,
        namespace_filter: NamespaceFilter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.state = state
        self.inflight = inflight
        self.metrics = metrics
        self.policy = policy or build_policy(config)
        self.namespace_filter = namespace_filter or build_namespace_filter(config)
        self._clock = clock or RealClock()

    # -- routes ---------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application, registry: CollectorRegistry) -> None:
        """POST /mutate and /mutate-v1-pod (spec 2.4), with controller-runtime's webhook metrics."""
        for path in c.WEBHOOK_PATHS:
            app.router.add_post(path, _Route(self, path, registry).serve)

    # -- the HTTP contract ----------------------------------------------------------------------------

    async def answer(self, http: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await _read_limited(http)
            api_version, request = parse_review(body)
        except ReviewError as err:
            return review_error(err)
        try:
            outcome = await self.decide(request)
        except Exception as err:  # never deny, never fail the pod: allow it unmutated
            log.exception("admission failed", uid=request.uid)
            outcome = Outcome(
                WebhookResult.ERROR, "internal-error", warnings=(f"spotalis: placement skipped: {err}",)
            )
        seconds = time.perf_counter() - started
        self._record(request, outcome, seconds)
        return web.json_response(render_review(api_version, request.uid, outcome))

    def _record(self, request: AdmissionRequest, outcome: Outcome, seconds: float) -> None:
        kind = request.kind.kind or "unknown"
        self.metrics.webhook_requests.labels(request.operation, kind, outcome.result.value).inc()
        self.metrics.webhook_decision_duration.labels(outcome.result.value).observe(seconds)
        admission = outcome.admission
        if admission is not None:
            capacity = admission.decision.capacity.value
            self.metrics.webhook_decisions.labels(capacity, admission.decision.reason.value).inc()
            if outcome.result is WebhookResult.MUTATED:
                self.metrics.webhook_mutations.labels(kind, capacity).inc()
        fields: dict[str, Any] = {
            "uid": request.uid,
            "namespace": request.namespace,
            "kind": kind,
            "operation": request.operation,
            "dry_run": bool(request.dry_run),
            "result": outcome.result.value,
            "reason": outcome.reason,
            "duration_ms": round(seconds * 1000, 3),
        }
        if admission is not None:
            fields |= {
                "capacity": admission.decision.capacity.value,
                "decision": admission.decision.reason.value,
                c.LOG_CURRENT_SPOT: admission.spot,
                c.LOG_CURRENT_ON_DEMAND: admission.on_demand,
                c.LOG_DESIRED_SPOT: admission.target.spot,
                c.LOG_DESIRED_ON_DEMAND: admission.target.on_demand,
                "pending_spot": admission.pending_spot,
                "pending_on_demand": admission.pending_on_demand,
            }
        if outcome.result is WebhookResult.ERROR:
            log.warning("admission", warnings=list(outcome.warnings), **fields)
        elif outcome.result is WebhookResult.MUTATED:
            log.info("admission", **fields)
        else:
            log.debug("admission", **fields)

    # -- the decision (spec 2.5 table, 3.6 steps 1-8) -------------------------------------------------

    async def decide(self, request: AdmissionRequest) -> Outcome:
        if request.kind.kind != "Pod":
            return _skip("unsupported-kind", c.REVIEW_UNSUPPORTED_KIND)
        if request.operation != "CREATE":
            return _skip("not-create")
        pod = request.object
        meta = pod.get("metadata") if isinstance(pod, dict) else None
        spec = pod.get("spec") if isinstance(pod, dict) else None
        if not isinstance(pod, dict) or not isinstance(meta, dict) or not isinstance(spec, dict):
            return Outcome(WebhookResult.ERROR, "undecodable-pod", warnings=(UNDECODABLE_POD,))
        if spec.get("nodeName"):
            return _skip("node-name-set")
        namespace = request.namespace or str(meta.get("namespace") or "")
        owner = _controller_owner(meta.get("ownerReferences"))
        if owner is None or owner[0] not in (REPLICA_SET, STATEFUL_SET):
            return _not_managed("unsupported-owner")
        if namespace == self.config.operator.namespace:
            return _not_managed("operator-namespace")
        ns = self.source.namespace(namespace)
        ns_labels = ns.labels if ns is not None else None
        if not self.namespace_filter.namespace_verdict(namespace, ns_labels).allowed:
            return _not_managed("namespace-filtered")
        try:
            resolved = await self._resolve(namespace, owner)
        except OwnerLookupError as err:
            return Outcome(
                WebhookResult.ERROR, "owner-lookup-failed", warnings=(f"spotalis: placement skipped: {err}",)
            )
        if resolved is None:
            return _not_managed("unsupported-owner")
        workload, group, total = resolved
        if not self.namespace_filter.require_namespace_label:
            # The filter admitted the namespace without its label: the gate below must not re-check it.
            ns_labels = {**(ns_labels or {}), c.ENABLED_LABEL: c.ENABLED_VALUE}
        defaults = self.config.controllers.workloadDefaults
        reading = read_workload(
            namespace=namespace,
            namespace_labels=ns_labels,
            namespace_annotations=ns.annotations if ns is not None else None,
            workload_labels=workload.labels,
            workload_annotations=workload.annotations,
            defaults=WorkloadConfiguration(
                spot_percentage=defaults.spotPercentage, min_on_demand=defaults.minOnDemand
            ),
        )
        if reading.management is Management.INVALID:
            return Outcome(
                WebhookResult.ERROR,
                "invalid-annotations",
                message=c.REVIEW_CONFIG_ERROR,
                warnings=(f"spotalis: {c.REVIEW_CONFIG_ERROR}: {reading.error}",),
            )
        if not reading.managed or reading.config is None:
            return _not_managed(reading.management.value)
        if self.config.operator.readOnlyMode:
            return _skip("read-only")
        marker = parse_time(workload.annotations.get(c.SPOT_UNAVAILABLE_UNTIL_ANNOTATION))
        admission = placement.admit(
            placement.AdmissionRequest(
                uid=request.uid,
                pod=pod,
                group=group,
                total=total,
                spot_percentage=reading.config.spot_percentage,
                min_on_demand=reading.config.min_on_demand,
                spot_unavailable_until=marker,
                dry_run=bool(request.dry_run),
            ),
            self.state,
            self.inflight,
            self.policy,
            self._clock.now().timestamp(),
        )
        result = WebhookResult.MUTATED if admission.patch else WebhookResult.SKIPPED
        return Outcome(result, "placed", patch=admission.patch, admission=admission)

    async def _resolve(
        self, namespace: str, owner: tuple[str, str]
    ) -> tuple[WorkloadRecord, str, int] | None:
        """(workload, group G, T) per steps 1-3, or None for an owner Spotalis does not manage."""
        kind, name = owner
        if kind == STATEFUL_SET:
            sts = await self._workload(STATEFUL_SET, namespace, name)
            if sts is None:
                return None
            return sts, group_key(namespace, STATEFUL_SET, name), placement.admission_total(sts.replicas)
        rs = await self._workload(REPLICA_SET, namespace, name)
        if rs is None or rs.owner is None or rs.owner.kind != DEPLOYMENT:
            return None  # bare ReplicaSets are out of scope
        deployment = await self._workload(DEPLOYMENT, namespace, rs.owner.name)
        if deployment is None:
            return None
        total = placement.admission_total(deployment.replicas, rs.replicas)
        return deployment, group_key(namespace, REPLICA_SET, name), total

    async def _workload(self, kind: str, namespace: str, name: str) -> WorkloadRecord | None:
        cached = self.source.workload(kind, namespace, name)
        if cached is not None:
            return cached
        return await self.source.fetch_workload(kind, namespace, name)


class _Route:
    """One path, with controller-runtime's per-webhook request, latency and in-flight metrics."""

    def __init__(self, webhook: SpotalisWebhook, path: str, registry: CollectorRegistry) -> None:
        families = runtime_metrics(registry).webhook
        self._webhook = webhook
        self._path = path
        self._requests = families.requests
        self._latency = families.latency.labels(path)
        self._in_flight = families.in_flight.labels(path)

    async def serve(self, http: web.Request) -> web.Response:
        started = time.perf_counter()
        self._in_flight.inc()
        try:
            response = await self._webhook.answer(http)
        finally:
            self._in_flight.dec()
        self._requests.labels(self._path, str(response.status)).inc()
        self._latency.observe(time.perf_counter() - started)
        return response


# -- wire helpers (pure) --------------------------------------------------------------------------------


async def _read_limited(http: web.Request) -> bytes:
    if http.content_length is not None and http.content_length > c.MAX_REVIEW_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in http.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > c.MAX_REVIEW_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> ReviewError:
    return ReviewError(413, CODE_TOO_LARGE, f"request body exceeds {c.MAX_REVIEW_BYTES} bytes")


def parse_review(body: bytes) -> tuple[str, AdmissionRequest]:
    """(apiVersion to answer with, the request); raises ReviewError for the 400 cases of spec 2.5."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ReviewError(400, c.ERROR_CODE_INVALID_REQUEST, f"invalid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ReviewError(400, c.ERROR_CODE_INVALID_REQUEST, "expected an AdmissionReview object")
    api_version = raw.get("apiVersion") or ADMISSION_V1
    if api_version not in ADMISSION_VERSIONS or raw.get("kind", "AdmissionReview") != "AdmissionReview":
        raise ReviewError(
            400,
            c.ERROR_CODE_INVALID_REQUEST,
            f"expected an AdmissionReview of {' or '.join(ADMISSION_VERSIONS)}, "
            f"got {raw.get('kind')!r} {api_version!r}",
        )
    request = raw.get("request")
    if request is None:
        raise ReviewError(400, c.ERROR_CODE_EMPTY_REQUEST, "AdmissionReview has no request")
    if not isinstance(request, dict):
        raise ReviewError(400, c.ERROR_CODE_INVALID_REQUEST, "request: expected an object")
    try:
        return str(api_version), AdmissionRequest.model_validate(request)
    except ValidationError as err:
        raise ReviewError(
            400, c.ERROR_CODE_INVALID_REQUEST, f"request: {describe_validation_error(err)}"
        ) from None


def review_error(err: ReviewError) -> web.Response:
    return web.json_response({"error": err.message, "code": err.code}, status=err.status)


def render_review(api_version: str, uid: str, outcome: Outcome) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if outcome.patch:
        encoded = json.dumps(outcome.patch, separators=(",", ":")).encode()
        response["patch"] = base64.b64encode(encoded).decode("ascii")
        response["patchType"] = "JSONPatch"
    if outcome.message:
        response["status"] = {"code": 200, "message": outcome.message}
    if outcome.warnings:
        response["warnings"] = list(outcome.warnings)
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def _controller_owner(refs: object) -> tuple[str, str] | None:
    if not isinstance(refs, Sequence) or isinstance(refs, str):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            kind, name = ref.get("kind"), ref.get("name")
            if isinstance(kind, str) and isinstance(name, str) and name:
                return kind, name
    return None
