"""Per-process configuration: a YAML file, overridden by environment variables, validated once.

Each add-on declares one `ProcessSettings` subclass with its own env prefix:

    class SpotalisSettings(ProcessSettings):
        model_config = settings_config("SPOTALIS_")
        webhook_port: int = Field(default=9443, ge=1, le=65535)

    settings = load_settings(SpotalisSettings, Path("/etc/spotalis/config.yaml"))

Contracts:
- Settings are frozen: configuration is read once at start-up, and code that could change it at run
  time would make the running process disagree with its own config file.
- Unknown keys in the file are errors, not ignored: a misspelt key silently falling back to a default
  is the classic way a setting "does nothing".
- Environment variables win over the file (`SPOTALIS_WEBHOOK_PORT`, nested fields with `__`:
  `SPOTALIS_LEADER__LEASE_NAME`), so a Deployment can override one value without a new ConfigMap.
- A failure raises `SettingsError` listing every bad field with its file path, its environment
  variable and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*_$")
NESTED_DELIMITER = "__"


def settings_config(env_prefix: str) -> SettingsConfigDict:
    """The model config for an add-on's settings: its env prefix (upper case, ending in "_")."""
    if not _PREFIX.match(env_prefix):
        raise ValueError(
            f"env prefix {env_prefix!r} must be upper case letters, digits and '_', ending in '_' "
            "(e.g. 'SPOTALIS_')"
        )
    return SettingsConfigDict(env_prefix=env_prefix)


class ProcessSettings(BaseSettings):
    """Base for an add-on's settings: frozen, unknown keys rejected, nested env vars with '__'."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_nested_delimiter=NESTED_DELIMITER,
        case_sensitive=False,
        validate_default=True,
    )


class SettingsError(ValueError):
    """Configuration could not be loaded; `problems` has one line per bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid settings ({source}):\n" + "\n".join(f"  - {p}" for p in problems))


S = TypeVar("S", bound=ProcessSettings)


def load_settings(model: type[S], yaml_file: Path | None = None) -> S:
    """Build `model` from `yaml_file` (optional) with environment variables taking precedence."""
    from_file = _read_yaml(yaml_file) if yaml_file is not None else {}
    source = f"{model.__name__} from {yaml_file or 'environment'}"
    try:
        from_env = EnvSettingsSource(model)()
    except PydanticSettingsError as err:  # e.g. a list-valued variable that is not JSON
        problem = f"{err}: list and mapping settings are written as JSON in environment variables"
        raise SettingsError(source, [problem]) from None
    try:
        return model(**_deep_merge(from_file, from_env))
    except ValidationError as err:
        raise SettingsError(source, [_describe(model, e) for e in err.errors()]) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SettingsError(str(path), [f"cannot read the file: {err.strerror or err}"]) from None
    except yaml.YAMLError as err:
        raise SettingsError(str(path), [f"not valid YAML: {err}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            str(path), [f"the top level must be a mapping of settings, not {type(data).__name__}"]
        )
    return data


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(model: type[ProcessSettings], error: Any) -> str:
    """One line: the field as a file path and as an env var, the problem, the offending value."""
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc) or "(top level)"
    prefix = str(model.model_config.get("env_prefix") or "")
    env = (prefix + NESTED_DELIMITER.join(loc)).upper()
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_fields_at(model, loc[:-1])))
        return f"{path}: unknown setting; allowed here: {allowed}"
    given = error.get("input")
    shown = "" if error["type"] == "missing" else f" (got {_short(given)})"
    origin = " [from the environment]" if env in {k.upper() for k in os.environ} else ""
    return f"{path} (env {env}){origin}: {error['msg']}{shown}"


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at `loc`, for naming what is allowed."""
    current: type[BaseModel] = model
    for part in loc:
        info = current.model_fields.get(part)
        nested = info.annotation if info is not None else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return []
        current = nested
    return list(current.model_fields)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
