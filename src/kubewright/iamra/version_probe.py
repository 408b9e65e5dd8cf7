"""GET /version from inside a pod without a Kubernetes client library.

`native: auto` needs one public, unauthenticated-by-RBAC document every few minutes; a full client
(lightkube and its models, ~4 MB resident) is a poor trade for a webhook with a 60 MB budget. In a pod
this reads the service-account token and CA and asks the API server with aiohttp; elsewhere the caller
falls back to the kubeconfig-capable client.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
VersionFetcher = Callable[[], Awaitable[dict[str, Any]]]


def in_cluster_endpoint(environ: dict[str, str] | None = None) -> str | None:
    """https://host:port of the API server from the pod's environment, or None outside a pod."""
    env = environ if environ is not None else dict(os.environ)
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (SERVICE_ACCOUNT / "ca.crt").is_file():
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"https://{host}:{port}"


def in_cluster_fetcher(endpoint: str, account: Path = SERVICE_ACCOUNT) -> VersionFetcher:
    """A fetcher re-reading the (rotating, projected) token on each call."""
    context = ssl.create_default_context(cafile=str(account / "ca.crt"))

    async def fetch() -> dict[str, Any]:
        headers = {}
        token_file = account / "token"
        if token_file.is_file():
            headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{endpoint}/version", ssl=context, headers=headers) as response,
        ):
            response.raise_for_status()
            version: dict[str, Any] = await response.json()
            return version

    return fetch
