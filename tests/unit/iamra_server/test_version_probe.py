"""The in-cluster /version probe, against a real HTTPS server on loopback (trustme certificates)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from aiohttp import web

from kubewright.iamra.version_probe import in_cluster_endpoint, in_cluster_fetcher
from kubewright.testenv.loopback import https_server
from kubewright.testenv.pki import KeyPair

pytestmark = pytest.mark.unit


def test_endpoint_only_inside_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_cluster_endpoint({}) is None
    monkeypatch.setattr("kubewright.iamra.version_probe.SERVICE_ACCOUNT", tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_endpoint(env) is None  # no service-account CA mounted
    (tmp_path / "ca.crt").write_text("x")
    assert in_cluster_endpoint(env) == "https://[fd00::1]:443"


async def test_fetch_sends_the_token_and_trusts_the_account_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    (tmp_path / "server.key").write_bytes(leaf.private_key_pem.bytes())
    (tmp_path / "server.crt").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    account = tmp_path / "sa"
    account.mkdir()
    ca.cert_pem.write_to_path(str(account / "ca.crt"))
    (account / "token").write_text("t0ken\n")
    seen: list[str] = []

    async def version(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"major": "1", "minor": "35", "gitVersion": "v1.35.4"})

    app = web.Application()
    app.router.add_get("/version", version)
    async with https_server(app, KeyPair(tmp_path / "server.crt", tmp_path / "server.key")) as port:
        fetched = await in_cluster_fetcher(f"https://127.0.0.1:{port}", account)()
    assert fetched["minor"] == "35"
    assert seen == ["Bearer t0ken"]
