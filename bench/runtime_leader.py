"""Benchmark: leader failover time over repeated SIGKILLs of the leader, real processes, real API server.

Two candidate processes (tests/envtest/runtime/leader_candidate.py: the real Manager and LeaderElector)
campaign for one Lease on a private envtest cluster. Each round kills the leader with SIGKILL at a
random point of its renewal cycle, measures the time from the kill to the standby's leader-gated work
starting, and starts a fresh standby. The timings are client-go's 15/10/2 s halved (8/5/1 s) so twenty
failovers fit in about three minutes; the failover scales with the lease duration.

`run()` returns min/median/p90/max failover seconds and the configuration; `python
bench/runtime_leader.py` prints them as JSON. KUBEWRIGHT_BENCH_LEADER_KILLS overrides the kill count.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The candidate harness is shared with the envtest tests, which live under tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.envtest.runtime.leader_candidate import Candidate, CandidateField, Timings

from kubewright.runtime.kube import KubeClient
from kubewright.testenv import cluster
from kubewright.testenv.layout import ClusterDir, ClusterSpec, Mode

KILLS = int(os.environ.get("KUBEWRIGHT_BENCH_LEADER_KILLS", "20"))
TIMINGS = Timings(lease_duration=8.0, renew_deadline=5.0, retry_period=1.0)
START_TIMEOUT = 60.0
NAMESPACE = "bench-leader"


async def _standby_ready(field: CandidateField, standby: Candidate, leader: Candidate) -> None:
    await field.wait_for(lambda: standby.has_observed(leader.identity), START_TIMEOUT, "standby sees leader")


async def _measure(field: CandidateField, kills: int, rng: random.Random) -> list[float]:
    leader = field.spawn("candidate-0")
    await field.wait_for(leader.is_leading, START_TIMEOUT, "first leader")
    standby = field.spawn("candidate-1")
    await _standby_ready(field, standby, leader)
    failovers = []
    for round_number in range(kills):
        # Kill at a random phase of the renewal cycle, as a crash would (a jitter, not a wait).
        await asyncio.sleep(rng.uniform(0.0, TIMINGS.retry_period))
        killed_at = await field.signal(leader, signal.SIGKILL)
        await field.wait_for(standby.is_leading, TIMINGS.lease_duration + 30, "the standby leads")
        failovers.append(standby.times("start")[0] - killed_at)
        leader, standby = standby, field.spawn(f"candidate-{round_number + 2}")
        await _standby_ready(field, standby, leader)
    return failovers


async def _create_namespace(kubeconfig: Path) -> None:
    async with KubeClient.from_kubeconfig(kubeconfig) as kube:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


def run(kills: int = KILLS) -> dict[str, Any]:
    started = time.monotonic()
    cdir = ClusterDir.named("bench-leader")
    cluster.up(cdir, ClusterSpec(mode=Mode.ENVTEST, nodes=0), timeout=300)
    try:
        asyncio.run(_create_namespace(cdir.kubeconfig))
        with tempfile.TemporaryDirectory(prefix="bench-leader-") as workdir:
            field = CandidateField(cdir.kubeconfig, NAMESPACE, Path(workdir), TIMINGS)
            try:
                samples = asyncio.run(_measure(field, kills, random.Random(20)))
            finally:
                field.stop_all()
            overlaps = field.overlaps()
    finally:
        cluster.down(cdir)
    p90 = statistics.quantiles(samples, n=10, method="inclusive")[-1] if len(samples) > 1 else samples[0]
    return {
        "benchmark": "leader_failover_after_sigkill",
        "config": {
            "lease_duration_seconds": TIMINGS.lease_duration,
            "renew_deadline_seconds": TIMINGS.renew_deadline,
            "retry_period_seconds": TIMINGS.retry_period,
            "jitter_factor": 1.2,
            "candidates": 2,
            "kills": kills,
        },
        "failover_seconds": {
            "min": round(min(samples), 3),
            "median": round(statistics.median(samples), 3),
            "p90": round(p90, 3),
            "max": round(max(samples), 3),
        },
        "bound_seconds": TIMINGS.lease_duration + TIMINGS.retry_period,
        "samples": [round(s, 3) for s in samples],
        "overlapping_tenures": len(overlaps),
        "total_seconds": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
