#!/usr/bin/env bash
# helm lint --strict every chart (charts/* and examples/*/Chart.yaml) with the helm built by
# tools/controlplane, plus the values-table drift check of each chart README.
# A chart may carry lint-values.yaml (or values.tls-example.yaml) with the required values set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
charts=(charts/*/Chart.yaml examples/*/Chart.yaml)
[[ ${#charts[@]} -gt 0 ]] || { echo "helm lint: no charts yet"; exit 0; }
helm="$(bash tools/controlplane/build.sh --print-dir)/helm"
for c in "${charts[@]}"; do
    dir=$(dirname "$c")
    args=()
    for v in "$dir/values.tls-example.yaml" "$dir/lint-values.yaml"; do
        [[ -f "$v" ]] && args+=(-f "$v")
    done
    "$helm" lint --strict "${args[@]}" "$dir"
done
PY=${PY:-.venv/bin/python}
"$PY" scripts/chart_readme.py --check "${charts[@]%/Chart.yaml}"
