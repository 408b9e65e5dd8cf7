# Field names are the YAML keys (camelCase) on purpose: they are the [compat] contract of spec 2.3 and
# upstream's `pkg/config/consolidated.go`, and keeping them verbatim makes every error name the real key.
# ruff: noqa: N815
"""The Spotalis configuration (spec 2.3): `--config` YAML plus environment, validated once, immutable.

Loading: defaults < YAML < legacy env < `SPOTALIS_*` env (`config_env`). Unlike the runtime's
`load_settings`, an unknown YAML key is a warning, not an error [compat: upstream's yaml.v3 ignored them],
and env names are upstream's (`SPOTALIS_LEADER_ELECTION_ID`), not derived with `__`. The models are plain
frozen pydantic models, so building one never reads the process environment.

What upstream got wrong and this fixes:
- invalid values were silently ignored (a bad `SPOTALIS_WEBHOOK_PORT` kept the default); here every bad value
  is reported, naming the key, the variable that set it and the rule, and the caller exits 2;
- a bare YAML number for a duration meant nanoseconds to yaml.v3 (`reconcileInterval: 30` = 30ns); here only
  Go duration text (and `0`) is a duration;
- the reconcile interval had no minimum (spec: >= 5s) and the binary defaulted to 5m (spec: 30s).

Every value is resolved here, once: the lease namespace defaults to the operator namespace, placement terms
and spot tolerations default to the provider's preset (spec 3.6), and without a `placement.provider` a
customised `spotLabels` selects a custom provider derived from its first pair [compat
`pkg/webhook/mutate.go`]. Consumers read the config; they never re-derive defaults.

Durations and cron schedules use the grammars of `annotations.parse_go_duration` and `schedule.parse_cron`,
so a config file and a workload annotation accept exactly the same text.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kubewright.runtime.settings import SettingsError
from kubewright.spotalis import classify
from kubewright.spotalis.annotations import (
    MAX_MIN_ON_DEMAND,
    MAX_SPOT_PERCENTAGE,
    MIN_FALLBACK_TIMEOUT,
    format_go_duration,
    parse_go_duration,
)
from kubewright.spotalis.config_env import ENV_BY_KEY, legacy_overrides, parse_bool, spotalis_overrides
from kubewright.spotalis.schedule import parse_cron

EXIT_INVALID_CONFIG = 2
"""Exit status of `run` and `check-config` when the config is invalid (spec 2.3, 3.14)."""

Source = Literal["default", "yaml", "legacy-env", "env", "derived"]
"""Where a leaf value came from; `derived` = computed from other keys (lease namespace, provider presets)."""


class ConfigError(SettingsError):
    """The config is invalid: `problems` has one line per bad value (key, variable, rule, value given)."""


# --- field types ---------------------------------------------------------------------------------------


def _rule(message: str, key: str | None = None) -> PydanticCustomError:
    """A validation failure whose message is the rule; `key` names the field of a cross-field rule."""
    return PydanticCustomError("spotalis_config", message, {"field": key} if key else None)


def _duration_input(value: object) -> object:
    if isinstance(value, timedelta):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = parse_go_duration(value.strip())
        except ValueError as err:
            raise _rule(str(err)) from None
    elif isinstance(value, int) and not isinstance(value, bool) and value == 0:
        parsed = timedelta(0)
    else:
        raise _rule("must be a Go duration such as 30s or 1m30s (a bare number is ambiguous)")
    if parsed < timedelta(0):
        raise _rule("must not be negative")
    return parsed


def _bool_input(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in {0, 1}:
        return bool(value)
    if isinstance(value, str):
        try:
            return parse_bool(value)
        except ValueError as err:
            raise _rule(str(err)) from None
    raise _rule("must be true/1/yes/on or false/0/no/off")


def _at_least(minimum: timedelta) -> Callable[[timedelta], timedelta]:
    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise _rule(f"must be at least {format_go_duration(minimum)}")
        return value

    return check


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise _rule("must be greater than 0")
    return value


def _within(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise _rule(f"must be within {low}..{high}")
        return value

    return check


def _fallback_timeout(value: timedelta) -> timedelta:
    if value != timedelta(0) and value < MIN_FALLBACK_TIMEOUT:
        raise _rule(f"must be 0 (fallback off) or at least {format_go_duration(MIN_FALLBACK_TIMEOUT)}")
    return value


_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_BIND_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.%a-zA-Z]*\]|[^:\[\]\s]*):([0-9]{1,5})")


def _is_dns_label(value: object) -> bool:
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise _rule("must be a namespace name (DNS-1123 label: lowercase letters, digits, '-', <= 63)")
    return value


def _optional_dns_label(value: str) -> str:
    return _dns_label(value) if value else value


def _dns_subdomain(value: str) -> str:
    if not _DNS_SUBDOMAIN.fullmatch(value):
        raise _rule("must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')")
    return value


def _bind_address(value: str) -> str:
    match = _BIND_ADDRESS.fullmatch(value)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise _rule("must be [host]:port with a port within 1..65535, such as :8080")
    return value


def _http_path(value: str) -> str:
    if not value.startswith("/"):
        raise _rule("must be a URL path starting with '/'")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise _rule(f"must be a regular expression (Python re, full match): {err}") from None
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise _rule("must not be empty")
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _scalar_text(value: object) -> object:
    """Label and taint values written unquoted in YAML (`gke-spot: true`) are text to Kubernetes, and to
    upstream's yaml.v3, which decodes any scalar into a string field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def bind_port(address: str) -> int:
    """The port of a validated `[host]:port` bind address."""
    return int(address.rsplit(":", 1)[1])


Duration = Annotated[timedelta, BeforeValidator(_duration_input)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
Bool = Annotated[bool, BeforeValidator(_bool_input)]
Port = Annotated[int, AfterValidator(_within(1, 65535))]
BindAddress = Annotated[str, AfterValidator(_bind_address)]
HttpPath = Annotated[str, AfterValidator(_http_path)]
NamespaceName = Annotated[str, AfterValidator(_dns_label)]
Pattern = Annotated[str, AfterValidator(_regex)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
LabelValue = Annotated[str, BeforeValidator(_scalar_text)]

Provider = Literal["karpenter", "eks", "gke", "aks"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
PlacementProvider = Literal["karpenter", "eks", "gke", "aks", "custom"]
PlacementMode = Literal["requiredAffinity", "preferredAffinity", "nodeSelector"]
CapacityType = Literal["on-demand", "spot"]


def _providers_input(value: object) -> object:
    """`all` (the default) names every built-in provider, in YAML and in the env variable."""
    if value in ("all", ["all"]):
        return PROVIDERS
    return value


# --- Kubernetes shapes used by the config --------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelSelectorRequirement(_Section):
    key: NonEmpty
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[LabelValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in {"In", "NotIn"} and not self.values:
            raise _rule(f"operator {self.operator} needs at least one value", "values")
        if self.operator in {"Exists", "DoesNotExist"} and self.values:
            raise _rule(f"operator {self.operator} takes no values", "values")
        return self


class LabelSelector(_Section):
    """A node rule of `spotLabels` / `onDemandLabels` (metav1.LabelSelector, as upstream)."""

    matchLabels: dict[str, LabelValue] = Field(default_factory=dict)
    matchExpressions: tuple[LabelSelectorRequirement, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.matchLabels and not self.matchExpressions:
            raise _rule("an empty selector would match every node; give matchLabels or matchExpressions")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.matchLabels.items()):
            return False
        for requirement in self.matchExpressions:
            present = requirement.key in labels
            value = labels.get(requirement.key)
            holds = {
                "In": present and value in requirement.values,
                "NotIn": not present or value not in requirement.values,
                "Exists": present,
                "DoesNotExist": not present,
            }[requirement.operator]
            if not holds:
                return False
        return True


class NodeSelectorRequirement(_Section):
    """One expression of a node-affinity term (core/v1 NodeSelectorRequirement)."""

    key: NonEmpty
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: tuple[LabelValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> NodeSelectorRequirement:
        if self.operator in {"In", "NotIn"} and not self.values:
            raise _rule(f"operator {self.operator} needs at least one value", "values")
        if self.operator in {"Exists", "DoesNotExist"} and self.values:
            raise _rule(f"operator {self.operator} takes no values", "values")
        if self.operator in {"Gt", "Lt"} and (
            len(self.values) != 1 or not self.values[0].lstrip("-").isdigit()
        ):
            raise _rule(f"operator {self.operator} takes exactly one integer value", "values")
        return self


class Toleration(_Section):
    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: LabelValue = ""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    tolerationSeconds: int | None = None

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise _rule("operator Exists takes no value", "value")
        return self


def _in(key: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator="In", values=values)


def _not_in(key: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key=key, operator="NotIn", values=values)


class ProviderPreset(NamedTuple):
    spot_term: tuple[NodeSelectorRequirement, ...]
    on_demand_term: tuple[NodeSelectorRequirement, ...]
    spot_tolerations: tuple[Toleration, ...]


KARPENTER_CAPACITY_TYPE = classify.KARPENTER_CAPACITY_TYPE
GKE_SPOT = classify.GKE_SPOT
GKE_PREEMPTIBLE = classify.GKE_PREEMPTIBLE
AKS_PRIORITY = classify.AKS_SCALESET_PRIORITY
EKS_CAPACITY_TYPE = classify.EKS_CAPACITY_TYPE

PROVIDER_PRESETS: Mapping[Provider, ProviderPreset] = {
    "karpenter": ProviderPreset(
        (_in(KARPENTER_CAPACITY_TYPE, "spot"),), (_in(KARPENTER_CAPACITY_TYPE, "on-demand", "reserved"),), ()
    ),
    "eks": ProviderPreset((_in(EKS_CAPACITY_TYPE, "SPOT"),), (_in(EKS_CAPACITY_TYPE, "ON_DEMAND"),), ()),
    "gke": ProviderPreset(
        (_in(GKE_SPOT, "true"),),
        (_not_in(GKE_SPOT, "true"), _not_in(GKE_PREEMPTIBLE, "true")),
        (Toleration(key=GKE_SPOT, operator="Equal", value="true", effect="NoSchedule"),),
    ),
    "aks": ProviderPreset(
        (_in(AKS_PRIORITY, "spot"),),
        (_not_in(AKS_PRIORITY, "spot"),),
        (Toleration(key=AKS_PRIORITY, operator="Equal", value="spot", effect="NoSchedule"),),
    ),
}
"""Spec 3.6: placement terms and spot tolerations per provider, as config values (`placement.PRESETS` holds
the same table for the webhook; a unit test keeps the two equal)."""

DEFAULT_SPOT_LABELS = (LabelSelector(matchLabels={KARPENTER_CAPACITY_TYPE: "spot"}),)
DEFAULT_ON_DEMAND_LABELS = (LabelSelector(matchLabels={KARPENTER_CAPACITY_TYPE: "on-demand"}),)
DEFAULT_RECLAIM_TAINTS = tuple(sorted(classify.DEFAULT_RECLAIM_TAINTS))
"""Spec 3.4: taints that mark a node as being reclaimed."""
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


# --- sections ------------------------------------------------------------------------------------------


class LeaderElectionConfig(_Section):
    enabled: Bool = True
    id: Annotated[str, AfterValidator(_dns_subdomain)] = "spotalis-controller-leader"
    namespace: Annotated[str, AfterValidator(_optional_dns_label)] = ""
    """The Lease namespace; resolved to `operator.namespace` when not set."""
    leaseDuration: Annotated[Duration, AfterValidator(_at_least(timedelta(seconds=1)))] = timedelta(
        seconds=15
    )
    renewDeadline: PositiveDuration = timedelta(seconds=10)
    retryPeriod: PositiveDuration = timedelta(seconds=2)
    releaseOnCancel: Bool = True

    @model_validator(mode="after")
    def _client_go_timings(self) -> LeaderElectionConfig:
        rule = "retryPeriod < renewDeadline < leaseDuration must hold"
        got = (
            f"got retryPeriod={format_go_duration(self.retryPeriod)}, "
            f"renewDeadline={format_go_duration(self.renewDeadline)}, "
            f"leaseDuration={format_go_duration(self.leaseDuration)}"
        )
        if self.retryPeriod >= self.renewDeadline:
            raise _rule(f"{rule} ({got})", "retryPeriod")
        if self.renewDeadline >= self.leaseDuration:
            raise _rule(f"{rule} ({got})", "renewDeadline")
        return self


def _optional_duration_input(value: object) -> object:
    return None if value in {"", None} else _duration_input(value)


class DisruptionWindowConfig(_Section):
    """When rebalancing may evict (both keys or neither); placement, fallback and floor repair ignore it."""

    schedule: str = ""
    duration: Annotated[timedelta | None, BeforeValidator(_optional_duration_input)] = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> DisruptionWindowConfig:
        if bool(self.schedule) != (self.duration is not None):
            missing = "duration" if self.schedule else "schedule"
            raise _rule(
                f"schedule and duration are set together or not at all ({missing} is missing)", missing
            )
        if self.schedule:
            try:
                parse_cron(self.schedule)
            except ValueError as err:
                raise _rule(str(err), "schedule") from None
        if self.duration is not None and self.duration <= timedelta(0):
            raise _rule("must be greater than 0", "duration")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.schedule)


class OperatorConfig(_Section):
    namespace: NamespaceName = "spotalis-system"
    readOnlyMode: Bool = False
    leaderElection: LeaderElectionConfig = Field(default_factory=LeaderElectionConfig)
    disruptionWindow: DisruptionWindowConfig = Field(default_factory=DisruptionWindowConfig)
    gracefulShutdownTimeout: PositiveDuration = timedelta(seconds=30)
    preShutdownDelay: Duration = timedelta(seconds=5)

    @model_validator(mode="before")
    @classmethod
    def _lease_namespace_defaults_to_operator_namespace(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        namespace = data.get("namespace", "spotalis-system")
        election = data.get("leaderElection", {})
        # An invalid namespace is left for its own key to report, once.
        if isinstance(election, dict) and not election.get("namespace") and _is_dns_label(namespace):
            return {**data, "leaderElection": {**election, "namespace": namespace}}
        return data

    @model_validator(mode="after")
    def _delay_within_timeout(self) -> OperatorConfig:
        if self.preShutdownDelay >= self.gracefulShutdownTimeout:
            timeout = format_go_duration(self.gracefulShutdownTimeout)
            raise _rule(f"must be less than gracefulShutdownTimeout ({timeout})", "preShutdownDelay")
        return self


class RateLimitConfig(_Section):
    qps: Annotated[float, Field(gt=0)] = 50.0
    burst: Annotated[int, AfterValidator(_within(1, 100_000))] = 100


class NodeClassifierConfig(_Section):
    spotLabels: tuple[LabelSelector, ...] = DEFAULT_SPOT_LABELS
    onDemandLabels: tuple[LabelSelector, ...] = DEFAULT_ON_DEMAND_LABELS
    builtinProviders: Annotated[tuple[Provider, ...], BeforeValidator(_providers_input)] = PROVIDERS
    unknownNodeType: CapacityType = "on-demand"
    reclaimTaints: tuple[NonEmpty, ...] = DEFAULT_RECLAIM_TAINTS
    reclaimConditions: tuple[NonEmpty, ...] = ()


class WorkloadTimingConfig(_Section):
    cooldownPeriod: PositiveDuration = timedelta(seconds=10)
    disruptionRetryInterval: PositiveDuration = timedelta(minutes=1)
    disruptionWindowPollInterval: PositiveDuration = timedelta(minutes=10)


class NamespaceFilterConfig(_Section):
    """Spec 3.3, checked after `watchNamespaces`: excluded names, excluded patterns, includes, the label."""

    requireNamespaceLabel: Bool = True
    includeNamespaces: tuple[NamespaceName, ...] = ()
    includePatterns: tuple[Pattern, ...] = ()
    excludeNamespaces: tuple[NamespaceName, ...] = DEFAULT_EXCLUDED_NAMESPACES
    excludePatterns: tuple[Pattern, ...] = ()


class WorkloadDefaultsConfig(_Section):
    """Used for a labelled workload without annotations (spec 2.1 [fix])."""

    spotPercentage: Annotated[int, AfterValidator(_within(0, MAX_SPOT_PERCENTAGE))] = 0
    minOnDemand: Annotated[int, AfterValidator(_within(0, MAX_MIN_ON_DEMAND))] = 0


class FallbackConfig(_Section):
    enabled: Bool = True
    timeout: Annotated[Duration, AfterValidator(_fallback_timeout)] = timedelta(minutes=5)
    backoff: PositiveDuration = timedelta(minutes=10)
    maxBackoff: PositiveDuration = timedelta(hours=1)

    @model_validator(mode="after")
    def _max_backoff_covers_backoff(self) -> FallbackConfig:
        if self.maxBackoff < self.backoff:
            raise _rule(f"must be at least backoff ({format_go_duration(self.backoff)})", "maxBackoff")
        return self


class ControllersConfig(_Section):
    reconcileInterval: Annotated[Duration, AfterValidator(_at_least(timedelta(seconds=5)))] = timedelta(
        seconds=30
    )
    maxConcurrentReconciles: Annotated[int, AfterValidator(_within(1, 50))] = 2
    rateLimit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    watchNamespaces: tuple[NamespaceName, ...] = ()
    nodeClassifier: NodeClassifierConfig = Field(default_factory=NodeClassifierConfig)
    workloadTiming: WorkloadTimingConfig = Field(default_factory=WorkloadTimingConfig)
    namespaceFilter: NamespaceFilterConfig = Field(default_factory=NamespaceFilterConfig)
    workloadDefaults: WorkloadDefaultsConfig = Field(default_factory=WorkloadDefaultsConfig)
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)


class PlacementConfig(_Section):
    """Spec 3.6. Terms and tolerations left out take the provider's preset; `custom` needs both terms."""

    provider: PlacementProvider = "karpenter"
    mode: PlacementMode = "requiredAffinity"
    spotTolerations: tuple[Toleration, ...] = ()
    spotTerm: tuple[NodeSelectorRequirement, ...] = PROVIDER_PRESETS["karpenter"].spot_term
    onDemandTerm: tuple[NodeSelectorRequirement, ...] = PROVIDER_PRESETS["karpenter"].on_demand_term

    @model_validator(mode="before")
    @classmethod
    def _provider_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = PROVIDER_PRESETS.get(data.get("provider", "karpenter"), ProviderPreset((), (), ()))
        filled = dict(data)
        for key, value in (
            ("spotTerm", preset.spot_term),
            ("onDemandTerm", preset.on_demand_term),
            ("spotTolerations", preset.spot_tolerations),
        ):
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @model_validator(mode="after")
    def _mode_fits_provider(self) -> PlacementConfig:
        for key, term in (("spotTerm", self.spotTerm), ("onDemandTerm", self.onDemandTerm)):
            if not term:
                raise _rule(
                    f"provider {self.provider} needs a non-empty {key} (without webhook.placement.provider, "
                    "customised spotLabels select a custom provider derived from their first label pair)",
                    key,
                )
        if self.mode != "nodeSelector":
            return self
        if self.provider in {"gke", "aks"}:
            raise _rule(
                f"nodeSelector mode is invalid with provider {self.provider}: a nodeSelector cannot express "
                "'not spot'; use requiredAffinity or preferredAffinity",
                "mode",
            )
        if self.provider == "custom":
            for key, term in (("spotTerm", self.spotTerm), ("onDemandTerm", self.onDemandTerm)):
                if len(term) != 1 or term[0].operator != "In" or len(term[0].values) != 1:
                    raise _rule(
                        f"nodeSelector mode needs a custom {key} of one 'In' expression with one value",
                        "mode",
                    )
        return self


class WebhookConfig(_Section):
    enabled: Bool = True
    port: Port = 9443
    certDir: NonEmpty = "/tmp/k8s-webhook-server/serving-certs"  # controller-runtime's default
    certName: NonEmpty = "tls.crt"
    keyName: NonEmpty = "tls.key"
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    inflightTTL: PositiveDuration = timedelta(seconds=30)


class ServerEndpointConfig(_Section):
    enabled: Bool = True
    bindAddress: BindAddress
    path: HttpPath


class MetricsConfig(ServerEndpointConfig):
    bindAddress: BindAddress = ":8080"
    path: HttpPath = "/metrics"


class HealthConfig(ServerEndpointConfig):
    bindAddress: BindAddress = ":8081"
    path: HttpPath = "/healthz"


class LoggingConfig(_Section):
    level: Annotated[Literal["debug", "info", "warn", "error"], BeforeValidator(_lower)] = "info"
    format: Annotated[Literal["json", "console"], BeforeValidator(_lower)] = "json"
    output: NonEmpty = "stdout"
    addCaller: Bool = True
    development: Bool = False


class ObservabilityConfig(_Section):
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


class SpotalisConfig(_Section):
    """The whole Spotalis configuration: immutable, passed explicitly, swapped whole on reload (spec 3.13)."""

    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    controllers: ControllersConfig = Field(default_factory=ControllersConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)

    @model_validator(mode="before")
    @classmethod
    def _custom_provider_from_spot_labels(cls, data: Any) -> Any:
        """No `placement.provider` but customised `spotLabels`: place with the first spot label pair, as
        upstream's webhook did, instead of Karpenter's key that such nodes do not carry."""
        if not isinstance(data, dict):
            return data
        webhook = data.get("webhook", {})
        placement = webhook.get("placement", {}) if isinstance(webhook, dict) else None
        if not isinstance(placement, dict) or "provider" in placement:
            return data
        classifier = _dig(data, "controllers", "nodeClassifier")
        spot = _selectors(classifier.get("spotLabels"))
        if spot is None or spot == DEFAULT_SPOT_LABELS:
            return data
        on_demand = _selectors(classifier.get("onDemandLabels", DEFAULT_ON_DEMAND_LABELS)) or ()
        derived: dict[str, Any] = {"provider": "custom"}
        spot_term = _first_pair_term(spot)
        if "spotTerm" not in placement and spot_term:
            derived["spotTerm"] = spot_term
        if "onDemandTerm" not in placement and spot_term:
            derived["onDemandTerm"] = _on_demand_term(spot_term[0], on_demand)
        return {**data, "webhook": {**webhook, "placement": {**placement, **derived}}}

    @model_validator(mode="after")
    def _distinct_ports(self) -> SpotalisConfig:
        seen: dict[int, str] = {}
        servers = (
            ("webhook.port", self.webhook.enabled, self.webhook.port),
            ("metrics.bindAddress", self.observability.metrics.enabled, self._port("metrics")),
            ("health.bindAddress", self.observability.health.enabled, self._port("health")),
        )
        for key, enabled, port in servers:
            if enabled and port in seen:
                field = key if key == "webhook.port" else f"observability.{key}"
                raise _rule(f"port {port} is already used by {seen[port]}; each server needs its own", field)
            seen.setdefault(port, key)
        return self

    def _port(self, server: Literal["metrics", "health"]) -> int:
        return bind_port(getattr(self.observability, server).bindAddress)


def _dig(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    current: Any = data
    for key in keys:
        current = current.get(key, {}) if isinstance(current, Mapping) else {}
    return current if isinstance(current, Mapping) else {}


_SELECTORS = TypeAdapter(tuple[LabelSelector, ...])


def _selectors(raw: object) -> tuple[LabelSelector, ...] | None:
    """Raw selectors as models; None when invalid (their own validation reports them)."""
    if raw is None:
        return None
    try:
        return _SELECTORS.validate_python(raw)
    except ValidationError:
        return None


def _first_pair_term(selectors: tuple[LabelSelector, ...]) -> tuple[NodeSelectorRequirement, ...]:
    for selector in selectors:
        for key, value in selector.matchLabels.items():
            return (_in(key, value),)
        for requirement in selector.matchExpressions:
            if requirement.operator == "In":
                return (_in(requirement.key, *requirement.values),)
    return ()


def _on_demand_term(
    spot: NodeSelectorRequirement, on_demand: tuple[LabelSelector, ...]
) -> tuple[NodeSelectorRequirement, ...]:
    """The first on-demand pair on the spot key; otherwise "not spot" on that key."""
    for selector in on_demand:
        if spot.key in selector.matchLabels:
            return (_in(spot.key, selector.matchLabels[spot.key]),)
    return (_not_in(spot.key, *spot.values),)


# --- keys, sources, diff -------------------------------------------------------------------------------


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, _Section):
            keys.extend(_leaf_keys(nested, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


LEAF_KEYS: tuple[str, ...] = tuple(_leaf_keys(SpotalisConfig))
"""Every settable key, dotted (`controllers.workloadTiming.cooldownPeriod`); lists are single leaves."""

_RESTART_ONLY_PATTERNS = (
    "operator.namespace",
    "operator.leaderElection.*",
    "webhook.enabled",
    "webhook.port",
    "webhook.cert*",
    "webhook.keyName",
    "observability.metrics.*",
    "observability.health.*",
    "controllers.watchNamespaces",
)


def _matches(key: str, pattern: str) -> bool:
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else key == pattern


RESTART_ONLY_KEYS: tuple[str, ...] = tuple(
    key for key in LEAF_KEYS if any(_matches(key, pattern) for pattern in _RESTART_ONLY_PATTERNS)
)
"""Spec 3.13: keys a reload cannot apply (listeners, the Lease, informer scope); a change warns instead."""


def restart_only_keys() -> list[str]:
    return list(RESTART_ONLY_KEYS)


def is_restart_only(key: str) -> bool:
    return key in RESTART_ONLY_KEYS


def leaf_values(config: SpotalisConfig) -> dict[str, Any]:
    """Every leaf key with its value, in declaration order."""
    values: dict[str, Any] = {}
    for key in LEAF_KEYS:
        node: Any = config
        for part in key.split("."):
            node = getattr(node, part)
        values[key] = node
    return values


class ConfigChange(NamedTuple):
    key: str
    old: Any
    new: Any
    restart_required: bool


def diff(old: SpotalisConfig, new: SpotalisConfig) -> list[ConfigChange]:
    """The leaves that differ, in key order; a reload applies them unless `restart_required`."""
    before, after = leaf_values(old), leaf_values(new)
    return [
        ConfigChange(key, before[key], after[key], is_restart_only(key))
        for key in LEAF_KEYS
        if before[key] != after[key]
    ]


# --- loading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    config: SpotalisConfig
    warnings: tuple[str, ...]
    sources: Mapping[str, Source]
    """Leaf key -> where its value came from."""
    variables: Mapping[str, str]
    """Leaf key -> the environment variable that set it (env and legacy-env sources only)."""
    path: Path | None = None


def load_config(path: Path | None, env: Mapping[str, str]) -> LoadedConfig:
    """The config from `path` (optional) and `env` (pass `os.environ`); raises ConfigError listing every
    problem, which the caller turns into exit status 2."""
    if path is None:
        return load_config_text("", env)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), [f"cannot read the config file: {err}"]) from None
    return load_config_text(text, env, path)


def load_config_text(text: str, env: Mapping[str, str], path: Path | None = None) -> LoadedConfig:
    """As `load_config`, from file content already read (the reloader hashes the same bytes it parses)."""
    origin = str(path) if path is not None else "defaults and environment"
    try:
        document = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(origin, [f"not valid YAML: {err}"]) from None
    if document is not None and not isinstance(document, dict):
        raise ConfigError(
            origin, [f"the top level must be a mapping of sections, not {type(document).__name__}"]
        )
    warnings: list[str] = []
    from_file = _known_keys(SpotalisConfig, document or {}, "", warnings)
    legacy, spotalis = legacy_overrides(env), spotalis_overrides(env)
    warnings += legacy.warnings + spotalis.warnings
    for key, variable in legacy.variables.items():
        if key in spotalis.variables:
            warnings.append(f"{variable} is overridden by {spotalis.variables[key]}")
    merged = copy.deepcopy(from_file)
    for key, value in (legacy.values | spotalis.values).items():
        _set_path(merged, key, value)
    variables = legacy.variables | spotalis.variables
    problems = legacy.problems + spotalis.problems
    try:
        config = SpotalisConfig.model_validate(merged)
    except ValidationError as err:
        problems += [_describe(error, variables) for error in err.errors(include_url=False)]
    if problems:
        raise ConfigError(origin, problems)
    env_sources: dict[str, Source] = dict.fromkeys(legacy.variables, "legacy-env")
    env_sources |= dict.fromkeys(spotalis.variables, "env")
    return LoadedConfig(
        config=config,
        warnings=tuple(warnings),
        sources=_sources(config, _present_leaves(from_file), env_sources),
        variables=variables,
        path=path,
    )


def _section_type(model: type[BaseModel], name: str) -> tuple[type[_Section] | None, bool]:
    """The model nested at field `name` and whether the field holds a list of them."""
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation, False
    args = get_args(annotation)
    if args and isinstance(args[0], type) and issubclass(args[0], _Section):
        return args[0], True
    return None, False


def _known_keys(
    model: type[BaseModel], data: Mapping[str, Any], path: str, warnings: list[str]
) -> dict[str, Any]:
    """`data` without unknown keys (each one a warning) and without nulls (unset, as in yaml.v3)."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}{key}"
        if key not in model.model_fields:
            hint = difflib.get_close_matches(str(key), model.model_fields, n=1)
            suggestion = f"; did you mean {path}{hint[0]}?" if hint else ""
            warnings.append(f"unknown config key {where} ignored{suggestion}")
            continue
        if value is None:
            continue
        nested, is_list = _section_type(model, key)
        if nested is not None and is_list and isinstance(value, list):
            kept[key] = [
                _known_keys(nested, item, f"{where}[{index}].", warnings) if isinstance(item, dict) else item
                for index, item in enumerate(value)
            ]
        elif nested is not None and not is_list and isinstance(value, dict):
            kept[key] = _known_keys(nested, value, f"{where}.", warnings)
        else:
            kept[key] = value
    return kept


def _present_leaves(
    data: Mapping[str, Any], model: type[BaseModel] = SpotalisConfig, path: str = ""
) -> set[str]:
    present: set[str] = set()
    for key, value in data.items():
        nested, is_list = _section_type(model, key)
        if nested is not None and not is_list and isinstance(value, dict):
            present |= _present_leaves(value, nested, f"{path}{key}.")
        else:
            present.add(f"{path}{key}")
    return present


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):  # the file has a scalar here; its own error is reported
            return
        node = child
    node[leaf] = value


def _sources(
    config: SpotalisConfig, from_file: set[str], from_env: Mapping[str, Source]
) -> dict[str, Source]:
    defaults = leaf_values(_DEFAULT_CONFIG)
    sources: dict[str, Source] = {}
    for key, value in leaf_values(config).items():
        if key in from_env:
            sources[key] = from_env[key]
        elif key in from_file:
            sources[key] = "yaml"
        else:
            sources[key] = "default" if value == defaults[key] else "derived"
    return sources


def _describe(error: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    """`key (env VAR): rule (got value)`; for a cross-field rule the key is the field that breaks it."""
    parts = [str(part) for part in error["loc"]]
    ctx = error.get("ctx") or {}
    if ctx.get("field"):
        parts.append(str(ctx["field"]))
    key = ""
    for part in parts:
        key += f"[{part}]" if part.isdigit() else (f".{part}" if key else part)
    base = re.sub(r"\[[0-9]+\].*", "", key)
    variable = variables.get(base)
    named = f"{key} (env {variable})" if variable else key or "(top level)"
    given = error.get("input")
    said = ctx.get("field") or isinstance(given, dict) or repr(given) in error["msg"]
    shown = "" if said else f" (got {_short(given)})"
    return f"{named}: {error['msg']}{shown}"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_DEFAULT_CONFIG = SpotalisConfig()


# --- check-config --------------------------------------------------------------------------------------


def format_value(value: object) -> str:
    """A leaf value as `check-config` and the reload diff show it: Go durations, lowercase booleans, JSON."""
    if isinstance(value, timedelta):
        return format_go_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return '""'
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(_plain(value), separators=(",", ":"))


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def check_config_report(loaded: LoadedConfig) -> str:
    """What `check-config` prints: each key, where its value came from, the value; then the warnings."""
    sources = [
        f"{loaded.sources[key]} {loaded.variables[key]}" if key in loaded.variables else loaded.sources[key]
        for key in LEAF_KEYS
    ]
    key_width = max(len(key) for key in LEAF_KEYS)
    source_width = max(len(source) for source in sources)
    header = f"Spotalis configuration from {loaded.path or 'defaults and environment'}"
    lines = [header, "", f"{'KEY':<{key_width}}  {'SOURCE':<{source_width}}  VALUE"]
    values = leaf_values(loaded.config)
    for key, source in zip(LEAF_KEYS, sources, strict=True):
        lines.append(f"{key:<{key_width}}  {source:<{source_width}}  {format_value(values[key])}")
    lines.append("")
    if loaded.warnings:
        lines.append(f"warnings ({len(loaded.warnings)}):")
        lines += [f"  - {warning}" for warning in loaded.warnings]
    else:
        lines.append("warnings: none")
    lines.append("config is valid")
    return "\n".join(lines) + "\n"


__all__ = [
    "ENV_BY_KEY",
    "EXIT_INVALID_CONFIG",
    "LEAF_KEYS",
    "PROVIDER_PRESETS",
    "RESTART_ONLY_KEYS",
    "ConfigChange",
    "ConfigError",
    "LoadedConfig",
    "SpotalisConfig",
    "check_config_report",
    "diff",
    "format_value",
    "load_config",
    "load_config_text",
    "parse_bool",
]
