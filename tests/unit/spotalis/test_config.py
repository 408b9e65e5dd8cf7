"""Spec 2.3, 2.4, 3.13, 5: the Spotalis config: keys, defaults, env names, precedence, rules, reload diff."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kubewright.spotalis.annotations import format_go_duration
from kubewright.spotalis.config import (
    EXIT_INVALID_CONFIG,
    LEAF_KEYS,
    PROVIDER_PRESETS,
    RESTART_ONLY_KEYS,
    ConfigChange,
    ConfigError,
    LabelSelector,
    LabelSelectorRequirement,
    LoadedConfig,
    NodeSelectorRequirement,
    SpotalisConfig,
    Toleration,
    check_config_report,
    diff,
    format_value,
    is_restart_only,
    leaf_values,
    load_config,
    load_config_text,
    parse_bool,
    restart_only_keys,
)
from kubewright.spotalis.config_env import COMPAT_ENV_NAMES, ENV_BY_KEY, ENV_VARS, LEGACY_ENV

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures_config"
S = timedelta(seconds=1)


def load(text: str = "", env: dict[str, str] | None = None) -> LoadedConfig:
    return load_config_text(text, env or {})


def problems(text: str = "", env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, env)
    return caught.value.problems


def value_at(config: SpotalisConfig, key: str) -> Any:
    return leaf_values(config)[key]


# --- defaults (spec 2.3 tables) ------------------------------------------------------------------------

SPEC_DEFAULTS: dict[str, Any] = {
    # [compat]
    "operator.namespace": "spotalis-system",
    "operator.readOnlyMode": False,
    "operator.leaderElection.enabled": True,
    "operator.leaderElection.id": "spotalis-controller-leader",
    "operator.leaderElection.namespace": "spotalis-system",
    "operator.leaderElection.leaseDuration": 15 * S,
    "operator.disruptionWindow.schedule": "",
    "operator.disruptionWindow.duration": None,
    "controllers.reconcileInterval": 30 * S,
    "controllers.maxConcurrentReconciles": 2,
    "controllers.rateLimit.qps": 50.0,
    "controllers.rateLimit.burst": 100,
    "controllers.watchNamespaces": (),
    "controllers.nodeClassifier.spotLabels": (
        LabelSelector(matchLabels={"karpenter.sh/capacity-type": "spot"}),
    ),
    "controllers.nodeClassifier.onDemandLabels": (
        LabelSelector(matchLabels={"karpenter.sh/capacity-type": "on-demand"}),
    ),
    "controllers.workloadTiming.cooldownPeriod": 10 * S,
    "controllers.workloadTiming.disruptionRetryInterval": 60 * S,
    "controllers.workloadTiming.disruptionWindowPollInterval": 600 * S,
    "webhook.enabled": True,
    "webhook.port": 9443,
    "webhook.certDir": "/tmp/k8s-webhook-server/serving-certs",
    "webhook.certName": "tls.crt",
    "webhook.keyName": "tls.key",
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
    # [new]
    "operator.leaderElection.renewDeadline": 10 * S,
    "operator.leaderElection.retryPeriod": 2 * S,
    "operator.leaderElection.releaseOnCancel": True,
    "operator.gracefulShutdownTimeout": 30 * S,
    "operator.preShutdownDelay": 5 * S,
    "controllers.namespaceFilter.requireNamespaceLabel": True,
    "controllers.namespaceFilter.includeNamespaces": (),
    "controllers.namespaceFilter.includePatterns": (),
    "controllers.namespaceFilter.excludeNamespaces": ("kube-system", "kube-public", "kube-node-lease"),
    "controllers.namespaceFilter.excludePatterns": (),
    "controllers.nodeClassifier.builtinProviders": ("karpenter", "eks", "gke", "aks"),
    "controllers.nodeClassifier.unknownNodeType": "on-demand",
    "controllers.nodeClassifier.reclaimTaints": tuple(
        sorted(
            (
                "karpenter.sh/disrupted",
                "karpenter.sh/disruption",
                "aws-node-termination-handler/spot-itn",
                "aws-node-termination-handler/asg-lifecycle-termination",
                "aws-node-termination-handler/scheduled-maintenance",
                "ToBeDeletedByClusterAutoscaler",
                "cloud.google.com/impending-node-termination",
            )
        )
    ),
    "controllers.nodeClassifier.reclaimConditions": (),
    "controllers.workloadDefaults.spotPercentage": 0,
    "controllers.workloadDefaults.minOnDemand": 0,
    "controllers.fallback.enabled": True,
    "controllers.fallback.timeout": 300 * S,
    "controllers.fallback.backoff": 600 * S,
    "controllers.fallback.maxBackoff": 3600 * S,
    "webhook.placement.provider": "karpenter",
    "webhook.placement.mode": "requiredAffinity",
    "webhook.placement.spotTolerations": (),
    "webhook.placement.spotTerm": (
        NodeSelectorRequirement(key="karpenter.sh/capacity-type", operator="In", values=("spot",)),
    ),
    "webhook.placement.onDemandTerm": (
        NodeSelectorRequirement(
            key="karpenter.sh/capacity-type", operator="In", values=("on-demand", "reserved")
        ),
    ),
    "webhook.inflightTTL": 30 * S,
}


def test_every_default_is_the_spec_default() -> None:
    loaded = load()
    assert leaf_values(loaded.config) == SPEC_DEFAULTS
    assert set(SPEC_DEFAULTS) == set(LEAF_KEYS)
    assert set(loaded.sources.values()) == {"default"}
    assert loaded.warnings == ()
    assert load_config(None, {}).config == SpotalisConfig()


def test_config_is_frozen() -> None:
    config = SpotalisConfig()
    with pytest.raises(ValidationError):
        config.controllers.maxConcurrentReconciles = 5  # type: ignore[misc]


# --- every key from YAML and from env ------------------------------------------------------------------

# key -> (env text, expected value); full.yaml sets each key to the same value.
SAMPLES: dict[str, tuple[str, Any]] = {
    "operator.namespace": ("ops", "ops"),
    "operator.readOnlyMode": ("yes", True),
    "operator.leaderElection.enabled": ("off", False),
    "operator.leaderElection.id": ("my-lease", "my-lease"),
    "operator.leaderElection.namespace": ("lease-ns", "lease-ns"),
    "operator.leaderElection.leaseDuration": ("30s", 30 * S),
    "operator.leaderElection.renewDeadline": ("12s", 12 * S),
    "operator.leaderElection.retryPeriod": ("3s", 3 * S),
    "operator.leaderElection.releaseOnCancel": ("0", False),
    "operator.disruptionWindow.schedule": ("0 2 * * *", "0 2 * * *"),
    "operator.disruptionWindow.duration": ("4h", 4 * 3600 * S),
    "operator.gracefulShutdownTimeout": ("1m", 60 * S),
    "operator.preShutdownDelay": ("10s", 10 * S),
    "controllers.reconcileInterval": ("5s", 5 * S),
    "controllers.maxConcurrentReconciles": ("8", 8),
    "controllers.rateLimit.qps": ("5.5", 5.5),
    "controllers.rateLimit.burst": ("5", 5),
    "controllers.watchNamespaces": ("team-a, team-b", ("team-a", "team-b")),
    "controllers.nodeClassifier.spotLabels": (
        '[{"matchLabels": {"node-type": "spot"}}]',
        (LabelSelector(matchLabels={"node-type": "spot"}),),
    ),
    "controllers.nodeClassifier.onDemandLabels": (
        "- matchExpressions: [{key: node-type, operator: In, values: [regular]}]",
        (
            LabelSelector(
                matchExpressions=(
                    LabelSelectorRequirement(key="node-type", operator="In", values=("regular",)),
                )
            ),
        ),
    ),
    "controllers.nodeClassifier.builtinProviders": ("eks,gke", ("eks", "gke")),
    "controllers.nodeClassifier.unknownNodeType": ("spot", "spot"),
    "controllers.nodeClassifier.reclaimTaints": (
        "example.com/reclaim,example.com/drain",
        ("example.com/reclaim", "example.com/drain"),
    ),
    "controllers.nodeClassifier.reclaimConditions": ("Terminating", ("Terminating",)),
    "controllers.workloadTiming.cooldownPeriod": ("20s", 20 * S),
    "controllers.workloadTiming.disruptionRetryInterval": ("2m", 120 * S),
    "controllers.workloadTiming.disruptionWindowPollInterval": ("1m", 60 * S),
    "controllers.namespaceFilter.requireNamespaceLabel": ("false", False),
    "controllers.namespaceFilter.includeNamespaces": ("team-a,team-b", ("team-a", "team-b")),
    "controllers.namespaceFilter.includePatterns": ("team-.*", ("team-.*",)),
    "controllers.namespaceFilter.excludeNamespaces": ("kube-system", ("kube-system",)),
    "controllers.namespaceFilter.excludePatterns": ("tmp-.*", ("tmp-.*",)),
    "controllers.workloadDefaults.spotPercentage": ("50", 50),
    "controllers.workloadDefaults.minOnDemand": ("1", 1),
    "controllers.fallback.enabled": ("no", False),
    "controllers.fallback.timeout": ("0", timedelta(0)),
    "controllers.fallback.backoff": ("30s", 30 * S),
    "controllers.fallback.maxBackoff": ("2h", 7200 * S),
    "webhook.enabled": ("false", False),
    "webhook.port": ("10443", 10443),
    "webhook.certDir": ("/certs", "/certs"),
    "webhook.certName": ("serving.crt", "serving.crt"),
    "webhook.keyName": ("serving.key", "serving.key"),
    "webhook.placement.provider": ("custom", "custom"),
    "webhook.placement.mode": ("preferredAffinity", "preferredAffinity"),
    "webhook.placement.spotTolerations": (
        '[{"key": "node-type", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}]',
        (Toleration(key="node-type", operator="Equal", value="spot", effect="NoSchedule"),),
    ),
    "webhook.placement.spotTerm": (
        '[{"key": "node-type", "operator": "In", "values": ["spot"]}]',
        (NodeSelectorRequirement(key="node-type", operator="In", values=("spot",)),),
    ),
    "webhook.placement.onDemandTerm": (
        '[{"key": "node-type", "operator": "In", "values": ["regular"]}]',
        (NodeSelectorRequirement(key="node-type", operator="In", values=("regular",)),),
    ),
    "webhook.inflightTTL": ("1m", 60 * S),
    "observability.metrics.enabled": ("false", False),
    "observability.metrics.bindAddress": (":9090", ":9090"),
    "observability.metrics.path": ("/m", "/m"),
    "observability.health.enabled": ("false", False),
    "observability.health.bindAddress": ("127.0.0.1:9091", "127.0.0.1:9091"),
    "observability.health.path": ("/h", "/h"),
    "observability.logging.level": ("DEBUG", "debug"),
    "observability.logging.format": ("console", "console"),
    "observability.logging.output": ("stderr", "stderr"),
    "observability.logging.addCaller": ("false", False),
    "observability.logging.development": ("true", True),
}

# Keys that are only valid together with another one (both-or-neither, custom terms).
COMPANIONS: dict[str, dict[str, str]] = {
    "operator.disruptionWindow.schedule": {"SPOTALIS_OPERATOR_DISRUPTION_WINDOW_DURATION": "4h"},
    "operator.disruptionWindow.duration": {"SPOTALIS_OPERATOR_DISRUPTION_WINDOW_SCHEDULE": "0 2 * * *"},
    "webhook.placement.provider": {
        "SPOTALIS_WEBHOOK_PLACEMENT_SPOT_TERM": SAMPLES["webhook.placement.spotTerm"][0],
        "SPOTALIS_WEBHOOK_PLACEMENT_ON_DEMAND_TERM": SAMPLES["webhook.placement.onDemandTerm"][0],
    },
}


def test_samples_cover_every_key() -> None:
    assert set(SAMPLES) == set(LEAF_KEYS)
    for key, (_, expected) in SAMPLES.items():
        assert expected != SPEC_DEFAULTS[key], key


def test_every_key_is_read_from_yaml() -> None:
    loaded = load_config(FIXTURES / "full.yaml", {})
    assert leaf_values(loaded.config) == {key: expected for key, (_, expected) in SAMPLES.items()}
    assert set(loaded.sources.values()) == {"yaml"}
    assert loaded.variables == {}
    assert loaded.warnings == ()
    assert loaded.path == FIXTURES / "full.yaml"


@pytest.mark.parametrize("key", list(SAMPLES))
def test_every_key_is_read_from_its_env_variable(key: str) -> None:
    variable = ENV_BY_KEY[key].name
    text, expected = SAMPLES[key]
    loaded = load(env={variable: text, **COMPANIONS.get(key, {})})
    assert value_at(loaded.config, key) == expected
    assert loaded.sources[key] == "env"
    assert loaded.variables[key] == variable


def test_every_key_has_exactly_one_env_variable() -> None:
    assert sorted(var.key for var in ENV_VARS) == sorted(LEAF_KEYS)
    assert len({var.name for var in ENV_VARS}) == len(ENV_VARS)


def test_compat_env_names_are_exactly_the_spec_list() -> None:
    def expand(pattern: str) -> list[str]:
        match = re.search(r"\{([^}]*)\}", pattern)
        if match is None:
            return [pattern]
        return [
            name
            for option in match.group(1).split(",")
            for name in expand(pattern[: match.start()] + option + pattern[match.end() :])
        ]

    spec = [
        "SPOTALIS_OPERATOR_{NAMESPACE,READ_ONLY_MODE}",
        "SPOTALIS_LEADER_ELECTION_{ENABLED,ID,LEASE_DURATION}",
        "SPOTALIS_CONTROLLERS_{MAX_CONCURRENT_RECONCILES,RECONCILE_INTERVAL}",
        "SPOTALIS_CONTROLLERS_WORKLOAD_{COOLDOWN_PERIOD,DISRUPTION_RETRY_INTERVAL,DISRUPTION_WINDOW_POLL_INTERVAL}",
        "SPOTALIS_WEBHOOK_{ENABLED,PORT,CERT_DIR}",
        "SPOTALIS_{METRICS,HEALTH}_{ENABLED,BIND_ADDRESS}",
        "SPOTALIS_LOGGING_{LEVEL,FORMAT}",
    ]
    expanded = {name for pattern in spec for name in expand(pattern)}
    assert len(expanded) == 19
    assert set(COMPAT_ENV_NAMES) == expanded
    assert {var.name for var in ENV_VARS if var.compat} == expanded
    # Upstream's loader.go mapping, name -> key.
    assert ENV_BY_KEY["controllers.workloadTiming.cooldownPeriod"].name == (
        "SPOTALIS_CONTROLLERS_WORKLOAD_COOLDOWN_PERIOD"
    )
    assert (
        ENV_BY_KEY["operator.leaderElection.leaseDuration"].name == "SPOTALIS_LEADER_ELECTION_LEASE_DURATION"
    )
    assert ENV_BY_KEY["observability.health.bindAddress"].name == "SPOTALIS_HEALTH_BIND_ADDRESS"


def test_new_env_names_follow_the_upstream_pattern() -> None:
    def snake(name: str) -> str:
        return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()

    for var in ENV_VARS:
        assert var.name.startswith("SPOTALIS_"), var
        assert var.name.endswith("_" + snake(var.key.rsplit(".", 1)[1])), var
        assert re.fullmatch(r"SPOTALIS_[A-Z0-9_]+", var.name), var


def test_env_lists_objects_and_empty_values() -> None:
    loaded = load(
        env={"SPOTALIS_CONTROLLERS_WATCH_NAMESPACES": " a ,, b ,", "SPOTALIS_OPERATOR_NAMESPACE": ""}
    )
    assert loaded.config.controllers.watchNamespaces == ("a", "b")
    assert loaded.sources["operator.namespace"] == "default"  # empty = unset, as upstream
    assert (
        load(env={"SPOTALIS_CONTROLLERS_NODE_CLASSIFIER_BUILTIN_PROVIDERS": "all"}).config == SpotalisConfig()
    )
    [problem] = problems(env={"SPOTALIS_WEBHOOK_PLACEMENT_SPOT_TERM": "[unclosed"})
    assert problem.startswith(
        "webhook.placement.spotTerm (env SPOTALIS_WEBHOOK_PLACEMENT_SPOT_TERM): must be YAML"
    )


# --- precedence ----------------------------------------------------------------------------------------


def test_precedence_default_yaml_legacy_env() -> None:
    yaml_text = "operator:\n  namespace: from-yaml\n"
    assert load().config.operator.namespace == "spotalis-system"
    assert load(yaml_text).config.operator.namespace == "from-yaml"
    legacy = load(yaml_text, {"NAMESPACE": "from-legacy"})
    assert legacy.config.operator.namespace == "from-legacy"
    assert (legacy.sources["operator.namespace"], legacy.variables["operator.namespace"]) == (
        "legacy-env",
        "NAMESPACE",
    )
    both = load(yaml_text, {"NAMESPACE": "from-legacy", "SPOTALIS_OPERATOR_NAMESPACE": "from-env"})
    assert both.config.operator.namespace == "from-env"
    assert (both.sources["operator.namespace"], both.variables["operator.namespace"]) == (
        "env",
        "SPOTALIS_OPERATOR_NAMESPACE",
    )
    assert "NAMESPACE is overridden by SPOTALIS_OPERATOR_NAMESPACE" in both.warnings


def test_env_overrides_one_key_and_keeps_the_rest_of_the_section() -> None:
    loaded = load(
        "controllers:\n  reconcileInterval: 1m\n  maxConcurrentReconciles: 4\n",
        {"SPOTALIS_CONTROLLERS_MAX_CONCURRENT_RECONCILES": "6"},
    )
    assert loaded.config.controllers.reconcileInterval == 60 * S
    assert loaded.config.controllers.maxConcurrentReconciles == 6
    assert loaded.sources["controllers.reconcileInterval"] == "yaml"


def test_upstream_chart_config_loads_without_warnings() -> None:
    loaded = load_config(FIXTURES / "upstream_chart.yaml", {})
    assert loaded.warnings == ()
    assert loaded.config.controllers.reconcileInterval == 60 * S
    assert loaded.config.operator.leaderElection.namespace == "spotalis-system"
    assert loaded.config.operator.disruptionWindow.duration is None
    assert loaded.config.webhook.placement.provider == "karpenter"  # default spotLabels: the preset


# --- legacy env [compat] -------------------------------------------------------------------------------

LEGACY_CASES = [
    ("METRICS_ADDR", ":9000", "observability.metrics.bindAddress", ":9000"),
    ("PROBE_ADDR", "0.0.0.0:9001", "observability.health.bindAddress", "0.0.0.0:9001"),
    ("WEBHOOK_ADDR", ":10443", "webhook.port", 10443),
    ("NAMESPACE", "ops", "operator.namespace", "ops"),
    ("LOG_LEVEL", "debug", "observability.logging.level", "debug"),
    ("DISABLE_LEADER_ELECTION", "true", "operator.leaderElection.enabled", False),
    ("DISABLE_WEBHOOK", "true", "webhook.enabled", False),
    ("READ_ONLY_MODE", "true", "operator.readOnlyMode", True),
]


def test_legacy_cases_cover_every_legacy_variable() -> None:
    assert [name for name, *_ in LEGACY_CASES] == list(LEGACY_ENV)


@pytest.mark.parametrize(("name", "text", "key", "expected"), LEGACY_CASES)
def test_legacy_variable_applies_with_a_deprecation_warning(
    name: str, text: str, key: str, expected: Any
) -> None:
    loaded = load(env={name: text})
    assert value_at(loaded.config, key) == expected
    assert (loaded.sources[key], loaded.variables[key]) == ("legacy-env", name)
    replacement = ENV_BY_KEY[key].name
    assert loaded.warnings == (f"{name} is deprecated; use {replacement} or the config key {key} instead",)


@pytest.mark.parametrize("name", ["DISABLE_LEADER_ELECTION", "DISABLE_WEBHOOK", "READ_ONLY_MODE"])
def test_legacy_switch_set_false_changes_nothing(name: str) -> None:
    loaded = load("operator:\n  readOnlyMode: true\nwebhook:\n  enabled: false\n", {name: "false"})
    key = LEGACY_ENV[name]
    assert loaded.sources[key] in {"yaml", "default"}
    assert len(loaded.warnings) == 1


def test_invalid_legacy_values_name_the_variable() -> None:
    found = problems(env={"DISABLE_WEBHOOK": "sure", "WEBHOOK_ADDR": "9443"})
    assert (
        "webhook.enabled (env DISABLE_WEBHOOK): must be true/1/yes/on or false/0/no/off (got 'sure')" in found
    )
    assert any(p.startswith("webhook.port (env WEBHOOK_ADDR): must be an address [host]:port") for p in found)


def test_legacy_log_level_is_validated_like_the_key() -> None:
    [problem] = problems(env={"LOG_LEVEL": "verbose"})
    assert problem.startswith("observability.logging.level (env LOG_LEVEL): Input should be 'debug'")


# --- unknown keys and variables ------------------------------------------------------------------------


def test_unknown_yaml_keys_are_warnings_with_suggestions() -> None:
    loaded = load_config(FIXTURES / "unknown_keys.yaml", {})
    assert loaded.warnings == (
        "unknown config key operator.namespase ignored; did you mean operator.namespace?",
        "unknown config key controllers.reconcileIntervall ignored; "
        "did you mean controllers.reconcileInterval?",
        "unknown config key controllers.nodeClassifier.spotLabels[0].matchLabel ignored; "
        "did you mean controllers.nodeClassifier.spotLabels[0].matchLabels?",
        "unknown config key webhook.placement.provder ignored; did you mean webhook.placement.provider?",
        "unknown config key extra ignored",
    )
    config = loaded.config
    assert config.operator.readOnlyMode is True
    assert config.operator.namespace == "spotalis-system"
    assert config.controllers.nodeClassifier.spotLabels == (LabelSelector(matchLabels={"node-type": "spot"}),)


def test_unknown_spotalis_variables_warn_but_service_links_do_not() -> None:
    loaded = load(
        env={
            "SPOTALIS_OPERATOR_LOG_LEVEL": "debug",  # upstream chart's own example name, never read
            "SPOTALIS_SERVICE_HOST": "10.0.0.1",
            "SPOTALIS_PORT": "tcp://10.0.0.1:443",
            "SPOTALIS_PORT_443_TCP_ADDR": "10.0.0.1",
            "SPOTALIS_WEBHOOK_PORT": "tcp://10.0.0.2:443",
            "OTHER": "x",
        }
    )
    assert loaded.config.webhook.port == 9443
    assert loaded.warnings == (
        "unknown environment variable SPOTALIS_OPERATOR_LOG_LEVEL ignored",
        "SPOTALIS_WEBHOOK_PORT=tcp://10.0.0.2:443 looks like a Kubernetes service link, not a setting; "
        "ignored (set enableServiceLinks: false on the pod)",
    )


def test_null_values_are_unset() -> None:
    loaded = load("operator:\n  namespace:\ncontrollers:\n")
    assert loaded.config == SpotalisConfig()
    assert loaded.warnings == ()


# --- validation rules (spec 2.3, 5) --------------------------------------------------------------------

RULES = [
    (
        "controllers:\n  reconcileInterval: 4s\n",
        {},
        "controllers.reconcileInterval: must be at least 5s (got '4s')",
    ),
    (
        "",
        {"SPOTALIS_CONTROLLERS_RECONCILE_INTERVAL": "4s"},
        "controllers.reconcileInterval (env SPOTALIS_CONTROLLERS_RECONCILE_INTERVAL): "
        "must be at least 5s (got '4s')",
    ),
    (
        "controllers:\n  maxConcurrentReconciles: 0\n",
        {},
        "controllers.maxConcurrentReconciles: must be within 1..50",
    ),
    (
        "controllers:\n  maxConcurrentReconciles: 51\n",
        {},
        "controllers.maxConcurrentReconciles: must be within 1..50",
    ),
    (
        "operator:\n  leaderElection:\n    retryPeriod: 10s\n",
        {},
        "operator.leaderElection.retryPeriod: retryPeriod < renewDeadline < leaseDuration must hold "
        "(got retryPeriod=10s, renewDeadline=10s, leaseDuration=15s)",
    ),
    (
        "",
        {"SPOTALIS_LEADER_ELECTION_LEASE_DURATION": "10s"},
        "operator.leaderElection.renewDeadline: retryPeriod < renewDeadline < leaseDuration must hold "
        "(got retryPeriod=2s, renewDeadline=10s, leaseDuration=10s)",
    ),
    (
        "operator:\n  disruptionWindow:\n    schedule: '0 2 * * *'\n",
        {},
        "operator.disruptionWindow.duration: schedule and duration are set together or not at all "
        "(duration is missing)",
    ),
    (
        "operator:\n  disruptionWindow:\n    duration: 4h\n",
        {},
        "operator.disruptionWindow.schedule: schedule and duration are set together or not at all "
        "(schedule is missing)",
    ),
    (
        "operator:\n  disruptionWindow:\n    schedule: '@daily'\n    duration: 1h\n",
        {},
        "operator.disruptionWindow.schedule: invalid cron expression '@daily': descriptors such as @daily",
    ),
    (
        "controllers:\n  fallback:\n    timeout: 9s\n",
        {},
        "controllers.fallback.timeout: must be 0 (fallback off) or at least 10s (got '9s')",
    ),
    (
        "webhook:\n  placement:\n    provider: gke\n    mode: nodeSelector\n",
        {},
        "webhook.placement.mode: nodeSelector mode is invalid with provider gke",
    ),
    (
        "",
        {"SPOTALIS_WEBHOOK_PLACEMENT_PROVIDER": "aks", "SPOTALIS_WEBHOOK_PLACEMENT_MODE": "nodeSelector"},
        "webhook.placement.mode (env SPOTALIS_WEBHOOK_PLACEMENT_MODE): "
        "nodeSelector mode is invalid with provider aks",
    ),
    ("webhook:\n  port: 0\n", {}, "webhook.port: must be within 1..65535 (got 0)"),
    ("webhook:\n  port: 65536\n", {}, "webhook.port: must be within 1..65535 (got 65536)"),
    (
        "",
        {"SPOTALIS_METRICS_BIND_ADDRESS": ":0"},
        "observability.metrics.bindAddress (env SPOTALIS_METRICS_BIND_ADDRESS): "
        "must be [host]:port with a port within 1..65535",
    ),
    (
        "observability:\n  health:\n    bindAddress: ':8080'\n",
        {},
        "observability.health.bindAddress: port 8080 is already used by metrics.bindAddress",
    ),
    (
        "",
        {"SPOTALIS_LEADER_ELECTION_ENABLED": "maybe"},
        "operator.leaderElection.enabled (env SPOTALIS_LEADER_ELECTION_ENABLED): must be true/1/yes/on or "
        "false/0/no/off (got 'maybe')",
    ),
    (
        "controllers:\n  reconcileInterval: 30\n",
        {},
        "controllers.reconcileInterval: "
        "must be a Go duration such as 30s or 1m30s (a bare number is ambiguous)",
    ),
    (
        "controllers:\n  reconcileInterval: 30 s\n",
        {},
        "controllers.reconcileInterval: invalid duration '30 s': unknown unit ' s'",
    ),
    (
        "operator:\n  preShutdownDelay: -1s\n",
        {},
        "operator.preShutdownDelay: must not be negative (got '-1s')",
    ),
    (
        "controllers:\n  watchNamespaces: [Team_A]\n",
        {},
        "controllers.watchNamespaces[0]: must be a namespace name",
    ),
    (
        "controllers:\n  namespaceFilter:\n    excludePatterns: ['(']\n",
        {},
        "controllers.namespaceFilter.excludePatterns[0]: must be a regular expression",
    ),
    (
        "controllers:\n  workloadDefaults:\n    spotPercentage: 101\n",
        {},
        "controllers.workloadDefaults.spotPercentage: must be within 0..100",
    ),
    (
        "controllers:\n  fallback:\n    backoff: 2h\n",
        {},
        "controllers.fallback.maxBackoff: must be at least backoff (2h0m0s)",
    ),
    (
        "operator:\n  preShutdownDelay: 30s\n",
        {},
        "operator.preShutdownDelay: must be less than gracefulShutdownTimeout (30s)",
    ),
    (
        "controllers:\n  nodeClassifier:\n    spotLabels: [{}]\n",
        {},
        "controllers.nodeClassifier.spotLabels[0]: an empty selector would match every node",
    ),
    (
        "webhook:\n  placement:\n    provider: custom\n",
        {},
        "webhook.placement.spotTerm: provider custom needs a non-empty spotTerm",
    ),
    (
        "webhook:\n  placement:\n    spotTerm: [{key: k, operator: In}]\n",
        {},
        "webhook.placement.spotTerm[0].values: operator In needs at least one value",
    ),
    ("operator:\n  namespace: ''\n", {}, "operator.namespace: must be a namespace name"),
    ("webhook:\n  inflightTTL: 0s\n", {}, "webhook.inflightTTL: must be greater than 0"),
]


@pytest.mark.parametrize(("text", "env", "expected"), RULES)
def test_each_rule_names_the_key_and_the_rule(text: str, env: dict[str, str], expected: str) -> None:
    found = problems(text, env)
    assert any(problem.startswith(expected) for problem in found), found


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(FIXTURES / "invalid.yaml", {"SPOTALIS_LOGGING_FORMAT": "xml"})
    keys = [problem.split(":", 1)[0] for problem in caught.value.problems]
    assert keys == [
        "controllers.reconcileInterval",
        "controllers.maxConcurrentReconciles",
        "controllers.fallback.timeout",
        "webhook.port",
        "observability.metrics.bindAddress",
        "observability.logging.format (env SPOTALIS_LOGGING_FORMAT)",
    ]
    assert str(FIXTURES / "invalid.yaml") in str(caught.value)
    assert EXIT_INVALID_CONFIG == 2


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml", {})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load("operator: [\n")
    with pytest.raises(ConfigError, match="top level must be a mapping of sections, not list"):
        load("- a\n")
    [problem] = problems("controllers: 5\n")
    assert problem.startswith("controllers: Input should be a valid dictionary")


# --- resolved values -----------------------------------------------------------------------------------


def test_lease_namespace_follows_the_operator_namespace_unless_set() -> None:
    followed = load("operator:\n  namespace: ops\n")
    assert followed.config.operator.leaderElection.namespace == "ops"
    assert followed.sources["operator.leaderElection.namespace"] == "derived"
    pinned = load("operator:\n  namespace: ops\n  leaderElection:\n    namespace: leases\n")
    assert pinned.config.operator.leaderElection.namespace == "leases"


@pytest.mark.parametrize("provider", ["karpenter", "eks", "gke", "aks"])
def test_provider_presets_fill_terms_and_tolerations(provider: str) -> None:
    loaded = load(env={"SPOTALIS_WEBHOOK_PLACEMENT_PROVIDER": provider})
    placement = loaded.config.webhook.placement
    preset = PROVIDER_PRESETS[provider]  # type: ignore[index]
    assert (placement.spotTerm, placement.onDemandTerm, placement.spotTolerations) == preset
    expected_source = "default" if provider == "karpenter" else "derived"
    assert loaded.sources["webhook.placement.spotTerm"] == expected_source


def test_provider_preset_table_is_spec_3_6() -> None:
    def terms(provider: str, which: int) -> list[tuple[str, str, tuple[str, ...]]]:
        preset = PROVIDER_PRESETS[provider]  # type: ignore[index]
        term = preset.spot_term if which == 0 else preset.on_demand_term
        return [(r.key, r.operator, r.values) for r in term]

    assert terms("eks", 0) == [("eks.amazonaws.com/capacityType", "In", ("SPOT",))]
    assert terms("eks", 1) == [("eks.amazonaws.com/capacityType", "In", ("ON_DEMAND",))]
    assert terms("gke", 0) == [("cloud.google.com/gke-spot", "In", ("true",))]
    assert terms("gke", 1) == [
        ("cloud.google.com/gke-spot", "NotIn", ("true",)),
        ("cloud.google.com/gke-preemptible", "NotIn", ("true",)),
    ]
    assert terms("aks", 0) == [("kubernetes.azure.com/scalesetpriority", "In", ("spot",))]
    assert terms("aks", 1) == [("kubernetes.azure.com/scalesetpriority", "NotIn", ("spot",))]
    assert PROVIDER_PRESETS["gke"].spot_tolerations == (
        Toleration(key="cloud.google.com/gke-spot", value="true", effect="NoSchedule"),
    )
    assert PROVIDER_PRESETS["aks"].spot_tolerations == (
        Toleration(key="kubernetes.azure.com/scalesetpriority", value="spot", effect="NoSchedule"),
    )


def test_explicit_terms_win_over_the_preset() -> None:
    loaded = load("webhook:\n  placement:\n    provider: gke\n    spotTolerations: []\n")
    assert loaded.config.webhook.placement.spotTolerations == ()
    assert loaded.config.webhook.placement.spotTerm == PROVIDER_PRESETS["gke"].spot_term


def test_custom_spot_labels_without_provider_place_by_the_first_pair() -> None:
    loaded = load_config(FIXTURES / "custom_labels.yaml", {})
    placement = loaded.config.webhook.placement
    assert placement.provider == "custom"
    assert placement.spotTerm == (
        NodeSelectorRequirement(key="node.example.com/lifecycle", operator="In", values=("spot",)),
    )
    assert placement.onDemandTerm == (
        NodeSelectorRequirement(key="node.example.com/lifecycle", operator="In", values=("normal",)),
    )
    assert loaded.sources["webhook.placement.provider"] == "derived"
    # Single-value terms on one key: nodeSelector mode [compat] is allowed for such a custom provider.
    assert load_config(FIXTURES / "custom_labels.yaml", {"SPOTALIS_WEBHOOK_PLACEMENT_MODE": "nodeSelector"})


def test_custom_spot_labels_without_an_on_demand_pair_place_on_demand_as_not_spot() -> None:
    loaded = load("controllers:\n  nodeClassifier:\n    spotLabels: [{matchLabels: {lifecycle: spot}}]\n")
    assert loaded.config.webhook.placement.onDemandTerm == (
        NodeSelectorRequirement(key="lifecycle", operator="NotIn", values=("spot",)),
    )
    explicit = load(
        "controllers:\n  nodeClassifier:\n    spotLabels: [{matchLabels: {lifecycle: spot}}]\n",
        {"SPOTALIS_WEBHOOK_PLACEMENT_PROVIDER": "karpenter"},
    )
    assert explicit.config.webhook.placement.provider == "karpenter"


def test_custom_nodeselector_mode_needs_single_value_terms() -> None:
    text = (
        "webhook:\n  placement:\n    provider: custom\n    mode: nodeSelector\n"
        "    spotTerm: [{key: k, operator: In, values: [a, b]}]\n"
        "    onDemandTerm: [{key: k, operator: In, values: [c]}]\n"
    )
    [problem] = problems(text)
    assert problem == (
        "webhook.placement.mode: "
        "nodeSelector mode needs a custom spotTerm of one 'In' expression with one value"
    )
    assert load(text.replace("[a, b]", "[a]")).config.webhook.placement.mode == "nodeSelector"


def test_karpenter_and_eks_allow_nodeselector_mode() -> None:
    for provider in ("karpenter", "eks"):
        env = {
            "SPOTALIS_WEBHOOK_PLACEMENT_PROVIDER": provider,
            "SPOTALIS_WEBHOOK_PLACEMENT_MODE": "nodeSelector",
        }
        assert load(env=env).config.webhook.placement.mode == "nodeSelector"


def test_unquoted_yaml_label_values_are_text() -> None:
    text = (
        "controllers:\n  nodeClassifier:\n"
        "    spotLabels: [{matchLabels: {cloud.google.com/gke-spot: true}}]\n"
        "webhook:\n  placement:\n    provider: gke\n"
        "    spotTolerations: [{key: cloud.google.com/gke-spot, value: true, effect: NoSchedule}]\n"
    )
    config = load(text).config
    assert config.controllers.nodeClassifier.spotLabels[0].matchLabels == {
        "cloud.google.com/gke-spot": "true"
    }
    assert config.webhook.placement.spotTolerations == PROVIDER_PRESETS["gke"].spot_tolerations


def test_label_selector_matches_like_kubernetes() -> None:
    selector = LabelSelector(
        matchLabels={"a": "1"},
        matchExpressions=(
            LabelSelectorRequirement(key="b", operator="In", values=("x", "y")),
            LabelSelectorRequirement(key="c", operator="DoesNotExist"),
        ),
    )
    assert selector.matches({"a": "1", "b": "x"})
    assert not selector.matches({"a": "1", "b": "z"})
    assert not selector.matches({"a": "1", "b": "x", "c": ""})
    assert not selector.matches({"b": "x"})


# --- reload diff (spec 3.13) ---------------------------------------------------------------------------


def test_restart_only_keys_are_the_spec_list() -> None:
    assert set(restart_only_keys()) == set(RESTART_ONLY_KEYS)
    assert set(RESTART_ONLY_KEYS) == {
        "operator.namespace",
        *(key for key in LEAF_KEYS if key.startswith("operator.leaderElection.")),
        "webhook.enabled",
        "webhook.port",
        "webhook.certDir",
        "webhook.certName",
        "webhook.keyName",
        *(key for key in LEAF_KEYS if key.startswith(("observability.metrics.", "observability.health."))),
        "controllers.watchNamespaces",
    }
    assert not is_restart_only("operator.readOnlyMode")
    assert not is_restart_only("controllers.nodeClassifier.spotLabels")


def test_diff_lists_changed_leaves_with_restart_flags() -> None:
    old = load().config
    new = load(
        "operator:\n  readOnlyMode: true\nwebhook:\n  port: 10443\n",
        {"SPOTALIS_CONTROLLERS_WORKLOAD_COOLDOWN_PERIOD": "20s"},
    ).config
    assert diff(old, new) == [
        ConfigChange("operator.readOnlyMode", False, True, False),
        ConfigChange("controllers.workloadTiming.cooldownPeriod", 10 * S, 20 * S, False),
        ConfigChange("webhook.port", 9443, 10443, True),
    ]
    assert diff(new, new) == []


def test_diff_includes_derived_changes() -> None:
    changes = diff(load().config, load("operator:\n  namespace: ops\n").config)
    assert [(c.key, c.new, c.restart_required) for c in changes] == [
        ("operator.namespace", "ops", True),
        ("operator.leaderElection.namespace", "ops", True),
    ]


# --- check-config (spec 2.4) ---------------------------------------------------------------------------


def test_check_config_report_prints_every_value_and_source(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("controllers:\n  reconcileInterval: 1m\n  bogus: 1\n")
    loaded = load_config(path, {"SPOTALIS_WEBHOOK_PORT": "10443", "METRICS_ADDR": ":9000"})
    report = check_config_report(loaded)
    lines = report.splitlines()
    assert lines[0] == f"Spotalis configuration from {path}"
    for key in LEAF_KEYS:
        assert sum(1 for line in lines if line.split(" ", 1)[0] == key) == 1, key
    row = {
        line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in LEAF_KEYS
    }
    assert row["controllers.reconcileInterval"] == ["yaml", "1m0s"]
    assert row["webhook.port"] == ["env", "SPOTALIS_WEBHOOK_PORT", "10443"]
    assert row["observability.metrics.bindAddress"] == ["legacy-env", "METRICS_ADDR", ":9000"]
    assert row["operator.namespace"] == ["default", "spotalis-system"]
    assert "warnings (2):" in lines
    assert "  - unknown config key controllers.bogus ignored" in lines
    assert lines[-1] == "config is valid"


def test_format_value() -> None:
    assert format_value(90 * S) == "1m30s"
    assert format_value(True) == "true"
    assert format_value(None) == '""'
    assert format_value(("a", "b")) == '["a","b"]'
    assert format_value(PROVIDER_PRESETS["aks"].spot_tolerations) == (
        '[{"key":"kubernetes.azure.com/scalesetpriority","value":"spot","effect":"NoSchedule"}]'
    )


# --- parsers -------------------------------------------------------------------------------------------

BOOL_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@given(st.sampled_from(sorted(BOOL_WORDS)), st.randoms(use_true_random=False))
def test_parse_bool_accepts_the_words_in_any_case(word: str, rng: Any) -> None:
    mixed = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in word)
    assert parse_bool(mixed) is BOOL_WORDS[word]
    assert parse_bool(f" {mixed} ") is BOOL_WORDS[word]


@given(st.text(max_size=12))
def test_parse_bool_rejects_everything_else(text: str) -> None:
    if text.strip().lower() in BOOL_WORDS:
        return
    with pytest.raises(ValueError, match="must be true/1/yes/on or false/0/no/off"):
        parse_bool(text)


DURATIONS = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=10_000))


@given(DURATIONS)
def test_duration_keys_round_trip_go_text(value: timedelta) -> None:
    text = format_go_duration(value)
    loaded = load(env={"SPOTALIS_WEBHOOK_INFLIGHT_TTL": text})
    assert loaded.config.webhook.inflightTTL == value
    assert format_value(loaded.config.webhook.inflightTTL) == text


@given(st.text(alphabet="0123456789.hmsuµn+- x", min_size=1, max_size=12))
def test_a_duration_key_either_loads_or_names_the_key(text: str) -> None:
    try:
        loaded = load(env={"SPOTALIS_WEBHOOK_INFLIGHT_TTL": text})
    except ConfigError as err:
        [problem] = err.problems
        assert problem.startswith("webhook.inflightTTL (env SPOTALIS_WEBHOOK_INFLIGHT_TTL): ")
    else:
        assert loaded.config.webhook.inflightTTL > timedelta(0) or not text.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", timedelta(0)), ("1.5h", timedelta(minutes=90)), ("2h45m", timedelta(hours=2, minutes=45))],
)
def test_go_duration_examples(text: str, expected: timedelta) -> None:
    env = {"SPOTALIS_CONTROLLERS_FALLBACK_TIMEOUT": text}
    assert load(env=env).config.controllers.fallback.timeout == expected


WINDOW_DURATION = {"SPOTALIS_OPERATOR_DISRUPTION_WINDOW_DURATION": "1h"}


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 9-17 * * mon-fri", "0 0 1,15 jan,jul ?"])
def test_disruption_window_accepts_five_field_cron(schedule: str) -> None:
    env = {"SPOTALIS_OPERATOR_DISRUPTION_WINDOW_SCHEDULE": schedule, **WINDOW_DURATION}
    assert load(env=env).config.operator.disruptionWindow.configured


@pytest.mark.parametrize("schedule", ["0 2 * *", "60 2 * * *", "0 0 * 13 *", "CRON_TZ=UTC 0 2 * * *"])
def test_disruption_window_rejects_bad_cron(schedule: str) -> None:
    env = {"SPOTALIS_OPERATOR_DISRUPTION_WINDOW_SCHEDULE": schedule, **WINDOW_DURATION}
    [problem] = problems(env=env)
    assert problem.startswith(
        "operator.disruptionWindow.schedule (env SPOTALIS_OPERATOR_DISRUPTION_WINDOW_SCHEDULE): "
        f"invalid cron expression {schedule!r}: "
    )


def test_presets_agree_with_the_webhook_table() -> None:
    """config.PROVIDER_PRESETS (what check-config shows) and placement.PRESETS (what the webhook patches)."""
    from kubewright.spotalis import placement

    for provider, preset in PROVIDER_PRESETS.items():
        theirs = placement.PRESETS[placement.PlacementProvider(provider)]
        for ours, term in ((preset.spot_term, theirs.spot), (preset.on_demand_term, theirs.on_demand)):
            assert [(r.key, r.operator, r.values) for r in ours] == [
                (r.key, str(r.operator), tuple(r.values)) for r in term
            ], provider
        assert [(t.key, t.operator, t.value, t.effect) for t in preset.spot_tolerations] == [
            (t.key, t.operator, t.value, t.effect) for t in theirs.tolerations
        ], provider
