"""Benchmark the admission kit: an echo webhook over real TLS on one core, load from the other core.

Target (issue 3): >= 3,000 reviews/s with p99 <= 5 ms, server on one core of this 2-core machine.

The server is exactly what an add-on runs: `https.new_application` + `admission.add_admission_route` +
`https.start_site` with a `tls.CertReloader`-managed context (its poller running), in its own process
pinned to core 0. The load generator is a second process pinned to core 1 that keeps `CONNECTIONS`
HTTPS connections alive and has one request in flight on each (what wrk does): a hand-written HTTP/1.1
client on asyncio streams, because a general-purpose client spends more CPU per request than the server
under test and would measure itself.

Two measured phases of `REQUESTS` reviews each, after `WARMUP`:
- max rate (closed loop): each connection sends its next review when the previous answer arrives. This
  gives reviews/s; its latency is mostly queueing (`CONNECTIONS` requests wait on one core).
- target rate (paced, like wrk2): reviews are due at exactly `TARGET_REVIEWS_PER_SECOND` and latency is
  counted from the due time. This is the latency the target speaks of: p99 at 3,000 reviews/s.

Latency is client-side. CPU time of both processes (from /proc/<pid>/stat) and each core's busy time
(/proc/stat) are read over each phase, so the result shows which side was saturated and how much other
work on this shared machine took; when the client is the limit, the server's capacity is estimated
from its CPU share and labelled as an estimate, not a measurement.

Run: `python bench/runtime_admission.py` (prints JSON; `run()` returns the same dict).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import signal
import ssl
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import trustme
from prometheus_client.parser import text_string_to_metric_families

from kubewright.runtime.admission import (
    ADMISSION_CLIENT_MAX_SIZE,
    AdmissionRequest,
    Allow,
    Deny,
    add_admission_route,
)
from kubewright.runtime.clock import RealClock
from kubewright.runtime.https import new_application, start_site
from kubewright.runtime.metrics import add_metrics_route, create_registry
from kubewright.runtime.tls import CertReloader, new_server_context

SERVER_CORE = 0
CLIENT_CORE = 1
CONNECTIONS = 32
WARMUP = 2_000
REQUESTS = 30_000
REVIEW_PATH = "/echo"
TARGET_REVIEWS_PER_SECOND = 3_000.0
TARGET_P99_MS = 5.0
# Generous bound: at the target rate the measured phase takes 10 s; a run far slower than that is broken.
CLIENT_DEADLINE_SECONDS = 100.0
UID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"  # same length as a uuid4, so Content-Length holds
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def echo(request: AdmissionRequest) -> Allow | Deny:
    """Allow without a patch: the cost measured is the kit's, not a handler's."""
    return Allow()


def pod_review() -> dict[str, Any]:
    """A Pod CREATE review shaped like the API server's for a ReplicaSet-owned Pod (about 2.5 KB)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "checkout-7d9f8b6c5d-",
            "namespace": "shop",
            "labels": {
                "app.kubernetes.io/name": "checkout",
                "app.kubernetes.io/instance": "checkout-prod",
                "app.kubernetes.io/version": "2.14.1",
                "pod-template-hash": "7d9f8b6c5d",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
                "kubectl.kubernetes.io/restartedAt": "2025-01-14T09:12:44Z",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "checkout-7d9f8b6c5d",
                    "uid": "4b7c1f0e-2a61-4d8e-9a55-2f0c6d3e8b11",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "checkout",
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": "checkout",
                    "image": "registry.example.com/shop/checkout:2.14.1",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/checkout", "readOnly": True},
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        },
                    ],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "checkout-config"}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt"}]}},
                        ]
                    },
                },
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID_PLACEHOLDER,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "a8f3b2c1-5d4e-4f6a-8b9c-0d1e2f3a4b5c",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


# -- server process ------------------------------------------------------------------------------------


def serve(cert_file: Path, key_file: Path, ready: Connection) -> None:
    """Server process entry: pin to SERVER_CORE, serve until SIGTERM, report the port on `ready`."""
    os.sched_setaffinity(0, {SERVER_CORE})
    asyncio.run(_serve(cert_file, key_file, ready))


async def _serve(cert_file: Path, key_file: Path, ready: Connection) -> None:
    registry = create_registry()
    reloader = CertReloader(new_server_context(), cert_file, key_file, RealClock())
    reloader.load()
    app = new_application(client_max_size=ADMISSION_CLIENT_MAX_SIZE)
    add_admission_route(app, REVIEW_PATH, echo, registry)
    add_metrics_route(app, registry)
    site = await start_site(app, "127.0.0.1", 0, ssl_context=reloader.context)
    poller = asyncio.create_task(reloader.run())
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    ready.send(site.port)
    try:
        await stopping.wait()
    finally:
        poller.cancel()
        await site.stop()


# -- load generator process ----------------------------------------------------------------------------

Connections = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


@dataclass
class Load:
    """What the generator sends and how far a phase has got; shared by all connections of one phase."""

    host: str
    port: int
    head: bytes
    body_prefix: bytes
    body_suffix: bytes
    total: int = 0
    claimed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def start_phase(self, total: int) -> None:
        self.total, self.claimed, self.errors, self.latencies = total, 0, 0, []

    def claim(self) -> int | None:
        """The index of the next request to send, or None when the phase's count is reached."""
        if self.claimed >= self.total:
            return None
        self.claimed += 1
        return self.claimed - 1


def build_load(port: int) -> Load:
    body = json.dumps(pod_review(), separators=(",", ":")).encode()
    prefix, suffix = body.split(UID_PLACEHOLDER.encode())
    head = (
        f"POST {REVIEW_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return Load("127.0.0.1", port, head, prefix, suffix)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body (aiohttp always sends one for these)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    return status, await reader.readexactly(length)


async def send_review(load: Load, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    uid = str(uuid.uuid4()).encode()
    writer.write(load.head + load.body_prefix + uid + load.body_suffix)
    status, body = await read_response(reader)
    if status != 200 or uid not in body:
        load.errors += 1


async def drive_closed(load: Load, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Next review as soon as the previous answer arrived: finds the maximum rate."""
    while load.claim() is not None:
        started = time.perf_counter()
        await send_review(load, reader, writer)
        load.latencies.append(time.perf_counter() - started)


async def drive_paced(
    load: Load, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, t0: float, rate: float
) -> None:
    """Review i is due at t0 + i/rate; latency counts from when it was due, not from when it was sent.

    Counting from the due time keeps a stalled server from hiding its stall (coordinated omission):
    requests that had to wait behind a slow one are charged the wait, as a real client would feel it.
    """
    while (index := load.claim()) is not None:
        due = t0 + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pace: hold the offered rate, not a poll
        await send_review(load, reader, writer)
        load.latencies.append(time.perf_counter() - due)


async def scrape_handler_latency(load: Load, trust: ssl.SSLContext) -> tuple[float, float]:
    """(sum, count) of the server's own webhook latency histogram, to separate server time from transit."""
    reader, writer = await asyncio.open_connection(load.host, load.port, ssl=trust)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{load.port}\r\n\r\n".encode())
    _, body = await read_response(reader)
    writer.close()
    total = count = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for found in family.samples:
            if found.labels.get("webhook") != REVIEW_PATH:
                continue
            if found.name == "controller_runtime_webhook_latency_seconds_sum":
                total = found.value
            elif found.name == "controller_runtime_webhook_latency_seconds_count":
                count = found.value
    return total, count


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc (fields 14 and 15, counted after the parenthesised name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def core_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat: how much of each core anyone, not only we, used."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            jiffies = [int(v) for v in values[:8]]
            idle = jiffies[3] + jiffies[4]
            times[int(name[3:])] = (sum(jiffies) - idle, sum(jiffies))
    return times


async def measure_phase(
    load: Load, connections: Connections, trust: ssl.SSLContext, server_pid: int, rate: float | None
) -> dict[str, Any]:
    """One measured phase of REQUESTS reviews: closed-loop when `rate` is None, else paced at `rate`/s."""
    handler_before = await scrape_handler_latency(load, trust)
    server_cpu, client_cpu = process_cpu_seconds(server_pid), time.process_time()
    cores_before = core_times()
    load.start_phase(REQUESTS)
    started = time.perf_counter()
    if rate is None:
        await asyncio.gather(*(drive_closed(load, reader, writer) for reader, writer in connections))
    else:
        t0 = started + 0.01
        await asyncio.gather(*(drive_paced(load, reader, writer, t0, rate) for reader, writer in connections))
    elapsed = time.perf_counter() - started
    server_cpu = process_cpu_seconds(server_pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    cores_after = core_times()
    handler_after = await scrape_handler_latency(load, trust)
    return {
        "offered_rate": rate,
        "elapsed_seconds": elapsed,
        "latencies": load.latencies,
        "errors": load.errors,
        "server_cpu_seconds": server_cpu,
        "client_cpu_seconds": client_cpu,
        "core_busy": {
            core: (cores_after[core][0] - busy) / max(cores_after[core][1] - total, 1)
            for core, (busy, total) in cores_before.items()
            if core in (SERVER_CORE, CLIENT_CORE)
        },
        "handler_mean_seconds": (handler_after[0] - handler_before[0])
        / max(handler_after[1] - handler_before[1], 1),
    }


def generate(port: int, server_pid: int, ca_pem: bytes, results: Connection) -> None:
    """Load-generator process entry: pin to CLIENT_CORE, run warm-up and measured phases, send results."""
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        results.send(asyncio.run(_generate(port, server_pid, ca_pem)))
    except Exception as exc:
        results.send({"error": f"{type(exc).__name__}: {exc}"})


async def _generate(port: int, server_pid: int, ca_pem: bytes) -> dict[str, Any]:
    trust = ssl.create_default_context(cadata=ca_pem.decode())
    load = build_load(port)
    async with asyncio.timeout(CLIENT_DEADLINE_SECONDS):
        connections = [await asyncio.open_connection(load.host, port, ssl=trust) for _ in range(CONNECTIONS)]
        tls = connections[0][1].get_extra_info("ssl_object")
        load.start_phase(WARMUP)
        await asyncio.gather(*(drive_closed(load, reader, writer) for reader, writer in connections))
        warmup_errors = load.errors
        closed = await measure_phase(load, connections, trust, server_pid, rate=None)
        paced = await measure_phase(load, connections, trust, server_pid, rate=TARGET_REVIEWS_PER_SECOND)
        for _, writer in connections:
            writer.close()
    return {
        "closed": closed,
        "paced": paced,
        "warmup_errors": warmup_errors,
        "tls": {"version": tls.version(), "cipher": tls.cipher()[0]},
        "body_bytes": len(load.body_prefix) + len(UID_PLACEHOLDER) + len(load.body_suffix),
    }


# -- orchestration -------------------------------------------------------------------------------------


def run() -> dict[str, Any]:
    """Run server and generator processes and return the figures (see the module docstring)."""
    if not {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
        raise RuntimeError(f"needs cores {SERVER_CORE} and {CLIENT_CORE}, have {os.sched_getaffinity(0)}")
    # fork: the children run functions of this module however it was loaded (no pickling by name); the
    # parent has no event loop or threads at this point, which is what makes forking safe.
    context = multiprocessing.get_context("fork")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kubewright-bench-") as scratch:
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1")
        cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_file.write_bytes(leaf.private_key_pem.bytes())
        ready_recv, ready_send = context.Pipe(duplex=False)
        server = context.Process(
            target=serve, args=(cert_file, key_file, ready_send), name="admission-server"
        )
        server.start()
        try:
            if not ready_recv.poll(30):
                raise RuntimeError("the admission server did not start within 30 s")
            port = ready_recv.recv()
            if server.pid is None:
                raise RuntimeError("the admission server process has no pid")
            results_recv, results_send = context.Pipe(duplex=False)
            client = context.Process(
                target=generate, args=(port, server.pid, ca.cert_pem.bytes(), results_send), name="load"
            )
            client.start()
            if not results_recv.poll(CLIENT_DEADLINE_SECONDS + 10):
                client.kill()
                raise RuntimeError("the load generator produced no result in time")
            measured: dict[str, Any] = results_recv.recv()
            client.join(10)
        finally:
            server.terminate()
            server.join(10)
    if "error" in measured:
        raise RuntimeError(f"load generator failed: {measured['error']}")
    return summarize(measured, load_before)


def summarize_phase(phase: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(phase["latencies"])
    cuts = statistics.quantiles(latencies, n=1000, method="inclusive")
    elapsed = phase["elapsed_seconds"]
    server_share = phase["server_cpu_seconds"] / elapsed
    client_share = phase["client_cpu_seconds"] / elapsed

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "requests": len(latencies),
        "reviews_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": ms(cuts[499]),
            "p90": ms(cuts[899]),
            "p99": ms(cuts[989]),
            "p99.9": ms(cuts[998]),
            "max": ms(latencies[-1]),
            "mean": ms(statistics.fmean(latencies)),
        },
        "errors": phase["errors"],
        "server_handler_mean_ms": ms(phase["handler_mean_seconds"]),
        "cpu_share_of_own_core": {"server": round(server_share, 3), "client": round(client_share, 3)},
        # Busy time of each core from /proc/stat, whoever used it: the gap to our processes' share is
        # what other work on this shared machine took. The kernel samples it per tick, so it is only
        # trustworthy for a busy core (the max-rate phase); process CPU times above are exact.
        "core_busy": {f"core{core}": round(busy, 3) for core, busy in sorted(phase["core_busy"].items())},
        "server_capacity_estimate_reviews_per_second": (
            round(len(latencies) / elapsed / server_share, 1) if server_share else None
        ),
    }


def summarize(measured: dict[str, Any], load_before: tuple[float, float, float]) -> dict[str, Any]:
    closed = summarize_phase(measured["closed"])
    paced = summarize_phase(measured["paced"])
    shares = closed["cpu_share_of_own_core"]
    result: dict[str, Any] = {
        "benchmark": "runtime_admission",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "setup": {
            "server": "https.start_site + admission route (echo: Allow, no patch), CertReloader TLS",
            "server_core": SERVER_CORE,
            "client": f"asyncio HTTP/1.1 keep-alive, {CONNECTIONS} connections, one request in flight each",
            "client_core": CLIENT_CORE,
            "tls": measured["tls"],
            "review_body_bytes": measured["body_bytes"],
            "warmup_requests": WARMUP,
            "warmup_errors": measured["warmup_errors"],
        },
        # Headline figures: the maximum rate (closed loop) and the latency at the target rate (paced).
        "reviews_per_second": closed["reviews_per_second"],
        "latency_ms_at_target_rate": paced["latency_ms"],
        "max_rate_phase": closed,
        "target_rate_phase": {"offered_reviews_per_second": TARGET_REVIEWS_PER_SECOND, **paced},
        "saturated_side": "client" if shares["client"] > shares["server"] else "server",
        "targets": {"reviews_per_second": TARGET_REVIEWS_PER_SECOND, "p99_ms": TARGET_P99_MS},
        "meets_targets": {
            "reviews_per_second": closed["reviews_per_second"] >= TARGET_REVIEWS_PER_SECOND,
            "p99_ms_at_target_rate": paced["latency_ms"]["p99"] <= TARGET_P99_MS,
            "no_errors": closed["errors"] == paced["errors"] == measured["warmup_errors"] == 0,
        },
    }
    if result["saturated_side"] == "client":
        result["note"] = (
            "the load generator used more of its core than the server: reviews_per_second is bounded by "
            "what one Python core can generate; server_capacity_estimate_reviews_per_second extrapolates "
            "the server's CPU share to a full core (an estimate, not a measurement)"
        )
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
