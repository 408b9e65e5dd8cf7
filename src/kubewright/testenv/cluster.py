"""Start, stop and inspect a local cluster through its supervisor and its state files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from kubewright.testenv.layout import ClusterDir, ClusterSpec, ClusterState, Phase

LIVE_PHASES = (Phase.STARTING, Phase.READY, Phase.DEGRADED)


class ClusterError(RuntimeError):
    """Start-up failed or the cluster is not in the state asked for; the message says where to look."""


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in group `pgid`.

    killpg(pgid, 0) is not enough: a supervisor started by pytest stays a zombie until pytest reaps
    it, and a zombie still counts as a member for the kernel.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def running_state(cdir: ClusterDir) -> ClusterState | None:
    """The state of a cluster whose supervisor still runs, else None."""
    state = cdir.read_state()
    if state is None or state.phase not in LIVE_PHASES or not _group_alive(state.supervisor_pid):
        return None
    return state


def _tail(path: os.PathLike[str] | str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def up(
    cdir: ClusterDir,
    spec: ClusterSpec,
    *,
    timeout: float = 600.0,
    exit_with_parent: bool = False,
) -> ClusterState:
    """Start a cluster and return once it is ready; an existing live cluster in `cdir` is reused."""
    existing = running_state(cdir)
    if existing is not None:
        if existing.phase is Phase.READY and cdir.read_spec() == spec:
            return existing
        down(cdir)
    if cdir.root.exists():
        shutil.rmtree(cdir.root)
    cdir.write_spec(spec)
    cdir.logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "kubewright.testenv.supervisor", str(cdir.root)]
    if exit_with_parent:
        argv += ["--exit-with-parent", str(os.getpid())]
    with cdir.supervisor_log.open("ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while True:
        state = cdir.read_state()
        if state is not None and state.phase is Phase.READY:
            return state
        exited = proc.poll() is not None
        if exited or (state is not None and state.phase is Phase.FAILED):
            message = state.message if state else "the supervisor exited before writing its state"
            raise ClusterError(
                f"cluster in {cdir.root} failed to start: {message}\n"
                f"supervisor log ({cdir.supervisor_log}):\n{_tail(cdir.supervisor_log)}"
            )
        if time.monotonic() > deadline:
            down(cdir)
            raise ClusterError(f"cluster in {cdir.root} not ready after {timeout:.0f} s; logs in {cdir.logs}")
        time.sleep(0.2)  # poll


def down(cdir: ClusterDir, *, timeout: float = 30.0) -> bool:
    """Stop the cluster's whole process group; True if something was running. Leaves no process."""
    state = cdir.read_state()
    if state is None or not _group_alive(state.supervisor_pid):
        return False
    pgid = state.supervisor_pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            break
        time.sleep(0.1)  # poll
    hard_deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < hard_deadline:
        time.sleep(0.1)  # poll
    if _group_alive(pgid):
        raise ClusterError(f"processes of group {pgid} survived SIGKILL; check `ps -g {pgid}`")
    return True


def restart_component(cdir: ClusterDir, component: str, *, timeout: float = 120.0) -> ClusterState:
    """Ask the supervisor to restart one component (same flags, same ports) and wait until it is ready."""
    state = running_state(cdir)
    if state is None:
        raise ClusterError(f"no running cluster in {cdir.root}")
    if component not in state.components:
        raise ClusterError(f"unknown component {component!r}; known: {', '.join(state.components)}")
    before = state.components[component].restarts
    cdir.restart_request.write_text(component)
    os.kill(state.supervisor_pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while True:
        now = cdir.read_state()
        # The supervisor records the new restart count only once the component is ready again.
        if now is not None and now.components[component].restarts > before and now.phase is Phase.READY:
            return now
        if now is not None and now.phase is Phase.DEGRADED and now.components[component].restarts > before:
            raise ClusterError(f"{component} did not come back: {now.message}")
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{component} not restarted within {timeout:.0f} s; see {cdir.log_of(component)}"
            )
        time.sleep(0.1)  # poll


@dataclass(frozen=True)
class ComponentReport:
    name: str
    running: bool
    detail: str


def report(cdir: ClusterDir) -> tuple[ClusterState | None, list[ComponentReport]]:
    """Each component's liveness; a dead one says its exit code and where its log is."""
    state = cdir.read_state()
    if state is None:
        return None, []
    alive = _group_alive(state.supervisor_pid)
    out = []
    for comp in state.components.values():
        running = alive and comp.pid is not None and _pid_running(comp.pid)
        if running:
            detail = f"pid {comp.pid}"
        elif comp.exit_code is not None:
            detail = f"exited with code {comp.exit_code}; log: {comp.log}"
        else:
            detail = f"not running; log: {comp.log}"
        out.append(ComponentReport(comp.name, running, detail))
    return state, out


def _pid_running(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
