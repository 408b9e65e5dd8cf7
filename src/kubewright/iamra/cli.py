"""`kubewright iamra ...`: the offline mutation preview and the workload-CA export.

`mutate` answers exactly as the server would: it loads the config the same way (file plus
`KUBEWRIGHT_IAMRA_*` env), wraps the pod in the AdmissionReview request the API server would send and
calls the same `review.decide_review`; the patch printed is the base64 patch of the response, decoded.
Exit status: 0 admitted (with or without a patch), 1 denied (the messages on stderr, as kubectl shows
them), 2 usage (bad flag, unreadable or malformed pod or config file).

Each command is one function registered on `iamra_app`; `serve` joins them the same way
(`iamra_app.command("serve")(serve)`), so the umbrella CLI only needs
`app.add_typer(iamra_app, name="iamra")`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonpatch
import typer
import yaml

from kubewright.iamra import constants as c
from kubewright.iamra.config import ConfigError, IamraConfig, load_config
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.pod import MalformedReview
from kubewright.iamra.review import decide_review
from kubewright.iamra.trust_anchor import CaExportError, create_trust_anchor_command, workload_ca_from_secret
from kubewright.runtime.admission import (
    AdmissionRequest,
    Deny,
    GroupVersionKind,
    GroupVersionResource,
    build_response,
)

iamra_app = typer.Typer(
    help="IAM Roles Anywhere credential injector: AWS credentials for pods from cert-manager certificates.",
    no_args_is_help=True,
    add_completion=False,
)

PREVIEW_UID = "kubewright-iamra-mutate-preview"
DEFAULT_TRUST_ANCHOR_NAME = "iamra-injector"


class OutputFormat(StrEnum):
    PATCH = "patch"
    POD = "pod"


@iamra_app.command("mutate")
def mutate(
    config_file: Path = typer.Option(
        ..., "--config", exists=True, dir_okay=False, readable=True, help="The webhook's config.yaml."
    ),
    pod_file: str = typer.Option(
        ..., "-f", "--filename", help="Pod manifest, YAML or JSON ('-' reads stdin)."
    ),
    namespace: str | None = typer.Option(
        None, "-n", "--namespace", help="Namespace of the request (default: the pod's, else 'default')."
    ),
    mode: SidecarMode | None = typer.Option(
        None,
        "--mode",
        help="Sidecar placement; default: sidecar.native of the config, 'native' when that is auto.",
    ),
    output: OutputFormat = typer.Option(
        OutputFormat.PATCH, "-o", "--output", help="patch: the JSONPatch ops; pod: the pod after the patch."
    ),
) -> None:
    """Show what the webhook would do to a pod, without a cluster."""
    try:
        config = load_config(config_file)
    except ConfigError as err:
        raise typer.BadParameter(str(err), param_hint="--config") from None
    pod = _read_pod_manifest(pod_file)
    request = preview_request(pod, namespace)
    try:
        decision = decide_review(request, config, mode or _configured_mode(config))
    except MalformedReview as err:
        raise typer.BadParameter(str(err), param_hint="-f") from None
    for warning in decision.verdict.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if isinstance(decision.verdict, Deny):
        typer.echo(
            f'Error: admission webhook "{c.WEBHOOK_NAME}" denied the request: {decision.verdict.message}',
            err=True,
        )
        raise typer.Exit(1)
    response = build_response(request.uid, decision.verdict)
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response.patch)) if response.patch else []
    if not ops:
        typer.echo(f"not injected ({decision.reason.value})", err=True)
    if output is OutputFormat.PATCH:
        typer.echo(json.dumps(ops, indent=2, ensure_ascii=False))
    else:
        typer.echo(
            yaml.safe_dump(jsonpatch.apply_patch(pod, ops), sort_keys=False, allow_unicode=True), nl=False
        )


def preview_request(pod: dict[str, Any], namespace: str | None) -> AdmissionRequest:
    """The request the API server would send for creating `pod` (the object after its defaulting)."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    pod_namespace = metadata.get("namespace")
    name = metadata.get("name")
    return AdmissionRequest(
        uid=PREVIEW_UID,
        kind=GroupVersionKind(group="", version="v1", kind="Pod"),
        resource=GroupVersionResource(group="", version="v1", resource="pods"),
        name=name if isinstance(name, str) else "",
        namespace=namespace or (pod_namespace if isinstance(pod_namespace, str) else "default"),
        operation="CREATE",
        object=pod,
    )


def _configured_mode(config: IamraConfig) -> SidecarMode:
    """Offline there is no API server to ask, so `auto` previews the native placement (>= 1.29)."""
    return SidecarMode.LEGACY if config.sidecar.native == "false" else SidecarMode.NATIVE


def _read_pod_manifest(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise typer.BadParameter(f"cannot read {source}: {err.strerror or err}", param_hint="-f") from None
    try:
        loaded = yaml.safe_load(text)
        # Through JSON, as the API server would send it (YAML timestamps become strings, keys strings).
        pod = json.loads(json.dumps(loaded, default=str))
    except (yaml.YAMLError, TypeError, ValueError) as err:
        raise typer.BadParameter(f"{source} is not a YAML or JSON manifest: {err}", param_hint="-f") from None
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        kind = pod.get("kind") if isinstance(pod, dict) else type(pod).__name__
        raise typer.BadParameter(f"{source} must hold one Pod manifest, got {kind!r}", param_hint="-f")
    return pod


@iamra_app.command("export-ca")
def export_ca(
    namespace: str = typer.Option(c.DEFAULT_CA_NAMESPACE, "--namespace", help="Namespace of the CA Secret."),
    secret: str = typer.Option(c.DEFAULT_CA_SECRET, "--secret", help="The workload CA Secret."),
    output_file: Path | None = typer.Option(
        None, "-o", "--output", dir_okay=False, help="Write the PEM here (default: stdout)."
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Default: $KUBECONFIG, else ~/.kube/config."
    ),
    trust_anchor_name: str = typer.Option(
        DEFAULT_TRUST_ANCHOR_NAME, "--trust-anchor-name", help="Name used in the printed AWS CLI command."
    ),
) -> None:
    """Export the workload CA certificate (the trust anchor to register in AWS) and print the AWS command."""
    where = f"{namespace}/{secret}"
    config_path = resolve_kubeconfig(kubeconfig)
    try:
        if not config_path.is_file():
            raise FileNotFoundError(
                f"kubeconfig {config_path} not found (pass --kubeconfig or set KUBECONFIG)"
            )
        body = asyncio.run(read_secret(config_path, namespace, secret))
        ca = workload_ca_from_secret(body, where)
    except (CaExportError, LookupError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    command = create_trust_anchor_command(ca.pem, trust_anchor_name)
    about = f"# CA {ca.subject}, valid until {ca.not_after:%Y-%m-%d}; register it as the trust anchor:"
    if output_file is None:
        typer.echo(ca.pem, nl=False)
        typer.echo(f"{about}\n{command}", err=True)
        return
    output_file.write_text(ca.pem, encoding="ascii")
    typer.echo(f"wrote {output_file}\n{about}\n{command}")


def resolve_kubeconfig(explicit: Path | None) -> Path:
    """--kubeconfig, else the first path of $KUBECONFIG, else ~/.kube/config (as kubectl looks)."""
    if explicit is not None:
        return explicit
    listed = [part for part in os.environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    return Path(listed[0]) if listed else Path.home() / ".kube" / "config"


async def read_secret(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    """GET the Secret; errors become `LookupError`/`OSError` with a message naming what to check."""
    from kubewright.runtime.kube import KubeClient, KubeError, NotFound

    try:
        client = KubeClient.from_kubeconfig(kubeconfig)
    except Exception as err:  # lightkube's own config errors stay behind runtime.kube
        raise OSError(f"cannot load kubeconfig {kubeconfig}: {err}") from None
    async with client:
        try:
            return await client.get("v1", "Secret", name, namespace)
        except NotFound:
            raise LookupError(
                f"Secret {namespace}/{name} not found: is the {name} Certificate Ready? "
                f"(kubectl -n {namespace} get certificate {name})"
            ) from None
        except KubeError as err:
            raise LookupError(f"cannot read Secret {namespace}/{name}: {err}") from None
