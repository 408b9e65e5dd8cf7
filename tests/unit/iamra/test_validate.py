"""Spec 3.2 rule by rule: accepted and rejected values, exact message forms, all errors collected."""

from __future__ import annotations

from typing import Any

import pytest

from kubewright.iamra.constants import Reason, WarningKind
from kubewright.iamra.outcome import Denied, Injected
from kubewright.iamra.pod import read_pod
from kubewright.iamra.validate import quote, validate

from .support import PROFILE_ARN, REQUIRED, annotated_pod, config_with, decide_pod

pytestmark = pytest.mark.unit

GOV_ACCOUNT = "arn:aws-us-gov:rolesanywhere:us-gov-west-1:123456789012"
TA_GOV = f"{GOV_ACCOUNT}:trust-anchor/0f6d3b2e-7c1a-4b8e-9d2f-1a2b3c4d5e6f"
PROFILE_GOV = f"{GOV_ACCOUNT}:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
FULLWIDTH_900 = "\uff19\uff10\uff10"  # Unicode digits: not [0-9]


def messages_for(annotations: dict[str, str], **spec: Any) -> list[str]:
    pod = annotated_pod(annotations, **spec)
    result = validate(pod["metadata"]["annotations"], read_pod(pod), config_with())
    return [problem.message for problem in result.problems]


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:iam::123456789012:role/hello-world",
        "arn:aws:iam::123456789012:role/service-role/team/App+Runner=1,x.y@z-",
        "arn:aws-us-gov:iam::123456789012:role/r",
        "arn:aws-cn:iam::123456789012:role/" + "r" * 64,
        "  arn:aws:iam::123456789012:role/trimmed  ",
    ],
)
def test_role_arn_accepted(value: str) -> None:
    assert messages_for({"iamra.aws/role-arn": value}) == []


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::12345678901:role/short-account",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam::123456789012:role/has space",
        "arn:aws:iam::123456789012:role/x\ny",
        "arn:AWS:iam::123456789012:role/x",
        f"arn:aws:iam::{FULLWIDTH_900}456789012:role/x",
        "arn:aws:iam::123456789012:role/é",
    ],
)
def test_role_arn_rejected(value: str) -> None:
    assert messages_for({"iamra.aws/role-arn": value}) == [
        f"iamra.aws/role-arn: {quote(value.strip())} must be an IAM role ARN "
        "(arn:aws:iam::<12-digit account>:role/[<path>/]<name>)"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4",
        "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "arn:aws:rolesanywhere:useast1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d\n-9e0f1a2b3c4d",
    ],
)
def test_profile_arn_shape_rejected(value: str) -> None:
    [message] = messages_for({"iamra.aws/signing-profile-arn": value})
    assert message.startswith(
        f"iamra.aws/signing-profile-arn: {quote(value)} must be an IAM Roles Anywhere profile ARN"
    )


def test_profile_must_share_partition_and_region_with_the_trust_anchor() -> None:
    gov = config_with({"trustAnchorArn": TA_GOV, "region": "us-gov-west-1"})
    gov_profile = (
        "arn:aws-us-gov:rolesanywhere:us-gov-west-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    )
    pod = annotated_pod({"iamra.aws/signing-profile-arn": gov_profile})
    assert validate(pod["metadata"]["annotations"], read_pod(pod), gov).problems == ()
    standard = annotated_pod()
    [problem] = validate(standard["metadata"]["annotations"], read_pod(standard), gov).problems
    assert problem.message == (
        f"iamra.aws/signing-profile-arn: {quote(PROFILE_ARN)} must be in the trust anchor's partition and "
        "region (aws-us-gov, us-gov-west-1)"
    )


@pytest.mark.parametrize("value", ["900", "43200", "3600", " 1800 ", "0900"])
def test_token_duration_accepted(value: str) -> None:
    assert messages_for({"iamra.aws/token-duration": value}) == []


@pytest.mark.parametrize(
    "value", ["15m", "-5", "899", "43201", "", "1e3", "3600.0", "+3600", FULLWIDTH_900, "9" * 5000, "0x384"]
)
def test_token_duration_rejected_with_the_spec_message(value: str) -> None:
    assert messages_for({"iamra.aws/token-duration": value}) == [
        f"iamra.aws/token-duration: {quote(value)} must be whole seconds in [900, 43200]"
    ]


def test_token_duration_message_is_exactly_the_spec_example() -> None:
    assert messages_for({"iamra.aws/token-duration": "15m"}) == [
        'iamra.aws/token-duration: "15m" must be whole seconds in [900, 43200]'
    ]


@pytest.mark.parametrize(
    "value", ["us-east-1", "eu-central-2", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1"]
)
def test_region_accepted(value: str) -> None:
    assert messages_for({"iamra.aws/region": value}) == []


@pytest.mark.parametrize("value", ["", "us-east", "US-EAST-1", "europe-west1", "us-east-10", "mars-1"])
def test_region_rejected(value: str) -> None:
    assert messages_for({"iamra.aws/region": value}) == [
        f"iamra.aws/region: {quote(value)} must be an AWS region such as us-east-1"
    ]


@pytest.mark.parametrize("value", ["ab", "build@ci", "a+b=c,d.e@f-g_h", "x" * 64])
def test_session_name_accepted(value: str) -> None:
    assert messages_for({"iamra.aws/session-name": value}) == []


@pytest.mark.parametrize("value", ["a", "x" * 65, "has space", "slash/name", "", "ünïcode"])
def test_session_name_rejected(value: str) -> None:
    assert messages_for({"iamra.aws/session-name": value}) == [
        f"iamra.aws/session-name: {quote(value)} must be 2-64 characters from letters, digits and +=,.@-"
    ]


@pytest.mark.parametrize("value", ["debug", "INFO", "Warn", " error "])
def test_log_level_is_case_insensitive(value: str) -> None:
    assert messages_for({"iamra.aws/log-level": value}) == []


@pytest.mark.parametrize("value", ["warning", "trace", ""])
def test_log_level_rejected(value: str) -> None:
    assert messages_for({"iamra.aws/log-level": value}) == [
        f"iamra.aws/log-level: {quote(value)} must be one of debug, info, warn, error"
    ]


def test_audience_empty_rejected_and_set_warned() -> None:
    assert messages_for({"iamra.aws/audience": " "}) == ['iamra.aws/audience: "" must not be empty']
    pod = annotated_pod({"iamra.aws/audience": "sts.amazonaws.com"})
    result = validate(pod["metadata"]["annotations"], read_pod(pod), config_with())
    assert [item.kind for item in result.notices] == [WarningKind.AUDIENCE]


def test_skip_containers_parsing() -> None:
    pod = annotated_pod({"iamra.aws/skip-containers": " app-1 ,, app-1, ghost "}, containers=2)
    result = validate(pod["metadata"]["annotations"], read_pod(pod), config_with())
    assert result.annotations is not None
    assert result.annotations.skip_containers == ("app-1", "ghost")
    assert [item.text for item in result.notices] == [
        'iamra: iamra.aws/skip-containers names no container of this pod: "ghost"'
    ]


@pytest.mark.parametrize("value", ["My_Secret", "-leading", "a" * 254, "x..y", ""])
def test_certificate_secret_rejected(value: str) -> None:
    assert messages_for({"iamra.aws/certificate-secret": value}) == [
        f"iamra.aws/certificate-secret: {quote(value)} must be a Secret name (DNS-1123 subdomain)"
    ]


def test_certificate_secret_accepts_subdomains() -> None:
    assert messages_for({"iamra.aws/certificate-secret": "app.iamra-cert"}) == []


def test_present_but_empty_optional_annotations_are_errors() -> None:
    keys = [
        "iamra.aws/session-name",
        "iamra.aws/token-duration",
        "iamra.aws/region",
        "iamra.aws/log-level",
        "iamra.aws/audience",
        "iamra.aws/skip-containers",
        "iamra.aws/certificate-secret",
    ]
    messages = messages_for(dict.fromkeys(keys, "  "))
    assert [message.split(":")[0] for message in messages] == keys


def test_all_errors_are_collected_in_one_denial() -> None:
    outcome = decide_pod(
        annotated_pod(
            {"iamra.aws/role-arn": "x", "iamra.aws/region": "y", "iamra.aws/token-duration": "15m"},
            hostNetwork=True,
            os={"name": "windows"},
            volumes=[{"name": "iamra-workload-cert", "emptyDir": {}}],
        )
    )
    assert isinstance(outcome, Denied)
    assert outcome.code == 400
    assert outcome.reason is Reason.INVALID_ANNOTATION  # the first problem names the metric reason
    assert len(outcome.messages) == 6
    assert outcome.message == "; ".join(outcome.messages)


def test_pod_rule_reasons() -> None:
    cases: dict[Reason, dict[str, Any]] = {
        Reason.HOST_NETWORK: {"hostNetwork": True},
        Reason.WINDOWS: {"nodeSelector": {"kubernetes.io/os": "Windows"}},
        Reason.VOLUME_CONFLICT: {"volumes": [{"name": "iamra-workload-cert", "emptyDir": {}}]},
    }
    for reason, spec in cases.items():
        outcome = decide_pod(annotated_pod(**spec))
        assert isinstance(outcome, Denied)
        assert outcome.reason is reason


def test_port_conflict_follows_the_configured_port() -> None:
    pod = annotated_pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 9911}]
    moved = decide_pod(pod, config_with({"sidecar": {"port": 9912}}))
    assert isinstance(moved, Injected)
    clash = decide_pod(pod)
    assert isinstance(clash, Denied)
    assert clash.reason is Reason.PORT_CONFLICT


def test_host_network_false_and_linux_are_fine() -> None:
    outcome = decide_pod(annotated_pod(hostNetwork=False, os={"name": "linux"}))
    assert isinstance(outcome, Injected)


def test_required_annotations_are_trimmed_before_use() -> None:
    outcome = decide_pod(annotated_pod({key: f"  {value}\n" for key, value in REQUIRED.items()}))
    assert isinstance(outcome, Injected)
    sidecar = outcome.pod["spec"]["initContainers"][0]
    assert REQUIRED["iamra.aws/role-arn"] in sidecar["args"]


def test_long_values_are_cut_in_messages() -> None:
    [message] = messages_for({"iamra.aws/region": "x" * 5000})
    assert len(message) < 200
    assert '..."' in message
