"""`kubewright dev up/status/down` as a user runs them: ready, crash reporting, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubewright.testenv.cluster import group_members
from kubewright.testenv.layout import ClusterDir
from kubewright.testenv.pytest_plugin import LocalCluster

pytestmark = pytest.mark.envtest


def kubewright(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEWRIGHT_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "kubewright.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_up_status_crash_down(envtest_cluster: LocalCluster, tmp_path: Path) -> None:
    # envtest_cluster is requested only so that missing binaries skip (or fail under CI) this test too.
    up = kubewright("dev", "up", "--name", "cli", state_dir=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "ready in" in up.stdout
    cdir = ClusterDir(tmp_path / "cli")
    state = cdir.read_state()
    assert state is not None
    pgid = state.supervisor_pid

    path = kubewright("dev", "kubeconfig", "--name", "cli", state_dir=tmp_path)
    assert Path(path.stdout.strip()) == cdir.kubeconfig

    healthy = kubewright("dev", "status", "--name", "cli", state_dir=tmp_path)
    assert healthy.returncode == 0, healthy.stdout
    assert "kube-apiserver" in healthy.stdout
    assert "DOWN" not in healthy.stdout

    apiserver_pid = state.components["kube-apiserver"].pid
    assert apiserver_pid is not None
    os.kill(apiserver_pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        status = kubewright("dev", "status", "--name", "cli", state_dir=tmp_path)
        if "degraded" in status.stdout:
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.2)  # poll
    assert status.returncode == 1
    assert "kube-apiserver exited with code -9" in status.stdout
    assert str(cdir.log_of("kube-apiserver")) in status.stdout

    down = kubewright("dev", "down", "--name", "cli", state_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert group_members(pgid) == []
    again = kubewright("dev", "down", "--name", "cli", state_dir=tmp_path)
    assert "not running" in again.stdout
