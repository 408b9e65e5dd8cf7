"""Point the real API server at servers a test runs on loopback: admission webhooks and APIServices.

Two routes reach a loopback server. A webhook can name a URL (`https://127.0.0.1:<port>/...`). A
Service reference needs a Service the API server can resolve without cluster networking: an
ExternalName Service whose externalName is `localhost`; the API server then dials
`localhost:<port>` but verifies the certificate for `<service>.<namespace>.svc`, so the test server's
certificate must carry that name (see `pki.issue_serving_cert`).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from kubewright.runtime.kube import KubeClient
from kubewright.testenv.pki import KeyPair

Obj = dict[str, Any]


def service_dns_name(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc"


def external_name_service(name: str, namespace: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    }


def url_client_config(port: int, path: str, ca_pem: bytes) -> Obj:
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca_pem).decode()}


def service_client_config(name: str, namespace: str, port: int, path: str, ca_pem: bytes) -> Obj:
    return {
        "service": {"name": name, "namespace": namespace, "port": port, "path": path},
        "caBundle": base64.b64encode(ca_pem).decode(),
    }


def mutating_webhook_configuration(
    name: str,
    client_config: Obj,
    *,
    rules: list[Obj],
    namespace_selector: Obj | None = None,
    failure_policy: str = "Fail",
) -> Obj:
    webhook: Obj = {
        "name": f"{name}.kubewright.dev",
        "clientConfig": client_config,
        "rules": rules,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "timeoutSeconds": 10,
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = namespace_selector
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [webhook],
    }


def api_service(group: str, version: str, service: str, namespace: str, port: int, ca_pem: bytes) -> Obj:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{group}"},
        "spec": {
            "group": group,
            "version": version,
            "service": {"name": service, "namespace": namespace, "port": port},
            "caBundle": base64.b64encode(ca_pem).decode(),
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
        },
    }


async def register_api_service(
    kube: KubeClient,
    group: str,
    version: str,
    namespace: str,
    port: int,
    ca_pem: bytes,
    service: str = "loopback-api",
) -> Obj:
    """ExternalName Service + APIService routing `group/version` through the aggregator to loopback:port."""
    await kube.apply(external_name_service(service, namespace, port))
    return await kube.apply(api_service(group, version, service, namespace, port, ca_pem))


@asynccontextmanager
async def https_server(
    app: web.Application, serving: KeyPair, *, client_ca: Path | None = None
) -> AsyncIterator[int]:
    """Serve `app` over TLS on 127.0.0.1 (a free port, yielded); with `client_ca`, ask for client certs."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(serving.cert), str(serving.key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield port
    finally:
        await runner.cleanup()
