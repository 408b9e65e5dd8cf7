"""Structured logging for every kubewright process.

One JSON object per line when stderr is not a terminal (what log collectors in a cluster parse), a
readable console rendering when a human runs the process. structlog records are routed through stdlib
`logging` so library logs (aiohttp access and error logs, asyncio) come out in the same format on the
same stream instead of as a second, unparseable style.

Context such as the controller name and the object key is bound with `log_context`, which uses
contextvars: every asyncio task inherits the context of the code that created it, and a reconcile's
binding never leaks into a concurrent one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO

import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]

_HANDLER_NAME = "kubewright"
# The HTTP client under runtime.kube logs one INFO line per request: Lease renewals every 2 s and
# re-opened watches would drown the records that matter. Their warnings and errors still come through.
QUIET_LIBRARY_LOGGERS = ("httpx2", "httpcore2")


def configure_logging(
    level: str | int = "info", stream: TextIO | None = None, log_format: LogFormat = "auto"
) -> None:
    """Configure structlog and the root stdlib logger; safe to call again (the handler is replaced).

    `log_format="auto"` picks JSON unless `stream` is a TTY. The HTTP client's loggers
    (`QUIET_LIBRARY_LOGGERS`) are held at WARNING whatever `level` is.
    """
    out = stream if stream is not None else sys.stderr
    use_json = log_format == "json" or (log_format == "auto" and not _is_tty(out))
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if use_json:
        final += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        final.append(structlog.dev.ConsoleRenderer(colors=_is_tty(out)))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final))
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger named after the emitting module or component (appears as `logger` in each record)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind `values` to every record logged in this block, including by tasks started inside it."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False
