"""The admission kit behind a real MutatingWebhookConfiguration on the local kube-apiserver.

The unit tests pin the wire format against hand-written reviews; these prove the API server agrees:
it accepts the kit's responses (uid echo, base64 JSONPatch, warnings), applies the patch, sends dry-run
requests that the handler sees as such, and surfaces a denial's code and message to the client. The
server is the runtime's own stack (`https.start_site` + a `tls.CertReloader`-loaded context), with a
serving certificate signed by the cluster CA the webhook configuration trusts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from kubewright.runtime.admission import (
    ADMISSION_CLIENT_MAX_SIZE,
    AdmissionRequest,
    Allow,
    Deny,
    add_admission_route,
    patch_from_mutation,
)
from kubewright.runtime.clock import RealClock
from kubewright.runtime.https import new_application, start_site
from kubewright.runtime.kube import Forbidden, KubeClient, NotFound
from kubewright.runtime.tls import CertReloader, new_server_context
from kubewright.testenv import loopback, pki
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.envtest

WEBHOOK_PATH = "/mutate-configmaps"
MUTATED_LABEL = "admission.kubewright.dev/mutated"
INJECTED_KEY = "injected-by"
INJECTED_VALUE = "kubewright-admission-kit"
WARNING = "configmap labelled by the kubewright admission test webhook"
RESERVED_PREFIX = "forbidden-"
DENIAL_CODE = 403
CONFIGMAP_CREATE = [
    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
]
# The API server reads the configuration through an informer: a new webhook takes effect a moment later.
REGISTRATION_DEADLINE = 30.0


def denial_message(name: str) -> str:
    return f"configmap {name!r} uses the reserved prefix {RESERVED_PREFIX!r}"


@dataclass
class LabellingHandler:
    """Labels and fills every ConfigMap it admits, denies reserved names, and records what it saw."""

    seen: list[AdmissionRequest] = field(default_factory=list)

    async def __call__(self, request: AdmissionRequest) -> Allow | Deny:
        self.seen.append(request)
        original = request.object or {}
        name = str(original.get("metadata", {}).get("name", ""))
        if name.startswith(RESERVED_PREFIX):
            return Deny(DENIAL_CODE, denial_message(name))
        mutated = copy.deepcopy(original)
        mutated.setdefault("metadata", {}).setdefault("labels", {})[MUTATED_LABEL] = "yes"
        mutated.setdefault("data", {})[INJECTED_KEY] = INJECTED_VALUE
        return Allow(patch_from_mutation(original, mutated), [WARNING])

    def requests_for(self, name: str) -> list[AdmissionRequest]:
        return [r for r in self.seen if (r.object or {}).get("metadata", {}).get("name") == name]


@dataclass
class WebhookServer:
    url: str
    port: int
    handler: LabellingHandler
    registry: CollectorRegistry
    webhook_name: str = ""


@pytest.fixture
async def webhook_server(envtest_cluster: LocalCluster, tmp_path: Path) -> AsyncIterator[WebhookServer]:
    """The admission app served over TLS on loopback exactly as an add-on serves it."""
    serving = pki.issue_serving_cert(tmp_path, envtest_cluster.pki.ca, "admission-webhook", ("localhost",))
    context = new_server_context()
    CertReloader(context, serving.cert, serving.key, RealClock()).load()
    registry = CollectorRegistry()
    handler = LabellingHandler()
    app = new_application(client_max_size=ADMISSION_CLIENT_MAX_SIZE)
    add_admission_route(app, WEBHOOK_PATH, handler, registry)
    site = await start_site(app, "127.0.0.1", 0, ssl_context=context)
    try:
        yield WebhookServer(
            url=f"{site.url}{WEBHOOK_PATH}", port=site.port, handler=handler, registry=registry
        )
    finally:
        await site.stop()


@pytest.fixture
async def registered_webhook(
    webhook_server: WebhookServer, envtest_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> AsyncIterator[WebhookServer]:
    """`webhook_server` registered for ConfigMap CREATEs in the test namespace only, and in effect."""
    config = loopback.mutating_webhook_configuration(
        f"admission-{namespace}",
        loopback.url_client_config(webhook_server.port, WEBHOOK_PATH, envtest_cluster.ca_pem),
        rules=CONFIGMAP_CREATE,
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    )
    await kube.apply(config)
    webhook_server.webhook_name = config["webhooks"][0]["name"]
    try:
        await wait_until_mutating(kube, namespace)
        yield webhook_server
    finally:
        await kube.delete(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            config["metadata"]["name"],
            missing_ok=True,
        )


async def wait_until_mutating(kube: KubeClient, namespace: str) -> None:
    """Create probe ConfigMaps until one comes back mutated, i.e. the API server calls the webhook."""
    attempt = 0
    try:
        async with asyncio.timeout(REGISTRATION_DEADLINE):
            while True:
                attempt += 1
                probe = await kube.create(configmap(f"probe-{attempt}", namespace))
                if probe["metadata"].get("labels", {}).get(MUTATED_LABEL) == "yes":
                    return
                await asyncio.sleep(0.2)  # poll
    except TimeoutError:
        pytest.fail(f"webhook not in the admission chain after {REGISTRATION_DEADLINE}s ({attempt} probes)")


def configmap(name: str, namespace: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "demo"}},
        "data": data if data is not None else {"mode": "fast"},
    }


def requests_total(registry: CollectorRegistry, code: int) -> float:
    labels = {"webhook": WEBHOOK_PATH, "code": str(code)}
    return registry.get_sample_value("controller_runtime_webhook_requests_total", labels) or 0.0


async def test_api_server_applies_the_patch(
    registered_webhook: WebhookServer, kube: KubeClient, namespace: str
) -> None:
    created = await kube.create(configmap("settings", namespace))

    assert created["metadata"]["labels"] == {"app": "demo", MUTATED_LABEL: "yes"}
    assert created["data"] == {"mode": "fast", INJECTED_KEY: INJECTED_VALUE}
    stored = await kube.get("v1", "ConfigMap", "settings", namespace)
    assert stored["metadata"]["labels"] == created["metadata"]["labels"]
    assert stored["data"] == created["data"]
    [request] = registered_webhook.handler.requests_for("settings")
    assert request.operation == "CREATE"
    assert request.namespace == namespace
    assert (request.kind.kind, request.resource.resource) == ("ConfigMap", "configmaps")
    assert request.dry_run is False
    assert "system:masters" in request.user_info.groups
    assert requests_total(registered_webhook.registry, 200) >= 2  # the probes, then this one


async def test_dry_run_gets_the_same_mutation(
    registered_webhook: WebhookServer, envtest_cluster: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    # KubeClient has no dry-run parameter; the raw API is what `kubectl --dry-run=server` uses anyway.
    url = f"{envtest_cluster.server}/api/v1/namespaces/{namespace}/configmaps"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url,
            params={"dryRun": "All"},
            json=configmap("dry", namespace),
            ssl=envtest_cluster.admin_ssl_context(),
        ) as response,
    ):
        dry_status = response.status
        dry = await response.json()
        warnings = response.headers.getall("Warning", [])
    real = await kube.create(configmap("real", namespace))

    assert dry_status == 201, dry
    assert dry["metadata"]["labels"] == real["metadata"]["labels"] == {"app": "demo", MUTATED_LABEL: "yes"}
    assert dry["data"] == real["data"] == {"mode": "fast", INJECTED_KEY: INJECTED_VALUE}
    assert any(WARNING in warning for warning in warnings), warnings
    [dry_request] = registered_webhook.handler.requests_for("dry")
    [real_request] = registered_webhook.handler.requests_for("real")
    assert dry_request.dry_run is True
    assert real_request.dry_run is False
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", "dry", namespace)


async def test_denial_reaches_the_client_with_the_handlers_code_and_message(
    registered_webhook: WebhookServer, kube: KubeClient, namespace: str
) -> None:
    name = f"{RESERVED_PREFIX}settings"
    with pytest.raises(Forbidden) as denied:
        await kube.create(configmap(name, namespace))

    assert denied.value.code == DENIAL_CODE
    assert str(denied.value) == (
        f'admission webhook "{registered_webhook.webhook_name}" denied the request: {denial_message(name)}'
    )
    with pytest.raises(NotFound):
        await kube.get("v1", "ConfigMap", name, namespace)
    denials = registered_webhook.registry.get_sample_value(
        "kubewright_webhook_denials_total", {"webhook": WEBHOOK_PATH}
    )
    assert denials == 1


async def post_to_webhook(
    server: WebhookServer, cluster: LocalCluster, body: bytes, content_type: str
) -> tuple[int, str, Any]:
    """POST straight to the webhook, trusting only the cluster CA, as the API server does."""
    trust = new_client_context(cluster)
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url, data=body, headers={"Content-Type": content_type}, ssl=trust) as response,
    ):
        return response.status, response.content_type, json.loads(await response.read())


def new_client_context(cluster: LocalCluster) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=cluster.ca_pem.decode())


REVIEW_HEAD = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed AdmissionReview: body: Invalid JSON"),
        (json.dumps(REVIEW_HEAD).encode(), "malformed AdmissionReview: request: field required"),
        (
            json.dumps({**REVIEW_HEAD, "request": {"uid": "u-1", "operation": "CREATE"}}).encode(),
            "malformed AdmissionReview: request.kind: Field required",
        ),
    ],
    ids=["not-json", "no-request", "request-without-kind"],
)
async def test_malformed_review_is_a_clean_400(
    webhook_server: WebhookServer, envtest_cluster: LocalCluster, body: bytes, message: str
) -> None:
    status, content_type, error = await post_to_webhook(
        webhook_server, envtest_cluster, body, "application/json"
    )

    assert (status, content_type) == (400, "application/json")
    assert error["code"] == 400
    assert error["error"].startswith(message), error
    assert webhook_server.handler.seen == []
    assert requests_total(webhook_server.registry, 400) == 1


async def test_wrong_content_type_is_415(
    webhook_server: WebhookServer, envtest_cluster: LocalCluster
) -> None:
    review = {**REVIEW_HEAD, "request": {"uid": "u-2"}}
    status, content_type, error = await post_to_webhook(
        webhook_server, envtest_cluster, json.dumps(review).encode(), "application/yaml"
    )

    assert (status, content_type) == (415, "application/json")
    assert error == {"error": "Content-Type must be application/json, got 'application/yaml'", "code": 415}
    assert webhook_server.handler.seen == []
