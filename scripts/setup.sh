#!/usr/bin/env bash
# Everything a fresh machine needs before `make test` / `make demo`, idempotent and quick when warm:
#   1. system packages (apt-get, only when root and only what is missing),
#   2. the Python venv with kubewright and its dev tools,
#   3. the control-plane binaries built from Go modules (cached by pin hash).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_pkgs=()
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v go >/dev/null 2>&1 || need_pkgs+=(golang-go)
command -v flock >/dev/null 2>&1 || need_pkgs+=(util-linux)
"$PYTHON" -c 'import ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)

if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing system packages: ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    else
        echo "setup: missing system packages: ${need_pkgs[*]} (install them, or run as root to let setup use apt-get)" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python >= 3.11 is required, $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi

# Reinstall only when the dependency list changed (pyproject.toml newer than the stamp).
stamp="$VENV/.kubewright-installed"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "setup: installing kubewright[dev] into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[dev]'
    touch "$stamp"
fi

# Go >= 1.25 is needed by the pinned Kubernetes; GOTOOLCHAIN=auto fetches it from the module proxy
# when the installed go is older (e.g. Debian's golang-go).
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
bash tools/controlplane/build.sh
