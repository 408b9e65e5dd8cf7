from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubewright.runtime.health import HealthEndpoint

pytestmark = pytest.mark.unit


def failing() -> None:
    raise RuntimeError("cache not synced")


async def async_ok() -> None:
    await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)


async def hangs() -> None:
    await asyncio.Event().wait()


async def serve(*endpoints: HealthEndpoint) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    for endpoint in endpoints:
        endpoint.add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_no_checks_means_ping_ok() -> None:
    client = await serve(HealthEndpoint("healthz"))
    try:
        response = await client.get("/healthz")
        assert (response.status, await response.text()) == (200, "ok")
        response = await client.get("/healthz", params={"verbose": ""})
        assert await response.text() == "[+]ping ok\nhealthz check passed\n"
        response = await client.get("/healthz/ping")
        assert (response.status, await response.text()) == (200, "ok")
    finally:
        await client.close()


async def test_named_checks_sync_and_async() -> None:
    readyz = HealthEndpoint("readyz", timeout=0.05)
    readyz.add_check("informers", failing)
    readyz.add_check("leader", async_ok)
    readyz.add_check("webhook", lambda: None)
    client = await serve(readyz)
    try:
        response = await client.get("/readyz")
        assert response.status == 500
        assert await response.text() == (
            "[-]informers failed: reason withheld\n[+]leader ok\n[+]webhook ok\nreadyz check failed\n"
        )
        response = await client.get("/readyz", params=[("exclude", "informers"), ("verbose", "1")])
        assert response.status == 200
        assert await response.text() == "[+]leader ok\n[+]webhook ok\nreadyz check passed\n"

        response = await client.get("/readyz/informers")
        assert response.status == 500
        assert await response.text() == "internal server error: RuntimeError: cache not synced\n"
        response = await client.get("/readyz/leader")
        assert (response.status, await response.text()) == (200, "ok")
        response = await client.get("/readyz/nope")
        assert response.status == 404
    finally:
        await client.close()


async def test_hung_check_fails_by_timeout() -> None:
    healthz = HealthEndpoint("healthz", timeout=0.01)
    healthz.add_check("stuck", hangs)
    results = await asyncio.wait_for(healthz.run(), timeout=5)
    assert [(r.name, r.passed) for r in results] == [("stuck", False)]
    assert results[0].error == "timed out after 0.01s"


def test_check_names_are_validated() -> None:
    healthz = HealthEndpoint("healthz")
    healthz.add_check("ping", lambda: None)
    with pytest.raises(ValueError, match="already has a check named 'ping'"):
        healthz.add_check("ping", lambda: None)
    with pytest.raises(ValueError, match="no '/'"):
        healthz.add_check("a/b", lambda: None)
    with pytest.raises(ValueError, match="non-empty"):
        healthz.add_check("", lambda: None)
