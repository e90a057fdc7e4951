#!/usr/bin/env bash
# Runs `moe bench` (single-process engine throughput) on the two bench models and prints its
# tables (medians over repeats). Generates the models first if they are missing.
#
#   bench/run_engine_bench.sh [MODEL_DIR] [BUILD_DIR] [extra `moe bench` flags...]
#
# MODEL_DIR (default /tmp/moe-bench-models) gets bench-mixtral/ and bench-finegrained/
# (`moe demo-model --preset ...`, BF16, deterministic). BUILD_DIR defaults to ./build.
# Environment: REPEATS (default 3), GEN_TOKENS (default 64). The machine may be shared: the
# script prints `top` before and after each model so the figures can be read against the load.
# Time is never asserted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="${1:-/tmp/moe-bench-models}"
build="${2:-$here/build}"
shift 2 || shift $# || true
moe="$build/tools/moe"
if [[ ! -x "$moe" ]]; then
  echo "run_engine_bench: $moe not built; run: cmake --build $build --target moe" >&2
  exit 1
fi
mkdir -p "$models"
for preset in bench-mixtral bench-finegrained; do
  if [[ ! -f "$models/$preset/config.json" ]]; then
    echo "== generating $models/$preset =="
    "$moe" demo-model --out "$models/$preset" --preset "$preset"
  fi
done
for preset in bench-mixtral bench-finegrained; do
  echo
  echo "== $preset: load before (top -bn1) =="
  top -bn1 | head -12
  "$moe" bench --model "$models/$preset" --repeats "${REPEATS:-3}" \
    --gen-tokens "${GEN_TOKENS:-64}" "$@"
  echo "== load after =="
  top -bn1 | head -3
done
