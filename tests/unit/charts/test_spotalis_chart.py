"""The spotalis chart: helm lint, the helm-unittest suites, the README values table, values.schema.json
coverage, and the rendered contract of spec 6 (config keys and defaults of spec 2.3, RBAC, webhook).

helm and the helm-unittest plugin come from tools/controlplane (the pinned build). Without them these
tests skip with the reason, unless KUBEWRIGHT_REQUIRE_CONTROLPLANE is set (CI), where they fail: the same
rule as the control-plane tiers, so a missing build step never passes as green.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import locate_helm, locate_helm_plugins, run_helm, schema_gaps, value_paths

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "spotalis"
RELEASE, NAMESPACE = "spotalis", "spotalis-system"
CA_BUNDLE = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"


@pytest.fixture(scope="module")
def helm() -> Path:
    return locate_helm()


@pytest.fixture(scope="module")
def helm_plugins(helm: Path) -> Path:
    return locate_helm_plugins()


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--api-versions", "cert-manager.io/v1", "--api-versions", "monitoring.coreos.com/v1", *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# Values sets that exercise the other branches of the templates: namespace-scoped RBAC, a cloud preset
# with an existing certificate, several replicas (leader election, PDB) and a ServiceMonitor.
NAMESPACE_SCOPE = (
    "--set",
    "rbac.scope=namespace",
    "--set",
    "config.controllers.watchNamespaces={team-a,team-b}",
)
GKE_HA = (
    "--set", "preset=gke", "--set", "replicaCount=2", "--set", "serviceMonitor.enabled=true",
    "--set", "webhook.certManager.enabled=false", "--set", "webhook.tls.existingSecret=spotalis-tls",
    "--set", f"webhook.tls.caBundle={CA_BUNDLE}",
)  # fmt: skip
VARIANTS = [
    pytest.param((), id="defaults"),
    pytest.param(NAMESPACE_SCOPE, id="namespace-scope"),
    pytest.param(GKE_HA, id="gke-ha-existing-secret"),
    pytest.param(("--set", "webhook.enabled=false"), id="no-webhook"),
]


# --- helm lint and helm-unittest --------------------------------------------------------------------------


@pytest.mark.parametrize("values", VARIANTS)
def test_helm_lint_strict(helm: Path, values: tuple[str, ...]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_unittest_suites(helm: Path, helm_plugins: Path) -> None:
    result = run_helm(helm, "unittest", str(CHART), plugins=helm_plugins)
    assert result.returncode == 0, result.stdout + result.stderr


# --- README values table ----------------------------------------------------------------------------------


def test_readme_values_table_is_current() -> None:
    """The drift check CI runs: README.md says what values.yaml does."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chart_readme.py"), "--check", str(CHART)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- values.schema.json -----------------------------------------------------------------------------------


# Kubernetes objects passed through as they are: the schema types them as objects, not key by key.
PASSTHROUGH = ("resources", "nodeSelector", "affinity", "podAnnotations", "podSecurityContext",
               "securityContext", "strategy", "labels", "annotations")  # fmt: skip


def test_schema_covers_every_value_and_closes_every_object() -> None:
    missing, open_objects = schema_gaps(CHART, PASSTHROUGH)
    assert missing == []
    assert open_objects == []


def test_values_keep_every_upstream_key() -> None:
    """[compat] deploy/helm/values.yaml of yachiko/spotalis: an upstream values file must still apply."""
    upstream = {
        "replicaCount", "image.registry", "image.repository", "image.pullPolicy", "image.tag",
        "imagePullSecrets", "nameOverride", "fullnameOverride", "serviceAccount.create",
        "serviceAccount.annotations", "serviceAccount.name", "rbac.create", "rbac.scope",
        "webhook.enabled", "webhook.port", "webhook.failurePolicy", "webhook.tls.existingSecret",
        "webhook.certManager.enabled", "webhook.certManager.duration", "webhook.certManager.renewBefore",
        "config.operator.namespace", "config.operator.leaderElection.enabled",
        "config.operator.leaderElection.id", "config.operator.leaderElection.namespace",
        "config.operator.readOnlyMode", "config.operator.disruptionWindow.schedule",
        "config.operator.disruptionWindow.duration", "config.controllers.reconcileInterval",
        "config.controllers.maxConcurrentReconciles", "config.controllers.rateLimit.qps",
        "config.controllers.rateLimit.burst", "config.controllers.watchNamespaces",
        "config.controllers.nodeClassifier.spotLabels", "config.controllers.nodeClassifier.onDemandLabels",
        "config.controllers.workloadTiming.cooldownPeriod",
        "config.controllers.workloadTiming.disruptionRetryInterval",
        "config.controllers.workloadTiming.disruptionWindowPollInterval", "config.webhook.port",
        "config.webhook.certDir", "config.webhook.certName", "config.webhook.keyName",
        "config.observability.logging.level", "config.observability.logging.format",
        "config.observability.logging.output", "config.observability.logging.addCaller",
        "config.observability.logging.development", "config.observability.metrics.enabled",
        "config.observability.metrics.bindAddress", "config.observability.metrics.path",
        "config.observability.health.enabled", "config.observability.health.bindAddress",
        "config.observability.health.path", "extraEnv", "extraVolumes", "extraVolumeMounts",
        "podAnnotations", "podSecurityContext", "securityContext", "service.type", "service.metricsPort",
        "service.healthPort", "service.webhookPort", "service.annotations", "service.labels", "resources",
        "nodeSelector", "tolerations", "affinity", "priorityClassName", "terminationGracePeriodSeconds",
        "podDisruptionBudget.enabled", "podDisruptionBudget.minAvailable", "strategy",
    }  # fmt: skip
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ours = {".".join(path) for path in value_paths(values)}
    assert sorted(upstream - ours) == []


# --- the rendered contract --------------------------------------------------------------------------------

# Spec 2.3: every configuration key ([compat] and [new]) with its default, as the chart renders it for the
# karpenter preset in namespace spotalis-system. Lists are compared whole.
SPEC_CONFIG: dict[str, Any] = {
    "operator.namespace": NAMESPACE,
    "operator.readOnlyMode": False,
    "operator.leaderElection.enabled": True,
    "operator.leaderElection.id": "spotalis-controller-leader",
    "operator.leaderElection.namespace": NAMESPACE,
    "operator.leaderElection.leaseDuration": "15s",
    "operator.leaderElection.renewDeadline": "10s",
    "operator.leaderElection.retryPeriod": "2s",
    "operator.leaderElection.releaseOnCancel": True,
    "operator.disruptionWindow.schedule": "",
    "operator.disruptionWindow.duration": "",
    "operator.gracefulShutdownTimeout": "25s",
    "operator.preShutdownDelay": "5s",
    "controllers.reconcileInterval": "30s",
    "controllers.maxConcurrentReconciles": 2,
    "controllers.rateLimit.qps": 50,
    "controllers.rateLimit.burst": 100,
    "controllers.watchNamespaces": [],
    "controllers.namespaceFilter.requireNamespaceLabel": True,
    "controllers.namespaceFilter.includeNamespaces": [],
    "controllers.namespaceFilter.includePatterns": [],
    "controllers.namespaceFilter.excludeNamespaces": ["kube-system", "kube-public", "kube-node-lease"],
    "controllers.namespaceFilter.excludePatterns": [],
    "controllers.nodeClassifier.spotLabels": [{"matchLabels": {"karpenter.sh/capacity-type": "spot"}}],
    "controllers.nodeClassifier.onDemandLabels": [
        {
            "matchExpressions": [
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "reserved"]}
            ]
        }
    ],
    "controllers.nodeClassifier.builtinProviders": "all",
    "controllers.nodeClassifier.unknownNodeType": "on-demand",
    "controllers.nodeClassifier.reclaimTaints": [
        "karpenter.sh/disrupted",
        "karpenter.sh/disruption",
        "aws-node-termination-handler/spot-itn",
        "aws-node-termination-handler/asg-lifecycle-termination",
        "aws-node-termination-handler/scheduled-maintenance",
        "ToBeDeletedByClusterAutoscaler",
        "cloud.google.com/impending-node-termination",
    ],
    "controllers.nodeClassifier.reclaimConditions": [],
    "controllers.workloadTiming.cooldownPeriod": "10s",
    "controllers.workloadTiming.disruptionRetryInterval": "1m",
    "controllers.workloadTiming.disruptionWindowPollInterval": "10m",
    "controllers.workloadDefaults.spotPercentage": 0,
    "controllers.workloadDefaults.minOnDemand": 0,
    "controllers.fallback.enabled": True,
    "controllers.fallback.timeout": "5m",
    "controllers.fallback.backoff": "10m",
    "controllers.fallback.maxBackoff": "1h",
    "webhook.enabled": True,
    "webhook.port": 9443,
    "webhook.certDir": "/tmp/k8s-webhook-server/serving-certs",
    "webhook.certName": "tls.crt",
    "webhook.keyName": "tls.key",
    "webhook.inflightTTL": "30s",
    "webhook.placement.provider": "karpenter",
    "webhook.placement.mode": "requiredAffinity",
    "webhook.placement.spotTolerations": [],
    "webhook.placement.spotTerm": [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
    ],
    "webhook.placement.onDemandTerm": [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "reserved"]}
    ],
    "observability.metrics.enabled": True,
    "observability.metrics.bindAddress": ":8080",
    "observability.metrics.path": "/metrics",
    "observability.health.enabled": True,
    "observability.health.bindAddress": ":8081",
    "observability.health.path": "/healthz",
    "observability.logging.level": "info",
    "observability.logging.format": "json",
    "observability.logging.output": "stdout",
    "observability.logging.addCaller": True,
    "observability.logging.development": False,
}


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, f"{dotted}.")
        else:
            flat[dotted] = value
    return flat


def rendered_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    assert config_map["metadata"]["name"] == f"{RELEASE}-config"
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return config


def test_rendered_config_is_exactly_the_spec_keys_with_their_defaults(helm: Path) -> None:
    assert _flatten(rendered_config(render(helm))) == SPEC_CONFIG


@pytest.mark.parametrize("values", VARIANTS)
def test_render_kinds_and_namespaces(helm: Path, values: tuple[str, ...]) -> None:
    docs = render(helm, *values)
    kinds = {doc["kind"] for doc in docs}
    assert "Namespace" not in kinds
    assert {"ConfigMap", "Deployment", "Service", "ServiceAccount", "ClusterRole"} <= kinds
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
    watched = {"team-a", "team-b"} if values is NAMESPACE_SCOPE else set()
    for doc in docs:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert namespace is None, doc["metadata"]["name"]
        elif doc["kind"] in ("Role", "RoleBinding") and namespace in watched:
            continue
        else:
            assert namespace == NAMESPACE, (doc["kind"], doc["metadata"]["name"])
        # No object of the release is a helm hook: hooks outlive `helm uninstall`.
        assert "helm.sh/hook" not in (doc["metadata"].get("annotations") or {})


@pytest.mark.parametrize("values", VARIANTS)
def test_rbac_grants_no_delete_no_update_and_leases_only_in_a_role(
    helm: Path, values: tuple[str, ...]
) -> None:
    docs = render(helm, *values)
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert "delete" not in rule["verbs"], rule
            if rule["apiGroups"] == ["coordination.k8s.io"]:
                assert doc["kind"] == "Role"
                assert doc["metadata"]["name"] == f"{RELEASE}-leader-election"
                assert rule == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                "verbs": ["get", "create", "update"]}  # fmt: skip
            else:
                assert "update" not in rule["verbs"], rule
                assert not any("/status" in r or "/scale" in r for r in rule["resources"]), rule


def test_upstream_values_with_own_spot_labels_place_on_the_first_spot_pair(helm: Path) -> None:
    """[compat pkg/webhook/mutate.go] An upstream values file names its spot label and no provider: the
    process derives a custom placement from that label instead of Karpenter's key."""
    config_module = pytest.importorskip("kubewright.spotalis.config")
    values = ("--set", "config.controllers.nodeClassifier.spotLabels[0].matchLabels.lifecycle=spot")
    docs = render(helm, *values)
    text = next(doc for doc in docs if doc["kind"] == "ConfigMap")["data"]["config.yaml"]
    placement = config_module.load_config_text(text, {}).config.webhook.placement
    assert placement.provider == "custom"
    assert [(r.key, r.operator, r.values) for r in placement.spotTerm] == [("lifecycle", "In", ("spot",))]
    assert [(r.key, r.operator, r.values) for r in placement.onDemandTerm] == [
        ("lifecycle", "NotIn", ("spot",))
    ]


def test_several_replicas_force_leader_election_and_the_pdb(helm: Path) -> None:
    docs = render(helm, *GKE_HA, "--set", "config.operator.leaderElection.enabled=false")
    assert rendered_config(docs)["operator"]["leaderElection"]["enabled"] is True
    assert [doc["spec"]["minAvailable"] for doc in docs if doc["kind"] == "PodDisruptionBudget"] == [1]
    assert any(
        doc["kind"] == "Role" and doc["metadata"]["name"] == f"{RELEASE}-leader-election" for doc in docs
    )


def test_webhook_and_config_agree_on_port_and_certificate(helm: Path) -> None:
    """The MWC reaches the Service, whose target is the container port the config makes the server use."""
    docs = render(helm)
    by_kind = {doc["kind"]: doc for doc in docs if doc["kind"] != "Certificate"}
    config = rendered_config(docs)
    hook = by_kind["MutatingWebhookConfiguration"]["webhooks"][0]
    service_port = next(p for p in by_kind["Service"]["spec"]["ports"] if p["name"] == "webhook")
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    container_port = next(p for p in container["ports"] if p["name"] == "webhook")
    assert hook["clientConfig"]["service"]["port"] == service_port["port"]
    assert service_port["targetPort"] == "webhook"
    assert container_port["containerPort"] == config["webhook"]["port"]
    certs = next(m for m in container["volumeMounts"] if m["name"] == "webhook-certs")
    assert certs["mountPath"] == config["webhook"]["certDir"]
    serving = next(
        doc
        for doc in docs
        if doc["kind"] == "Certificate" and doc["metadata"]["name"].endswith("-webhook-cert")
    )
    volume = next(
        v
        for v in by_kind["Deployment"]["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "webhook-certs"
    )
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    namespace, certificate = by_kind["MutatingWebhookConfiguration"]["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"
    ].split("/")
    assert (namespace, certificate) == (NAMESPACE, serving["metadata"]["name"])


PROCESS_VARIANTS = [
    *VARIANTS,
    pytest.param(("--set", "preset=aks"), id="aks"),
    pytest.param(("--set", "preset=eks", "--set", "config.webhook.placement.mode=nodeSelector"), id="eks-ns"),
]


@pytest.mark.parametrize("values", PROCESS_VARIANTS)
def test_rendered_config_is_accepted_by_the_process(helm: Path, values: tuple[str, ...]) -> None:
    """The ConfigMap is the chart->process contract: the process's own loader accepts it as rendered, without
    an unknown-key warning, and the chart renders every key the process knows (nothing left to its defaults,
    so `check-config` shows what the chart chose)."""
    config_module = pytest.importorskip("kubewright.spotalis.config")
    docs = render(helm, *values)
    text = next(doc for doc in docs if doc["kind"] == "ConfigMap")["data"]["config.yaml"]
    loaded = config_module.load_config_text(text, {})
    assert loaded.warnings == ()
    assert set(_flatten(yaml.safe_load(text))) == set(config_module.LEAF_KEYS)
    presets = [arg.removeprefix("preset=") for arg in values if arg.startswith("preset=")]
    assert loaded.config.webhook.placement.provider == (presets or ["karpenter"])[-1]
