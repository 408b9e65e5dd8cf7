"""Every public contract string of the IAM Roles Anywhere injector, in one place (spec 2.1, 2.2, 2.5, 7).

Users' manifests name the annotations, the chart names the webhook and the config keys, dashboards name
the metrics, and SDKs read the env names: changing one of these breaks someone who switched from the
upstream design, so tests assert each against the spec tables instead of trusting a grep.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# --- 2.1 namespace label and pod annotations -------------------------------------------------------------
ANNOTATION_PREFIX: Final = "iamra.aws/"
NAMESPACE_LABEL: Final = "iamra.aws/enable"
NAMESPACE_LABEL_VALUE: Final = "true"

ROLE_ARN_ANNOTATION: Final = "iamra.aws/role-arn"
PROFILE_ARN_ANNOTATION: Final = "iamra.aws/signing-profile-arn"
SESSION_NAME_ANNOTATION: Final = "iamra.aws/session-name"
TOKEN_DURATION_ANNOTATION: Final = "iamra.aws/token-duration"
REGION_ANNOTATION: Final = "iamra.aws/region"
LOG_LEVEL_ANNOTATION: Final = "iamra.aws/log-level"
AUDIENCE_ANNOTATION: Final = "iamra.aws/audience"
SKIP_CONTAINERS_ANNOTATION: Final = "iamra.aws/skip-containers"
CERTIFICATE_SECRET_ANNOTATION: Final = "iamra.aws/certificate-secret"
INJECTED_ANNOTATION: Final = "iamra.aws/injected"
INJECTION_HASH_ANNOTATION: Final = "iamra.aws/injection-hash"
INJECTED_VALUE: Final = "true"

REQUIRED_ANNOTATIONS: Final = (ROLE_ARN_ANNOTATION, PROFILE_ARN_ANNOTATION)
KNOWN_ANNOTATIONS: Final = frozenset(
    {
        ROLE_ARN_ANNOTATION,
        PROFILE_ARN_ANNOTATION,
        SESSION_NAME_ANNOTATION,
        TOKEN_DURATION_ANNOTATION,
        REGION_ANNOTATION,
        LOG_LEVEL_ANNOTATION,
        AUDIENCE_ANNOTATION,
        SKIP_CONTAINERS_ANNOTATION,
        CERTIFICATE_SECRET_ANNOTATION,
        INJECTED_ANNOTATION,
        INJECTION_HASH_ANNOTATION,
    }
)

# --- 2.2 injected objects, env and sidecar args ------------------------------------------------------------
SIDECAR_NAME: Final = "iamra-credential-helper"
VOLUME_NAME: Final = "iamra-workload-cert"
DEFAULT_MOUNT_PATH: Final = "/var/run/iamra"
CERTIFICATE_FILE: Final = "tls.crt"
PRIVATE_KEY_FILE: Final = "tls.key"
CA_FILE: Final = "ca.crt"
SIDECAR_SUBCOMMAND: Final = "serve"
NATIVE_SIDECAR_RESTART_POLICY: Final = "Always"
TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"
SECRET_VOLUME_DEFAULT_MODE: Final = 0o444

ENV_METADATA_ENDPOINT: Final = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
ENV_METADATA_ENDPOINT_MODE: Final = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
METADATA_ENDPOINT_MODE: Final = "IPv4"
# The helper's `serve` binds 127.0.0.1 only, so the endpoint must be loopback (the [fix] of spec 2.2).
METADATA_ENDPOINT_TEMPLATE: Final = "http://127.0.0.1:{port}/"
ENV_REGION: Final = "AWS_REGION"
ENV_DEFAULT_REGION: Final = "AWS_DEFAULT_REGION"
# Set in a container, these win over the metadata endpoint in the SDK credential chain (3.4 warnings).
ENV_PRECEDING_CREDENTIALS: Final = ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE")
ENV_PRECEDING_CREDENTIALS_PREFIX: Final = "AWS_CONTAINER_CREDENTIALS_"
ENV_METADATA_DISABLED: Final = "AWS_EC2_METADATA_DISABLED"

# --- 3.4 cert-manager csi-driver volume ---------------------------------------------------------------------
CSI_DRIVER: Final = "csi.cert-manager.io"
CSI_ATTRIBUTE_PREFIX: Final = "csi.cert-manager.io/"
CERT_MANAGER_GROUP: Final = "cert-manager.io"

# --- 2.4 / 2.5 endpoints, webhook and config ----------------------------------------------------------------
WEBHOOK_NAME: Final = "inject.iamra.aws"
MUTATE_PATH: Final = "/mutate"
HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
ENV_PREFIX: Final = "KUBEWRIGHT_IAMRA_"
CONFIG_MAP_SUFFIX: Final = "-config"
CONFIG_KEY: Final = "config.yaml"
JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
WINDOWS_OS_LABEL: Final = "kubernetes.io/os"

# --- 2.3 / 2.5 defaults ------------------------------------------------------------------------------------
DEFAULT_SIDECAR_IMAGE: Final = "public.ecr.aws/rolesanywhere/credential-helper:v1.8.0"
DEFAULT_PULL_POLICY: Final = "IfNotPresent"
DEFAULT_SIDECAR_PORT: Final = 9911
DEFAULT_LOG_LEVEL: Final = "info"
LOG_LEVELS: Final = ("debug", "info", "warn", "error")
DEFAULT_TOKEN_DURATION_SECONDS: Final = 900
MIN_TOKEN_DURATION_SECONDS: Final = 900  # CreateSession's range
MAX_TOKEN_DURATION_SECONDS: Final = 43200
DEFAULT_NATIVE_REFRESH_SECONDS: Final = 600
DEFAULT_SIDECAR_CPU_REQUEST: Final = "10m"
DEFAULT_SIDECAR_MEMORY_REQUEST: Final = "32Mi"
DEFAULT_SIDECAR_MEMORY_LIMIT: Final = "128Mi"
SIDECAR_UID: Final = 65532  # the distroless nonroot user of the helper image

DEFAULT_WORKLOAD_ISSUER_NAME: Final = "iamra-workload-ca"
DEFAULT_WORKLOAD_ISSUER_KIND: Final = "ClusterIssuer"
DEFAULT_WORKLOAD_COMMON_NAME: Final = "${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}"
DEFAULT_WORKLOAD_KEY_USAGES: Final = "digital signature,client auth"
DEFAULT_WORKLOAD_DURATION: Final = "2160h"
DEFAULT_WORKLOAD_RENEW_BEFORE: Final = "720h"
DEFAULT_WORKLOAD_FS_GROUP: Final = 65532

DEFAULT_SERVER_PORT: Final = 8443
DEFAULT_SERVER_CERT_FILE: Final = "/etc/iamra/tls/tls.crt"
DEFAULT_SERVER_KEY_FILE: Final = "/etc/iamra/tls/tls.key"
DEFAULT_RELOAD_INTERVAL_SECONDS: Final = 10
DEFAULT_MAX_BODY_BYTES: Final = 4194304
DEFAULT_SHUTDOWN_DELAY_SECONDS: Final = 5
DEFAULT_METRICS_PORT: Final = 9090
DEFAULT_METRICS_PATH: Final = "/metrics"

DEFAULT_CA_NAMESPACE: Final = "cert-manager"
DEFAULT_CA_SECRET: Final = "iamra-workload-ca"

# --- 3.3 injection hash ------------------------------------------------------------------------------------
CANONICAL_SCHEMA_VERSION: Final = 1

# --- 7 observability ---------------------------------------------------------------------------------------
METRIC_ADMISSION_REQUESTS: Final = "iamra_injector_admission_requests_total"
METRIC_ADMISSION_DURATION: Final = "iamra_injector_admission_duration_seconds"
METRIC_WARNINGS: Final = "iamra_injector_warnings_total"
METRIC_TLS_RELOADS: Final = "iamra_injector_tls_reloads_total"
METRIC_TLS_CERTIFICATE_EXPIRY: Final = "iamra_injector_tls_certificate_expiry_timestamp_seconds"
METRIC_NATIVE_SIDECAR: Final = "iamra_injector_native_sidecar"
METRIC_BUILD_INFO: Final = "iamra_injector_build_info"
ADMISSION_DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)

WARNING_PREFIX: Final = "iamra: "
WARNING_MAX_CHARS: Final = 120
INTERNAL_ERROR_WARNING: Final = "iamra: injection skipped (internal error)"
SERVER_VERSION_UNKNOWN_MESSAGE: Final = "server version unknown"


class SidecarMode(StrEnum):
    """Where the sidecar goes: a native sidecar (first init container) or the last app container."""

    NATIVE = "native"
    LEGACY = "legacy"


class Result(StrEnum):
    """`result` label of the admission metrics."""

    INJECTED = "injected"
    SKIPPED = "skipped"
    DENIED = "denied"
    ERROR = "error"


class Reason(StrEnum):
    """`reason` label of `iamra_injector_admission_requests_total`: a bounded set, never free text."""

    # 3.1 step 2: allowed without a patch
    NOT_POD = "not_pod"
    NOT_CREATE = "not_create"
    DELETING = "deleting"
    NOT_ANNOTATED = "not_annotated"
    ALREADY_INJECTED = "already_injected"
    # 3.2: denied
    INVALID_ANNOTATION = "invalid_annotation"
    HOST_NETWORK = "host_network"
    PORT_CONFLICT = "port_conflict"
    WINDOWS = "windows"
    VOLUME_CONFLICT = "volume_conflict"
    # 3.6: denied with 503 until the server version is known
    SERVER_VERSION_UNKNOWN = "server_version_unknown"
    # injected, labelled by where the sidecar went
    NATIVE = "native"
    LEGACY = "legacy"
    # 3.1 step 5
    ERROR = "error"


class WarningKind(StrEnum):
    """`kind` label of `iamra_injector_warnings_total`: one value per warning of spec 3.1 / 3.4."""

    PARTIAL_ANNOTATIONS = "partial_annotations"
    MARKER_MISMATCH = "marker_mismatch"
    ENV_EXISTS = "env_exists"
    CREDENTIALS_ENV = "credentials_env"
    METADATA_DISABLED = "metadata_disabled"
    UNKNOWN_ANNOTATION = "unknown_annotation"
    AUDIENCE = "audience"
    ALL_SKIPPED = "all_skipped"
    UNKNOWN_SKIP_CONTAINER = "unknown_skip_container"
    LEGACY_JOB = "legacy_job"
    INTERNAL_ERROR = "internal_error"
