#!/usr/bin/env bash
# Micro-batch overlap A/B: `moe bench` batched decode with the routed experts in N `moe expert`
# services (gRPC on loopback, round-robin placement), once per micro-batch count, alternating
# within each repeat. Prints `top` before and after (the machine may be shared). Time is never
# asserted.
#
#   bench/run_micro_batch_bench.sh MODEL_DIR [BUILD_DIR]
#
# Environment: EXPERTS (services, default 1), EXPERT_THREADS (per service, default 1),
# ATTN_THREADS (the bench process's kernel threads, default 1), MICRO_BATCHES (default 1,2),
# BATCHES (default 8), REPEATS (default 5), GEN_TOKENS (default 32), BATCH_PROMPT_TOKENS
# (prompt per sequence in the batched rows, default 64).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: run_micro_batch_bench.sh MODEL_DIR [BUILD_DIR]}"
build="${2:-$here/build}"
moe="$build/tools/moe"
n="${EXPERTS:-1}"
if [[ ! -x "$moe" ]]; then
  echo "run_micro_batch_bench: $moe not built; run: cmake --build $build --target moe" >&2
  exit 1
fi

pids=()
logs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for l in "${logs[@]}"; do rm -f "$l"; done
}
trap cleanup EXIT

addrs=()
for ((i = 0; i < n; i++)); do
  log="$(mktemp)"
  logs+=("$log")
  "$moe" expert --model "$model" --port 0 --experts "round-robin:$i/$n/1" \
    --threads "${EXPERT_THREADS:-1}" --log-level warn >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do  # bounded: 60 s to load and listen
    if grep -q '^listening on ' "$log"; then break; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$log" >&2; exit 1; fi
    sleep 0.1
  done
  addr="$(sed -n 's/^listening on //p' "$log" | head -1)"
  [[ -n "$addr" ]] || { echo "expert service $i did not start" >&2; cat "$log" >&2; exit 1; }
  addrs+=("$addr")
done
echo "== expert services: ${addrs[*]} (threads ${EXPERT_THREADS:-1} each)"
echo "== load before (top -bn1) =="
top -bn1 | head -12
MOE_KERNEL_THREADS="${ATTN_THREADS:-1}" OMP_NUM_THREADS="${ATTN_THREADS:-1}" \
  "$moe" bench --model "$model" --expert-addrs "$(IFS=,; echo "${addrs[*]}")" \
  --micro-batches "${MICRO_BATCHES:-1,2}" --batches "${BATCHES:-8}" \
  --repeats "${REPEATS:-5}" --gen-tokens "${GEN_TOKENS:-32}" --prompt-tokens 64 \
  --batch-prompt-tokens "${BATCH_PROMPT_TOKENS:-64}"
echo "== load after =="
top -bn1 | head -3
