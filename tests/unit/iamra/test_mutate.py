"""Spec 2.2 / 3.1 / 3.4 behaviour of the decision pipeline, written out by hand against the spec text."""

from __future__ import annotations

from typing import Any

import pytest

from kubewright.iamra.constants import Reason, SidecarMode, WarningKind
from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Denied, Injected, Skipped
from kubewright.iamra.pod import MalformedPod, MalformedReview

from .support import (
    PROFILE_ARN,
    REQUIRED,
    ROLE_ARN,
    TRUST_ANCHOR_ARN,
    WEBHOOK_VERSION,
    annotated_pod,
    assert_patch_invariants,
    config_with,
    decide_pod,
    review_request,
)

pytestmark = pytest.mark.unit


def injected(pod: dict[str, Any], overrides: dict[str, Any] | None = None, **kwargs: Any) -> Injected:
    outcome = decide_pod(pod, config_with(overrides), **kwargs)
    assert isinstance(outcome, Injected), outcome
    assert_patch_invariants(pod, outcome)
    return outcome


def sidecar_of(outcome: Injected) -> dict[str, Any]:
    spec = outcome.pod["spec"]
    if outcome.mode is SidecarMode.NATIVE:
        container: dict[str, Any] = spec["initContainers"][0]
    else:
        container = spec["containers"][-1]
    assert container["name"] == "iamra-credential-helper"
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var.get("value") for var in container.get("env") or []}


def test_sidecar_args_in_the_spec_order() -> None:
    outcome = injected(annotated_pod())
    assert sidecar_of(outcome)["args"] == [
        "serve",
        "--certificate", "/var/run/iamra/tls.crt",
        "--private-key", "/var/run/iamra/tls.key",
        "--trust-anchor-arn", TRUST_ANCHOR_ARN,
        "--profile-arn", PROFILE_ARN,
        "--role-arn", ROLE_ARN,
        "--region", "us-east-1",
        "--session-duration", "900",
        "--port", "9911",
    ]  # fmt: skip
    assert "command" not in sidecar_of(outcome)


def test_optional_args_session_name_then_debug() -> None:
    pod = annotated_pod({"iamra.aws/session-name": "ci-run", "iamra.aws/log-level": "debug"})
    assert sidecar_of(injected(pod))["args"][-3:] == ["--role-session-name", "ci-run", "--debug"]


@pytest.mark.parametrize("level", ["info", "warn", "error"])
def test_non_debug_levels_add_no_flag(level: str) -> None:
    args = sidecar_of(injected(annotated_pod({"iamra.aws/log-level": level})))["args"]
    assert "--debug" not in args
    assert not any(arg.startswith("--log") for arg in args)


def test_native_sidecar_shape() -> None:
    sidecar = sidecar_of(injected(annotated_pod()))
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert sidecar["volumeMounts"] == [
        {"name": "iamra-workload-cert", "mountPath": "/var/run/iamra", "readOnly": True}
    ]
    assert "ports" not in sidecar
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(sidecar)
    assert sidecar["securityContext"]["runAsNonRoot"] is True


def test_legacy_sidecar_is_last_without_restart_policy() -> None:
    outcome = injected(annotated_pod(containers=2), mode=SidecarMode.LEGACY)
    containers = outcome.pod["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "app-1", "iamra-credential-helper"]
    assert "restartPolicy" not in containers[-1]
    assert "initContainers" not in outcome.pod["spec"]
    assert env_of(containers[-1]) == {}  # the helper itself gets no endpoint env


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        (
            {"sidecar": {"image": "registry.example.com/helper:v1.9.0"}},
            ("image", "registry.example.com/helper:v1.9.0"),
        ),
        ({"sidecar": {"pullPolicy": "Always"}}, ("imagePullPolicy", "Always")),
        ({"sidecar": {"pullPolicy": "Never"}}, ("imagePullPolicy", "Never")),
    ],
)
def test_chart_image_values(overrides: dict[str, Any], check: tuple[str, str]) -> None:
    key, value = check
    assert sidecar_of(injected(annotated_pod(), overrides))[key] == value


def test_default_image_and_tag() -> None:
    sidecar = sidecar_of(injected(annotated_pod()))
    assert sidecar["image"] == "public.ecr.aws/rolesanywhere/credential-helper:v1.8.0"
    assert sidecar["imagePullPolicy"] == "IfNotPresent"


def test_port_flows_into_args_and_endpoint() -> None:
    outcome = injected(annotated_pod(), {"sidecar": {"port": 19911}})
    assert sidecar_of(outcome)["args"][-2:] == ["--port", "19911"]
    assert (
        env_of(outcome.pod["spec"]["containers"][0])["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        == "http://127.0.0.1:19911/"
    )


def test_chart_log_level_debug_and_annotation_override() -> None:
    assert "--debug" in sidecar_of(injected(annotated_pod(), {"sidecar": {"logLevel": "debug"}}))["args"]
    quiet = injected(annotated_pod({"iamra.aws/log-level": "error"}), {"sidecar": {"logLevel": "debug"}})
    assert "--debug" not in sidecar_of(quiet)["args"]


def test_token_duration_chart_default_and_annotation() -> None:
    def duration(outcome: Injected) -> str:
        args = sidecar_of(outcome)["args"]
        return str(args[args.index("--session-duration") + 1])

    assert duration(injected(annotated_pod())) == "900"  # always passed: the helper's own default is 3600
    assert duration(injected(annotated_pod(), {"sidecar": {"tokenDurationSeconds": 1800}})) == "1800"
    assert duration(injected(annotated_pod({"iamra.aws/token-duration": "43200"}))) == "43200"


def test_audience_is_inert_but_hashed_and_warned() -> None:
    plain = injected(annotated_pod())
    with_audience = injected(annotated_pod({"iamra.aws/audience": "sts.amazonaws.com"}))
    assert sidecar_of(plain) == sidecar_of(with_audience)  # nothing in the helper changes
    assert plain.injection_hash != with_audience.injection_hash
    assert [n.kind for n in with_audience.notices] == [WarningKind.AUDIENCE]


def test_region_annotation_sets_the_app_region_pair_only() -> None:
    outcome = injected(annotated_pod({"iamra.aws/region": "eu-west-1"}))
    env = outcome.pod["spec"]["containers"][0]["env"]
    assert [var["name"] for var in env] == [
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ]
    assert env_of(outcome.pod["spec"]["containers"][0])["AWS_DEFAULT_REGION"] == "eu-west-1"
    args = sidecar_of(outcome)["args"]
    assert args[args.index("--region") + 1] == "us-east-1"  # signing stays in the trust anchor's region


def test_no_region_annotation_no_region_env() -> None:
    assert env_of(injected(annotated_pod()).pod["spec"]["containers"][0]) == {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9911/",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4",
    }


def test_skip_containers() -> None:
    outcome = injected(annotated_pod({"iamra.aws/skip-containers": "app-1"}, containers=3))
    containers = outcome.pod["spec"]["containers"]
    assert [bool(env_of(c)) for c in containers] == [True, False, True]
    assert outcome.notices == ()


def test_skip_containers_applies_to_init_containers_too() -> None:
    pod = annotated_pod(
        {"iamra.aws/skip-containers": "migrate"}, initContainers=[{"name": "migrate", "image": "x"}]
    )
    outcome = injected(pod)
    assert env_of(outcome.pod["spec"]["initContainers"][1]) == {}


def test_csi_volume_exactly() -> None:
    [volume] = injected(annotated_pod()).pod["spec"]["volumes"]
    assert volume == {
        "name": "iamra-workload-cert",
        "csi": {
            "driver": "csi.cert-manager.io",
            "readOnly": True,
            "volumeAttributes": {
                "csi.cert-manager.io/issuer-name": "iamra-workload-ca",
                "csi.cert-manager.io/issuer-kind": "ClusterIssuer",
                "csi.cert-manager.io/issuer-group": "cert-manager.io",
                "csi.cert-manager.io/common-name": "${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}",
                "csi.cert-manager.io/duration": "2160h",
                "csi.cert-manager.io/renew-before": "720h",
                "csi.cert-manager.io/key-usages": "digital signature,client auth",
                "csi.cert-manager.io/certificate-file": "tls.crt",
                "csi.cert-manager.io/privatekey-file": "tls.key",
                "csi.cert-manager.io/ca-file": "ca.crt",
                "csi.cert-manager.io/fs-group": "65532",
            },
        },
    }


def test_secret_volume_exactly() -> None:
    [volume] = injected(annotated_pod({"iamra.aws/certificate-secret": "app-cert"})).pod["spec"]["volumes"]
    assert volume == {
        "name": "iamra-workload-cert",
        "secret": {"secretName": "app-cert", "defaultMode": 0o444},
    }


def test_app_containers_never_mount_the_key() -> None:
    outcome = injected(annotated_pod(containers=2))
    for container in outcome.pod["spec"]["containers"]:
        assert "volumeMounts" not in container


def test_dry_run_gets_the_same_patch() -> None:
    config = config_with()
    real = decide(review_request(annotated_pod()), config, SidecarMode.NATIVE, WEBHOOK_VERSION)
    dry = decide(review_request(annotated_pod(), dry_run=True), config, SidecarMode.NATIVE, WEBHOOK_VERSION)
    assert isinstance(real, Injected)
    assert isinstance(dry, Injected)
    assert dry.patch == real.patch


def test_namespace_and_name_do_not_change_the_patch() -> None:
    config = config_with()
    pod = annotated_pod()
    named = decide(review_request(pod, namespace="a"), config, SidecarMode.NATIVE, WEBHOOK_VERSION)
    generated = annotated_pod()
    del generated["metadata"]["name"]
    generated["metadata"]["generateName"] = "demo-"
    other = decide(review_request(generated, namespace="b"), config, SidecarMode.NATIVE, WEBHOOK_VERSION)
    assert isinstance(named, Injected)
    assert isinstance(other, Injected)
    assert named.patch == other.patch


def test_job_detected_by_owner_reference_in_legacy_mode() -> None:
    pod = annotated_pod()
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u"}]
    outcome = injected(pod, mode=SidecarMode.LEGACY)
    assert [n.kind for n in outcome.notices] == [WarningKind.LEGACY_JOB]
    assert injected(pod).notices == ()  # native: the Job completes, nothing to warn about


def test_warnings_are_clipped_to_120_characters() -> None:
    long_name = "c" * 63
    pod = annotated_pod({"iamra.aws/" + "x" * 200: "1"})
    pod["spec"]["containers"][0]["name"] = long_name
    pod["spec"]["containers"][0]["env"] = [{"name": "AWS_ACCESS_KEY_ID", "value": "k"}]
    outcome = injected(pod)
    assert outcome.notices
    for item in outcome.notices:
        assert len(item.text) <= 120
        assert item.text.startswith("iamra: ")


@pytest.mark.parametrize(
    ("operation", "reason"),
    [("UPDATE", Reason.NOT_CREATE), ("DELETE", Reason.NOT_CREATE), ("CONNECT", Reason.NOT_CREATE)],
)
def test_only_create_is_mutated(operation: str, reason: Reason) -> None:
    outcome = decide(
        review_request(annotated_pod(), operation=operation), config_with(), None, WEBHOOK_VERSION
    )
    assert outcome == Skipped(reason)


def test_skips_do_not_need_the_server_version() -> None:
    unannotated = annotated_pod()
    unannotated["metadata"]["annotations"] = {}
    assert decide_pod(unannotated, mode=None) == Skipped(Reason.NOT_ANNOTATED)


def test_server_version_unknown_denies_annotated_pods_with_503() -> None:
    outcome = decide_pod(annotated_pod(), mode=None)
    assert outcome == Denied(503, Reason.SERVER_VERSION_UNKNOWN, ("server version unknown",))


def test_validation_comes_before_the_version_check() -> None:
    outcome = decide_pod(annotated_pod({"iamra.aws/region": "x"}), mode=None)
    assert isinstance(outcome, Denied)
    assert outcome.code == 400


@pytest.mark.parametrize(
    ("pod", "path"),
    [
        ({"metadata": []}, "metadata"),
        (
            {"metadata": {"annotations": {"iamra.aws/role-arn": 1}}},
            "metadata.annotations['iamra.aws/role-arn']",
        ),
        ({"metadata": {"annotations": REQUIRED}, "spec": {"containers": {"name": "app"}}}, "spec.containers"),
        (
            {"metadata": {"annotations": REQUIRED}, "spec": {"containers": [{"name": None}]}},
            "spec.containers[0].name",
        ),
        (
            {
                "metadata": {"annotations": REQUIRED},
                "spec": {"containers": [{"name": "a", "env": [{"value": "x"}]}]},
            },
            "spec.containers[0].env[0].name",
        ),
    ],
)
def test_malformed_pods_raise_the_400_error_naming_the_field(pod: dict[str, Any], path: str) -> None:
    with pytest.raises(MalformedPod) as caught:
        decide_pod(pod)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"object.{path}: must be ")


def test_create_without_object_is_malformed() -> None:
    with pytest.raises(MalformedReview, match=r"request\.object"):
        decide(review_request(None), config_with(), SidecarMode.NATIVE, WEBHOOK_VERSION)


def test_unannotated_malformed_spec_is_not_read() -> None:
    """The decision reads a pod's spec only once it is opted in: odd pods elsewhere are not our business."""
    pod = {"metadata": {"name": "x"}, "spec": {"containers": "not-a-list"}}
    assert decide_pod(pod) == Skipped(Reason.NOT_ANNOTATED)


def test_pod_without_spec_gets_one() -> None:
    pod = {
        "metadata": {
            "annotations": {"iamra.aws/role-arn": ROLE_ARN, "iamra.aws/signing-profile-arn": PROFILE_ARN}
        }
    }
    outcome = decide_pod(pod)
    assert isinstance(outcome, Injected)
    assert outcome.patch[2]["path"] == "/spec"
