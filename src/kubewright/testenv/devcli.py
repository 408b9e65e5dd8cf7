"""`kubewright dev`: build, start, stop and inspect the local control plane."""

from __future__ import annotations

import typer

from kubewright.testenv import binaries, cluster
from kubewright.testenv.layout import DEFAULT_NAME, ClusterDir, ClusterSpec, Mode
from kubewright.testenv.nodes import Provider, spot_count

dev_app = typer.Typer(help="Local Kubernetes control plane for development and tests.", no_args_is_help=True)

NameOption = typer.Option(DEFAULT_NAME, "--name", help="Cluster name; state lives in .kubewright/<name>/.")


_BUILD_HELP = f"Subset to build (default all): {' '.join(binaries.COMPONENTS)}"


@dev_app.command("build")
def build(
    components: list[str] = typer.Argument(None, help=_BUILD_HELP),
) -> None:
    """Build the control-plane binaries from Go modules into ~/.cache/kubewright/bin/<pin-hash>/."""
    try:
        binaries.build(tuple(components or ()))
    except binaries.ControlPlaneUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


@dev_app.command("up")
def up(
    sim: bool = typer.Option(False, "--sim", help="Add controller-manager, scheduler and KWOK nodes."),
    nodes: int = typer.Option(20, "--nodes", min=0, max=5000, help="Simulated nodes (with --sim)."),
    spot_fraction: float = typer.Option(
        0.5, "--spot-fraction", min=0.0, max=1.0, help="Fraction of nodes labelled spot (with --sim)."
    ),
    provider: Provider = typer.Option(
        Provider.KARPENTER, "--provider", help="Label set besides karpenter.sh/capacity-type."
    ),
    cert_manager: bool = typer.Option(
        False, "--cert-manager", help="Also run cert-manager's controller and cainjector (CRDs installed)."
    ),
    name: str = NameOption,
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for readiness."),
) -> None:
    """Start a cluster (envtest mode, or --sim) and return when it is ready."""
    missing = binaries.missing()
    if missing:
        typer.echo(f"building missing control-plane binaries: {', '.join(missing)}")
        binaries.build()
    spec = ClusterSpec(
        mode=Mode.SIM if sim else Mode.ENVTEST,
        nodes=nodes if sim else 0,
        spot_fraction=spot_fraction,
        provider=provider,
        cert_manager=cert_manager,
    )
    cdir = ClusterDir.named(name)
    try:
        state = cluster.up(cdir, spec, timeout=timeout)
    except cluster.ClusterError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"cluster '{name}' ({spec.mode.value}) ready in {state.ready_seconds} s")
    if sim:
        spots = spot_count(nodes, spot_fraction)
        typer.echo(f"  nodes: {nodes} ({spots} spot, {nodes - spots} on-demand, labels: {provider.value})")
    bin_dir = binaries.bin_dir()
    typer.echo(f"  export KUBECONFIG={cdir.kubeconfig}")
    typer.echo(f"  export PATH={bin_dir}:$PATH   # kubectl, helm, kwok built for this cluster")
    typer.echo("  kubectl get nodes")
    typer.echo(f"  kubewright dev down{'' if name == DEFAULT_NAME else f' --name {name}'}")


@dev_app.command("down")
def down(name: str = NameOption) -> None:
    """Stop the cluster; no process is left behind."""
    cdir = ClusterDir.named(name)
    try:
        stopped = cluster.down(cdir)
    except cluster.ClusterError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"cluster '{name}' stopped" if stopped else f"cluster '{name}' is not running")


@dev_app.command("status")
def status(name: str = NameOption) -> None:
    """Phase and per-component liveness; a crashed component names its exit code and log."""
    state, comps = cluster.report(ClusterDir.named(name))
    if state is None:
        typer.echo(f"cluster '{name}': not created")
        raise typer.Exit(3)
    typer.echo(f"cluster '{name}': {state.phase.value}" + (f" ({state.message})" if state.message else ""))
    for comp in comps:
        typer.echo(f"  {comp.name:<24} {'running' if comp.running else 'DOWN':<8} {comp.detail}")
    if not comps or not all(c.running for c in comps):
        raise typer.Exit(1)


@dev_app.command("kubeconfig")
def kubeconfig(name: str = NameOption) -> None:
    """Print the admin kubeconfig path of the cluster."""
    cdir = ClusterDir.named(name)
    if not cdir.kubeconfig.exists():
        typer.echo(
            f"cluster '{name}' has no kubeconfig ({cdir.kubeconfig}); run `kubewright dev up`", err=True
        )
        raise typer.Exit(1)
    typer.echo(str(cdir.kubeconfig))
