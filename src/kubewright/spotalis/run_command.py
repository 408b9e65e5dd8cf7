"""`kubewright spotalis run` and `kubewright spotalis check-config` (spec 2.4, 3.14).

`run` is one process: informers, the webhook (TLS, certificate reloaded in place), `/healthz` `/readyz`
and `/metrics` on every replica; controllers only on the leader. Start order follows spec 3.14: config
(exit 2 if invalid), logging and client, informers; the webhook serves once its certificate is loaded
and the caches are synced (an empty cache would place a whole burst as if no pod existed).

Controllers are not part of this module: `build(..., controllers=[(name, runnable), ...])` adds each as a
leader-gated runnable of the Manager (started when this process leads, cancelled when it stops leading),
so a controller module only has to be a runnable reading `SpotalisProcess.cache` and `.state`.

Shutdown (SIGTERM/SIGINT, via the Manager): `/readyz` fails at once, the webhook keeps answering for
`operator.preShutdownDelay`, then drains (at most 5 s) and the process exits 0.

Register on `spotalis_app`: `spotalis_app.command("run")(run)` and
`spotalis_app.command("check-config")(check_config)`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import typer
from aiohttp import web
from prometheus_client import CollectorRegistry

from kubewright import __version__
from kubewright.runtime import tls
from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.health import HealthEndpoint
from kubewright.runtime.https import RunningSite, new_application, start_site
from kubewright.runtime.kube import KubeClient
from kubewright.runtime.leader import ElectionConfig, LeaderElector, default_identity
from kubewright.runtime.logs import configure_logging, get_logger
from kubewright.runtime.manager import (
    Election,
    Manager,
    Runnable,
    RunnableFunc,
    exit_process,
    run_with_signal_handlers,
)
from kubewright.runtime.metrics import add_metrics_route, create_registry
from kubewright.spotalis.cache import SpotalisCache, build_classifier
from kubewright.spotalis.config import (
    EXIT_INVALID_CONFIG,
    ConfigError,
    LoadedConfig,
    SpotalisConfig,
    bind_port,
    check_config_report,
    load_config,
)
from kubewright.spotalis.inflight import InflightTracker
from kubewright.spotalis.metrics import SpotalisMetrics
from kubewright.spotalis.records import RecordDecoder
from kubewright.spotalis.state import ClusterState
from kubewright.spotalis.webhook import APP_CLIENT_MAX_SIZE, SpotalisWebhook, build_policy

FIELD_MANAGER = "spotalis-controller"
CERT_RETRY_SECONDS = 5.0  # spec 5: a missing certificate is retried every 5 s
WEBHOOK_DRAIN_SECONDS = 5.0  # spec 3.14 step 5

log = get_logger("kubewright.spotalis")


# -- the process ------------------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """Shared between the sites: set once shutdown begins, so /readyz fails before anything stops."""

    stopping: bool = False


async def _sleep_or_stop(stop: asyncio.Event, seconds: float, clock: Clock) -> bool:
    """Sleep `seconds` on `clock` unless `stop` is set first; True when stopped."""
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
    return stop.is_set()


def bind_host(address: str) -> str:
    """The host of a `host:port` bind address; empty means every interface."""
    host = address.rpartition(":")[0].strip("[]")
    return host or "0.0.0.0"


class WebhookServer:
    """The TLS site of /mutate: waits for its certificate and the caches, then serves until stopped."""

    def __init__(
        self,
        app: web.Application,
        config: SpotalisConfig,
        cache: SpotalisCache,
        lifecycle: Lifecycle,
        clock: Clock,
        host: str = "0.0.0.0",
    ) -> None:
        section = config.webhook
        self._app = app
        self._cache = cache
        self._lifecycle = lifecycle
        self._clock = clock
        self._host = host
        self._port = section.port
        self._pre_shutdown = config.operator.preShutdownDelay.total_seconds()
        self.context = tls.new_server_context()
        cert_dir = Path(section.certDir)
        self.reloader = tls.CertReloader(
            self.context, cert_dir / section.certName, cert_dir / section.keyName, clock
        )
        self.cert_loaded = False
        self.running: RunningSite | None = None

    def check_cert(self) -> None:
        if not self.cert_loaded:
            raise RuntimeError(f"serving certificate {self.reloader.cert_file} not loaded yet")

    async def start(self, stop: asyncio.Event) -> None:
        while not self.cert_loaded:
            try:
                self.reloader.load()
                self.cert_loaded = True
            except tls.CertificateError as err:
                log.warning("webhook certificate not usable; retrying", error=str(err))
                if await _sleep_or_stop(stop, CERT_RETRY_SECONDS, self._clock):
                    return
        while not self._cache.has_synced:
            if await _sleep_or_stop(stop, 0.1, self._clock):  # poll: until every informer listed
                return
        self.running = await start_site(
            self._app,
            self._host,
            self._port,
            ssl_context=self.context,
            shutdown_timeout=WEBHOOK_DRAIN_SECONDS,
        )
        log.info("webhook serving", port=self.running.port)
        try:
            while not await _sleep_or_stop(stop, tls.DEFAULT_POLL_INTERVAL, self._clock):
                self.reloader.reload_if_changed()
            self._lifecycle.stopping = True
            await self._clock.sleep(self._pre_shutdown)  # still answering while endpoints drop us
        finally:
            await self.running.stop()


class OpsSite:
    """A plain-HTTP site (metrics or health) that outlives the webhook's pre-shutdown delay."""

    def __init__(
        self, name: str, app: web.Application, host: str, port: int, lifecycle: Lifecycle, delay: float
    ) -> None:
        self.name = name
        self._app = app
        self._host = host
        self._port = port
        self._lifecycle = lifecycle
        self._delay = delay
        self.running: RunningSite | None = None

    async def start(self, stop: asyncio.Event) -> None:
        self.running = await start_site(self._app, self._host, self._port)
        try:
            await stop.wait()
            self._lifecycle.stopping = True
            await asyncio.sleep(self._delay)  # /readyz answers "shutting down" meanwhile
        finally:
            await self.running.stop()


@dataclass
class SpotalisProcess:
    manager: Manager
    config: SpotalisConfig
    registry: CollectorRegistry
    state: ClusterState
    inflight: InflightTracker
    cache: SpotalisCache
    webhook: SpotalisWebhook
    webhook_server: WebhookServer | None
    lifecycle: Lifecycle
    ops: list[OpsSite] = field(default_factory=list)


def build(
    kube: KubeClient,
    config: SpotalisConfig,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    election: Election | None = None,
    controllers: Sequence[tuple[str, Runnable | RunnableFunc]] = (),
    webhook_host: str = "0.0.0.0",
) -> SpotalisProcess:
    """Wire one Spotalis process. `controllers` are added leader-gated (the extension point)."""
    registry = registry or create_registry()
    clock = clock or RealClock()
    classifier = build_classifier(config)
    policy = build_policy(config)
    state = ClusterState(classifier)
    inflight = InflightTracker(config.webhook.inflightTTL.total_seconds())
    decoder = RecordDecoder(classifier.capacity_keys | policy.placement_keys)
    cache = SpotalisCache(kube, config, state, inflight, decoder, clock=clock, registry=registry)
    metrics = SpotalisMetrics(registry)
    webhook = SpotalisWebhook(config, cache, state, inflight, metrics, policy=policy, clock=clock)
    lifecycle = Lifecycle()
    manager = Manager(
        election=election,
        graceful_shutdown_timeout=config.operator.gracefulShutdownTimeout.total_seconds(),
        clock=clock,
    )
    manager.add_always_on("informers", cache)

    async def sweep_inflight(stop: asyncio.Event) -> None:
        while not await _sleep_or_stop(stop, inflight.ttl, clock):
            inflight.expire(clock.now().timestamp())

    manager.add_always_on("inflight-sweeper", sweep_inflight)

    server = None
    if config.webhook.enabled:
        app = new_application(client_max_size=APP_CLIENT_MAX_SIZE)
        webhook.add_routes(app, registry)
        server = WebhookServer(app, config, cache, lifecycle, clock, webhook_host)
        manager.add_always_on("webhook", server)

    ops = _ops_sites(config, cache, server, registry, lifecycle)
    for site in ops:
        manager.add_always_on(site.name, site)

    for name, controller in controllers:
        manager.add_leader_gated(name, controller)
    return SpotalisProcess(manager, config, registry, state, inflight, cache, webhook, server, lifecycle, ops)


def _ops_sites(
    config: SpotalisConfig,
    cache: SpotalisCache,
    server: WebhookServer | None,
    registry: CollectorRegistry,
    lifecycle: Lifecycle,
) -> list[OpsSite]:
    """The health site (/healthz, /readyz) and the metrics site, as enabled."""
    delay = config.operator.preShutdownDelay.total_seconds()
    ops: list[OpsSite] = []
    observability = config.observability
    if observability.health.enabled:
        healthz = HealthEndpoint("healthz")
        readyz = HealthEndpoint("readyz")

        def informers_synced() -> None:
            missing = cache.unsynced()
            if missing:
                raise RuntimeError(f"not listed yet: {', '.join(missing)}")

        def not_stopping() -> None:
            if lifecycle.stopping:
                raise RuntimeError("shutting down")

        readyz.add_check("informers", informers_synced)
        readyz.add_check("shutdown", not_stopping)
        if server is not None:
            readyz.add_check("webhook-cert", server.check_cert)
        health_app = new_application()
        healthz.add_routes(health_app)
        readyz.add_routes(health_app)
        address = observability.health.bindAddress
        ops.append(OpsSite("health", health_app, bind_host(address), bind_port(address), lifecycle, delay))
    if observability.metrics.enabled:
        metrics_app = new_application()
        add_metrics_route(metrics_app, registry, observability.metrics.path)
        address = observability.metrics.bindAddress
        ops.append(OpsSite("metrics", metrics_app, bind_host(address), bind_port(address), lifecycle, delay))
    return ops


def election_for(kube: KubeClient, config: SpotalisConfig, registry: CollectorRegistry) -> Election | None:
    section = config.operator.leaderElection
    if not section.enabled:
        return None
    lease = ElectionConfig(
        section.id,
        section.namespace or config.operator.namespace,
        default_identity(),
        lease_duration=section.leaseDuration.total_seconds(),
        renew_deadline=section.renewDeadline.total_seconds(),
        retry_period=section.retryPeriod.total_seconds(),
    )
    return LeaderElector(kube, lease, registry=registry)


async def main(config: SpotalisConfig, kubeconfig: Path | None = None) -> int:
    kube = (
        KubeClient.from_kubeconfig(kubeconfig, field_manager=FIELD_MANAGER)
        if kubeconfig is not None
        else KubeClient.from_environment(field_manager=FIELD_MANAGER)
    )
    async with kube:
        registry = create_registry()
        process = build(kube, config, registry=registry, election=election_for(kube, config, registry))
        # Imported here: the controllers module builds on this one (SpotalisProcess).
        from kubewright.spotalis.controllers.wiring import attach_workload_controller

        attach_workload_controller(process, kube)
        return int(await run_with_signal_handlers(process.manager))


# -- the commands -----------------------------------------------------------------------------------------


def _load_or_exit(config_file: Path | None) -> LoadedConfig:
    try:
        return load_config(config_file, os.environ)
    except ConfigError as err:
        typer.echo(f"error: invalid configuration: {err}", err=True)
        raise typer.Exit(EXIT_INVALID_CONFIG) from err


def run(
    config_file: Path | None = typer.Option(
        None,
        "--config",
        dir_okay=False,
        help="Config YAML (the chart's ConfigMap); env overrides it.",
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", dir_okay=False, help="Kubeconfig; default: in-cluster, else $KUBECONFIG."
    ),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Run Spotalis: webhook, probes and metrics on every replica; the workload controller on the leader."""
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)
    loaded = _load_or_exit(config_file)
    logging = loaded.config.observability.logging
    configure_logging(level=logging.level, log_format=logging.format)
    for warning in loaded.warnings:
        log.warning("config warning", warning=warning)
    exit_process(lambda: main(loaded.config, kubeconfig))


def check_config(
    config_file: Path | None = typer.Option(
        None, "--config", dir_okay=False, help="Config YAML to check; SPOTALIS_* env is applied too."
    ),
) -> None:
    """Print every configuration value and its source; exit 0 when valid, 2 when not."""
    typer.echo(check_config_report(_load_or_exit(config_file)), nl=False)
