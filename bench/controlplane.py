"""Benchmark the local control plane: build cost, start-to-ready, and memory at 1,000 nodes.

Writes bench/results/controlplane.json. Targets (issue: foundation): envtest ready <= 15 s and sim with
50 nodes ready <= 45 s, with cached binaries.

The cold build figure is what build.sh recorded when it last compiled each component for the current
pins on this machine (build-times.jsonl in the cache directory). Set KUBEWRIGHT_BENCH_COLD=1 to
measure a true cold build now, into a scratch cache with an empty Go build cache (about 7 minutes).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubewright.testenv import binaries, cluster
from kubewright.testenv.layout import ClusterDir, ClusterSpec, Mode

RESULTS = Path(__file__).parent / "results" / "controlplane.json"
TARGETS = {"envtest_ready_seconds": 15.0, "sim_50_ready_seconds": 45.0}
RUNS = int(os.environ.get("KUBEWRIGHT_BENCH_RUNS", "3"))


def recorded_build() -> dict[str, Any]:
    record = binaries.bin_dir() / "build-times.jsonl"
    if not record.exists():
        return {"recorded": False, "note": "binaries were built before build timing was recorded"}
    latest: dict[str, int] = {}
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        latest[entry["component"]] = entry["seconds"]
    return {"recorded": True, "per_component_seconds": latest, "total_seconds": sum(latest.values())}


def cold_build() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "KUBEWRIGHT_CACHE": f"{scratch}/kw", "GOCACHE": f"{scratch}/gocache"}
        started = time.monotonic()
        subprocess.run(["bash", str(binaries.build_script())], env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        disk = subprocess.run(
            ["du", "-sb", scratch], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    return {"seconds": round(seconds, 1), "disk_bytes_bins_and_build_cache": int(disk)}


def start_to_ready(spec: ClusterSpec, name: str) -> tuple[float, dict[str, Any]]:
    """Wall time of `up` (supervisor spawn to every component ready) plus RSS right after."""
    cdir = ClusterDir.named(name)
    started = time.monotonic()
    state = cluster.up(cdir, spec, timeout=900)
    seconds = time.monotonic() - started
    return seconds, {"state": state, "cdir": cdir}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def measure(spec: ClusterSpec, name: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        seconds, info = start_to_ready(spec, name)
        times.append(round(seconds, 2))
        cluster.down(info["cdir"])
    return times


def memory_at_scale(nodes: int, settle_seconds: float) -> dict[str, Any]:
    spec = ClusterSpec(mode=Mode.SIM, nodes=nodes, spot_fraction=0.5)
    seconds, info = start_to_ready(spec, f"bench-sim-{nodes}")
    try:
        state = info["state"]
        at_ready = {n: rss_mib(c.pid) for n, c in state.components.items() if c.pid}
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline:
            time.sleep(1)  # poll: let heartbeats and controllers reach steady state
        steady = {n: rss_mib(c.pid) for n, c in state.components.items() if c.pid}
    finally:
        cluster.down(info["cdir"])
    return {
        "ready_seconds": round(seconds, 2),
        "rss_mib_at_ready": at_ready,
        f"rss_mib_after_{int(settle_seconds)}s": steady,
    }


def main() -> int:
    missing = binaries.missing()
    if missing:
        print(f"binaries missing: {missing}; run `make setup`", file=sys.stderr)
        return 1
    result: dict[str, Any] = {
        "benchmark": "controlplane",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": RUNS,
        "build": recorded_build(),
    }
    if os.environ.get("KUBEWRIGHT_BENCH_COLD"):
        result["cold_build_now"] = cold_build()

    envtest = measure(ClusterSpec(mode=Mode.ENVTEST, nodes=0), "bench-envtest", RUNS)
    sim50 = measure(ClusterSpec(mode=Mode.SIM, nodes=50, spot_fraction=0.5), "bench-sim-50", RUNS)
    result["envtest_ready_seconds"] = {"runs": envtest, "median": statistics.median(envtest)}
    result["sim_50_ready_seconds"] = {"runs": sim50, "median": statistics.median(sim50)}
    result["sim_1000"] = memory_at_scale(1000, settle_seconds=60)
    result["targets"] = TARGETS
    result["meets_targets"] = {k: result[k]["median"] <= limit for k, limit in TARGETS.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(result["meets_targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
