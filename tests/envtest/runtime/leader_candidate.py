"""Leader-election candidates as real processes, for the envtest tests and the failover benchmark.

Run as a script, this is one candidate: the real `Manager` + `LeaderElector` against a cluster, with a
single leader-gated runnable that appends its tenure to a JSON-lines record file:
`ready` (campaigning), `observed` (the holder it saw changed), `start` (leader-gated work began),
`alive` (heartbeat while leading), `stop` (work ended) and `exit` (with the exit code). Times are
wall-clock (`time.time()`): monotonic clocks are per process, and all candidates share this machine.

Imported, it gives the parent side: `CandidateField` spawns candidates, signals them, waits on their
records with deadlines, and extracts tenures for the never-two-leaders check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubewright.runtime.kube import KubeClient
from kubewright.runtime.leader import LeaderElector
from kubewright.runtime.leader_decisions import ElectionConfig
from kubewright.runtime.logs import configure_logging
from kubewright.runtime.manager import Manager, exit_process, run_with_signal_handlers

HEARTBEAT = 0.1
POLL = 0.02


@dataclass(frozen=True)
class Timings:
    lease_duration: float
    renew_deadline: float
    retry_period: float


# -- parent side ------------------------------------------------------------------------------------


@dataclass
class Candidate:
    identity: str
    process: subprocess.Popen[bytes]
    record: Path
    log: Path
    # Wall time by which a SIGKILLed process was certainly dead (it had been reaped).
    dead_by: float | None = None
    signalled: bool = False

    @property
    def campaigning(self) -> bool:
        """Running and not told to stop: a live candidate (a terminated one may still be exiting)."""
        return not self.signalled and self.process.poll() is None

    def events(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def times(self, event: str) -> list[float]:
        return [e["time"] for e in self.events() if e["event"] == event]

    def is_leading(self) -> bool:
        return len(self.times("start")) > len(self.times("stop")) and self.dead_by is None

    def has_observed(self, holder: str) -> bool:
        return any(e["event"] == "observed" and e.get("holder") == holder for e in self.events())

    def tenures(self) -> list[tuple[float, float]]:
        """(start, end) of each tenure; a tenure cut by SIGKILL ends when the process was reaped.

        The reap time is later than anything the process recorded, so it over-states the tenure:
        the non-overlap check is stricter for it.
        """
        starts, stops = self.times("start"), self.times("stop")
        spans = list(zip(starts, stops, strict=False))
        if len(starts) > len(stops):
            end = self.dead_by if self.dead_by is not None else time.time()
            spans.append((starts[-1], end))
        return spans

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-30:])


@dataclass
class CandidateField:
    """Candidates for one Lease, spawned from this file as separate processes."""

    kubeconfig: Path
    namespace: str
    workdir: Path
    timings: Timings
    lease_name: str = "candidates"
    candidates: list[Candidate] = field(default_factory=list)

    def spawn(self, identity: str, kubeconfig: Path | None = None) -> Candidate:
        record, log = self.workdir / f"{identity}.jsonl", self.workdir / f"{identity}.log"
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--kubeconfig", str(kubeconfig or self.kubeconfig)),
            *("--namespace", self.namespace, "--lease-name", self.lease_name),
            *("--identity", identity, "--record", str(record)),
            *("--lease-duration", str(self.timings.lease_duration)),
            *("--renew-deadline", str(self.timings.renew_deadline)),
            *("--retry-period", str(self.timings.retry_period)),
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        candidate = Candidate(identity, process, record, log)
        self.candidates.append(candidate)
        return candidate

    def leaders(self) -> list[Candidate]:
        return [c for c in self.candidates if c.is_leading()]

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `condition` until it holds (returns the wall time it was seen) or fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.identity}:\n{c.tail()}" for c in self.candidates)
                raise AssertionError(f"timed out after {timeout} s waiting for: {what}\n{logs}")
            await asyncio.sleep(POLL)  # poll
        return time.time()

    async def signal(self, candidate: Candidate, signum: signal.Signals) -> float:
        """Send `signum`; returns the wall time just before sending. SIGKILL also waits for the reap."""
        sent = time.time()
        candidate.signalled = True
        candidate.process.send_signal(signum)
        if signum is signal.SIGKILL:
            await self.wait_for(
                lambda: candidate.process.poll() is not None, 10, f"{candidate.identity} dies"
            )
            candidate.dead_by = time.time()
        return sent

    async def wait_exit(self, candidate: Candidate, timeout: float) -> int:
        await self.wait_for(
            lambda: candidate.process.poll() is not None, timeout, f"{candidate.identity} exits"
        )
        code = candidate.process.returncode
        assert code is not None
        return code

    def stop_all(self) -> None:
        for candidate in self.candidates:
            if candidate.process.poll() is None:
                candidate.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                candidate.process.wait(timeout=10)

    def overlaps(self) -> list[str]:
        """Every pair of tenures (of different processes) that overlap in time: must be empty."""
        spans = [(s, e, c.identity) for c in self.candidates for s, e in c.tenures()]
        return [
            f"{a} led {s1:.3f}..{e1:.3f} while {b} led {s2:.3f}..{e2:.3f}"
            for i, (s1, e1, a) in enumerate(spans)
            for s2, e2, b in spans[i + 1 :]
            if a != b and s1 < e2 and s2 < e1
        ]


# -- child side -------------------------------------------------------------------------------------


class TenureRecord:
    """Appends one JSON line per event; O_APPEND keeps lines whole even if the process is killed."""

    def __init__(self, path: Path, identity: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._identity = identity

    def write(self, event: str, **fields: object) -> None:
        line = json.dumps({"event": event, "time": time.time(), "identity": self._identity, **fields})
        os.write(self._fd, (line + "\n").encode())

    async def lead(self, stop: asyncio.Event) -> None:
        """The leader-gated runnable: its lifetime is the tenure."""
        self.write("start")
        try:
            while not stop.is_set():
                self.write("alive")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HEARTBEAT)
        finally:
            self.write("stop")


async def campaign(args: argparse.Namespace) -> int:
    record = TenureRecord(Path(args.record), args.identity)
    config = ElectionConfig(
        lease_name=args.lease_name,
        namespace=args.namespace,
        identity=args.identity,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
    )
    async with KubeClient.from_kubeconfig(args.kubeconfig, field_manager="leader-candidate") as kube:
        elector = LeaderElector(
            kube, config, on_new_leader=lambda holder: record.write("observed", holder=holder)
        )
        manager = Manager(election=elector, graceful_shutdown_timeout=args.graceful_shutdown)
        manager.add_leader_gated("tenure", record.lead)
        record.write("ready", pid=os.getpid())
        code = await run_with_signal_handlers(manager)
    record.write("exit", code=int(code))
    return int(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--lease-name", default="candidates")
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--graceful-shutdown", type=float, default=5.0)
    args = parser.parse_args()
    configure_logging("info", log_format="json")
    exit_process(lambda: campaign(args))


if __name__ == "__main__":
    main()
