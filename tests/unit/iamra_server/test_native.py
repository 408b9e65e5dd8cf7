from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubewright.iamra.native import NativeMode, VersionUnparsable, native_for, parse_version
from kubewright.runtime.clock import FakeClock

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [("1", "29", (1, 29)), ("1", "29+", (1, 29)), ("1", "30+k3s1", (1, 30)), ("1", "28", (1, 28))],
)
def test_parse_version(major: str, minor: str, expected: tuple[int, int]) -> None:
    assert parse_version({"major": major, "minor": minor}) == expected


def test_unparsable_version_names_the_field() -> None:
    with pytest.raises(VersionUnparsable, match="'minor' is ''"):
        parse_version({"major": "1", "minor": ""})


@given(minor=st.integers(0, 60))
def test_native_from_1_29(minor: int) -> None:
    assert native_for((1, minor)) is (minor >= 29)


def fetcher(answers: list[Any]) -> Any:
    async def fetch() -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    return fetch


async def test_fixed_settings_need_no_server() -> None:
    assert NativeMode("true", fetcher([]), FakeClock(), 600).native is True
    assert NativeMode("false", fetcher([]), FakeClock(), 600).native is False
    with pytest.raises(ValueError, match="not one of auto, true, false"):
        NativeMode("maybe", fetcher([]), FakeClock(), 600)


def snapshot(mode: NativeMode) -> tuple[object, ...]:
    return (mode.native, mode.source, mode.server_version)


async def test_auto_is_unknown_until_answered_and_keeps_last_value_on_failure() -> None:
    mode = NativeMode(
        "auto",
        fetcher(
            [OSError("down"), {"major": "1", "minor": "30"}, OSError("flaky"), {"major": "1", "minor": "28"}]
        ),
        FakeClock(),
        600,
    )
    assert mode.known is False
    await mode.refresh_once()
    assert mode.native is None
    await mode.refresh_once()
    assert snapshot(mode) == (True, "server_version", (1, 30))
    await mode.refresh_once()
    assert snapshot(mode)[0] is True
    await mode.refresh_once()
    assert snapshot(mode)[0] is False


async def test_run_refreshes_on_the_clock_and_stops() -> None:
    clock = FakeClock()
    calls: list[int] = []

    async def fetch() -> dict[str, Any]:
        calls.append(1)
        return {"major": "1", "minor": "31"}

    mode = NativeMode("auto", fetch, clock, 600)
    stop = asyncio.Event()
    task = asyncio.create_task(mode.run(stop))
    await clock.wait_for_sleepers(1)
    assert mode.native is True
    clock.advance(600)
    await clock.wait_for_sleepers(1)
    assert len(calls) == 2
    stop.set()
    await asyncio.wait_for(task, 5)
