#!/usr/bin/env bash
# Renders deploy/ with `kubectl kustomize` (base, overlays cpu, gpu and hostpath, monitoring,
# monitoring/operator), validates every object against the Kubernetes schemas (npm
# kubernetes-models, tests/npm/k8s_validate.mjs) and checks the serving overlays' wiring
# (check_manifests.py; with MOE_BIN also every MOE_* key against `moe ROLE --help`).
# Exit 77 when kubectl (or kustomize) or node is absent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if command -v kubectl >/dev/null; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
else
  echo "neither kubectl nor kustomize installed: skipped"
  exit 77
fi
command -v node >/dev/null || { echo "node not installed: skipped"; exit 77; }
[ -d "$repo/tests/npm/node_modules/kubernetes-models" ] ||
  { echo "tests/npm/node_modules missing (scripts/install-deps.sh): skipped"; exit 77; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
moe_args=()
if [ -n "${MOE_BIN:-}" ] && [ -x "$MOE_BIN" ]; then moe_args=(--moe "$MOE_BIN"); fi
for target in base overlays/cpu overlays/gpu overlays/hostpath monitoring monitoring/operator; do
  out="$tmp/$(echo "$target" | tr / -).yaml"
  render "$repo/deploy/$target" >"$out"
  echo "== $target: $(grep -c '^kind:' "$out") objects"
  allow=()
  if [ "$target" = monitoring/operator ]; then
    allow=(--allow-kind monitoring.coreos.com/v1/PodMonitor
           --allow-kind monitoring.coreos.com/v1/PrometheusRule)
  fi
  node "$repo/tests/npm/k8s_validate.mjs" "${allow[@]}" "$out" | grep -v '^ok ' || true
  node "$repo/tests/npm/k8s_validate.mjs" "${allow[@]}" "$out" >/dev/null
  case "$target" in
    base|overlays/*)
      variant="${target#overlays/}"
      [ "$variant" = hostpath ] && variant=cpu
      python3 "$repo/tests/deploy/check_manifests.py" --variant "$variant" \
        --rendered "$out" "${moe_args[@]}" ;;
  esac
done
echo "kustomize render + schema validation: passed"
