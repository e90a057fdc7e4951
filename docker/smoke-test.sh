#!/usr/bin/env bash
# Smoke test of the built image: runs `moe up` (demo model, every role) inside a container on
# the host's loopback, then checks the gateway's /ready answers 200, a completion comes back, and
# `docker stop` (SIGTERM) ends it with exit code 0.
#
#   bash docker/smoke-test.sh [IMAGE]        # default moe:latest
#
# Uses the engine docker/build-image.sh started ($MOE_DOCKER_HOST, else
# unix://$MOE_DOCKER_DIR/docker.sock, else unix:///tmp/moe-docker/docker.sock). The container
# shares the host's network namespace (`--network host`: the engine runs without a bridge) and
# every role binds 127.0.0.1 only. Every wait is bounded; the container is removed at the end.
set -euo pipefail

image="${1:-moe:latest}"
state="${MOE_DOCKER_DIR:-/tmp/moe-docker}"
export DOCKER_HOST="${MOE_DOCKER_HOST:-unix://$state/docker.sock}"
docker_cli="${DOCKER:-}"
if [ -z "$docker_cli" ]; then
  if [ -x /usr/bin/docker ]; then docker_cli=/usr/bin/docker; else docker_cli=docker; fi
fi
log() { echo "smoke-test: $*" >&2; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
name="moe-smoke-$$"
cleanup() {
  # SIGTERM to `moe up`, which stops every role; SIGKILL after 30 s.
  "$docker_cli" stop -t 30 "$name" >/dev/null 2>&1 || true
  "$docker_cli" rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

start=$SECONDS
"$docker_cli" run -d --name "$name" --network host "$image" \
  up --host 127.0.0.1 --port "$port" --experts 2 --startup-timeout-s 120 >/dev/null
log "container $name: moe up, gateway on 127.0.0.1:$port"

ready=0
for _ in $(seq 1 180); do
  if [ "$("$docker_cli" inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
    log "the container exited:"
    "$docker_cli" logs "$name" 2>&1 | tail -30 >&2
    exit 1
  fi
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ready" || true)"
  if [ "$code" = 200 ]; then ready=1; break; fi
  sleep 1
done
if [ "$ready" != 1 ]; then
  log "/ready did not answer 200 within 180 s"
  "$docker_cli" logs "$name" 2>&1 | tail -30 >&2
  exit 1
fi
log "/ready 200 after $((SECONDS - start)) s"

model="$(curl -sf --max-time 10 "http://127.0.0.1:$port/v1/models" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
body="$(curl -sf --max-time 60 "http://127.0.0.1:$port/v1/completions" \
  -H 'Content-Type: application/json' \
  -d "{\"model\": \"$model\", \"prompt\": \"The capital of France is\", \"max_tokens\": 8, \"temperature\": 0}")"
tokens="$(printf '%s' "$body" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["object"] == "text_completion", r
assert len(r["choices"]) == 1 and isinstance(r["choices"][0]["text"], str), r
print(r["usage"]["completion_tokens"])')"
if [ "$tokens" != 8 ]; then
  log "expected 8 completion tokens, got $tokens: $body"
  exit 1
fi
log "completion from model $model: 8 tokens"
# `docker stop` sends SIGTERM to moe (PID 1 in the container): every role must stop cleanly.
"$docker_cli" stop -t 30 "$name" >/dev/null
code="$("$docker_cli" inspect -f '{{.State.ExitCode}}' "$name")"
if [ "$code" != 0 ]; then
  log "the container exited with $code after SIGTERM"
  "$docker_cli" logs "$name" 2>&1 | tail -20 >&2
  exit 1
fi
log "SIGTERM: exit 0; PASS ($((SECONDS - start)) s)"
