"""The supervisor: one detached process that owns a local cluster's components.

`kubewright dev up` (and the pytest plugin) start it with a new session, so it and every component
share one process group: `down` signals that group and nothing survives. It starts the components
in dependency order, waits for each to be ready, bootstraps the sim nodes, and then watches: a
component that exits is recorded in state.json with its exit code and log path, which is how
`dev status` can say which component crashed and why.

Run as `python -m kubewright.testenv.supervisor CLUSTER_DIR [--exit-with-parent PID]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from kubewright.runtime.kube import KubeClient, NotFound
from kubewright.testenv import binaries, components, pki
from kubewright.testenv.layout import (
    ClusterDir,
    ClusterState,
    ComponentState,
    Mode,
    Phase,
    kubeconfig_document,
)
from kubewright.testenv.nodes import build_nodes

STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A component did not come up; the message names it and its log."""


def _die_with_parent() -> None:
    """Runs in each child before exec: SIGKILL it if the supervisor dies, so nothing is orphaned."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Supervisor:
    def __init__(self, cdir: ClusterDir) -> None:
        self.cdir = cdir
        self.spec = cdir.read_spec()
        self.state = ClusterState(supervisor_pid=os.getpid(), started_at=time.time())
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.argv: dict[str, list[str]] = {}
        self.ready_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self.exit_watchers: dict[str, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self.pending: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession
        self.bins = components.Binaries(binaries.bin_dir())

    def save(self) -> None:
        self.cdir.write_state(self.state)

    async def spawn(self, name: str, argv: list[str]) -> None:
        log_path = self.cdir.log_of(name)
        log = log_path.open("ab")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "KUBECONFIG": str(self.cdir.kubeconfig)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        self.argv[name] = argv
        previous = self.state.components.get(name)
        self.state.components[name] = ComponentState(
            name=name, pid=proc.pid, log=str(log_path), restarts=previous.restarts if previous else 0
        )
        self.save()

    def _check_alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.returncode is not None:
            raise StartupError(
                f"{name} exited with code {proc.returncode} during start-up; see {self.cdir.log_of(name)}"
            )

    async def wait_ready(self, name: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
        self.ready_checks.setdefault(name, check)

        async def alive_and_ready() -> bool:
            self._check_alive(name)
            return await check()

        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(name)
            with contextlib.suppress(Exception):
                if await alive_and_ready():
                    return
            if time.monotonic() > deadline:
                raise StartupError(f"{name} not ready after {timeout:.0f} s; see {self.cdir.log_of(name)}")
            await asyncio.sleep(0.2)  # poll

    async def start(self) -> None:
        c = self.cdir
        for d in (c.root, c.logs, c.etcd_data):
            d.mkdir(parents=True, exist_ok=True)
        p = components.Ports(*free_ports(6))
        self.state.ports = {
            "etcd": p.etcd_client,
            "apiserver": p.apiserver,
            "controller-manager": p.controller_manager,
            "scheduler": p.scheduler,
            "kwok-kubelet": p.kwok_kubelet,
        }
        cluster_pki = pki.generate(c.pki)
        server = f"https://127.0.0.1:{p.apiserver}"
        c.kubeconfig.write_text(
            kubeconfig_document(server, cluster_pki.ca.cert, cluster_pki.admin.cert, cluster_pki.admin.key)
        )
        self.save()

        await self.spawn("etcd", components.etcd_args(self.bins, c.etcd_data, p))
        http = self.http

        async def etcd_healthy() -> bool:
            async with http.get(f"http://127.0.0.1:{p.etcd_client}/health") as r:
                return r.status == 200 and (await r.json(content_type=None)).get("health") == "true"

        await self.wait_ready("etcd", etcd_healthy, 30)

        policy = c.root / "audit-policy.json"
        policy.write_text(components.audit_policy())
        await self.spawn(
            "kube-apiserver", components.apiserver_args(self.bins, cluster_pki, p, policy, c.audit_log)
        )
        ctx = ssl.create_default_context(cafile=str(cluster_pki.ca.cert))
        ctx.load_cert_chain(str(cluster_pki.admin.cert), str(cluster_pki.admin.key))

        async def apiserver_ready() -> bool:
            async with http.get(f"{server}/readyz", ssl=ctx) as r:
                return r.status == 200

        await self.wait_ready("kube-apiserver", apiserver_ready, 90)

        if self.spec.mode is Mode.SIM:
            await self.start_sim(cluster_pki, p)
        if self.spec.cert_manager:
            await self.start_cert_manager()

    async def start_cert_manager(self) -> None:
        """CRDs, then controller + cainjector; ready once a self-signed ClusterIssuer reports Ready."""
        c = self.cdir
        crds = binaries.bin_dir() / "cert-manager-crds.yaml"
        kubectl = await asyncio.create_subprocess_exec(
            self.bins["kubectl"],
            "apply",
            "--server-side",
            "-f",
            str(crds),
            env={**os.environ, "KUBECONFIG": str(c.kubeconfig)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await kubectl.communicate()
        if kubectl.returncode != 0:
            raise StartupError(f"installing cert-manager CRDs failed: {out.decode(errors='replace')[-2000:]}")
        (metrics_port,) = free_ports(1)
        self.state.ports["cert-manager-metrics"] = metrics_port
        async with KubeClient.from_kubeconfig(c.kubeconfig, field_manager="kubewright-testenv") as kube:
            await kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": components.CERT_MANAGER_NAMESPACE},
                }
            )

            async def crds_established() -> bool:
                for crd in await kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
                    if crd["spec"]["group"].endswith("cert-manager.io"):
                        conds = crd.get("status", {}).get("conditions") or []
                        if not any(x["type"] == "Established" and x["status"] == "True" for x in conds):
                            return False
                return True

            await self.wait_ready("kube-apiserver", crds_established, 60)
            await kube.discover_custom_kinds()
            await self.spawn(
                "cert-manager-controller",
                components.cert_manager_controller_args(self.bins, c.kubeconfig, metrics_port),
            )
            await self.spawn("cert-manager-cainjector", components.cert_manager_cainjector_args(self.bins))
            await kube.apply(
                {
                    "apiVersion": "cert-manager.io/v1",
                    "kind": "ClusterIssuer",
                    "metadata": {"name": components.SELF_SIGNED_CLUSTER_ISSUER},
                    "spec": {"selfSigned": {}},
                }
            )

            async def issuer_ready() -> bool:
                issuer = await kube.get(
                    "cert-manager.io/v1", "ClusterIssuer", components.SELF_SIGNED_CLUSTER_ISSUER
                )
                conds = issuer.get("status", {}).get("conditions") or []
                return any(x["type"] == "Ready" and x["status"] == "True" for x in conds)

            await self.wait_ready("cert-manager-controller", issuer_ready, 90)
            self._check_alive("cert-manager-cainjector")

    async def start_sim(self, cluster_pki: pki.ClusterPKI, p: components.Ports) -> None:
        c = self.cdir
        sched_cfg = c.root / "scheduler.json"
        sched_cfg.write_text(components.scheduler_config(c.kubeconfig))
        workdir = Path(self.spec.exec_workdir) if self.spec.exec_workdir else c.root / "exec"
        workdir.mkdir(parents=True, exist_ok=True)
        logs_file = c.root / "pod.log"
        # KWOK parses the file as CRI container logs: "<RFC3339Nano time> <stream> <P|F> <message>".
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        logs_file.write_text(
            f"{stamp} stdout F kubewright simulated pod: KWOK serves these logs from {logs_file}\n"
        )
        kwok_cfg = c.root / "kwok.yaml"
        kwok_cfg.write_text(components.kwok_config(workdir, logs_file))

        await self.spawn(
            "kube-controller-manager",
            components.controller_manager_args(self.bins, cluster_pki, c.kubeconfig, p),
        )
        await self.spawn("kube-scheduler", components.scheduler_args(self.bins, c.kubeconfig, sched_cfg, p))
        await self.spawn("kwok", components.kwok_args(self.bins, cluster_pki, c.kubeconfig, kwok_cfg, p))

        async with KubeClient.from_kubeconfig(c.kubeconfig, field_manager="kubewright-testenv") as kube:
            manifests = build_nodes(self.spec.nodes, self.spec.spot_fraction, self.spec.provider)
            gate = asyncio.Semaphore(32)

            async def create(node: dict[str, object]) -> None:
                async with gate:
                    await kube.apply(node)

            await asyncio.gather(*(create(n) for n in manifests))

            async def nodes_ready() -> bool:
                ready = 0
                for node in await kube.list("v1", "Node"):
                    conds = node.get("status", {}).get("conditions") or []
                    ready += any(x["type"] == "Ready" and x["status"] == "True" for x in conds)
                return ready >= self.spec.nodes

            await self.wait_ready("kwok", nodes_ready, 120 + self.spec.nodes * 0.1)

            async def default_service_account() -> bool:
                try:
                    await kube.get("v1", "ServiceAccount", "default", "default")
                except NotFound:
                    return False
                return True

            # Pods are rejected until the controller-manager has created the namespace's default SA.
            await self.wait_ready("kube-controller-manager", default_service_account, 60)
            for name in ("kube-scheduler",):
                self._check_alive(name)

    def _watch_exit(self, name: str) -> None:
        proc = self.procs[name]

        async def on_exit() -> None:
            code = await proc.wait()
            if self.stopping.is_set():
                return
            self.state.components[name].exit_code = code
            self.state.phase = Phase.DEGRADED
            self.state.message = f"{name} exited with code {code}; see {self.cdir.log_of(name)}"
            self.save()

        self.exit_watchers[name] = asyncio.create_task(on_exit())

    async def restart(self, name: str) -> None:
        """Stop one component and start it again with the same flags and ports (tests: API server restart)."""
        if name not in self.procs:
            self.state.message = f"restart: unknown component {name!r} (known: {', '.join(self.procs)})"
            self.save()
            return
        self.exit_watchers.pop(name).cancel()
        await self._terminate(self.procs[name])
        restarts = self.state.components[name].restarts + 1
        await self.spawn(name, self.argv[name])
        self.state.components[name].restarts = restarts
        try:
            await self.wait_ready(name, self.ready_checks[name], 90)
        except StartupError as err:
            self.state.phase = Phase.DEGRADED
            self.state.message = str(err)
        self._watch_exit(name)
        self.save()

    def _on_restart_request(self) -> None:
        try:
            name = self.cdir.restart_request.read_text().strip()
            self.cdir.restart_request.unlink()
        except OSError:
            return
        self.pending.append(asyncio.create_task(self.restart(name)))

    async def watch(self, parent_pid: int | None) -> None:
        """Record component exits and serve restart requests until asked to stop (or the parent is gone)."""
        for name in self.procs:
            self._watch_exit(name)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self._on_restart_request)
        while not self.stopping.is_set():
            if parent_pid is not None and not _pid_alive(parent_pid):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
        for task in [*self.exit_watchers.values(), *self.pending]:
            task.cancel()

    @staticmethod
    async def _terminate(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop_all(self) -> None:
        self.stopping.set()
        self.state.phase = Phase.STOPPING
        self.save()
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            await self._terminate(proc)
            self.state.components[name].exit_code = proc.returncode

    async def run(self, parent_pid: int | None) -> int:
        async with aiohttp.ClientSession() as self.http:
            return await self._run(parent_pid)

    async def _run(self, parent_pid: int | None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        started = time.monotonic()
        startup = asyncio.create_task(self.start())
        stop_wait = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({startup, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await startup
            await self.stop_all()
            self.state.phase = Phase.STOPPED
            self.save()
            return 0
        stop_wait.cancel()
        if (err := startup.exception()) is not None:
            self.state.message = str(err)
            await self.stop_all()
            self.state.phase = Phase.FAILED
            self.save()
            print(f"start-up failed: {err}", file=sys.stderr)
            return 1
        self.state.ready_seconds = round(time.monotonic() - started, 2)
        self.state.phase = Phase.READY
        self.save()
        await self.watch(parent_pid)
        await self.stop_all()
        self.state.phase = Phase.STOPPED
        self.save()
        return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubewright.testenv.supervisor")
    parser.add_argument("cluster_dir", type=Path)
    parser.add_argument("--exit-with-parent", type=int, default=None)
    args = parser.parse_args(argv)
    return asyncio.run(Supervisor(ClusterDir(args.cluster_dir)).run(args.exit_with_parent))


if __name__ == "__main__":
    sys.exit(main())
