"""`kubewright iamra serve`: load the config (file + KUBEWRIGHT_IAMRA_* env) and run the webhook."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from kubewright.iamra.config import ConfigError, IamraConfig, load_config
from kubewright.iamra.server import serve as run_server
from kubewright.runtime.kube import KubeClient
from kubewright.runtime.logs import configure_logging


def serve(
    config_file: Path | None = typer.Option(
        None, "--config", dir_okay=False, help="config.yaml (the chart's ConfigMap); env overrides it."
    ),
) -> None:
    """Run the mutating webhook: HTTPS /mutate, /healthz, /readyz; plain-HTTP /metrics."""
    try:
        config = load_config(config_file)
    except ConfigError as err:
        typer.echo(f"error: invalid configuration: {err}", err=True)
        raise typer.Exit(1) from err
    configure_logging(level=config.logging.level, log_format=config.logging.format)
    raise typer.Exit(asyncio.run(_serve(config)))


async def _serve(config: IamraConfig) -> int:
    if config.sidecar.native != "auto":
        return await run_server(config, _no_version_needed)
    # /version is public; the service account is only needed to reach the API server at all.
    async with KubeClient.from_environment(field_manager="iamra-injector") as kube:
        return await run_server(config, kube.server_version)


async def _no_version_needed() -> dict[str, Any]:
    raise RuntimeError("sidecar.native is fixed by configuration; the server version is not consulted")
