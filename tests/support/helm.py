"""helm and helm-unittest for chart tests: located in the pinned build, skip-or-fail when absent.

Without them chart tests skip with the reason, unless KUBEWRIGHT_REQUIRE_CONTROLPLANE is set (CI),
where they fail: the same rule as the control-plane tiers, so a missing build step never passes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
