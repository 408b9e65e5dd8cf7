"""What the demo steps share: a labelled namespace, and an add-on process run on this machine.

KWOK nodes run no containers, so each add-on runs locally behind a webhook configuration that the
API server reaches by URL; the configuration goes away and the process stops when the step ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from kubewright.runtime.kube import KubeClient, NotFound

MWC_API = "admissionregistration.k8s.io/v1"


async def labelled_namespace(kube: KubeClient, name: str, labels: dict[str, str]) -> None:
    try:
        await kube.get("v1", "Namespace", name)
    except NotFound:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await kube.merge_patch("v1", "Namespace", name, {"metadata": {"labels": labels}})


@contextlib.asynccontextmanager
async def local_addon(
    args: list[str],
    log: Path,
    readyz: str,
    *,
    kubeconfig: Path,
    ready_ssl: ssl.SSLContext | None = None,
    timeout: float = 60,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m kubewright.cli ARGS` until the block ends; entered once `readyz` answers 200."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kubewright.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=out,
        )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"kubewright {' '.join(args[:2])} exited with {proc.returncode}; see {log}"
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(readyz, ssl=ready_ssl if ready_ssl is not None else True) as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.2)  # poll
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def registered(kube: KubeClient, mwc: dict[str, Any]) -> AsyncIterator[None]:
    """A MutatingWebhookConfiguration applied for the block, deleted afterwards whatever happens."""
    await kube.apply(mwc)
    try:
        yield
    finally:
        await kube.delete(
            MWC_API, "MutatingWebhookConfiguration", str(mwc["metadata"]["name"]), missing_ok=True
        )
