"""Spec 3.3: the canonical object, its bytes and the injection hash, including the spec's test vector."""

from __future__ import annotations

import hashlib
import json

import pytest

from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.effective import EffectiveConfig, effective_config
from kubewright.iamra.outcome import Injected
from kubewright.iamra.validate import PodAnnotations

from .support import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN, annotated_pod, config_with, decide_pod

pytestmark = pytest.mark.unit

VECTOR_JSON = (
    '{"appRegion":null,"audience":null,"certificate":{"commonName":"${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}",'
    '"duration":"2160h","issuerKind":"ClusterIssuer","issuerName":"iamra-workload-ca","mode":"csi",'
    '"renewBefore":"720h"},"image":"public.ecr.aws/rolesanywhere/credential-helper:1.8.0",'
    '"imagePullPolicy":"IfNotPresent","logLevel":"info","port":9911,'
    '"profileArn":"arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",'
    '"roleArn":"arn:aws:iam::123456789012:role/hello-world","schema":1,"sessionDurationSeconds":900,'
    '"sessionName":null,"sidecarMode":"native","signingRegion":"us-east-1","skipContainers":[],'
    '"trustAnchorArn":"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0f6d3b2e-7c1a-4b8e-9d2f-1a2b3c4d5e6f",'
    '"webhookVersion":"0.0.0-test"}'
)
VECTOR_SHA256 = "ad803b6a9656714ac566384f366e5e098e8498fb14ccea7d102f49d76d31e612"
VECTOR_IMAGE = "public.ecr.aws/rolesanywhere/credential-helper:1.8.0"
CANONICAL_KEYS = {
    "schema", "webhookVersion", "trustAnchorArn", "profileArn", "roleArn", "signingRegion", "appRegion",
    "sessionDurationSeconds", "sessionName", "logLevel", "audience", "port", "image", "imagePullPolicy",
    "sidecarMode", "certificate", "skipContainers",
}  # fmt: skip


def vector_effective() -> EffectiveConfig:
    """Spec 2.5: version 0.0.0-test, the given TA/profile/role/image, everything else default, native, csi."""
    config = config_with({"sidecar": {"image": VECTOR_IMAGE}})
    assert config.trustAnchorArn == TRUST_ANCHOR_ARN
    annotations = PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN)
    return effective_config(annotations, config, SidecarMode.NATIVE, "0.0.0-test")


def test_spec_hash_vector_reproduces_byte_for_byte() -> None:
    effective = vector_effective()
    canonical = effective.canonical_json()
    assert len(canonical) == 781
    assert canonical.decode("utf-8") == VECTOR_JSON
    assert hashlib.sha256(canonical).hexdigest() == VECTOR_SHA256
    assert effective.injection_hash() == VECTOR_SHA256


def test_spec_hash_vector_through_the_whole_pipeline() -> None:
    pod = annotated_pod()
    outcome = decide_pod(pod, config_with({"sidecar": {"image": VECTOR_IMAGE}}))
    assert isinstance(outcome, Injected)
    assert outcome.injection_hash == VECTOR_SHA256
    assert outcome.pod["metadata"]["annotations"]["iamra.aws/injection-hash"] == VECTOR_SHA256


def test_every_key_is_present_and_null_when_unset() -> None:
    canonical = json.loads(vector_effective().canonical_json())
    assert set(canonical) == CANONICAL_KEYS
    assert canonical["appRegion"] is None
    assert canonical["sessionName"] is None
    assert canonical["audience"] is None


def test_annotations_win_over_chart_values() -> None:
    config = config_with({"sidecar": {"logLevel": "warn", "tokenDurationSeconds": 1800}})
    annotations = PodAnnotations(
        role_arn=ROLE_ARN,
        profile_arn=PROFILE_ARN,
        token_duration_seconds=3600,
        log_level="debug",
        region="eu-west-1",
        session_name="ci",
        audience="sts.amazonaws.com",
        skip_containers=("b", "a", "b"),
    )
    canonical = effective_config(annotations, config, SidecarMode.LEGACY, "1").canonical()
    assert canonical["sessionDurationSeconds"] == 3600
    assert canonical["logLevel"] == "debug"
    assert canonical["appRegion"] == "eu-west-1"
    assert canonical["signingRegion"] == "us-east-1"  # the signing region stays the chart's (trust anchor's)
    assert canonical["skipContainers"] == ["a", "b"]  # sorted, unique
    assert canonical["sidecarMode"] == "legacy"
    chart_only = effective_config(
        PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN), config, SidecarMode.NATIVE, "1"
    ).canonical()
    assert (chart_only["sessionDurationSeconds"], chart_only["logLevel"]) == (1800, "warn")


def test_secret_certificate_canonical_form() -> None:
    annotations = PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN, certificate_secret="app-cert")
    canonical = effective_config(annotations, config_with(), SidecarMode.NATIVE, "1").canonical()
    assert canonical["certificate"] == {"mode": "secret", "secretName": "app-cert"}


def test_non_ascii_is_hashed_as_utf8_not_escaped() -> None:
    effective = effective_config(
        PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN, audience="audiencé"),
        config_with(),
        SidecarMode.NATIVE,
        "1",
    )
    assert "audiencé".encode() in effective.canonical_json()


def test_every_input_changes_the_hash() -> None:
    base = vector_effective()
    variants = [
        effective_config(
            PodAnnotations(role_arn=ROLE_ARN + "2", profile_arn=PROFILE_ARN),
            config_with({"sidecar": {"image": VECTOR_IMAGE}}),
            SidecarMode.NATIVE,
            "0.0.0-test",
        ),
        effective_config(
            PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN),
            config_with({"sidecar": {"image": VECTOR_IMAGE}}),
            SidecarMode.LEGACY,
            "0.0.0-test",
        ),
        effective_config(
            PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN),
            config_with({"sidecar": {"image": VECTOR_IMAGE}}),
            SidecarMode.NATIVE,
            "0.0.1",
        ),
        effective_config(
            PodAnnotations(role_arn=ROLE_ARN, profile_arn=PROFILE_ARN),
            config_with({"sidecar": {"image": VECTOR_IMAGE, "port": 9912}}),
            SidecarMode.NATIVE,
            "0.0.0-test",
        ),
    ]
    assert len({base.injection_hash(), *(variant.injection_hash() for variant in variants)}) == 5


def test_same_input_same_patch_bytes() -> None:
    first = decide_pod(annotated_pod(containers=3))
    second = decide_pod(annotated_pod(containers=3))
    assert isinstance(first, Injected)
    assert isinstance(second, Injected)
    assert json.dumps(first.patch) == json.dumps(second.patch)
