#!/usr/bin/env bash
# Build the local control plane from Go modules into a cache keyed by the pins.
#
# Why from source: build machines and CI reach the Go module proxy but cannot
# download release binaries. Everything pinned in versions.env (plus the wrapper
# modules beside this script) feeds the cache key, so a changed pin rebuilds and
# an unchanged one reuses what is there.
#
# Usage: build.sh [--print-dir] [component ...]
#   components: etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm helm-unittest
#               cert-manager-controller cert-manager-cainjector pebble
#   --print-dir  print the cache directory for the current pins and exit
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

all=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm helm-unittest
     cert-manager-controller cert-manager-cainjector pebble)

pin_hash() {
    # The key covers the pins, the wrapper modules and this script: any change rebuilds.
    (cd "$here" && cat versions.env build.sh kubernetes/go.mod kubernetes/go.sum etcd/go.mod etcd/go.sum \
        etcd/main.go helm-unittest/go.mod helm-unittest/go.sum cert-manager/go.mod cert-manager/go.sum) | sha256sum | cut -c1-12
}

cache_root="${KUBEWRIGHT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubewright}"
bindir="$cache_root/bin/$(pin_hash)"

if [[ "${1:-}" == "--print-dir" ]]; then
    echo "$bindir"
    exit 0
fi

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=("${all[@]}")
for c in "${want[@]}"; do
    case " ${all[*]} " in *" $c "*) ;; *) echo "build.sh: unknown component '$c' (known: ${all[*]})" >&2; exit 2 ;; esac
done

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: the Go toolchain is required (go not found on PATH)" >&2
    exit 1
fi

mkdir -p "$bindir/helm-plugins"
# Two builds at once (make test beside a `dev up`) would race on the same outputs: take turns.
exec 9>"$bindir/.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
ldflags="-s -w"

build_component() {
    local c=$1 k8s_ld
    k8s_ld="$ldflags -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
    case "$c" in
        kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
            (cd "$here/kubernetes" && go build -ldflags "$k8s_ld" -o "$bindir/$c.tmp" "k8s.io/kubernetes/cmd/$c") ;;
        etcd)
            (cd "$here/etcd" && go build -ldflags "$ldflags" -o "$bindir/$c.tmp" .) ;;
        kwok)
            GOBIN="$bindir/.gobin" go install -ldflags "$ldflags -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
                "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
            mv "$bindir/.gobin/kwok" "$bindir/$c.tmp" ;;
        helm)
            # Without a cluster helm assumes Kubernetes v1.20 (its Makefile stamps the real default); stamp ours.
            local kmin hv
            kmin=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
            hv="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
            hv="$hv -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kmin"
            hv="$hv -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kmin"
            GOBIN="$bindir/.gobin" go install -ldflags "$ldflags $hv" \
                "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
            mv "$bindir/.gobin/helm" "$bindir/$c.tmp" ;;
        cert-manager-controller|cert-manager-cainjector)
            (cd "$here/cert-manager" && go build -ldflags "$ldflags" -o "$bindir/$c.tmp" \
                "github.com/cert-manager/cert-manager/cmd/${c#cert-manager-}")
            # The release CRDs, with the chart-template label lines the raw files carry removed.
            local crds
            crds="$(cd "$here/cert-manager" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)/deploy/crds"
            for f in "$crds"/crd-*.yaml; do echo "---"; grep -v '{{' "$f"; done >"$bindir/cert-manager-crds.yaml" ;;
        pebble)
            GOBIN="$bindir/.gobin" go install -ldflags "$ldflags" "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
            mv "$bindir/.gobin/pebble" "$bindir/$c.tmp" ;;
        helm-unittest)
            # Installed as a helm plugin directory: plugin.yaml + the binary it names.
            local pdir="$bindir/helm-plugins/helm-unittest"
            mkdir -p "$pdir"
            (cd "$here/helm-unittest" && go build -ldflags "$ldflags" -o "$pdir/untt" \
                github.com/helm-unittest/helm-unittest/cmd/helm-unittest)
            cat >"$pdir/plugin.yaml" <<EOF
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "helm-unittest, built from its Go module by kubewright"
ignoreFlags: false
command: "\$HELM_PLUGIN_DIR/untt"
EOF
            cp "$pdir/untt" "$bindir/$c.tmp" ;;
    esac
    mv "$bindir/$c.tmp" "$bindir/$c"
}

total=${#want[@]}
i=0
started=$SECONDS
for c in "${want[@]}"; do
    i=$((i + 1))
    if [[ -x "$bindir/$c" ]]; then
        echo "[$i/$total] $c: cached"
        continue
    fi
    echo "[$i/$total] $c: building ..."
    t0=$SECONDS
    if ! build_component "$c" >"$bindir/$c.build.log" 2>&1; then
        echo "build.sh: FAILED to build $c (pins: $here/versions.env); last lines of $bindir/$c.build.log:" >&2
        tail -n 30 "$bindir/$c.build.log" >&2
        rm -f "$bindir/$c.tmp"
        exit 1
    fi
    # One line per build, kept for `make bench` to report what builds really cost on this machine.
    printf '{"component": "%s", "seconds": %d, "finished": %d}\n' "$c" $((SECONDS - t0)) "$(date +%s)" \
        >>"$bindir/build-times.jsonl"
    echo "[$i/$total] $c: built in $((SECONDS - t0)) s"
done
echo "control plane ready in $bindir ($((SECONDS - started)) s)"
