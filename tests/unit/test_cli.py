from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kubewright import __version__
from kubewright.cli import app

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kubewright {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["dev"],
        ["dev", "up"],
        ["dev", "down"],
        ["dev", "status"],
        ["dev", "kubeconfig"],
        ["dev", "build"],
        ["demo"],
    ],
)
def test_help_on_every_level(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_up_rejects_out_of_range_spot_fraction() -> None:
    result = runner.invoke(app, ["dev", "up", "--sim", "--spot-fraction", "1.5"])
    assert result.exit_code == 2
    assert "spot-fraction" in result.output


def test_status_of_unknown_cluster(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEWRIGHT_STATE_DIR", str(tmp_path))
    result = runner.invoke(app, ["dev", "status", "--name", "nope"])
    assert result.exit_code == 3
    assert "not created" in result.output
