"""The admission route over real HTTP on loopback (and once over real TLS)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from kubewright.runtime.admission import (
    ADMISSION_CLIENT_MAX_SIZE,
    AdmissionRequest,
    Allow,
    Deny,
    add_admission_route,
    patch_from_mutation,
)
from kubewright.runtime.https import new_application, start_site
from kubewright.runtime.tls import new_server_context

from .support import JSON_VALUES, client_context, issue_server_cert, pod_review, write_pair

pytestmark = pytest.mark.unit

Client = TestClient[web.Request, web.Application]
seen_requests: list[AdmissionRequest] = []


async def label_spot(request: AdmissionRequest) -> Allow | Deny:
    seen_requests.append(request)
    if request.object is None:
        return Deny(400, "no object to mutate")
    mutated = copy.deepcopy(request.object)
    mutated.setdefault("metadata", {}).setdefault("labels", {})["capacity"] = "spot"
    return Allow(patch_from_mutation(request.object, mutated), ["scheduled on spot capacity"])


async def forbid(request: AdmissionRequest) -> Allow | Deny:
    return Deny(403, f"{request.namespace}/{request.name} may not be created here")


async def allow(request: AdmissionRequest) -> Allow | Deny:
    return Allow()


async def broken(request: AdmissionRequest) -> Allow | Deny:
    raise RuntimeError("handler bug")


def build_app(
    registry: CollectorRegistry, client_max_size: int = ADMISSION_CLIENT_MAX_SIZE
) -> web.Application:
    app = new_application(client_max_size=client_max_size)
    add_admission_route(app, "/mutate-spot", label_spot, registry)
    add_admission_route(app, "/validate", forbid, registry)
    add_admission_route(app, "/allow", allow, registry)
    add_admission_route(app, "/broken", broken, registry)
    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest_asyncio.fixture
async def client(registry: CollectorRegistry) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(registry))) as test_client:
        yield test_client


def requests_total(registry: CollectorRegistry, webhook: str, code: int) -> float:
    value = registry.get_sample_value(
        "controller_runtime_webhook_requests_total", {"webhook": webhook, "code": str(code)}
    )
    return value or 0.0


async def review(client: Client, path: str, body: Any) -> tuple[int, Any]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


def decoded(patch: str) -> Any:
    return json.loads(base64.b64decode(patch))


async def test_allow_with_patch_echoes_uid(client: Client, registry: CollectorRegistry) -> None:
    status, body = await review(client, "/mutate-spot", pod_review(uid="abc-123"))
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    response = body["response"]
    assert response["uid"] == "abc-123"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert decoded(response["patch"]) == [{"op": "add", "path": "/metadata/labels/capacity", "value": "spot"}]
    assert response["warnings"] == ["scheduled on spot capacity"]
    assert requests_total(registry, "/mutate-spot", 200) == 1
    latency_count = registry.get_sample_value(
        "controller_runtime_webhook_latency_seconds_count", {"webhook": "/mutate-spot"}
    )
    assert latency_count == 1
    assert (
        registry.get_sample_value(
            "controller_runtime_webhook_requests_in_flight", {"webhook": "/mutate-spot"}
        )
        == 0
    )


async def test_allow_without_changes_sends_no_patch(client: Client) -> None:
    status, body = await review(client, "/allow", pod_review(uid="u-2"))
    assert status == 200
    assert body["response"] == {"uid": "u-2", "allowed": True}


async def test_deny(client: Client, registry: CollectorRegistry) -> None:
    status, body = await review(client, "/validate", pod_review(uid="u-3"))
    assert status == 200
    assert body["response"] == {
        "uid": "u-3",
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "shop/web-0 may not be created here"},
    }
    assert registry.get_sample_value("kubewright_webhook_denials_total", {"webhook": "/validate"}) == 1
    assert registry.get_sample_value("kubewright_webhook_denials_total", {"webhook": "/mutate-spot"}) == 0


async def test_dry_run_gets_the_same_answer(client: Client) -> None:
    seen_requests.clear()
    _, real = await review(client, "/mutate-spot", pod_review(uid="same", dryRun=False))
    _, dry = await review(client, "/mutate-spot", pod_review(uid="same", dryRun=True))
    assert dry == real
    assert [request.dry_run for request in seen_requests] == [False, True]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"{not json", "malformed AdmissionReview: body: Invalid JSON"),
        (b"[]", "malformed AdmissionReview: body: Input should be an object"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request: field required"),
        (json.dumps(pod_review(uid="")).encode(), "request.uid: String should have at least 1 character"),
        (
            json.dumps({**pod_review(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            "apiVersion: Input should be 'admission.k8s.io/v1'",
        ),
        (json.dumps(pod_review(operation="MERGE")).encode(), "request.operation: Input should be"),
    ],
)
async def test_malformed_reviews_are_400_with_a_message(
    client: Client, registry: CollectorRegistry, body: bytes, message: str
) -> None:
    response = await client.post("/mutate-spot", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    error = await response.json()
    assert error["code"] == 400
    assert message in error["error"]
    assert requests_total(registry, "/mutate-spot", 400) == 1


async def test_wrong_content_type_is_415(client: Client, registry: CollectorRegistry) -> None:
    response = await client.post(
        "/mutate-spot", data=json.dumps(pod_review()), headers={"Content-Type": "application/yaml"}
    )
    assert response.status == 415
    assert await response.json() == {
        "error": "Content-Type must be application/json, got 'application/yaml'",
        "code": 415,
    }
    assert requests_total(registry, "/mutate-spot", 415) == 1


async def test_handler_failure_is_500_so_failure_policy_applies(
    client: Client, registry: CollectorRegistry
) -> None:
    response = await client.post("/broken", json=pod_review(uid="u-9"))
    assert response.status == 500
    assert "u-9" in (await response.json())["error"]
    assert requests_total(registry, "/broken", 500) == 1


async def test_oversized_review_is_413(registry: CollectorRegistry) -> None:
    async with TestClient(TestServer(build_app(registry, client_max_size=2048))) as small:
        big = pod_review()
        big["request"]["object"]["data"] = "x" * 4096
        response = await small.post("/allow", json=big)
        assert response.status == 413
        assert (await response.json())["code"] == 413
        assert requests_total(registry, "/allow", 413) == 1


async def test_get_is_not_a_review(client: Client) -> None:
    response = await client.get("/mutate-spot")
    assert response.status == 405
    assert (await response.json())["code"] == 405


async def test_over_real_tls(tmp_path: Path, ca: trustme.CA, registry: CollectorRegistry) -> None:
    write_pair(issue_server_cert(ca), tmp_path / "tls.crt", tmp_path / "tls.key")
    context = new_server_context()
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    site = await start_site(build_app(registry), "localhost", 0, ssl_context=context)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{site.url}/mutate-spot", json=pod_review(uid="tls-1"), ssl=client_context(ca)
            ) as response,
        ):
            assert response.status == 200
            body = await response.json()
        assert body["response"]["uid"] == "tls-1"
        assert decoded(body["response"]["patch"])[0]["value"] == "spot"
        assert requests_total(registry, "/mutate-spot", 200) == 1
    finally:
        await site.stop()


# -- fuzzing -----------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def fuzz_client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(CollectorRegistry()))) as test_client:
        yield test_client


def near_reviews() -> st.SearchStrategy[Any]:
    """Reviews with random fields replaced by arbitrary JSON: the shapes a parser is likeliest to trip on."""
    valid = pod_review()
    request_keys = sorted(valid["request"])
    return st.builds(
        lambda key, value, top: {
            **valid,
            **top,
            "request": {**valid["request"], key: value},
        },
        st.sampled_from(request_keys),
        JSON_VALUES,
        st.dictionaries(st.sampled_from(["apiVersion", "kind", "request"]), JSON_VALUES, max_size=1),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JSON_VALUES, near_reviews()))
async def test_arbitrary_json_never_yields_a_server_error(fuzz_client: Client, body: Any) -> None:
    for path in ("/mutate-spot", "/validate"):
        response = await fuzz_client.post(
            path, data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status in {200, 400}, await response.text()
        payload = await response.json()
        if response.status == 200:
            assert payload["response"]["uid"] == body["request"]["uid"]


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
async def test_arbitrary_bytes_never_yield_a_server_error(fuzz_client: Client, body: bytes) -> None:
    response = await fuzz_client.post("/mutate-spot", data=body, headers={"Content-Type": "application/json"})
    assert response.status in {200, 400}
