"""Contract strings against the spec tables (2.1, 2.2, 2.3, 2.5, 3.4, 7): a rename here breaks users."""

from __future__ import annotations

import pytest

from kubewright.iamra import constants as c
from kubewright.iamra.constants import Reason, Result, WarningKind

pytestmark = pytest.mark.unit


def test_namespace_label_and_pod_annotations() -> None:
    assert (c.NAMESPACE_LABEL, c.NAMESPACE_LABEL_VALUE) == ("iamra.aws/enable", "true")
    assert c.REQUIRED_ANNOTATIONS == ("iamra.aws/role-arn", "iamra.aws/signing-profile-arn")
    assert {
        "iamra.aws/role-arn",
        "iamra.aws/signing-profile-arn",
        "iamra.aws/session-name",
        "iamra.aws/token-duration",
        "iamra.aws/region",
        "iamra.aws/log-level",
        "iamra.aws/audience",
        "iamra.aws/skip-containers",
        "iamra.aws/certificate-secret",
        "iamra.aws/injected",
        "iamra.aws/injection-hash",
    } == c.KNOWN_ANNOTATIONS
    assert (c.INJECTED_ANNOTATION, c.INJECTED_VALUE) == ("iamra.aws/injected", "true")
    assert c.INJECTION_HASH_ANNOTATION == "iamra.aws/injection-hash"


def test_injected_objects_and_env() -> None:
    assert c.SIDECAR_NAME == "iamra-credential-helper"
    assert (c.VOLUME_NAME, c.DEFAULT_MOUNT_PATH) == ("iamra-workload-cert", "/var/run/iamra")
    assert c.ENV_METADATA_ENDPOINT == "AWS_EC2_METADATA_SERVICE_ENDPOINT"
    assert c.METADATA_ENDPOINT_TEMPLATE.format(port=9911) == "http://127.0.0.1:9911/"
    assert (c.ENV_METADATA_ENDPOINT_MODE, c.METADATA_ENDPOINT_MODE) == (
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "IPv4",
    )
    assert (c.ENV_REGION, c.ENV_DEFAULT_REGION) == ("AWS_REGION", "AWS_DEFAULT_REGION")
    assert (c.CSI_DRIVER, c.CSI_ATTRIBUTE_PREFIX, c.CERT_MANAGER_GROUP) == (
        "csi.cert-manager.io",
        "csi.cert-manager.io/",
        "cert-manager.io",
    )
    assert c.TERMINATION_MESSAGE_POLICY == "FallbackToLogsOnError"
    assert c.SECRET_VOLUME_DEFAULT_MODE == 0o444


def test_defaults() -> None:
    assert c.WEBHOOK_NAME == "inject.iamra.aws"
    assert c.DEFAULT_SIDECAR_IMAGE == "public.ecr.aws/rolesanywhere/credential-helper:v1.8.0"
    assert (c.DEFAULT_SIDECAR_PORT, c.DEFAULT_TOKEN_DURATION_SECONDS, c.DEFAULT_LOG_LEVEL) == (
        9911,
        900,
        "info",
    )
    assert (c.MIN_TOKEN_DURATION_SECONDS, c.MAX_TOKEN_DURATION_SECONDS) == (900, 43200)
    assert c.LOG_LEVELS == ("debug", "info", "warn", "error")
    assert (c.DEFAULT_SERVER_PORT, c.DEFAULT_METRICS_PORT, c.DEFAULT_METRICS_PATH) == (8443, 9090, "/metrics")
    assert (c.DEFAULT_SERVER_CERT_FILE, c.DEFAULT_SERVER_KEY_FILE) == (
        "/etc/iamra/tls/tls.crt",
        "/etc/iamra/tls/tls.key",
    )
    assert (
        c.DEFAULT_MAX_BODY_BYTES,
        c.DEFAULT_RELOAD_INTERVAL_SECONDS,
        c.DEFAULT_SHUTDOWN_DELAY_SECONDS,
    ) == (
        4194304,
        10,
        5,
    )
    assert (c.ENV_PREFIX, c.CONFIG_MAP_SUFFIX, c.CONFIG_KEY) == (
        "KUBEWRIGHT_IAMRA_",
        "-config",
        "config.yaml",
    )
    assert (c.DEFAULT_CA_NAMESPACE, c.DEFAULT_CA_SECRET) == ("cert-manager", "iamra-workload-ca")
    assert c.DEFAULT_WORKLOAD_FS_GROUP == 65532


def test_metric_names_and_labels() -> None:
    assert c.METRIC_ADMISSION_REQUESTS == "iamra_injector_admission_requests_total"
    assert c.METRIC_ADMISSION_DURATION == "iamra_injector_admission_duration_seconds"
    assert c.METRIC_WARNINGS == "iamra_injector_warnings_total"
    assert c.METRIC_TLS_RELOADS == "iamra_injector_tls_reloads_total"
    assert c.METRIC_TLS_CERTIFICATE_EXPIRY == "iamra_injector_tls_certificate_expiry_timestamp_seconds"
    assert c.METRIC_NATIVE_SIDECAR == "iamra_injector_native_sidecar"
    assert c.METRIC_BUILD_INFO == "iamra_injector_build_info"
    assert (c.ADMISSION_DURATION_BUCKETS[0], c.ADMISSION_DURATION_BUCKETS[-1]) == (0.0005, 0.5)
    assert {r.value for r in Result} == {"injected", "skipped", "denied", "error"}
    spec_reasons = {"not_pod", "not_create", "deleting", "not_annotated", "already_injected"}
    spec_reasons |= {"invalid_annotation", "host_network", "port_conflict"}
    assert spec_reasons <= {r.value for r in Reason}
    assert {"env_exists", "legacy_job"} <= {k.value for k in WarningKind}


def test_internal_error_warning() -> None:
    assert c.INTERNAL_ERROR_WARNING == "iamra: injection skipped (internal error)"
    assert c.WARNING_PREFIX == "iamra: "
    assert c.WARNING_MAX_CHARS == 120
