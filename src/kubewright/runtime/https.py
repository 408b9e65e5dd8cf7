"""aiohttp server helpers shared by webhooks, aggregated API servers, metrics and health sites.

Every kubewright HTTP server answers errors with the same JSON shape, `{"error": message, "code": status}`,
whether the error comes from a handler, from aiohttp itself (unknown route, wrong method, body too large)
or from an unexpected exception, so clients never have to parse HTML or plain-text error pages.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from kubewright.runtime.logs import get_logger

if TYPE_CHECKING:
    from cryptography import x509

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own default; webhooks raise it (a Pod review carries object and oldObject).
DEFAULT_CLIENT_MAX_SIZE = 1024**2
DEFAULT_SHUTDOWN_TIMEOUT = 10.0

_log = get_logger("kubewright.runtime.https")


def error_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> web.Response:
    """The JSON error body every kubewright server uses."""
    response = web.json_response({"error": message, "code": status}, status=status, dumps=_compact_dumps)
    for name, value in headers:
        response.headers[name] = value
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn HTTP errors and unhandled exceptions into JSON error bodies (keeping headers such as Allow)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = [(k, v) for k, v in exc.headers.items() if k.lower() not in {"content-type", "content-length"}]
        return error_response(exc.status, _message_of(exc), kept)
    except Exception:
        _log.exception("unhandled error serving request", method=request.method, path=request.path)
        return error_response(500, "internal server error")


def new_application(
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
    middlewares: Iterable[Middleware] = (),
) -> web.Application:
    """An application with the request body limit and JSON errors (outermost, so it sees every error)."""
    return web.Application(client_max_size=client_max_size, middlewares=[json_errors, *middlewares])


@dataclass
class RunningSite:
    """A started site; `port` is the bound port (useful when asking for port 0)."""

    runner: web.AppRunner
    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the shutdown timeout, then close."""
        await self.runner.cleanup()


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    access_log: logging.Logger | None = None,
) -> RunningSite:
    """Serve `app` on host:port, over TLS when `ssl_context` is given.

    The context is used live: pair it with `tls.CertReloader` and rotations apply to new handshakes.
    Access logging is off unless a logger is passed, since a busy webhook would log thousands of lines
    per second.
    """
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=shutdown_timeout, access_log=access_log
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return RunningSite(runner=runner, host=host, port=bound_port, scheme="https" if ssl_context else "http")


def client_certificate(request: web.Request) -> x509.Certificate | None:
    """The client certificate the TLS handshake verified, or None.

    None as well when the server does not verify clients (CERT_NONE): Python then still returns the
    certificate a client sent, unverified, and trusting it would let anyone claim any identity.
    """
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    if ssl_object.context.verify_mode == ssl.CERT_NONE:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509  # on use: only aggregated API servers read client certificates

    return x509.load_der_x509_certificate(der)


def _message_of(exc: web.HTTPException) -> str:
    """The handler's text if it gave one, else the status reason (not aiohttp's '404: Not Found')."""
    text = exc.text
    if not text or text == f"{exc.status}: {exc.reason}":
        return exc.reason or "error"
    return text


def _compact_dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
