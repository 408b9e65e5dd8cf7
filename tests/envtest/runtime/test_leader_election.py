"""Leader election between real processes against a real kube-apiserver.

Each candidate is a separate Python process (leader_candidate.py) running the real Manager and
LeaderElector; the leader-gated runnable records its tenure with wall-clock times. The timings are
scaled down from client-go's 15/10/2 s so failovers take seconds, and the bounds asserted derive from
them: a SIGKILLed leader is replaced within lease duration + retry period, a SIGTERMed one within 3 s
(it releases the Lease), a partitioned one stops leading within the renew deadline, and no two tenures
ever overlap.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from kubewright.runtime.kube import KubeClient
from kubewright.runtime.leader import LeaderCallbacks, LeaderElector
from kubewright.runtime.leader_decisions import LEASE_API_VERSION, LEASE_KIND, ElectionConfig
from kubewright.runtime.manager import ExitCode
from kubewright.runtime.metrics import LEADER_MASTER_STATUS
from kubewright.testenv.pytest_plugin import LocalCluster

from .leader_candidate import Candidate, CandidateField, Timings

pytestmark = pytest.mark.envtest

TIMINGS = Timings(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5)
START_TIMEOUT = 30.0  # process start-up (imports) on a busy 2-core machine
RELEASE_TAKEOVER = 3.0
# Scheduling slack for a process to notice its own deadline on a loaded machine.
SLACK = 0.5


@pytest.fixture
def candidates(local_cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[CandidateField]:
    field = CandidateField(local_cluster.kubeconfig, namespace, tmp_path, TIMINGS)
    try:
        yield field
    finally:
        field.stop_all()


async def lead_with_standby(
    candidates: CandidateField, leader: str, standby: str
) -> tuple[Candidate, Candidate]:
    """Start `leader`, wait until it leads, then start `standby` and wait until it has seen the leader."""
    first = candidates.spawn(leader)
    await candidates.wait_for(first.is_leading, START_TIMEOUT, f"{leader} leads")
    second = candidates.spawn(standby)
    await candidates.wait_for(lambda: second.has_observed(leader), START_TIMEOUT, f"{standby} sees {leader}")
    return first, second


async def lease_spec(kube: KubeClient, namespace: str, name: str) -> dict[str, object]:
    lease = await kube.get(LEASE_API_VERSION, LEASE_KIND, name, namespace)
    spec: dict[str, object] = lease["spec"]
    return spec


async def test_elector_reports_leadership_survives_foreign_writes_and_releases(
    kube: KubeClient, namespace: str
) -> None:
    """In one process: the master-status gauge, a benign concurrent write (Conflict, re-read, renew on),
    and the release written on stop."""
    registry = CollectorRegistry()
    config = ElectionConfig(
        "in-process",
        namespace,
        "solo",
        lease_duration=TIMINGS.lease_duration,
        renew_deadline=TIMINGS.renew_deadline,
        retry_period=TIMINGS.retry_period,
    )
    elector = LeaderElector(kube, config, registry=registry)
    started, stopped, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    run = asyncio.create_task(elector.run(stop, LeaderCallbacks(started.set, stopped.set)))

    def status() -> float | None:
        return registry.get_sample_value(LEADER_MASTER_STATUS, {"name": "in-process"})

    await asyncio.wait_for(started.wait(), START_TIMEOUT)
    assert status() == 1
    spec = await lease_spec(kube, namespace, "in-process")
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == ("solo", 4, 0)

    await kube.merge_patch(
        LEASE_API_VERSION, LEASE_KIND, "in-process", {"metadata": {"labels": {"owner": "ops"}}}, namespace
    )
    patched = await kube.get(LEASE_API_VERSION, LEASE_KIND, "in-process", namespace)
    deadline = time.monotonic() + 10 * TIMINGS.retry_period
    while (await lease_spec(kube, namespace, "in-process"))["renewTime"] == patched["spec"]["renewTime"]:
        assert time.monotonic() < deadline, "the leader stopped renewing after a foreign write"
        await asyncio.sleep(0.05)  # poll
    renewed = await kube.get(LEASE_API_VERSION, LEASE_KIND, "in-process", namespace)
    assert renewed["metadata"]["labels"] == {"owner": "ops"}
    assert renewed["spec"]["holderIdentity"] == "solo"
    assert not stopped.is_set()

    stop.set()
    await asyncio.wait_for(run, 10)
    assert stopped.is_set()
    assert status() == 0
    spec = await lease_spec(kube, namespace, "in-process")
    assert (spec.get("holderIdentity", ""), spec["leaseDurationSeconds"], spec["leaseTransitions"]) == (
        "",
        1,
        0,
    )


async def test_killed_leader_is_replaced_within_lease_duration_plus_retry(
    candidates: CandidateField, kube: KubeClient, namespace: str
) -> None:
    leader, standby = await lead_with_standby(candidates, "alpha", "bravo")

    killed_at = await candidates.signal(leader, signal.SIGKILL)
    bound = TIMINGS.lease_duration + TIMINGS.retry_period
    await candidates.wait_for(standby.is_leading, bound + 5, "bravo leads")

    takeover = standby.times("start")[0] - killed_at
    assert takeover <= bound, f"takeover took {takeover:.2f} s, bound {bound} s"
    # The killed process was leading right up to the kill, so the measurement is of a real failover.
    assert killed_at - leader.times("alive")[-1] < 0.5
    assert candidates.overlaps() == []
    spec = await lease_spec(kube, namespace, candidates.lease_name)
    assert spec["holderIdentity"] == "bravo"
    assert spec["leaseTransitions"] == 1


async def test_terminated_leader_releases_and_standby_takes_over_at_once(
    candidates: CandidateField, kube: KubeClient, namespace: str
) -> None:
    leader, standby = await lead_with_standby(candidates, "alpha", "bravo")

    terminated_at = await candidates.signal(leader, signal.SIGTERM)
    await candidates.wait_for(standby.is_leading, RELEASE_TAKEOVER + 5, "bravo leads")

    takeover = standby.times("start")[0] - terminated_at
    assert takeover <= RELEASE_TAKEOVER, f"takeover after release took {takeover:.2f} s"
    assert await candidates.wait_exit(leader, 10) == ExitCode.OK
    assert candidates.overlaps() == []
    spec = await lease_spec(kube, namespace, candidates.lease_name)
    assert spec["holderIdentity"] == "bravo"
    assert spec["leaseTransitions"] == 1


async def replace_leader(candidates: CandidateField, signum: signal.Signals) -> None:
    """Wait for the one leader and for every live standby to have seen it, signal it, await a successor."""
    await candidates.wait_for(lambda: len(candidates.leaders()) == 1, START_TIMEOUT, "one leader")
    (leader,) = candidates.leaders()
    others = [c for c in candidates.candidates if c is not leader and c.campaigning]
    await candidates.wait_for(
        lambda: all(c.has_observed(leader.identity) for c in others), START_TIMEOUT, "standbys see the leader"
    )
    await candidates.signal(leader, signum)
    await candidates.wait_for(
        lambda: any(c.is_leading() for c in others), TIMINGS.lease_duration + 10, "a new leader"
    )


async def test_never_two_leaders_through_repeated_kills_and_terminations(candidates: CandidateField) -> None:
    """Three candidates; the leader is killed or terminated repeatedly and replaced by a fresh process."""
    for name in ("c0", "c1", "c2"):
        candidates.spawn(name)
    rounds = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]
    for number, signum in enumerate(rounds, start=3):
        await replace_leader(candidates, signum)
        candidates.spawn(f"c{number}")
        assert candidates.overlaps() == []
    terminated = [c for c in candidates.candidates if c.dead_by is None and c.times("stop")]
    assert len(terminated) == 2
    for candidate in terminated:
        assert await candidates.wait_exit(candidate, 10) == ExitCode.OK


class Partition:
    """A TCP relay to the API server that can stop delivering bytes, as a network partition does.

    Connections stay open and requests are swallowed, so the client sees hangs rather than errors:
    the hardest case for a leader, which must still step down by its renew deadline.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._cut = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        self._cut = True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        pipes = [
            asyncio.create_task(self._pipe(client_reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, client_writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        for writer in (client_writer, upstream_writer):
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._cut:
                continue
            writer.write(data)
            await writer.drain()


@pytest.fixture
async def partition(local_cluster: LocalCluster) -> AsyncIterator[Partition]:
    relay = Partition(local_cluster.state.ports["apiserver"])
    try:
        yield relay
    finally:
        await relay.close()


def kubeconfig_via(local_cluster: LocalCluster, port: int, path: Path) -> Path:
    config = yaml.safe_load(local_cluster.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_partitioned_leader_steps_down_before_the_standby_takes_over(
    candidates: CandidateField, partition: Partition, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    relayed = kubeconfig_via(local_cluster, await partition.start(), tmp_path / "relayed.kubeconfig")
    leader = candidates.spawn("alpha", kubeconfig=relayed)
    await candidates.wait_for(leader.is_leading, START_TIMEOUT, "alpha leads")
    standby = candidates.spawn("bravo")
    await candidates.wait_for(lambda: standby.has_observed("alpha"), START_TIMEOUT, "bravo sees alpha")

    cut_at = time.time()
    partition.cut()
    await candidates.wait_for(standby.is_leading, TIMINGS.lease_duration + 10, "bravo leads")

    (stopped_at,) = leader.times("stop")
    assert stopped_at - cut_at <= TIMINGS.renew_deadline + SLACK
    assert stopped_at < standby.times("start")[0]
    assert candidates.overlaps() == []
    assert await candidates.wait_exit(leader, 10) == ExitCode.LEADERSHIP_LOST
