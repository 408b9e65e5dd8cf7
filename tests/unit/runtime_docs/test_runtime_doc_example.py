"""docs/runtime.md's webhook example works, and the page shows exactly the file that is tested.

The example is loaded from `examples/runtime_webhook.py` by path (examples are scripts, not a package)
and exercised over loopback HTTP, then started as its `main` would start it, over real TLS, with a fake
clock driving the certificate poller so the reload is observed without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kubewright.runtime.clock import FakeClock

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "runtime_webhook.py"
DOC = REPO / "docs" / "runtime.md"
EXAMPLE_BLOCK = re.compile(
    r"<!-- example: examples/runtime_webhook\.py -->\n```python\n(?P<code>.*?)```\n", re.DOTALL
)
TEAM_LABEL_POINTER = "/metadata/labels/example.kubewright.dev~1team"  # RFC 6901 escapes '/' as '~1'

Client = TestClient[web.Request, web.Application]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubewright_examples_runtime_webhook", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the module through sys.modules while the class body is processed.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


def pod_review(labels: dict[str, str] | None, uid: str = "uid-1") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web-0", "namespace": "shop"}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}},
            "dryRun": False,
        },
    }


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return ops


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(example.webhook_app(CollectorRegistry()))) as test_client:
        yield test_client


async def review(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/mutate-pods", json=body)
    assert response.status == 200
    answer: dict[str, Any] = (await response.json())["response"]
    return answer


def test_the_doc_shows_the_example_file_verbatim() -> None:
    blocks = EXAMPLE_BLOCK.findall(DOC.read_text())
    assert len(blocks) == 1, "docs/runtime.md must show examples/runtime_webhook.py in one marked block"
    assert blocks[0] == EXAMPLE.read_text()


async def test_pod_without_a_team_gets_the_default(client: Client) -> None:
    response = await review(client, pod_review({"app": "web"}))

    assert response["uid"] == "uid-1"
    assert response["allowed"] is True
    assert patch_of(response) == [{"op": "add", "path": TEAM_LABEL_POINTER, "value": "unassigned"}]
    assert response["warnings"] == ["example.kubewright.dev/team defaulted to unassigned"]


async def test_pod_without_any_labels_gets_a_labels_map(client: Client) -> None:
    response = await review(client, pod_review(None))

    assert patch_of(response) == [
        {"op": "add", "path": "/metadata/labels", "value": {"example.kubewright.dev/team": "unassigned"}}
    ]


async def test_pod_with_a_team_is_admitted_unchanged(client: Client) -> None:
    response = await review(client, pod_review({"example.kubewright.dev/team": "payments"}))

    assert response == {"uid": "uid-1", "allowed": True}


async def test_empty_team_is_denied(client: Client) -> None:
    response = await review(client, pod_review({"example.kubewright.dev/team": ""}))

    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert "is empty" in response["status"]["message"]


def write_pair(leaf: trustme.LeafCert, cert_dir: Path) -> None:
    (cert_dir / "tls.crt").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (cert_dir / "tls.key").write_bytes(leaf.private_key_pem.bytes())


async def served_certificate(port: int, trust: ssl.SSLContext) -> bytes:
    """DER of the certificate a fresh handshake gets (what a new API-server connection would see)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust, server_hostname="127.0.0.1")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


def sample(exposition: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return found.value
    return None


def der_of(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


async def test_started_webhook_serves_tls_metrics_probes_and_reloads_its_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    first, second = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    write_pair(first, tmp_path)
    clock = FakeClock()
    running = await example.start(tmp_path, clock, host="127.0.0.1", webhook_port=0, ops_port=0)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{running.webhook.url}/mutate-pods"
            async with http.post(url, json=pod_review({"app": "web"}, uid="tls-1"), ssl=trust) as response:
                answer = (await response.json())["response"]
            assert answer["uid"] == "tls-1"
            assert patch_of(answer)[0]["path"] == TEAM_LABEL_POINTER

            async with http.get(f"{running.ops.url}/readyz", params={"verbose": "1"}) as probe:
                assert probe.status == 200
                assert "[+]serving-certificate ok" in await probe.text()
            async with http.get(f"{running.ops.url}/healthz") as probe:
                assert (probe.status, await probe.text()) == (200, "ok")
            async with http.get(f"{running.ops.url}/metrics") as scrape:
                metrics = await scrape.text()
            requests = sample(
                metrics, "controller_runtime_webhook_requests_total", webhook="/mutate-pods", code="200"
            )
            assert requests == 1.0

        assert await served_certificate(running.webhook.port, trust) == der_of(first)
        await clock.wait_for_sleepers(1)
        write_pair(second, tmp_path)
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)  # the poller checked the files and went back to sleep
        assert running.reloader.reloads == 1
        assert await served_certificate(running.webhook.port, trust) == der_of(second)
    finally:
        await running.stop()
