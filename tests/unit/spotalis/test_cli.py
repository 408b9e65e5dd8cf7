"""`kubewright spotalis split`: the offline split, exact JSON output, exit 2 on bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kubewright.spotalis.cli import spotalis_app
from kubewright.spotalis.split import desired_split

pytestmark = pytest.mark.unit
runner = CliRunner()


def split(replicas: str, percentage: str, floor: str) -> tuple[int, str, str]:
    result = runner.invoke(
        spotalis_app,
        ["split", "--replicas", replicas, "--spot-percentage", percentage, "--min-on-demand", floor],
    )
    # Error text is boxed and wrapped by rich; compare it with the frame and line breaks removed.
    plain = " ".join(result.output.replace("\u2502", " ").split())
    return result.exit_code, result.stdout, plain


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("10", "70", "1"), '{"spot": 7, "on_demand": 3}'),
        (("10", "73", "1"), '{"spot": 7, "on_demand": 3}'),
        (("10", "90", "4"), '{"spot": 6, "on_demand": 4}'),
        (("3", "80", "2"), '{"spot": 1, "on_demand": 2}'),
        (("5", "0", "1"), '{"spot": 0, "on_demand": 5}'),
        (("10", "80", "3"), '{"spot": 7, "on_demand": 3}'),
        (("5", "80", "4"), '{"spot": 1, "on_demand": 4}'),
        (("7", "50", "1"), '{"spot": 3, "on_demand": 4}'),
        (("2", "50", "3"), '{"spot": 0, "on_demand": 2}'),
        (("0", "50", "1"), '{"spot": 0, "on_demand": 0}'),
        (("10", "70%", "1"), '{"spot": 7, "on_demand": 3}'),
        (("10", "+70", "+1"), '{"spot": 7, "on_demand": 3}'),
    ],
)
def test_spec_cases_print_exact_json(args: tuple[str, str, str], expected: str) -> None:
    code, stdout, _ = split(*args)
    assert code == 0
    assert stdout == expected + "\n"


@pytest.mark.parametrize(
    ("args", "flag", "shown"),
    [
        (("10", " 70", "1"), "--spot-percentage", "' 70'"),
        (("10", "7.5", "1"), "--spot-percentage", "'7.5'"),
        (("10", "0x10", "1"), "--spot-percentage", "'0x10'"),
        (("10", "150", "1"), "--spot-percentage", "'150'"),
        (("10", "-1", "1"), "--spot-percentage", "'-1'"),
        (("10", "70", "-1"), "--min-on-demand", "'-1'"),
        (("10", "70", "10001"), "--min-on-demand", "'10001'"),
        (("10", "70", "1%"), "--min-on-demand", "'1%'"),
        (("-1", "70", "1"), "--replicas", "'-1'"),
        (("ten", "70", "1"), "--replicas", "'ten'"),
        (("2147483648", "70", "1"), "--replicas", "'2147483648'"),
        (("9" * 5000, "70", "1"), "--replicas", "'999"),
    ],
)
def test_bad_input_exits_2_naming_the_flag_and_value(
    args: tuple[str, str, str], flag: str, shown: str
) -> None:
    code, stdout, output = split(*args)
    assert code == 2
    assert stdout == ""
    assert flag in output
    assert shown in output


def test_missing_option_exits_2() -> None:
    result = runner.invoke(spotalis_app, ["split", "--replicas", "10"])
    assert result.exit_code == 2
    assert "--spot-percentage" in result.output


def test_app_is_a_group_ready_for_more_commands() -> None:
    result = runner.invoke(spotalis_app, [])
    assert "split" in result.output
    assert "Usage" in result.output
    assert runner.invoke(spotalis_app, ["split", "--help"]).exit_code == 0


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 2**31 - 1), pct=st.integers(0, 100), floor=st.integers(0, 10_000))
def test_output_matches_the_split(total: int, pct: int, floor: int) -> None:
    code, stdout, _ = split(str(total), str(pct), str(floor))
    assert code == 0
    expected = desired_split(total, pct, floor)
    assert json.loads(stdout) == {"spot": expected.spot, "on_demand": expected.on_demand}
