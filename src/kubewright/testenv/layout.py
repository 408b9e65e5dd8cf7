"""Where one local cluster keeps its files, and the spec and state documents it writes there.

A cluster lives in one directory (`.kubewright/<name>/` by default): its PKI, etcd data, logs,
kubeconfig, and two JSON documents. `spec.json` is what was asked for; `state.json` is what the
supervisor reports (phase, ports, each component's pid and exit). `kubewright dev status` reads only
these files, so it works even when the supervisor is gone.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from kubewright.testenv.nodes import Provider

DEFAULT_NAME = "default"


class Mode(StrEnum):
    ENVTEST = "envtest"
    SIM = "sim"


class ClusterSpec(BaseModel):
    """What `dev up` asked for."""

    mode: Mode = Mode.ENVTEST
    nodes: int = Field(default=20, ge=0, le=5000)
    spot_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    provider: Provider = Provider.KARPENTER
    exec_workdir: str | None = None
    # cert-manager controller + cainjector as local processes, with its CRDs installed (e2e suites).
    cert_manager: bool = False


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DEGRADED = "degraded"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ComponentState(BaseModel):
    name: str
    pid: int | None = None
    log: str
    exit_code: int | None = None
    restarts: int = 0


class ClusterState(BaseModel):
    """What the supervisor reports; rewritten atomically on every change."""

    phase: Phase = Phase.STARTING
    supervisor_pid: int
    message: str = ""
    ports: dict[str, int] = Field(default_factory=dict)
    components: dict[str, ComponentState] = Field(default_factory=dict)
    started_at: float = 0.0
    ready_seconds: float | None = None


class ClusterDir:
    """Paths inside one cluster's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def named(cls, name: str = DEFAULT_NAME, base: Path | None = None) -> ClusterDir:
        base = base or Path(os.environ.get("KUBEWRIGHT_STATE_DIR", ".kubewright"))
        return cls(base.resolve() / name)

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd-data"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    @property
    def restart_request(self) -> Path:
        return self.root / "restart-request"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    def log_of(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def read_spec(self) -> ClusterSpec:
        return ClusterSpec.model_validate_json(self.spec_file.read_text())

    def write_spec(self, spec: ClusterSpec) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.spec_file, spec.model_dump_json(indent=2))

    def read_state(self) -> ClusterState | None:
        try:
            return ClusterState.model_validate_json(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def write_state(self, state: ClusterState) -> None:
        _atomic_write(self.state_file, state.model_dump_json(indent=2))


def _atomic_write(path: Path, text: str) -> None:
    """Readers polling the file must never see half a document."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def kubeconfig_document(server: str, ca: Path, cert: Path, key: Path, name: str = "kubewright") -> str:
    """An admin kubeconfig pointing at `server` with client-certificate auth."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [
            {"name": f"{name}-admin", "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"}}
        ],
        "current-context": name,
    }
    return json.dumps(doc, indent=2)
