"""The `kubewright` console script: `iamra serve` runs without the umbrella CLI's imports (spec 8, RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewright.entry import _NOT_LEAN, iamra_serve_config

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "iamra" / "fixtures"
NOT_IN_THE_WEBHOOK = ("typer", "kubewright.cli", "lightkube", "kubewright.runtime.kube", "rich", "pygments")

PROBE = """
import atexit, json, sys
def report():
    print(json.dumps({"modules": sorted(sys.modules)}))
atexit.register(report)
sys.argv = ["kubewright", *sys.argv[1:]]
from kubewright.entry import main
main()
"""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], None),
        (["--config", "c.yaml"], Path("c.yaml")),
        (["--config=c.yaml"], Path("c.yaml")),
        (["--help"], _NOT_LEAN),
        (["--config"], _NOT_LEAN),
        (["--config", "--help"], _NOT_LEAN),
        (["--config="], _NOT_LEAN),
        (["--config", "a.yaml", "--config", "b.yaml"], _NOT_LEAN),
        (["--other", "x"], _NOT_LEAN),
    ],
)
def test_only_plain_serve_lines_take_the_lean_path(options: list[str], expected: object) -> None:
    assert iamra_serve_config(options) == expected


def test_a_directory_as_config_goes_to_the_typer_cli(tmp_path: Path) -> None:
    assert iamra_serve_config(["--config", str(tmp_path)]) is _NOT_LEAN


def probe(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBEWRIGHT_IAMRA_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return result, report


def test_serve_imports_neither_the_umbrella_cli_nor_cryptography(tmp_path: Path) -> None:
    config = yaml.safe_load((FIXTURES / "config.yaml").read_text())
    config["sidecar"]["native"] = "true"
    config["logging"] = {**config.get("logging", {}), "format": "json"}
    config["server"].update(
        {"certFile": str(tmp_path / "absent.crt"), "keyFile": str(tmp_path / "absent.key")}
    )
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))

    result, report = probe(["iamra", "serve", "--config", str(config_file)])

    assert result.returncode == 1, result.stderr  # got as far as loading the serving pair
    assert "cannot serve: no usable certificate" in result.stderr
    assert "kubewright.iamra.server" in report["modules"]
    assert not set(NOT_IN_THE_WEBHOOK) & set(report["modules"])
    assert "cryptography.x509" not in report["modules"]  # runtime.tls/https import it only on use


def test_an_invalid_config_is_reported_by_the_typer_cli(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({"sidecar": {"port": 0}}))

    result, report = probe(["iamra", "serve", "--config", str(config_file)])

    assert result.returncode == 1
    assert "error: invalid configuration" in result.stderr
    assert "kubewright.cli" in report["modules"]


def test_other_commands_go_to_the_typer_cli() -> None:
    result, report = probe(["iamra", "serve", "--help"])

    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout
    assert "kubewright.cli" in report["modules"]
