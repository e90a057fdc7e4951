#!/usr/bin/env bash
# Disaggregation benchmark (issue 4): the single-process engine against `moe up` (2 expert
# services + 1 attention worker) over gRPC and shared memory, with 1 and 2 micro-batches.
# Every configuration is driven by the same client (`moe loadgen`, the attention worker's
# Generate RPC) at 1, 4 and 8 concurrent requests of GEN_TOKENS greedy tokens, and the rows
# print as one table. Time is printed, never asserted.
#
#   bench/run_disagg_bench.sh [MODEL_DIR] [BUILD_DIR]
#
# MODEL_DIR defaults to /tmp/moe-bench-models/bench-mixtral (written with `moe demo-model
# --preset bench-mixtral --arch mixtral --dtype bf16` if missing). Environment: ROUNDS (3),
# GEN_TOKENS (64), PROMPT_TOKENS (32), CONCURRENCY (1,4,8), CONFIGS (default: all, e.g.
# "single grpc-mb1 shm-mb2 shm-mb1-r2"; -rR = R replicas per expert), UP_FLAGS (extra
# `moe up` flags), SINGLE_THREADS (2).
# The machine may be shared: `top` is printed before and after.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-/tmp/moe-bench-models/bench-mixtral}"
build="${2:-$here/build}"
moe="$build/tools/moe"
rounds="${ROUNDS:-3}"
gen="${GEN_TOKENS:-64}"
prompt="${PROMPT_TOKENS:-32}"
conc="${CONCURRENCY:-1,4,8}"
configs="${CONFIGS:-single grpc-mb1 grpc-mb2 shm-mb1 shm-mb2 grpc-mb1-r2 shm-mb1-r2 shm-mb2-r2}"
if [[ ! -x "$moe" ]]; then
  echo "run_disagg_bench: $moe not built; run: cmake --build $build --target moe" >&2
  exit 1
fi
if [[ ! -f "$model/model.safetensors" ]]; then
  echo "== generating $model =="
  rm -rf "$model"
  "$moe" demo-model --out "$model" --preset bench-mixtral --arch mixtral --dtype bf16
fi

work="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap 'cleanup; rm -rf "$work"' EXIT

# Waits (bounded) for a line matching $2 in file $1; prints the line.
wait_line() {
  for _ in $(seq 600); do
    if line=$(grep -m1 -- "$2" "$1" 2>/dev/null); then echo "$line"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "run_disagg_bench: no '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

run_loadgen() {  # label target
  "$moe" loadgen --target "$2" --label "$1" --concurrency "$conc" --rounds "$rounds" \
    --gen-tokens "$gen" --prompt-tokens "$prompt" | grep -v '^| config' >>"$work/table"
}

echo "== load before (top -bn1) =="
top -bn1 | head -15
: >"$work/table"
for cfg in $configs; do
  log="$work/$cfg.log"
  case "$cfg" in
    single)
      "$moe" attention --model "$model" --experts local --host 127.0.0.1 --port 0 \
        --admin-port 0 --threads "${SINGLE_THREADS:-2}" --log-level warn >"$log" 2>&1 &
      pid=$!
      addr=$(wait_line "$log" "listening on" | awk '{print $3}')
      ;;
    grpc-mb*|shm-mb*)
      # <transport>-mb<M>[-r<R>]: R replicas per expert (default 1; 2 = every expert on both
      # services, so the dispatcher balances each layer's experts over them).
      transport="${cfg%%-*}"
      rest="${cfg#*-mb}"
      mb="${rest%%-*}"
      replicas=1
      if [[ "$rest" == *-r* ]]; then replicas="${rest##*-r}"; fi
      # shellcheck disable=SC2086
      "$moe" up --model "$model" --experts 2 --attention 1 --transport "$transport" \
        --micro-batches "$mb" --replicas "$replicas" --port 0 --log-level warn ${UP_FLAGS:-} \
        >"$log" 2>&1 &
      pid=$!
      wait_line "$log" "listening on" >/dev/null
      addr=$(wait_line "$log" "attention workers" | awk '{print $3}')
      ;;
    *) echo "run_disagg_bench: unknown config $cfg" >&2; exit 2 ;;
  esac
  echo "== $cfg: attention worker $addr =="
  run_loadgen "$cfg" "$addr" || echo "run_disagg_bench: $cfg had failed requests" >&2
  cleanup
done
echo
echo "model $model, $gen generated + $prompt prompt tokens per request, greedy, ignore_eos;"
echo "tok/s = generated tokens of all requests / wall time; median of $rounds rounds"
printf "| %-28s | conc | tok/s (median) | TTFT median ms | TTFT max ms | failed |\n" config
echo "|------------------------------|------|----------------|----------------|-------------|--------|"
sort -s -t'|' -k3,3n "$work/table"
echo "== load after =="
top -bn1 | head -5
