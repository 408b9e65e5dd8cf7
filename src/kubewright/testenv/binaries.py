"""Where the control-plane binaries live, and building them when they are missing.

The build itself is `tools/controlplane/build.sh`; this module only finds it, asks it for the cache
directory of the current pins, and runs it. One implementation keeps `make` and `kubewright dev build`
from disagreeing about the cache key.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "helm-unittest",
    "cert-manager-controller",
    "cert-manager-cainjector",
    "pebble",
)


class ControlPlaneUnavailable(RuntimeError):
    """The binaries are not built (or the build tooling is not present)."""


def tools_dir() -> Path:
    """`tools/controlplane` of the source checkout this package runs from (editable install)."""
    override = os.environ.get("KUBEWRIGHT_TOOLS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "tools" / "controlplane"


def build_script() -> Path:
    script = tools_dir() / "build.sh"
    if not script.is_file():
        raise ControlPlaneUnavailable(
            f"{script} not found: kubewright must run from a source checkout (pip install -e .) "
            "or KUBEWRIGHT_TOOLS_DIR must name tools/controlplane"
        )
    return script


def bin_dir() -> Path:
    """The cache directory for the current pins (`~/.cache/kubewright/bin/<pin-hash>`)."""
    override = os.environ.get("KUBEWRIGHT_BIN_DIR")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(build_script()), "--print-dir"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def missing(components: tuple[str, ...] = COMPONENTS) -> list[str]:
    directory = bin_dir()
    return [c for c in components if not os.access(directory / c, os.X_OK)]


def path_of(component: str) -> Path:
    path = bin_dir() / component
    if not os.access(path, os.X_OK):
        raise ControlPlaneUnavailable(
            f"{component} is not built (looked in {path.parent}); run `kubewright dev build` or `make setup`"
        )
    return path


def helm_plugins_dir() -> Path:
    return bin_dir() / "helm-plugins"


def build(components: tuple[str, ...] = ()) -> None:
    """Run the build script with its progress on our stdout; raise if any component failed."""
    result = subprocess.run(["bash", str(build_script()), *components], check=False)
    if result.returncode != 0:
        raise ControlPlaneUnavailable(f"control-plane build failed (exit {result.returncode}); see above")
