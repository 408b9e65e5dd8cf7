#!/usr/bin/env bash
# helm lint every chart under charts/ with the helm built by tools/controlplane (none yet is fine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
charts=(charts/*/Chart.yaml)
[[ ${#charts[@]} -gt 0 ]] || { echo "helm lint: no charts yet"; exit 0; }
helm="$(bash tools/controlplane/build.sh --print-dir)/helm"
for c in "${charts[@]}"; do
    "$helm" lint --strict "$(dirname "$c")"
done
