from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubewright.testenv import components, pki
from kubewright.testenv.layout import ClusterDir, ClusterSpec, ClusterState, ComponentState, Mode, Phase

pytestmark = pytest.mark.unit

PORTS = components.Ports(2379, 2380, 6443, 10257, 10259, 10250)
BINS = components.Binaries(Path("/bin-dir"))


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv[1:])


def test_apiserver_has_rbac_service_accounts_and_aggregation(tmp_path: Path) -> None:
    cluster_pki = pki.load(tmp_path)
    f = flags(
        components.apiserver_args(BINS, cluster_pki, PORTS, tmp_path / "policy", tmp_path / "audit.log")
    )
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["etcd-servers"] == "http://127.0.0.1:2379"
    assert f["service-account-signing-key-file"] == str(cluster_pki.service_account_key)
    assert f["requestheader-client-ca-file"] == str(cluster_pki.front_proxy_ca.cert)
    assert f["requestheader-allowed-names"] == pki.FRONT_PROXY_CLIENT_NAME
    assert f["proxy-client-cert-file"] == str(cluster_pki.front_proxy_client.cert)
    assert f["bind-address"] == "127.0.0.1"
    assert f["audit-log-path"] == str(tmp_path / "audit.log")


def test_audit_policy_keeps_metadata_but_drops_heartbeats() -> None:
    policy = json.loads(components.audit_policy())
    assert policy["rules"][-1] == {"level": "Metadata"}
    dropped = [r for r in policy["rules"] if r["level"] == "None"]
    assert any(
        {"group": "coordination.k8s.io", "resources": ["leases"]} in r.get("resources", []) for r in dropped
    )


def test_kwok_serves_the_kubelet_api_on_loopback(tmp_path: Path) -> None:
    f = flags(components.kwok_args(BINS, pki.load(tmp_path), tmp_path / "kc", tmp_path / "kwok.yaml", PORTS))
    assert f["node-ip"] == "127.0.0.1"
    assert f["server-address"] == "127.0.0.1:10250"
    assert f["node-port"] == "10250"
    assert f["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"


def test_kwok_config_simulates_exec_and_logs(tmp_path: Path) -> None:
    docs = [json.loads(d) for d in components.kwok_config(tmp_path / "w", tmp_path / "l").split("\n---\n")]
    kinds = {d["kind"]: d for d in docs}
    assert kinds["ClusterExec"]["spec"]["execs"][0]["local"]["workDir"] == str(tmp_path / "w")
    assert kinds["ClusterLogs"]["spec"]["logs"][0]["logsFile"] == str(tmp_path / "l")
    assert kinds["KwokConfiguration"]["options"]["cidr"] == components.POD_CIDR


def test_scheduler_config_disables_leader_election(tmp_path: Path) -> None:
    cfg = json.loads(components.scheduler_config(tmp_path / "kc"))
    assert cfg["leaderElection"] == {"leaderElect": False}
    assert cfg["clientConnection"]["kubeconfig"] == str(tmp_path / "kc")


def test_spec_and_state_round_trip(tmp_path: Path) -> None:
    cdir = ClusterDir(tmp_path / "c")
    spec = ClusterSpec(mode=Mode.SIM, nodes=7, spot_fraction=0.3)
    cdir.write_spec(spec)
    assert cdir.read_spec() == spec
    assert cdir.read_state() is None
    state = ClusterState(
        supervisor_pid=1,
        phase=Phase.READY,
        ports={"apiserver": 1},
        components={"etcd": ComponentState(name="etcd", pid=2, log="x")},
    )
    cdir.write_state(state)
    assert cdir.read_state() == state


def test_spec_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="spot_fraction"):
        ClusterSpec(spot_fraction=2.0)
    with pytest.raises(ValueError, match="nodes"):
        ClusterSpec(nodes=-1)
