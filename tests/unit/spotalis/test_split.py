from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.spotalis.split import Split, desired_split

pytestmark = pytest.mark.unit

# The upstream cases (docs/explanation/replica-distribution-strategy.md, replica_state_test.go), (T,P,M).
CASES = [
    ((10, 70, 1), (7, 3)),
    ((10, 73, 1), (7, 3)),
    ((10, 90, 4), (6, 4)),
    ((3, 80, 2), (1, 2)),
    ((5, 0, 1), (0, 5)),
    ((10, 80, 3), (7, 3)),
    ((5, 80, 4), (1, 4)),
    ((7, 50, 1), (3, 4)),
    ((2, 50, 3), (0, 2)),
    ((0, 50, 1), (0, 0)),
    ((0, 100, 0), (0, 0)),
]


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_upstream_cases(args: tuple[int, int, int], expected: tuple[int, int]) -> None:
    assert desired_split(*args) == Split(*expected)


def check(total: int, pct: int, floor: int) -> None:
    spot, od = desired_split(total, pct, floor)
    assert 0 <= spot <= total
    assert spot + od == total
    assert od >= min(floor, total)
    if total - floor >= total * pct // 100:
        assert spot == total * pct // 100


def test_properties_exhaustively_for_small_inputs() -> None:
    for total in range(0, 201):
        for pct in range(0, 101):
            for floor in range(0, 221, 3):
                check(total, pct, floor)


@given(total=st.integers(0, 10**6), pct=st.integers(0, 100), floor=st.integers(0, 10**6))
def test_properties_up_to_a_million(total: int, pct: int, floor: int) -> None:
    check(total, pct, floor)


@given(total=st.integers(0, 10**6), pct=st.integers(0, 99), floor=st.integers(0, 10**6))
def test_spot_is_monotone(total: int, pct: int, floor: int) -> None:
    spot = desired_split(total, pct, floor).spot
    assert desired_split(total, pct + 1, floor).spot >= spot
    assert desired_split(total + 1, pct, floor).spot >= spot
    assert desired_split(total, pct, floor + 1).spot <= spot


@pytest.mark.parametrize(
    ("args", "field"),
    [((-1, 50, 1), "replicas"), ((1, 101, 1), "spot-percentage"), ((1, 50, -1), "min-on-demand")],
)
def test_bad_arguments_name_the_field(args: tuple[int, int, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        desired_split(*args)
