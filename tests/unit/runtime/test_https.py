from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.x509.oid import NameOID

from kubewright.runtime.clock import RealClock
from kubewright.runtime.https import (
    RunningSite,
    client_certificate,
    error_response,
    new_application,
    start_site,
)
from kubewright.runtime.tls import CertReloader, new_server_context

from .support import client_context, issue_server_cert, write_pair

pytestmark = pytest.mark.unit


async def bad_request(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="field spec.replicas must be >= 0")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("bug")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def echo_size(request: web.Request) -> web.Response:
    return web.json_response({"size": len(await request.read())})


async def explicit(request: web.Request) -> web.Response:
    return error_response(409, "already exists")


async def whoami(request: web.Request) -> web.Response:
    cert = client_certificate(request)
    if cert is None:
        return web.json_response({"user": None})
    (common_name,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return web.json_response({"user": common_name.value})


def build_app(client_max_size: int = 1024) -> web.Application:
    app = new_application(client_max_size=client_max_size)
    app.router.add_get("/bad", bad_request)
    app.router.add_get("/crash", crash)
    app.router.add_get("/redirect", redirect)
    app.router.add_post("/size", echo_size)
    app.router.add_get("/explicit", explicit)
    app.router.add_get("/whoami", whoami)
    return app


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_app())) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/bad", 400, "field spec.replicas must be >= 0"),
        ("GET", "/missing", 404, "Not Found"),
        ("GET", "/crash", 500, "internal server error"),
        ("GET", "/explicit", 409, "already exists"),
    ],
)
async def test_errors_are_json(
    client: TestClient[web.Request, web.Application], method: str, path: str, status: int, message: str
) -> None:
    response = await client.request(method, path)
    assert response.status == status
    assert response.content_type == "application/json"
    assert await response.json() == {"error": message, "code": status}


async def test_method_not_allowed_keeps_allow_header(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.delete("/bad")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert await response.json() == {"error": "Method Not Allowed", "code": 405}


async def test_redirects_are_not_errors(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/redirect", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/elsewhere"


async def test_request_size_limit(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/size", data=b"x" * 1024)
    assert await response.json() == {"size": 1024}
    response = await client.post("/size", data=b"x" * 1025)
    assert response.status == 413
    body = await response.json()
    assert body["code"] == 413
    assert "1024" in body["error"]


async def test_plain_site_on_port_zero_reports_the_bound_port() -> None:
    site = await start_site(build_app(), "127.0.0.1", 0)
    try:
        assert site.port > 0
        assert site.url == f"http://127.0.0.1:{site.port}"
        async with aiohttp.ClientSession() as session, session.get(f"{site.url}/whoami") as response:
            assert await response.json() == {"user": None}
    finally:
        await site.stop()


@pytest_asyncio.fixture
async def mtls_site(tmp_path: Path, ca: trustme.CA, other_ca: trustme.CA) -> AsyncIterator[RunningSite]:
    """HTTPS with optional client certificates verified against `other_ca` (the front-proxy CA)."""
    write_pair(issue_server_cert(ca), tmp_path / "tls.crt", tmp_path / "tls.key")
    context = new_server_context()
    CertReloader(context, tmp_path / "tls.crt", tmp_path / "tls.key", RealClock()).load()
    context.verify_mode = ssl.CERT_OPTIONAL
    other_ca.configure_trust(context)
    site = await start_site(build_app(), "127.0.0.1", 0, ssl_context=context)
    yield site
    await site.stop()


async def test_https_site_exposes_the_verified_client_certificate(
    mtls_site: RunningSite, ca: trustme.CA, other_ca: trustme.CA
) -> None:
    assert mtls_site.url.startswith("https://")
    with_cert = client_context(ca)
    other_ca.issue_cert("front-proxy", common_name="front-proxy-client").configure_cert(with_cert)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{mtls_site.url}/whoami", ssl=with_cert) as response:
            assert await response.json() == {"user": "front-proxy-client"}
        async with session.get(f"{mtls_site.url}/whoami", ssl=client_context(ca)) as response:
            assert await response.json() == {"user": None}


async def test_client_certificate_from_an_untrusted_ca_is_refused(
    mtls_site: RunningSite, ca: trustme.CA
) -> None:
    untrusted = client_context(ca)
    ca.issue_cert("intruder", common_name="front-proxy-client").configure_cert(untrusted)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{mtls_site.url}/whoami", ssl=untrusted) as response:
                await response.read()


async def test_unverified_client_certificates_are_never_reported(ca: trustme.CA, tmp_path: Path) -> None:
    """CERT_NONE servers do not request certificates; the helper must not report one either way."""
    write_pair(issue_server_cert(ca), tmp_path / "tls.crt", tmp_path / "tls.key")
    context = new_server_context()
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    site = await start_site(build_app(), "127.0.0.1", 0, ssl_context=context)
    try:
        with_cert = client_context(ca)
        ca.issue_cert("someone", common_name="someone").configure_cert(with_cert)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{site.url}/whoami", ssl=with_cert) as response,
        ):
            assert await response.json() == {"user": None}
    finally:
        await site.stop()


async def test_failed_bind_cleans_up() -> None:
    first = await start_site(build_app(), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await start_site(build_app(), "127.0.0.1", first.port)
    finally:
        await first.stop()


def test_error_response_shape() -> None:
    response = error_response(422, "spec.x: invalid", [("Retry-After", "1")])
    assert response.status == 422
    assert response.text == '{"error":"spec.x: invalid","code":422}'
    assert response.headers["Retry-After"] == "1"
