"""Run the webhook on this machine behind the chart's own MutatingWebhookConfiguration.

Used by the demo and the integration tests: the chart is rendered by the real helm, its config
ConfigMap becomes the webhook's config, and its MWC keeps every selector and matchCondition with only
the clientConfig pointed at the local server (URL + the CA that signed the serving certificate).
KWOK nodes cannot run the webhook's container, so in a sim cluster this is how it serves.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "iamra-injector"
RELEASE_NAMESPACE = "iamra-system"
# Example identifiers (the spec's test vector): they are only validated, never sent to AWS.
TRUST_ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0f6d3b2e-7c1a-4b8e-9d2f-1a2b3c4d5e6f"
)
PROFILE = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ROLE = "arn:aws:iam::123456789012:role/hello-world"
EXAMPLE_ANNOTATIONS = {"iamra.aws/role-arn": ROLE, "iamra.aws/signing-profile-arn": PROFILE}


def render_chart(helm: str, *sets: str, kube_version: str = "1.35.0") -> list[dict[str, Any]]:
    """`helm template` of the chart with the example trust anchor; `sets` are extra --set values."""
    argv = [
        helm,
        "template",
        "iamra",
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        "--set",
        f"trustAnchorArn={TRUST_ANCHOR}",
        "--set",
        "region=us-east-1",
        "--api-versions",
        "cert-manager.io/v1",
        "--kube-version",
        kube_version,
    ]
    for value in sets:
        argv += ["--set", value]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind]
    if len(matches) != 1:
        raise ValueError(f"expected exactly one {kind} in the rendered chart, found {len(matches)}")
    return matches[0]


def webhook_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rendered config.yaml of the chart's ConfigMap, as a mapping to adjust before loading."""
    config: dict[str, Any] = yaml.safe_load(only(docs, "ConfigMap")["data"]["config.yaml"])
    return config


def local_mwc(docs: list[dict[str, Any]], name: str, port: int, ca_pem: bytes) -> dict[str, Any]:
    """The chart's MWC renamed, its clientConfig a URL on 127.0.0.1:`port` trusted through `ca_pem`."""
    mwc = only(docs, "MutatingWebhookConfiguration")
    mwc["metadata"]["name"] = name
    mwc["metadata"].pop("annotations", None)  # no cainjector here: the caBundle is set directly
    for hook in mwc["webhooks"]:
        hook["clientConfig"] = {
            "url": f"https://127.0.0.1:{port}/mutate",
            "caBundle": base64.b64encode(ca_pem).decode(),
        }
    return mwc
