"""`kubewright iamra mutate` and `export-ca` through typer's CliRunner."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from typer.testing import CliRunner

from kubewright import __version__
from kubewright.iamra import cli
from kubewright.iamra.cli import iamra_app
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.mutate import decide
from kubewright.iamra.outcome import Injected

from .support import FIXTURES, annotated_pod, config_with, review_request

pytestmark = pytest.mark.unit
runner = CliRunner()
CONFIG = str(FIXTURES / "config.yaml")


@pytest.fixture(autouse=True)
def _no_iamra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("KUBEWRIGHT_IAMRA_"):
            monkeypatch.delenv(name)


def plain(text: str) -> str:
    """Usage errors come in a rich box; drop the frame and re-join wrapped lines."""
    return " ".join(text.translate(dict.fromkeys(map(ord, "│╭╮╰╯─"))).split())


def pod_file(tmp_path: Path, pod: dict[str, Any]) -> str:
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    return str(path)


def expected(pod: dict[str, Any], mode: SidecarMode = SidecarMode.NATIVE) -> Injected:
    outcome = decide(review_request(pod), config_with(), mode, __version__)
    assert isinstance(outcome, Injected)
    return outcome


def test_help_lists_the_commands() -> None:
    result = runner.invoke(iamra_app, ["--help"])
    assert result.exit_code == 0
    assert "mutate" in result.output
    assert "export-ca" in result.output


def test_mutate_prints_the_servers_patch(tmp_path: Path) -> None:
    pod = annotated_pod(containers=2)
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, pod)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected(pod).patch
    assert result.stderr == ""


def test_mutate_pod_output_is_the_patched_pod(tmp_path: Path) -> None:
    pod = annotated_pod()
    result = runner.invoke(
        iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, pod), "-o", "pod"]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == expected(pod).pod


def test_mutate_legacy_mode_flag_and_config_default(tmp_path: Path) -> None:
    pod = annotated_pod()
    path = pod_file(tmp_path, pod)
    flag = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", path, "--mode", "legacy"])
    assert json.loads(flag.stdout) == expected(pod, SidecarMode.LEGACY).patch
    config = tmp_path / "legacy.yaml"
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(Path(CONFIG).read_text()), "sidecar": {"native": False}})
    )
    configured = runner.invoke(iamra_app, ["mutate", "--config", str(config), "-f", path])
    assert json.loads(configured.stdout) == expected(pod, SidecarMode.LEGACY).patch


def test_mutate_denied_exits_1_with_the_message(tmp_path: Path) -> None:
    pod = annotated_pod({"iamra.aws/token-duration": "15m"})
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, pod)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        'Error: admission webhook "inject.iamra.aws" denied the request: '
        'iamra.aws/token-duration: "15m" must be whole seconds in [900, 43200]'
    )


def test_mutate_skip_prints_an_empty_patch_and_the_reason(tmp_path: Path) -> None:
    pod = annotated_pod()
    del pod["metadata"]["annotations"]["iamra.aws/signing-profile-arn"]
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, pod)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "Warning: iamra: not injected" in result.stderr
    assert "not injected (not_annotated)" in result.stderr


def test_mutate_warnings_go_to_stderr(tmp_path: Path) -> None:
    pod = annotated_pod({"iamra.aws/audience": "sts.amazonaws.com"})
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, pod)])
    assert result.exit_code == 0
    assert (
        result.stderr.strip()
        == "Warning: iamra: iamra.aws/audience has no effect: IAM Roles Anywhere has no audience"
    )


def test_mutate_reads_stdin_and_json() -> None:
    pod = annotated_pod()
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", "-"], input=json.dumps(pod))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected(pod).patch


def test_mutate_honours_env_overrides_like_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEWRIGHT_IAMRA_SIDECAR__PORT", "9999")
    result = runner.invoke(
        iamra_app, ["mutate", "--config", CONFIG, "-f", pod_file(tmp_path, annotated_pod())]
    )
    assert "http://127.0.0.1:9999/" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["mutate", "-f", "pod.yaml"], "--config"),
        (["mutate", "--config", "missing.yaml", "-f", "pod.yaml"], "missing.yaml"),
        (["mutate", "--config", CONFIG, "-f", "absent.yaml"], "cannot read absent.yaml"),
        (["mutate", "--config", CONFIG, "-f", "pod.yaml", "--mode", "sideways"], "sideways"),
        (["mutate", "--config", CONFIG, "-f", "pod.yaml", "-o", "json"], "json"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    pod_file(tmp_path, annotated_pod())
    result = runner.invoke(iamra_app, args)
    assert result.exit_code == 2
    assert fragment in plain(result.stderr)


def test_bad_config_is_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(Path(CONFIG).read_text()), "sidecar": {"port": 0}}))
    result = runner.invoke(
        iamra_app, ["mutate", "--config", str(config), "-f", pod_file(tmp_path, annotated_pod())]
    )
    assert result.exit_code == 2
    assert "sidecar.port" in plain(result.stderr)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("kind: Deployment\n", "must hold one Pod manifest, got 'Deployment'"),
        ("- a\n- b\n", "must hold one Pod manifest"),
        ("kind: Pod\nmetadata: [\n", "is not a YAML or JSON manifest"),
        (
            "kind: Pod\nmetadata:\n  annotations:\n    iamra.aws/role-arn: x\n"
            "    iamra.aws/signing-profile-arn: y\nspec:\n  containers: {}\n",
            "object.spec.containers: must be a list",
        ),
    ],
)
def test_bad_pod_files_are_usage_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(content)
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", str(path)])
    assert result.exit_code == 2
    assert fragment in plain(result.stderr)


def test_yaml_timestamps_travel_as_strings(tmp_path: Path) -> None:
    pod = annotated_pod()
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod) + "status:\n  startTime: 2024-05-01T10:00:00Z\n")
    result = runner.invoke(iamra_app, ["mutate", "--config", CONFIG, "-f", str(path), "-o", "pod"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["status"]["startTime"]


# --- export-ca ------------------------------------------------------------------------------------------


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def serve_secret(
    monkeypatch: pytest.MonkeyPatch, secret: dict[str, Any], seen: list[tuple[Any, ...]]
) -> None:
    """Stands in for the API read (runtime.kube is exercised by the envtest tier); returns `secret`."""

    async def read_secret(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
        seen.append((kubeconfig, namespace, name))
        return secret

    monkeypatch.setattr(cli, "read_secret", read_secret)


def ca_secret() -> tuple[str, dict[str, Any]]:
    pem = trustme.CA().cert_pem.bytes()
    return pem.decode(), {"data": {"tls.crt": base64.b64encode(pem).decode()}}


def test_export_ca_to_stdout(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    pem, secret = ca_secret()
    seen: list[tuple[Any, ...]] = []
    serve_secret(monkeypatch, secret, seen)
    result = runner.invoke(iamra_app, ["export-ca", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 0, result.output
    assert result.stdout == pem
    assert seen == [(kubeconfig, "cert-manager", "iamra-workload-ca")]
    assert "aws rolesanywhere create-trust-anchor --name iamra-injector --enabled --source" in result.stderr


def test_export_ca_to_file(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path, tmp_path: Path) -> None:
    pem, secret = ca_secret()
    seen: list[tuple[Any, ...]] = []
    serve_secret(monkeypatch, secret, seen)
    out = tmp_path / "ca.pem"
    result = runner.invoke(
        iamra_app,
        [
            "export-ca",
            "--namespace",
            "pki",
            "--secret",
            "my-ca",
            "-o",
            str(out),
            "--kubeconfig",
            str(kubeconfig),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == pem
    assert seen == [(kubeconfig, "pki", "my-ca")]
    assert result.stdout.startswith(f"wrote {out}\n# CA ")
    assert "create-trust-anchor" in result.stdout


def test_export_ca_uses_kubeconfig_env(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    _, secret = ca_secret()
    seen: list[tuple[Any, ...]] = []
    serve_secret(monkeypatch, secret, seen)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert runner.invoke(iamra_app, ["export-ca"]).exit_code == 0
    assert seen[0][0] == kubeconfig


def test_export_ca_failures_exit_1(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path, tmp_path: Path) -> None:
    serve_secret(monkeypatch, {"data": {}}, [])
    no_key = runner.invoke(iamra_app, ["export-ca", "--kubeconfig", str(kubeconfig)])
    assert no_key.exit_code == 1
    assert "has no tls.crt" in no_key.stderr
    missing = runner.invoke(iamra_app, ["export-ca", "--kubeconfig", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "kubeconfig" in missing.stderr
