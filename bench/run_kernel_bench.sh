#!/usr/bin/env bash
# Runs the expert FFN kernel benchmark and prints its table (medians over repetitions).
#
#   bench/run_kernel_bench.sh [BUILD_DIR] [extra benchmark flags...]
#
# Environment: REPS (default 5) repetitions per case; THREADS (default: all cores) kernel
# threads (sets MOE_KERNEL_THREADS and OMP_NUM_THREADS); OUT (default BUILD_DIR/bench-results)
# where the raw JSON goes (for plotting). The machine may be shared: the script prints `top`
# first so the table can be read against the load it ran under. Time is never asserted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$here/build}"
shift || true
bin="$build/bench/expert_ffn_benchmark"
if [[ ! -x "$bin" ]]; then
  echo "run_kernel_bench: $bin not built; run: cmake --build $build --target expert_ffn_benchmark" >&2
  exit 1
fi
reps="${REPS:-5}"
out="${OUT:-$build/bench-results}"
mkdir -p "$out"
if [[ -n "${THREADS:-}" ]]; then
  export MOE_KERNEL_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"
fi

echo "== load before the run (top -bn1) =="
top -bn1 | head -15
echo
stamp="$(date +%Y%m%d-%H%M%S)"
"$bin" --benchmark_repetitions="$reps" \
  --benchmark_out="$out/expert_ffn-$stamp.json" --benchmark_out_format=json "$@" \
  | sed -n '/^== machine/,$p'
echo
echo "== load after the run =="
top -bn1 | head -5
echo "raw results: $out/expert_ffn-$stamp.json"
