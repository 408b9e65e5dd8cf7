"""helm and helm-unittest for chart tests: located in the pinned build, skip-or-fail when absent.

Without them chart tests skip with the reason, unless KUBEWRIGHT_REQUIRE_CONTROLPLANE is set (CI),
where they fail: the same rule as the control-plane tiers, so a missing build step never passes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubewright.testenv import binaries
from kubewright.testenv.pytest_plugin import REQUIRE_ENV

ROOT = Path(__file__).resolve().parents[2]


def unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
    pytest.skip(reason)


def locate_helm() -> Path:
    try:
        return binaries.path_of("helm")
    except binaries.ControlPlaneUnavailable as err:
        unavailable(str(err))
        raise AssertionError("unreachable") from err
    except (subprocess.CalledProcessError, OSError) as err:  # the build script itself could not run
        unavailable(f"cannot locate helm ({err}); run `make setup` or `kubewright dev build helm`")
        raise AssertionError("unreachable") from err


def locate_helm_plugins() -> Path:
    plugins = binaries.helm_plugins_dir()
    if not (plugins / "helm-unittest" / "plugin.yaml").is_file():
        unavailable(
            f"the helm-unittest plugin is not built (looked in {plugins}); "
            "run `make setup` or `kubewright dev build helm-unittest`"
        )
    return plugins


def run_helm(helm: Path, *args: str, plugins: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if plugins is not None:
        env["HELM_PLUGINS"] = str(plugins)
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=300, check=False, env=env, cwd=ROOT
    )


def _schema_paths(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, sub in schema.get("properties", {}).items():
        path = (*prefix, key)
        paths.add(path)
        paths |= _schema_paths(sub, path)
    return paths


def value_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path of a values mapping; lists and scalars end a path."""
    paths: set[tuple[str, ...]] = set()
    for key, value in values.items():
        path = (*prefix, str(key))
        paths.add(path)
        if isinstance(value, dict):
            paths |= value_paths(value, path)
    return paths


def _open_objects(node: dict[str, Any], where: str) -> list[str]:
    found = []
    if "properties" in node and node.get("additionalProperties") is not False:
        found.append(where or "(root)")
    for key, sub in node.get("properties", {}).items():
        found += _open_objects(sub, f"{where}.{key}".lstrip("."))
    return found


def schema_gaps(chart: Path, passthrough: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(values.yaml keys the schema does not describe, schema objects left open to unknown keys).

    Keys under a `passthrough` key (Kubernetes objects passed through as they are) are typed as whole
    objects by the schema, not key by key.
    """
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    in_schema = _schema_paths(schema)
    missing = [
        ".".join(path)
        for path in sorted(value_paths(values))
        if path not in in_schema and not any(part in passthrough for part in path[:-1])
    ]
    return missing, _open_objects(schema, "")
