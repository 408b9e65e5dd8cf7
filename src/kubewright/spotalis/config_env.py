"""Environment variables of the Spotalis config (spec 2.3): names, the keys they set, and how they parse.

Two families, applied over the YAML file in this order:
- legacy variables of upstream's `pkg/operator/operator.go` (`METRICS_ADDR`, `DISABLE_WEBHOOK`, ...), still
  honoured [compat] but each one reported as deprecated;
- `SPOTALIS_*` variables, which win. The names upstream read (`pkg/config/loader.go`) are kept exactly, and
  the keys it never mapped follow its pattern `SPOTALIS_<SECTION>_<KEY>` in upper snake case (note the
  sections upstream chose: `LEADER_ELECTION`, `CONTROLLERS_WORKLOAD`, `METRICS`, `HEALTH`, `LOGGING`).

An empty variable counts as unset, as upstream's `val != ""` did. Lists are comma-separated; structured
values (label selectors, tolerations, node-selector terms) are YAML or JSON text.

Pure: the caller passes the environment as a mapping, so tests and `check-config` need no process state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

ENV_PREFIX = "SPOTALIS_"

EnvKind = Literal["scalar", "list", "object"]
"""How a variable's text becomes a raw config value: as is, split on commas, or parsed as YAML/JSON."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    key: str
    kind: EnvKind = "scalar"
    compat: bool = False
    """Read by upstream under this exact name (spec 2.3 [compat]); the others are [new]."""


COMPAT_ENV_NAMES = (
    "SPOTALIS_OPERATOR_NAMESPACE",
    "SPOTALIS_OPERATOR_READ_ONLY_MODE",
    "SPOTALIS_LEADER_ELECTION_ENABLED",
    "SPOTALIS_LEADER_ELECTION_ID",
    "SPOTALIS_LEADER_ELECTION_LEASE_DURATION",
    "SPOTALIS_CONTROLLERS_MAX_CONCURRENT_RECONCILES",
    "SPOTALIS_CONTROLLERS_RECONCILE_INTERVAL",
    "SPOTALIS_CONTROLLERS_WORKLOAD_COOLDOWN_PERIOD",
    "SPOTALIS_CONTROLLERS_WORKLOAD_DISRUPTION_RETRY_INTERVAL",
    "SPOTALIS_CONTROLLERS_WORKLOAD_DISRUPTION_WINDOW_POLL_INTERVAL",
    "SPOTALIS_WEBHOOK_ENABLED",
    "SPOTALIS_WEBHOOK_PORT",
    "SPOTALIS_WEBHOOK_CERT_DIR",
    "SPOTALIS_METRICS_ENABLED",
    "SPOTALIS_METRICS_BIND_ADDRESS",
    "SPOTALIS_HEALTH_ENABLED",
    "SPOTALIS_HEALTH_BIND_ADDRESS",
    "SPOTALIS_LOGGING_LEVEL",
    "SPOTALIS_LOGGING_FORMAT",
)

# (name without the prefix, key); the order is the config's.
_NAMES = (
    ("OPERATOR_NAMESPACE", "operator.namespace"),
    ("OPERATOR_READ_ONLY_MODE", "operator.readOnlyMode"),
    ("LEADER_ELECTION_ENABLED", "operator.leaderElection.enabled"),
    ("LEADER_ELECTION_ID", "operator.leaderElection.id"),
    ("LEADER_ELECTION_NAMESPACE", "operator.leaderElection.namespace"),
    ("LEADER_ELECTION_LEASE_DURATION", "operator.leaderElection.leaseDuration"),
    ("LEADER_ELECTION_RENEW_DEADLINE", "operator.leaderElection.renewDeadline"),
    ("LEADER_ELECTION_RETRY_PERIOD", "operator.leaderElection.retryPeriod"),
    ("LEADER_ELECTION_RELEASE_ON_CANCEL", "operator.leaderElection.releaseOnCancel"),
    ("OPERATOR_DISRUPTION_WINDOW_SCHEDULE", "operator.disruptionWindow.schedule"),
    ("OPERATOR_DISRUPTION_WINDOW_DURATION", "operator.disruptionWindow.duration"),
    ("OPERATOR_GRACEFUL_SHUTDOWN_TIMEOUT", "operator.gracefulShutdownTimeout"),
    ("OPERATOR_PRE_SHUTDOWN_DELAY", "operator.preShutdownDelay"),
    ("CONTROLLERS_RECONCILE_INTERVAL", "controllers.reconcileInterval"),
    ("CONTROLLERS_MAX_CONCURRENT_RECONCILES", "controllers.maxConcurrentReconciles"),
    ("CONTROLLERS_RATE_LIMIT_QPS", "controllers.rateLimit.qps"),
    ("CONTROLLERS_RATE_LIMIT_BURST", "controllers.rateLimit.burst"),
    ("CONTROLLERS_WATCH_NAMESPACES", "controllers.watchNamespaces"),
    ("CONTROLLERS_NODE_CLASSIFIER_SPOT_LABELS", "controllers.nodeClassifier.spotLabels"),
    ("CONTROLLERS_NODE_CLASSIFIER_ON_DEMAND_LABELS", "controllers.nodeClassifier.onDemandLabels"),
    ("CONTROLLERS_NODE_CLASSIFIER_BUILTIN_PROVIDERS", "controllers.nodeClassifier.builtinProviders"),
    ("CONTROLLERS_NODE_CLASSIFIER_UNKNOWN_NODE_TYPE", "controllers.nodeClassifier.unknownNodeType"),
    ("CONTROLLERS_NODE_CLASSIFIER_RECLAIM_TAINTS", "controllers.nodeClassifier.reclaimTaints"),
    ("CONTROLLERS_NODE_CLASSIFIER_RECLAIM_CONDITIONS", "controllers.nodeClassifier.reclaimConditions"),
    ("CONTROLLERS_WORKLOAD_COOLDOWN_PERIOD", "controllers.workloadTiming.cooldownPeriod"),
    ("CONTROLLERS_WORKLOAD_DISRUPTION_RETRY_INTERVAL", "controllers.workloadTiming.disruptionRetryInterval"),
    (
        "CONTROLLERS_WORKLOAD_DISRUPTION_WINDOW_POLL_INTERVAL",
        "controllers.workloadTiming.disruptionWindowPollInterval",
    ),
    (
        "CONTROLLERS_NAMESPACE_FILTER_REQUIRE_NAMESPACE_LABEL",
        "controllers.namespaceFilter.requireNamespaceLabel",
    ),
    ("CONTROLLERS_NAMESPACE_FILTER_INCLUDE_NAMESPACES", "controllers.namespaceFilter.includeNamespaces"),
    ("CONTROLLERS_NAMESPACE_FILTER_INCLUDE_PATTERNS", "controllers.namespaceFilter.includePatterns"),
    ("CONTROLLERS_NAMESPACE_FILTER_EXCLUDE_NAMESPACES", "controllers.namespaceFilter.excludeNamespaces"),
    ("CONTROLLERS_NAMESPACE_FILTER_EXCLUDE_PATTERNS", "controllers.namespaceFilter.excludePatterns"),
    ("CONTROLLERS_WORKLOAD_DEFAULTS_SPOT_PERCENTAGE", "controllers.workloadDefaults.spotPercentage"),
    ("CONTROLLERS_WORKLOAD_DEFAULTS_MIN_ON_DEMAND", "controllers.workloadDefaults.minOnDemand"),
    ("CONTROLLERS_FALLBACK_ENABLED", "controllers.fallback.enabled"),
    ("CONTROLLERS_FALLBACK_TIMEOUT", "controllers.fallback.timeout"),
    ("CONTROLLERS_FALLBACK_BACKOFF", "controllers.fallback.backoff"),
    ("CONTROLLERS_FALLBACK_MAX_BACKOFF", "controllers.fallback.maxBackoff"),
    ("WEBHOOK_ENABLED", "webhook.enabled"),
    ("WEBHOOK_PORT", "webhook.port"),
    ("WEBHOOK_CERT_DIR", "webhook.certDir"),
    ("WEBHOOK_CERT_NAME", "webhook.certName"),
    ("WEBHOOK_KEY_NAME", "webhook.keyName"),
    ("WEBHOOK_PLACEMENT_PROVIDER", "webhook.placement.provider"),
    ("WEBHOOK_PLACEMENT_MODE", "webhook.placement.mode"),
    ("WEBHOOK_PLACEMENT_SPOT_TOLERATIONS", "webhook.placement.spotTolerations"),
    ("WEBHOOK_PLACEMENT_SPOT_TERM", "webhook.placement.spotTerm"),
    ("WEBHOOK_PLACEMENT_ON_DEMAND_TERM", "webhook.placement.onDemandTerm"),
    ("WEBHOOK_INFLIGHT_TTL", "webhook.inflightTTL"),
    ("METRICS_ENABLED", "observability.metrics.enabled"),
    ("METRICS_BIND_ADDRESS", "observability.metrics.bindAddress"),
    ("METRICS_PATH", "observability.metrics.path"),
    ("HEALTH_ENABLED", "observability.health.enabled"),
    ("HEALTH_BIND_ADDRESS", "observability.health.bindAddress"),
    ("HEALTH_PATH", "observability.health.path"),
    ("LOGGING_LEVEL", "observability.logging.level"),
    ("LOGGING_FORMAT", "observability.logging.format"),
    ("LOGGING_OUTPUT", "observability.logging.output"),
    ("LOGGING_ADD_CALLER", "observability.logging.addCaller"),
    ("LOGGING_DEVELOPMENT", "observability.logging.development"),
)
_LIST_KEYS = frozenset(
    {
        "controllers.watchNamespaces",
        "controllers.nodeClassifier.builtinProviders",
        "controllers.nodeClassifier.reclaimTaints",
        "controllers.nodeClassifier.reclaimConditions",
        "controllers.namespaceFilter.includeNamespaces",
        "controllers.namespaceFilter.includePatterns",
        "controllers.namespaceFilter.excludeNamespaces",
        "controllers.namespaceFilter.excludePatterns",
    }
)
_OBJECT_KEYS = frozenset(
    {
        "controllers.nodeClassifier.spotLabels",
        "controllers.nodeClassifier.onDemandLabels",
        "webhook.placement.spotTolerations",
        "webhook.placement.spotTerm",
        "webhook.placement.onDemandTerm",
    }
)


def _kind(key: str) -> EnvKind:
    return "list" if key in _LIST_KEYS else "object" if key in _OBJECT_KEYS else "scalar"


ENV_VARS: tuple[EnvVar, ...] = tuple(
    EnvVar(ENV_PREFIX + name, key, _kind(key), ENV_PREFIX + name in COMPAT_ENV_NAMES) for name, key in _NAMES
)
ENV_BY_NAME: Mapping[str, EnvVar] = {var.name: var for var in ENV_VARS}
ENV_BY_KEY: Mapping[str, EnvVar] = {var.key: var for var in ENV_VARS}

LEGACY_ENV: Mapping[str, str] = {
    "METRICS_ADDR": "observability.metrics.bindAddress",
    "PROBE_ADDR": "observability.health.bindAddress",
    "WEBHOOK_ADDR": "webhook.port",
    "NAMESPACE": "operator.namespace",
    "LOG_LEVEL": "observability.logging.level",
    "DISABLE_LEADER_ELECTION": "operator.leaderElection.enabled",
    "DISABLE_WEBHOOK": "webhook.enabled",
    "READ_ONLY_MODE": "operator.readOnlyMode",
}
"""Upstream's deprecated variables [compat] and the key each one sets."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
BOOL_WORDS = "true/1/yes/on or false/0/no/off"

# Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT=tcp://ip:port`, ... for every Service in the
# namespace (enableServiceLinks). A Service named `spotalis-webhook` would set SPOTALIS_WEBHOOK_PORT to
# `tcp://10.0.0.1:443`; such values are skipped, never read as config, and unknown names of that shape are
# not reported as typos.
_SERVICE_LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://[^/\s]*:[0-9]+", re.IGNORECASE)
_SERVICE_LINK_NAME = re.compile(
    r".+_(?:SERVICE_HOST|SERVICE_PORT(?:_.+)?|PORT|PORT_[0-9]+_(?:TCP|UDP|SCTP)(?:_.+)?)"
)
_ADDRESS_PORT = re.compile(r"(?:\[[^\]]*\]|[^:\[\]]*):([0-9]+)")


def parse_bool(text: str) -> bool:
    """Upstream's boolean words (`pkg/config/loader.go` parseBool), any case; anything else is an error
    (upstream silently kept the previous value)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"must be {BOOL_WORDS} (got {text!r})")


@dataclass
class EnvOverrides:
    """Raw values from the environment, keyed by dotted config key, with where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    """key -> the variable that set it."""
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def legacy_overrides(env: Mapping[str, str]) -> EnvOverrides:
    """Upstream's deprecated variables, each reported with the `SPOTALIS_*` variable that replaces it."""
    found = EnvOverrides()
    for name, key in LEGACY_ENV.items():
        text = env.get(name, "")
        if not text:
            continue
        found.warnings.append(
            f"{name} is deprecated; use {ENV_BY_KEY[key].name} or the config key {key} instead"
        )
        try:
            value = _legacy_value(name, text)
        except ValueError as err:
            found.problems.append(f"{key} (env {name}): {err}")
            continue
        if value is not None:
            found.values[key] = value
            found.variables[key] = name
    return found


def _legacy_value(name: str, text: str) -> Any:
    """The raw config value a legacy variable stands for; None when it has no effect.

    The DISABLE_* / READ_ONLY_MODE switches only ever acted when set (upstream compared with "true"), so a
    false value leaves the key alone instead of forcing the opposite over the file.
    """
    if name in {"DISABLE_LEADER_ELECTION", "DISABLE_WEBHOOK"}:
        return False if parse_bool(text) else None
    if name == "READ_ONLY_MODE":
        return True if parse_bool(text) else None
    if name == "WEBHOOK_ADDR":
        match = _ADDRESS_PORT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"must be an address [host]:port such as :9443 (got {text!r})")
        return match.group(1)
    return text


def spotalis_overrides(env: Mapping[str, str]) -> EnvOverrides:
    """The `SPOTALIS_*` variables; an unknown name is a warning (a typo would otherwise do nothing)."""
    found = EnvOverrides()
    for name in sorted(env):
        text = env[name]
        if not name.startswith(ENV_PREFIX) or not text:
            continue
        var = ENV_BY_NAME.get(name)
        if var is None:
            if not _SERVICE_LINK_NAME.fullmatch(name):
                found.warnings.append(f"unknown environment variable {name} ignored")
            continue
        if _SERVICE_LINK_VALUE.fullmatch(text.strip()):
            found.warnings.append(
                f"{name}={text} looks like a Kubernetes service link, not a setting; ignored "
                "(set enableServiceLinks: false on the pod)"
            )
            continue
        try:
            found.values[var.key] = _env_value(var, text)
        except ValueError as err:
            found.problems.append(f"{var.key} (env {name}): {err}")
            continue
        found.variables[var.key] = name
    return found


def _env_value(var: EnvVar, text: str) -> Any:
    if var.kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if var.kind == "object":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"must be YAML or JSON text: {err}") from None
    return text
