"""The `kubewright` console script.

`kubewright iamra serve [--config F]` is a long-running webhook whose peak RSS the spec caps at 60 MB
(iamra spec 8), so that one command is started without the umbrella typer CLI, which would import every
add-on, the demo and the test environment (typer, rich, lightkube: about 7 MB that the webhook never
uses). Every other command line, including any `iamra serve` this module does not parse exactly the
way click would (`--help`, unknown options, a directory as `--config`), goes to `kubewright.cli.app`,
so usage, help and errors stay the typer CLI's.
"""

from __future__ import annotations

import sys
from pathlib import Path

_NOT_LEAN = object()


def main() -> None:
    args = sys.argv[1:]
    if args[:2] == ["iamra", "serve"]:
        config_file = iamra_serve_config(args[2:])
        if config_file is not _NOT_LEAN:
            status = _iamra_serve(config_file)  # type: ignore[arg-type]
            if status is not None:
                sys.exit(status)
    from kubewright.cli import app

    app()


def iamra_serve_config(options: list[str]) -> Path | object | None:
    """The `--config` of `iamra serve` options, or `_NOT_LEAN` when the typer CLI should handle them."""
    if not options:
        return None
    if len(options) == 2 and options[0] == "--config":
        value = options[1]
    elif len(options) == 1 and options[0].startswith("--config="):
        value = options[0].removeprefix("--config=")
    else:
        return _NOT_LEAN
    if not value or value.startswith("-") or Path(value).is_dir():
        return _NOT_LEAN  # click's messages for a missing value or a directory (dir_okay=False)
    return Path(value)


def _iamra_serve(config_file: Path | None) -> int | None:
    """Run the webhook; None when the configuration is invalid (the typer CLI then reports it)."""
    from kubewright.iamra.config import ConfigError, load_config

    try:
        config = load_config(config_file)
    except ConfigError:
        return None
    if _logs_json(config.logging.format):
        _import_structlog_without_rich()
    from kubewright.iamra.server import run

    return run(config)


def _logs_json(log_format: str) -> bool:
    """Whether `runtime.logs.configure_logging` will render JSON for this format (to stderr)."""
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def _import_structlog_without_rich() -> None:
    """Import structlog as if rich were not installed.

    structlog.dev imports rich (and with it pygments, about 3 MB) whenever it is installed, to render
    exceptions in console logs. JSON logs never use it; other importers of rich still get it.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]
