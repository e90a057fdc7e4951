#!/usr/bin/env bash
# Greedy vs ILP expert placement on synthetic traces (Mixtral, Qwen3-235B, DeepSeek-V3 shapes on
# 8/32/64/256 instances). Builds the benchmark if needed and prints the markdown table that
# bench/README.md quotes. Extra arguments go to the program, e.g. --time-limit 5 --engine glpk.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [[ ! -x "$BUILD/bench/placement_benchmark" ]]; then
  flock /tmp/moe-build.lock cmake --build "$BUILD" -j2 --target placement_benchmark
fi
echo "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
top -bn1 | head -5 | tail -4 || true
echo
"$BUILD/bench/placement_benchmark" "$@"
