"""`kubewright iamra serve`: load the config (file + KUBEWRIGHT_IAMRA_* env) and run the webhook.

The work is `server.main`; the `kubewright` console script (`kubewright.entry`) calls it directly for
`iamra serve`, without importing this module or the umbrella typer CLI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kubewright.iamra.server import main


def serve(
    config_file: Path | None = typer.Option(
        None, "--config", dir_okay=False, help="config.yaml (the chart's ConfigMap); env overrides it."
    ),
) -> None:
    """Run the mutating webhook: HTTPS /mutate, /healthz, /readyz; plain-HTTP /metrics."""
    raise typer.Exit(main(config_file))
