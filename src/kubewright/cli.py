"""The umbrella command: `kubewright <component> <verb>`, `kubewright dev ...`, `kubewright demo`."""

from __future__ import annotations

import typer

from kubewright import __version__
from kubewright.demo.command import demo
from kubewright.iamra.cli import iamra_app
from kubewright.iamra.serve_command import serve as iamra_serve
from kubewright.spotalis.cli import spotalis_app
from kubewright.spotalis.run_command import check_config as spotalis_check_config
from kubewright.spotalis.run_command import run as spotalis_run
from kubewright.testenv.devcli import dev_app

app = typer.Typer(
    name="kubewright",
    help="Kubernetes add-ons rebuilt in Python on one shared runtime.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dev_app, name="dev")
iamra_app.command("serve")(iamra_serve)
app.add_typer(iamra_app, name="iamra")
spotalis_app.command("run")(spotalis_run)
spotalis_app.command("check-config")(spotalis_check_config)
app.add_typer(spotalis_app, name="spotalis")
app.command("demo")(demo)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kubewright {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Kubernetes add-ons rebuilt in Python on one shared runtime."""


if __name__ == "__main__":
    app()
