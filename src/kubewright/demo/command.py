"""The demo command: runs every demo step against a running sim cluster."""

from __future__ import annotations

import asyncio

import typer

from kubewright.demo.cluster_overview import show_cluster
from kubewright.demo.iamra_step import show_iamra
from kubewright.demo.spotalis_step import show_spotalis
from kubewright.testenv.layout import DEFAULT_NAME, ClusterDir


def demo(name: str = typer.Option(DEFAULT_NAME, "--name", help="The sim cluster to use.")) -> None:
    """Show the add-ons working in a running sim cluster (start one with `kubewright dev up --sim`)."""
    cdir = ClusterDir.named(name)
    if not cdir.kubeconfig.exists():
        typer.echo(f"no cluster '{name}': run `kubewright dev up --sim` first", err=True)
        raise typer.Exit(1)
    asyncio.run(show_cluster(cdir.kubeconfig))
    asyncio.run(show_iamra(cdir))
    asyncio.run(show_spotalis(cdir))
