"""A Pod-defaulting admission webhook on the kubewright runtime: TLS that reloads, metrics, probes.

Run: python examples/runtime_webhook.py CERT_DIR  (CERT_DIR holds tls.crt and tls.key, e.g. a Secret mount)
"""

from __future__ import annotations

import asyncio
import copy
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from kubewright.runtime.admission import (
    ADMISSION_CLIENT_MAX_SIZE,
    AdmissionRequest,
    Allow,
    Deny,
    add_admission_route,
    patch_from_mutation,
)
from kubewright.runtime.clock import Clock, RealClock
from kubewright.runtime.health import HealthEndpoint
from kubewright.runtime.https import RunningSite, new_application, start_site
from kubewright.runtime.logs import configure_logging
from kubewright.runtime.metrics import add_metrics_route, create_registry
from kubewright.runtime.tls import CertReloader, new_server_context

TEAM_LABEL = "example.kubewright.dev/team"
DEFAULT_TEAM = "unassigned"


async def default_team(request: AdmissionRequest) -> Allow | Deny:
    """Every Pod gets a team label, so cost reports have no unlabelled bucket; an empty one is a typo."""
    pod = request.object or {}
    labels = pod.get("metadata", {}).get("labels") or {}
    if labels.get(TEAM_LABEL) == "":
        return Deny(422, f"label {TEAM_LABEL} is empty: name a team or leave the label out")
    if TEAM_LABEL in labels:
        return Allow()
    mutated = copy.deepcopy(pod)  # mutate a copy and diff: the patch touches only what we changed
    mutated.setdefault("metadata", {}).setdefault("labels", {})[TEAM_LABEL] = DEFAULT_TEAM
    return Allow(patch_from_mutation(pod, mutated), [f"{TEAM_LABEL} defaulted to {DEFAULT_TEAM}"])


def webhook_app(registry: CollectorRegistry) -> web.Application:
    app = new_application(client_max_size=ADMISSION_CLIENT_MAX_SIZE)  # reviews carry whole objects
    add_admission_route(app, "/mutate-pods", default_team, registry)
    return app


def ops_app(registry: CollectorRegistry, reloader: CertReloader) -> web.Application:
    """Metrics and probes on plain HTTP, where Prometheus and the kubelet expect them."""

    def certificate_loaded() -> None:
        if reloader.loaded_digest is None:
            raise RuntimeError(f"no serving certificate loaded from {reloader.cert_file}")

    readyz = HealthEndpoint("readyz")
    readyz.add_check("serving-certificate", certificate_loaded)
    app = new_application()
    add_metrics_route(app, registry)
    HealthEndpoint("healthz").add_routes(app)
    readyz.add_routes(app)
    return app


@dataclass
class RunningWebhook:
    webhook: RunningSite
    ops: RunningSite
    reloader: CertReloader
    poller: asyncio.Task[None]

    async def stop(self) -> None:
        self.poller.cancel()
        await asyncio.gather(self.poller, return_exceptions=True)
        await self.webhook.stop()  # lets in-flight reviews finish
        await self.ops.stop()


async def start(
    cert_dir: Path, clock: Clock, host: str = "0.0.0.0", webhook_port: int = 9443, ops_port: int = 8080
) -> RunningWebhook:
    registry = create_registry()
    reloader = CertReloader(new_server_context(), cert_dir / "tls.crt", cert_dir / "tls.key", clock)
    reloader.load()  # fail at start-up, not on the API server's first call
    webhook = await start_site(webhook_app(registry), host, webhook_port, ssl_context=reloader.context)
    ops = await start_site(ops_app(registry, reloader), host, ops_port)
    return RunningWebhook(webhook, ops, reloader, asyncio.create_task(reloader.run()))


async def main(cert_dir: Path) -> None:
    configure_logging()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    running = await start(cert_dir, RealClock())
    try:
        await stopping.wait()
    finally:
        await running.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
