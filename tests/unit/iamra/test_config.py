"""Spec 2.5: the chart->webhook config contract: defaults, env overrides, and errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubewright.iamra.config import ConfigError, IamraConfig, config_from_mapping, load_config

from .support import FIXTURES, TRUST_ANCHOR_ARN, base_config_data

pytestmark = pytest.mark.unit

MINIMAL = {"trustAnchorArn": TRUST_ANCHOR_ARN, "region": "us-east-1"}


@pytest.fixture(autouse=True)
def _no_iamra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("KUBEWRIGHT_IAMRA_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_match_the_spec(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.failurePolicy == "Fail"
    sidecar = config.sidecar
    assert sidecar.image == "public.ecr.aws/rolesanywhere/credential-helper:v1.8.0"
    assert (sidecar.pullPolicy, sidecar.port, sidecar.logLevel) == ("IfNotPresent", 9911, "info")
    assert (sidecar.tokenDurationSeconds, sidecar.native, sidecar.nativeRefreshSeconds) == (900, "auto", 600)
    assert sidecar.container_resources == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"memory": "128Mi"},
    }
    assert sidecar.container_security_context == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": 65532,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    workload = config.workloadCertificate
    assert workload.model_dump() == {
        "mode": "csi",
        "mountPath": "/var/run/iamra",
        "issuerName": "iamra-workload-ca",
        "issuerKind": "ClusterIssuer",
        "commonName": "${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}",
        "keyUsages": "digital signature,client auth",
        "duration": "2160h",
        "renewBefore": "720h",
        "fsGroup": 65532,
    }
    assert config.server.model_dump() == {
        "port": 8443,
        "certFile": "/etc/iamra/tls/tls.crt",
        "keyFile": "/etc/iamra/tls/tls.key",
        "reloadIntervalSeconds": 10,
        "maxBodyBytes": 4194304,
        "shutdownDelaySeconds": 5,
    }
    assert config.metrics.model_dump() == {"enabled": True, "port": 9090, "path": "/metrics"}
    assert config.logging.model_dump() == {"format": "json", "level": "info"}


def test_the_fixture_config_spells_out_every_default(tmp_path: Path) -> None:
    """fixtures/config.yaml is what the chart renders with default values: same model as the minimal file."""
    assert load_config(FIXTURES / "config.yaml") == load_config(write(tmp_path, MINIMAL))


def test_env_overrides_win_with_nested_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_SIDECAR__PORT", "9912")
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_SIDECAR__NATIVE", "false")
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_FAILUREPOLICY", "Ignore")
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_WORKLOADCERTIFICATE__MODE", "secret")
    config = load_config(write(tmp_path, {**MINIMAL, "sidecar": {"port": 9000, "image": "example/helper:1"}}))
    assert config.sidecar.port == 9912
    assert config.sidecar.image == "example/helper:1"  # the file still supplies what env does not override
    assert config.sidecar.native == "false"
    assert config.failurePolicy == "Ignore"
    assert config.workloadCertificate.mode == "secret"


def test_env_alone_can_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_TRUSTANCHORARN", TRUST_ANCHOR_ARN)
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_REGION", "us-east-1")
    assert load_config(None).region == "us-east-1"


@pytest.mark.parametrize(("value", "expected"), [(True, "true"), (False, "false"), ("auto", "auto")])
def test_native_accepts_yaml_booleans(value: object, expected: str) -> None:
    config = config_from_mapping({**MINIMAL, "sidecar": {"native": value}})
    assert config.sidecar.native == expected


def test_unknown_keys_are_errors_naming_what_is_allowed(tmp_path: Path) -> None:
    data = {**MINIMAL, "sidecarr": {}, "sidecar": {"audience": "sts.amazonaws.com"}}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    problems = caught.value.problems
    assert any(
        p.startswith("sidecarr: unknown setting; allowed here: ") and "sidecar," in p for p in problems
    )
    assert any(
        p.startswith("sidecar.audience: unknown setting; allowed here: ") and "image" in p for p in problems
    )


@pytest.mark.parametrize(
    ("override", "field", "fragment"),
    [
        (
            {"trustAnchorArn": "arn:aws:iam::123456789012:role/x"},
            "trustAnchorArn",
            "must be a trust anchor ARN",
        ),
        ({"region": "us-west-2"}, "region", "must match the trust anchor region (us-east-1)"),
        ({"region": "moon"}, "region", "must be an AWS region"),
        ({"failurePolicy": "auto"}, "failurePolicy", "'Fail' or 'Ignore'"),
        ({"sidecar": {"port": 0}}, "sidecar.port", "greater than or equal to 1"),
        ({"sidecar": {"port": 70000}}, "sidecar.port", "less than or equal to 65535"),
        ({"sidecar": {"native": "maybe"}}, "sidecar.native", "'auto', 'true' or 'false'"),
        (
            {"sidecar": {"pullPolicy": "Sometimes"}},
            "sidecar.pullPolicy",
            "'Always', 'IfNotPresent' or 'Never'",
        ),
        ({"sidecar": {"logLevel": "trace"}}, "sidecar.logLevel", "'debug', 'info', 'warn' or 'error'"),
        ({"sidecar": {"tokenDurationSeconds": 899}}, "sidecar.tokenDurationSeconds", "900"),
        ({"sidecar": {"tokenDurationSeconds": 43201}}, "sidecar.tokenDurationSeconds", "43200"),
        (
            {"sidecar": {"resources": {"limits": {"memory": "lots"}}}},
            "sidecar.resources.limits.memory",
            "quantity",
        ),
        (
            {"sidecar": {"securityContext": {"readOnlyRootFilesytem": True}}},
            "sidecar.securityContext",
            "unknown",
        ),
        ({"workloadCertificate": {"mode": "file"}}, "workloadCertificate.mode", "'csi' or 'secret'"),
        ({"workloadCertificate": {"mountPath": "var/run"}}, "workloadCertificate.mountPath", "absolute path"),
        ({"workloadCertificate": {"duration": "90d"}}, "workloadCertificate.duration", "Go duration"),
        (
            {"workloadCertificate": {"keyUsages": "client auth,sign"}},
            "workloadCertificate.keyUsages",
            "'sign'",
        ),
        ({"workloadCertificate": {"issuerName": "Bad_Name"}}, "workloadCertificate.issuerName", "DNS-1123"),
        ({"workloadCertificate": {"issuerKind": "Vault"}}, "workloadCertificate.issuerKind", "'Issuer' or"),
        ({"server": {"maxBodyBytes": 10}}, "server.maxBodyBytes", "1024"),
        ({"metrics": {"path": "metrics"}}, "metrics.path", "^/"),
        ({"logging": {"format": "xml"}}, "logging.format", "'json' or 'console'"),
    ],
)
def test_bad_values_name_the_field_and_the_allowed_values(
    tmp_path: Path, override: dict[str, object], field: str, fragment: str
) -> None:
    data = base_config_data()
    for key, value in override.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    [problem] = caught.value.problems
    assert problem.startswith(field)
    assert fragment in problem
    assert "exit" not in problem


def test_required_fields(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, {}))
    assert sorted(p.split(" ")[0] for p in caught.value.problems) == ["region", "trustAnchorArn"]


def test_config_is_immutable() -> None:
    config = config_from_mapping(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        config.region = "eu-west-1"  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        config.sidecar.port = 1  # type: ignore[misc]


def test_quantities_may_be_numbers() -> None:
    config = config_from_mapping(
        {**MINIMAL, "sidecar": {"resources": {"requests": {"cpu": 1}, "limits": {}}}}
    )
    assert config.sidecar.container_resources == {"requests": {"cpu": "1"}}


def test_partition_of_the_trust_anchor() -> None:
    assert config_from_mapping(MINIMAL).partition == "aws"
    assert isinstance(config_from_mapping(MINIMAL), IamraConfig)
