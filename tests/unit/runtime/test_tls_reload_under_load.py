"""Certificate rotation while clients hammer a real HTTPS server on loopback.

Every request opens a new connection (so every request is a new handshake) and records the certificate
it was served. Rotating the files must fail no request, and new handshakes must get the new certificate.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from aiohttp import web

from kubewright.runtime.clock import RealClock
from kubewright.runtime.https import RunningSite, new_application, start_site
from kubewright.runtime.tls import CertReloader, new_server_context

from .support import client_context, issue_server_cert, kubelet_swap, leaf_der

pytestmark = pytest.mark.unit

CLIENTS = 4
MAX_REQUESTS_PER_CLIENT = 3000
DEADLINE = 20.0


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)  # poll


@dataclass
class Load:
    """Clients sending requests back to back until stopped, each on a fresh TLS connection."""

    host: str
    port: int
    trust: list[trustme.CA]
    served: list[bytes] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, der: bytes) -> int:
        return sum(1 for seen in self.served if seen == der)

    async def client(self) -> None:
        context = client_context(*self.trust)
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if self.stop.is_set():
                return
            try:
                self.served.append(await fetch_once(self.host, self.port, context))
            except (OSError, AssertionError) as exc:  # ssl.SSLError and connection resets are OSErrors
                self.failures.append(exc)


async def fetch_once(host: str, port: int, context: ssl.SSLContext) -> bytes:
    """One HTTP/1.1 request on a new TLS connection; returns the certificate that handshake presented.

    A raw stream rather than an HTTP client, because a client pool hides which connection (and so which
    handshake) served a response.
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        reply = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:100]
    assert reply.endswith(b"\r\n\r\npong"), reply[-100:]
    assert isinstance(der, bytes)
    return der


async def pong(request: web.Request) -> web.Response:
    return web.Response(text="pong")


@dataclass
class Server:
    volume: Path
    reloader: CertReloader
    site: RunningSite
    first: trustme.LeafCert


@pytest_asyncio.fixture
async def server(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Server]:
    first = issue_server_cert(ca)
    kubelet_swap(tmp_path, first, 1)
    reloader = CertReloader(
        new_server_context(), tmp_path / "tls.crt", tmp_path / "tls.key", RealClock(), 0.02
    )
    reloader.load()
    app = new_application()
    app.router.add_get("/ping", pong)
    site = await start_site(app, "127.0.0.1", 0, ssl_context=reloader.context)
    poller = asyncio.create_task(reloader.run())
    yield Server(tmp_path, reloader, site, first)
    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)
    await site.stop()


async def run_rotation(
    server: Server, trust: list[trustme.CA], rotate: Callable[[], object], new: bytes
) -> Load:
    load = Load(server.site.host, server.site.port, trust)
    clients = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
    old = leaf_der(server.first)
    try:
        await wait_until(
            lambda: load.count(old) >= 20 or bool(load.failures), "requests served before rotation"
        )
        outcome = rotate()
        if asyncio.iscoroutine(outcome):
            await outcome
        await wait_until(
            lambda: load.count(new) >= 50 or bool(load.failures), "the new certificate to be served"
        )
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), timeout=DEADLINE)
    assert load.failures == [], load.failures[:3]
    assert load.count(old) >= 20
    assert load.count(new) >= 50
    assert all(der == new for der in load.served[-CLIENTS:]), (
        "handshakes after the reload still get the old cert"
    )
    return load


async def test_kubelet_style_swap_to_another_ca_under_load(
    server: Server, ca: trustme.CA, other_ca: trustme.CA
) -> None:
    rotated = issue_server_cert(other_ca)
    await run_rotation(
        server, [ca, other_ca], lambda: kubelet_swap(server.volume, rotated, 2), leaf_der(rotated)
    )
    assert server.reloader.reloads == 1


async def test_half_written_update_under_load_keeps_serving(server: Server, ca: trustme.CA) -> None:
    """Certificate written first, key later: the mismatched moment is skipped, nothing fails."""
    rotated = issue_server_cert(ca)
    data_dir = (server.volume / "..data").resolve()

    async def careless_rotation() -> None:
        (data_dir / "tls.crt").write_bytes(rotated.cert_chain_pems[0].bytes())
        await wait_until(
            lambda: server.reloader.rejections >= 3, "the reloader to reject the half-written pair"
        )
        (data_dir / "tls.key").write_bytes(rotated.private_key_pem.bytes())

    await run_rotation(server, [ca], careless_rotation, leaf_der(rotated))
    assert server.reloader.reloads == 1
