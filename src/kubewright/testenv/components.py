"""Command lines and config files for each control-plane process.

Pure: given binaries, paths and ports, return argv lists and file contents. The supervisor runs them.
Flags follow what kubeadm and controller-runtime's envtest pass, plus what loopback-only testing needs:
the aggregation layer (front-proxy CA and requestheader flags) so an APIService can route to a test
server, and KWOK serving the kubelet API on 127.0.0.1 so `kubectl exec`/`logs` reach simulated pods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kubewright.testenv.pki import FRONT_PROXY_CLIENT_NAME, ClusterPKI

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.0.0.1/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok_kubelet: int


@dataclass(frozen=True)
class Binaries:
    directory: Path

    def __getitem__(self, component: str) -> str:
        return str(self.directory / component)


def etcd_args(bins: Binaries, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        bins["etcd"],
        "--name=kubewright",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kubewright={peer}",
        # A throwaway cluster: durability is not worth the fsync latency on every write.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # Heartbeats and events would drown the log at 1,000 nodes and say nothing tests look for.
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["events", "nodes/status"]}]},
        {"level": "None", "nonResourceURLs": ["/readyz*", "/healthz*", "/livez*", "/version"]},
        {"level": "Metadata"},
    ],
}


def audit_policy() -> str:
    """Audit at Metadata level: tests assert what a client asked (selectors, verbs) from requestURI."""
    return json.dumps(AUDIT_POLICY, indent=2)


def apiserver_args(
    bins: Binaries, pki: ClusterPKI, ports: Ports, audit_policy_file: Path, audit_log: Path
) -> list[str]:
    return [
        bins["kube-apiserver"],
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--allow-privileged=true",
        # Aggregation layer: the aggregator proves itself to APIService backends with the front-proxy
        # client cert and passes the caller's identity in these headers.
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT_NAME}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        # exec/logs go to KWOK's kubelet endpoint on loopback.
        f"--kubelet-client-certificate={pki.admin.cert}",
        f"--kubelet-client-key={pki.admin.key}",
        "--kubelet-preferred-address-types=InternalIP",
        # Sim clusters with 1,000 nodes and 10,000 pods need more than the defaults.
        "--max-requests-inflight=1600",
        "--max-mutating-requests-inflight=800",
        "--watch-cache=true",
        "--profiling=false",
        f"--audit-policy-file={audit_policy_file}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
        "--v=1",
    ]


def controller_manager_args(bins: Binaries, pki: ClusterPKI, kubeconfig: Path, ports: Ports) -> list[str]:
    return [
        bins["kube-controller-manager"],
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        "--controllers=*,-nodeipam",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-deployment-syncs=10",
        "--concurrent-replicaset-syncs=10",
        "--v=1",
    ]


def scheduler_config(kubeconfig: Path) -> str:
    """KubeSchedulerConfiguration: client QPS raised so 10,000 pods bind in seconds, not minutes."""
    doc = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 500, "burst": 1000},
        "leaderElection": {"leaderElect": False},
    }
    return json.dumps(doc, indent=2)


def scheduler_args(bins: Binaries, kubeconfig: Path, config: Path, ports: Ports) -> list[str]:
    return [
        bins["kube-scheduler"],
        f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--v=1",
    ]


def kwok_config(exec_workdir: Path, logs_file: Path) -> str:
    """KwokConfiguration plus cluster-wide exec and logs simulation for every pod.

    `kubectl exec` runs the requested command on this machine in `exec_workdir`; `kubectl logs`
    returns `logs_file`. Default node and pod stages (initialise, heartbeat, pod ready) are used.
    """
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {"cidr": POD_CIDR},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "kubewright-exec"},
            "spec": {
                "execs": [
                    {
                        "local": {
                            "workDir": str(exec_workdir),
                            "envs": [{"name": "KUBEWRIGHT_SIM", "value": "1"}],
                        }
                    }
                ]
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "kubewright-logs"},
            "spec": {"logs": [{"logsFile": str(logs_file), "follow": False}]},
        },
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


def kwok_args(bins: Binaries, pki: ClusterPKI, kubeconfig: Path, config: Path, ports: Ports) -> list[str]:
    return [
        bins["kwok"],
        f"--kubeconfig={kubeconfig}",
        f"--config={config}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=127.0.0.1",
        f"--node-port={ports.kwok_kubelet}",
        f"--server-address=127.0.0.1:{ports.kwok_kubelet}",
        f"--tls-cert-file={pki.kubelet_serving.cert}",
        f"--tls-private-key-file={pki.kubelet_serving.key}",
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
    ]


CERT_MANAGER_NAMESPACE = "cert-manager"
SELF_SIGNED_CLUSTER_ISSUER = "kubewright-selfsigned"


def cert_manager_controller_args(bins: Binaries, kubeconfig: Path, metrics_port: int) -> list[str]:
    return [
        bins["cert-manager-controller"],
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}",
        f"--metrics-listen-address=127.0.0.1:{metrics_port}",
        "--v=2",
    ]


def cert_manager_cainjector_args(bins: Binaries) -> list[str]:
    """cainjector reads its kubeconfig from $KUBECONFIG (controller-runtime's lookup)."""
    return [bins["cert-manager-cainjector"], "--leader-elect=false", "--v=2"]
