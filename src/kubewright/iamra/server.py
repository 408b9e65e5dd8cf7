"""`kubewright iamra serve`: the webhook process (spec 2.4, 3.1, 3.6, 3.7).

HTTPS on `server.port` serves POST /mutate, GET /healthz and /readyz; plain HTTP on `metrics.port`
serves /metrics. The serving pair is re-read every `reloadIntervalSeconds` and swapped into the live
TLS context (cert-manager renewals need no restart). On SIGTERM /readyz turns 503 first and the
server keeps answering for `shutdownDelaySeconds`, so endpoints drop the pod before it stops
accepting; then in-flight requests drain (10 s at most).

The process entry is `main` (the typer command and the lean console entry both call it). Its import
path is kept small because the spec caps the process's peak RSS at 60 MB (spec 8): no typer, no
cryptography (certificate expiry comes from the `ssl` module), and lightkube only when `native: auto`
needs the API server's version.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from kubewright import __version__
from kubewright.iamra import constants as c
from kubewright.iamra.config import ConfigError, IamraConfig, load_config
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.metrics import IamraMetrics
from kubewright.iamra.native import NativeMode
from kubewright.iamra.pod import MalformedReview
from kubewright.iamra.review import Decision, decide_review
from kubewright.iamra.version_probe import in_cluster_endpoint, in_cluster_fetcher
from kubewright.runtime import https, tls
from kubewright.runtime.admission import AdmissionRequest, Allow, BadReview, Deny, add_admission_route
from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.logs import configure_logging
from kubewright.runtime.metrics import add_metrics_route, create_registry

log = structlog.get_logger("kubewright.iamra")
DRAIN_SECONDS = 10.0
# Per-connection TLS receive buffer. asyncio allocates (and zero-fills) `SSLProtocol.max_size` bytes
# for every TLS connection, 256 KiB by default: 16 MiB for the 64 keep-alive connections of the
# throughput benchmark. A full TLS record per read is plenty for reviews of a few KiB; large ones take
# more reads, not more memory.
TLS_READ_BUFFER_BYTES = 16 * 1024
VersionFetcher = Callable[[], Awaitable[dict[str, Any]]]


class IamraWebhook:
    """The admission handler plus the state /readyz reports on."""

    def __init__(self, config: IamraConfig, native: NativeMode, metrics: IamraMetrics) -> None:
        self.config = config
        self.native = native
        self.metrics = metrics
        self.stopping = False
        self.tls_loaded = False

    def sidecar_mode(self) -> SidecarMode | None:
        if self.native.native is None:
            return None
        return SidecarMode.NATIVE if self.native.native else SidecarMode.LEGACY

    async def handle(self, request: AdmissionRequest) -> Allow | Deny:
        started = time.perf_counter()
        try:
            decision = decide_review(request, self.config, self.sidecar_mode())
        except MalformedReview as err:
            raise BadReview(str(err)) from err
        self._record(request, decision, time.perf_counter() - started)
        return decision.verdict

    def _record(self, request: AdmissionRequest, decision: Decision, seconds: float) -> None:
        dry_run = bool(request.dry_run)
        self.metrics.requests.labels(decision.result.value, decision.reason.value, str(dry_run).lower()).inc()
        self.metrics.duration.labels(decision.result.value).observe(seconds)
        for notice in decision.notices:
            self.metrics.warnings.labels(notice.kind.value).inc()
        pod = request.name or (request.object or {}).get("metadata", {}).get("generateName", "")
        fields = {
            "uid": request.uid,
            "namespace": request.namespace,
            "pod": pod,
            "operation": request.operation,
            "dry_run": dry_run,
            "result": decision.result.value,
            "reason": decision.reason.value,
            "hash": decision.injection_hash,
            "mode": decision.mode.value if decision.mode else None,
            "warnings": len(decision.notices),
            "duration_ms": round(seconds * 1000, 3),
        }
        if decision.error is not None:
            log.error("admission failed", exc_info=decision.error, **fields)
        elif decision.result.value == "skipped":
            log.debug("admission", **fields)
        else:
            log.info("admission", **fields)

    def readiness_problems(self) -> list[str]:
        problems = []
        if self.stopping:
            problems.append("shutting down")
        if not self.tls_loaded:
            problems.append("serving certificate not loaded")
        if not self.native.known:
            problems.append("server version unknown (sidecar.native: auto)")
        return problems


def build_app(webhook: IamraWebhook, registry: CollectorRegistry) -> web.Application:
    app = https.new_application(client_max_size=webhook.config.server.maxBodyBytes)
    add_admission_route(app, c.MUTATE_PATH, webhook.handle, registry)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        problems = webhook.readiness_problems()
        if problems:
            return web.Response(status=503, text="not ready: " + "; ".join(problems))
        return web.Response(text="ok")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def certificate_expiry(cert_file: Path) -> float:
    """notAfter of the first (leaf) certificate in `cert_file`, in Unix seconds.

    Decoded by the `ssl` module OpenSSL already loaded; cryptography (about 8 MB resident) is only the
    fallback should CPython's decoder be unavailable or refuse the file.
    """
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is not None:
        try:
            not_after = decode(str(cert_file))["notAfter"]
            return float(ssl.cert_time_to_seconds(not_after))
        except (ssl.SSLError, OSError, KeyError, ValueError):
            pass
    import datetime

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return cert.not_valid_after_utc.replace(tzinfo=datetime.UTC).timestamp()


class TlsWatcher:
    """CertReloader plus the reload metrics the spec asks for."""

    def __init__(
        self, reloader: tls.CertReloader, metrics: IamraMetrics, clock: Clock, interval: float
    ) -> None:
        self.reloader = reloader
        self.metrics = metrics
        self.clock = clock
        self.interval = interval

    def load(self) -> None:
        self.reloader.load()
        self.metrics.tls_expiry.set(certificate_expiry(self.reloader.cert_file))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.clock.sleep(self.interval)
            rejected = self.reloader.rejections
            if self.reloader.reload_if_changed():
                self.metrics.tls_reloads.labels("success").inc()
                self.metrics.tls_expiry.set(certificate_expiry(self.reloader.cert_file))
            elif self.reloader.rejections > rejected:
                self.metrics.tls_reloads.labels("error").inc()


async def serve(
    config: IamraConfig,
    fetch_version: VersionFetcher,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int, int | None], None] | None = None,
) -> int:
    """Run until `stop` (or SIGTERM/SIGINT); returns the exit status."""
    clock = clock or RealClock()
    stop = stop or asyncio.Event()
    registry = create_registry()
    metrics = IamraMetrics(registry, __version__)

    def mirror(mode: NativeMode) -> None:
        metrics.native.clear()
        metrics.native.labels(mode.source).set(1 if mode.native else 0)

    native = NativeMode(
        config.sidecar.native, fetch_version, clock, config.sidecar.nativeRefreshSeconds, on_change=mirror
    )
    webhook = IamraWebhook(config, native, metrics)

    context = tls.new_server_context()
    server = config.server
    watcher = TlsWatcher(
        tls.CertReloader(context, Path(server.certFile), Path(server.keyFile), clock),
        metrics,
        clock,
        server.reloadIntervalSeconds,
    )
    try:
        watcher.load()
    except tls.CertificateError as err:
        log.error("cannot serve: no usable certificate", error=str(err))
        return 1
    webhook.tls_loaded = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    site = await https.start_site(
        build_app(webhook, registry),
        "0.0.0.0",
        server.port,
        ssl_context=context,
        shutdown_timeout=DRAIN_SECONDS,
    )
    metrics_site = None
    if config.metrics.enabled:
        metrics_app = web.Application()
        add_metrics_route(metrics_app, registry, config.metrics.path)
        metrics_site = await https.start_site(metrics_app, "0.0.0.0", config.metrics.port)
    tasks = [asyncio.create_task(watcher.run(stop)), asyncio.create_task(native.run(stop))]
    log.info(
        "iamra webhook serving", port=site.port, metrics_port=metrics_site.port if metrics_site else None
    )
    if on_started is not None:
        on_started(site.port, metrics_site.port if metrics_site else None)
    await stop.wait()

    webhook.stopping = True
    log.info("stopping: readiness off, still serving", delay_seconds=server.shutdownDelaySeconds)
    await clock.sleep(server.shutdownDelaySeconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await site.stop()
    if metrics_site is not None:
        await metrics_site.stop()
    log.info("stopped")
    return 0


def main(config_file: Path | None) -> int:
    """The `kubewright iamra serve` process: load the config (file + env), log, serve; the exit status."""
    try:
        config = load_config(config_file)
    except ConfigError as err:
        print(f"error: invalid configuration: {err}", file=sys.stderr, flush=True)
        return 1
    return run(config)


def run(config: IamraConfig) -> int:
    """`main` once the configuration is loaded."""
    configure_logging(level=config.logging.level, log_format=config.logging.format)
    limit_tls_read_buffers()
    return asyncio.run(_serve_process(config))


def limit_tls_read_buffers(size: int = TLS_READ_BUFFER_BYTES) -> None:
    """Cap asyncio's per-connection TLS receive buffer (process-wide; see TLS_READ_BUFFER_BYTES)."""
    from asyncio import sslproto

    sslproto.SSLProtocol.max_size = min(sslproto.SSLProtocol.max_size, size)


async def _serve_process(config: IamraConfig) -> int:
    if config.sidecar.native != "auto":
        return await serve(config, _no_version_needed)
    endpoint = in_cluster_endpoint()
    if endpoint is not None:
        return await serve(config, in_cluster_fetcher(endpoint))
    # Outside a pod (a kubeconfig): imported here, lightkube is only needed for that case.
    from kubewright.runtime.kube import KubeClient

    # /version is public; the service account is only needed to reach the API server at all.
    async with KubeClient.from_environment(field_manager="iamra-injector") as kube:
        return await serve(config, kube.server_version)


async def _no_version_needed() -> dict[str, Any]:
    raise RuntimeError("sidecar.native is fixed by configuration; the server version is not consulted")
