# Field names are the chart's camelCase keys on purpose: the ConfigMap `config.yaml` is the chart->webhook
# contract (spec 2.5), and pydantic-settings derives `KUBEWRIGHT_IAMRA_<FIELD>` env names from field names
# (an alias would drop the prefix from top-level env names).
# ruff: noqa: N815
"""The webhook's configuration: `config.yaml` of ConfigMap `<fullname>-config`, the chart->webhook contract.

Why strict: the chart renders this file, so an unknown key or a bad value means the chart and the webhook
disagree about the contract. Silently falling back to a default would inject pods with settings nobody
chose, so loading fails (the serve command exits 1) with one line per bad field naming the field, its
env variable and what is allowed. `KUBEWRIGHT_IAMRA_<FIELD>` env variables (`__` nests, e.g.
`KUBEWRIGHT_IAMRA_SIDECAR__PORT`) win over the file, so a Deployment can override one value.

Values the API server would otherwise accept and then fail on per pod at run time (the csi-driver's key
usages and durations, the profile/trust-anchor region pairing) are checked here, once, at start-up.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from kubewright.iamra import constants as c
from kubewright.iamra.arns import is_region, trust_anchor_placement
from kubewright.runtime.settings import ProcessSettings, SettingsError, load_settings, settings_config

ConfigError = SettingsError
"""Raised by `load_config`: `problems` has one line per bad field (path, env variable, what is allowed)."""

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LogLevel = Literal["debug", "info", "warn", "error"]
NativeSetting = Literal["auto", "true", "false"]

_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?", re.ASCII
)
_GO_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*", re.ASCII
)
# cert-manager's KeyUsage values (cert-manager.io/v1), which the csi-driver's `key-usages` attribute takes.
KEY_USAGES = (
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
)  # fmt: skip


def _quantity_text(value: object) -> object:
    """YAML gives `cpu: 1` as an int; Kubernetes accepts both, so keep the text form."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _check_quantity(value: str) -> str:
    if not _QUANTITY.fullmatch(value):
        raise ValueError(f"{value!r} must be a Kubernetes quantity such as 10m, 32Mi or 1")
    return value


def _check_go_duration(value: str) -> str:
    if not _GO_DURATION.fullmatch(value):
        raise ValueError(f"{value!r} must be a Go duration such as 2160h or 90m")
    return value


def _check_dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise ValueError(f"{value!r} must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')")
    return value


def _native_text(value: object) -> object:
    """`native: true` in YAML is a bool; the env variable gives the string: accept both spellings."""
    return str(value).lower() if isinstance(value, bool) else value


Quantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(_check_quantity)]
GoDuration = Annotated[str, AfterValidator(_check_go_duration)]
DnsSubdomain = Annotated[str, AfterValidator(_check_dns_subdomain)]
Port = Annotated[int, Field(ge=1, le=65535)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    """A nested block of the config: immutable, unknown keys rejected like the top level."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Section):
    """The sidecar's container resources (Kubernetes `ResourceRequirements` without claims)."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {
            "cpu": c.DEFAULT_SIDECAR_CPU_REQUEST,
            "memory": c.DEFAULT_SIDECAR_MEMORY_REQUEST,
        }
    )
    limits: dict[str, Quantity] = Field(default_factory=lambda: {"memory": c.DEFAULT_SIDECAR_MEMORY_LIMIT})


class Capabilities(_Section):
    add: tuple[str, ...] | None = None
    drop: tuple[str, ...] | None = None


class ProfileRef(_Section):
    """A seccomp or AppArmor profile reference."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    localhostProfile: str | None = None


class SELinuxOptions(_Section):
    user: str | None = None
    role: str | None = None
    type: str | None = None
    level: str | None = None


class SecurityContext(_Section):
    """The sidecar's container securityContext, typed so a misspelt key fails here instead of being
    dropped by the API server (a lost `readOnlyRootFilesystem` would weaken the pod silently).

    Fields left out keep the hardened default (PodSecurity `restricted`); `null` removes one.
    """

    allowPrivilegeEscalation: bool | None = False
    appArmorProfile: ProfileRef | None = None
    capabilities: Capabilities | None = Field(default_factory=lambda: Capabilities(drop=("ALL",)))
    privileged: bool | None = None
    procMount: Literal["Default", "Unmasked"] | None = None
    readOnlyRootFilesystem: bool | None = True
    runAsGroup: int | None = c.SIDECAR_UID
    runAsNonRoot: bool | None = True
    runAsUser: int | None = c.SIDECAR_UID
    seLinuxOptions: SELinuxOptions | None = None
    seccompProfile: ProfileRef | None = Field(default_factory=lambda: ProfileRef(type="RuntimeDefault"))


class SidecarConfig(_Section):
    image: NonEmpty = c.DEFAULT_SIDECAR_IMAGE
    pullPolicy: PullPolicy = c.DEFAULT_PULL_POLICY
    port: Port = c.DEFAULT_SIDECAR_PORT
    logLevel: LogLevel = c.DEFAULT_LOG_LEVEL
    tokenDurationSeconds: int = Field(
        default=c.DEFAULT_TOKEN_DURATION_SECONDS,
        ge=c.MIN_TOKEN_DURATION_SECONDS,
        le=c.MAX_TOKEN_DURATION_SECONDS,
    )
    native: Annotated[NativeSetting, BeforeValidator(_native_text)] = "auto"
    nativeRefreshSeconds: int = Field(default=c.DEFAULT_NATIVE_REFRESH_SECONDS, ge=1)
    resources: Resources = Field(default_factory=Resources)
    securityContext: SecurityContext = Field(default_factory=SecurityContext)

    @cached_property
    def container_resources(self) -> dict[str, Any]:
        """The resources as they go into the pod (empty maps left out); computed once per config."""
        dumped = self.resources.model_dump(mode="json")
        return {key: value for key, value in dumped.items() if value}

    @cached_property
    def container_security_context(self) -> dict[str, Any]:
        """The securityContext as it goes into the pod (unset fields left out); computed once per config."""
        dumped: dict[str, Any] = self.securityContext.model_dump(mode="json", exclude_none=True)
        return dumped


class WorkloadCertificateConfig(_Section):
    mode: Literal["csi", "secret"] = "csi"
    mountPath: NonEmpty = c.DEFAULT_MOUNT_PATH
    issuerName: DnsSubdomain = c.DEFAULT_WORKLOAD_ISSUER_NAME
    issuerKind: Literal["Issuer", "ClusterIssuer"] = c.DEFAULT_WORKLOAD_ISSUER_KIND
    commonName: NonEmpty = c.DEFAULT_WORKLOAD_COMMON_NAME
    keyUsages: NonEmpty = c.DEFAULT_WORKLOAD_KEY_USAGES
    duration: GoDuration = c.DEFAULT_WORKLOAD_DURATION
    renewBefore: GoDuration = c.DEFAULT_WORKLOAD_RENEW_BEFORE
    fsGroup: int = Field(default=c.DEFAULT_WORKLOAD_FS_GROUP, ge=0, le=2**31 - 1)

    @field_validator("mountPath")
    @classmethod
    def _absolute_mount_path(cls, value: str) -> str:
        parts = value.split("/")
        if not value.startswith("/") or value == "/" or ".." in parts or ":" in value:
            raise ValueError(f"{value!r} must be an absolute path below / without '..' or ':'")
        return value.rstrip("/")

    @field_validator("keyUsages")
    @classmethod
    def _known_key_usages(cls, value: str) -> str:
        unknown = [usage for usage in (u.strip() for u in value.split(",")) if usage not in KEY_USAGES]
        if unknown:
            raise ValueError(
                f"unknown key usage(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(KEY_USAGES)}"
            )
        return value


class ServerConfig(_Section):
    port: Port = c.DEFAULT_SERVER_PORT
    certFile: NonEmpty = c.DEFAULT_SERVER_CERT_FILE
    keyFile: NonEmpty = c.DEFAULT_SERVER_KEY_FILE
    reloadIntervalSeconds: float = Field(default=c.DEFAULT_RELOAD_INTERVAL_SECONDS, gt=0)
    maxBodyBytes: int = Field(default=c.DEFAULT_MAX_BODY_BYTES, ge=1024)
    shutdownDelaySeconds: float = Field(default=c.DEFAULT_SHUTDOWN_DELAY_SECONDS, ge=0)


class MetricsConfig(_Section):
    enabled: bool = True
    port: Port = c.DEFAULT_METRICS_PORT
    path: str = Field(default=c.DEFAULT_METRICS_PATH, pattern=r"^/")


class LoggingConfig(_Section):
    format: Literal["json", "console"] = "json"
    level: LogLevel = "info"


class IamraConfig(ProcessSettings):
    """The whole webhook configuration; immutable, passed explicitly to whatever needs it."""

    model_config = settings_config(c.ENV_PREFIX)

    trustAnchorArn: str
    region: str
    failurePolicy: Literal["Fail", "Ignore"] = "Fail"
    sidecar: SidecarConfig = Field(default_factory=SidecarConfig)
    workloadCertificate: WorkloadCertificateConfig = Field(default_factory=WorkloadCertificateConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("trustAnchorArn")
    @classmethod
    def _trust_anchor_arn(cls, value: str) -> str:
        if trust_anchor_placement(value) is None:
            raise ValueError(
                f"{value!r} must be a trust anchor ARN "
                "(arn:aws:rolesanywhere:<region>:<12-digit account>:trust-anchor/<uuid>)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region_of_trust_anchor(cls, value: str, info: ValidationInfo) -> str:
        """The helper signs in this region; it must be the trust anchor's or every CreateSession fails."""
        if not is_region(value):
            raise ValueError(f"{value!r} must be an AWS region such as us-east-1")
        anchor = trust_anchor_placement(str(info.data.get("trustAnchorArn", "")))
        if anchor is not None and anchor.region != value:
            raise ValueError(f"region ({value}) must match the trust anchor region ({anchor.region})")
        return value

    @cached_property
    def partition(self) -> str:
        """The trust anchor's partition (aws, aws-cn, aws-us-gov, ...), which profiles must share."""
        anchor = trust_anchor_placement(self.trustAnchorArn)
        if anchor is None:  # unreachable once validated; keeps the type honest
            raise ValueError(f"trustAnchorArn {self.trustAnchorArn!r} is not a trust anchor ARN")
        return anchor.partition


def load_config(path: Path | None) -> IamraConfig:
    """The config from `path` (the ConfigMap's `config.yaml`) with `KUBEWRIGHT_IAMRA_*` env overrides.

    Raises `ConfigError` naming every bad field; the caller turns it into exit status 1.
    """
    return load_settings(IamraConfig, path)


def config_from_mapping(data: dict[str, Any]) -> IamraConfig:
    """The config from an already-parsed mapping, without env overrides (tests, previews of a values file)."""
    try:
        return IamraConfig.model_validate(data)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in err.errors(include_url=False)
        ]
        raise SettingsError("IamraConfig from a mapping", problems) from None
