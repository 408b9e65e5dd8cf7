from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from kubewright.runtime.logs import configure_logging, get_logger, log_context

pytestmark = pytest.mark.unit


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_when_not_a_tty_with_bound_context() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = get_logger("kubewright.test")
    with log_context(controller="deployments", key="ns/name"):
        log.info("reconciled", replicas=3)
    log.info("outside")
    log.debug("hidden below the level")

    first, second = records(stream)
    assert first["event"] == "reconciled"
    assert first["controller"] == "deployments"
    assert first["key"] == "ns/name"
    assert first["replicas"] == 3
    assert first["level"] == "info"
    assert first["logger"] == "kubewright.test"
    assert str(first["timestamp"]).endswith("Z")
    assert "controller" not in second


def test_stdlib_library_logs_share_the_format() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream)
    logging.getLogger("aiohttp.server").warning("library says %s", "hi")
    logging.getLogger("aiohttp.server").info("filtered")
    (record,) = records(stream)
    assert record["event"] == "library says hi"
    assert record["level"] == "warning"
    assert record["logger"] == "aiohttp.server"


def test_exceptions_are_rendered_into_the_json_record() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("kubewright.test").exception("failed")
    (record,) = records(stream)
    assert "RuntimeError: boom" in str(record["exception"])


def test_console_on_a_tty_and_reconfiguring_replaces_the_handler() -> None:
    configure_logging("info", io.StringIO())
    tty = FakeTTY()
    configure_logging("info", tty)
    get_logger("kubewright.test").info("for humans", answer=42)
    output = tty.getvalue()
    assert "for humans" in output
    assert "answer" in output
    assert not output.lstrip().startswith("{")
    kubewright_handlers = [h for h in logging.getLogger().handlers if h.get_name() == "kubewright"]
    assert len(kubewright_handlers) == 1


def test_explicit_format_overrides_detection() -> None:
    tty = FakeTTY()
    configure_logging("info", tty, log_format="json")
    get_logger("kubewright.test").info("still json")
    assert records(tty)[0]["event"] == "still json"


async def test_context_is_per_task() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = get_logger("kubewright.test")

    async def reconcile(key: str) -> None:
        with log_context(key=key):
            await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
            log.info("done")

    await asyncio.gather(reconcile("a"), reconcile("b"))
    assert sorted(str(record["key"]) for record in records(stream)) == ["a", "b"]
