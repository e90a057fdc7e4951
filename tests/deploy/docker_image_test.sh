#!/usr/bin/env bash
# Opt-in (MOE_DOCKER_TEST=1): builds the CPU image with docker/build-image.sh (private dockerd,
# debootstrapped debian:bookworm base, ccache seeded from this machine) and runs
# docker/smoke-test.sh (moe up inside, /ready 200, a completion). Skipped (77) otherwise, or
# without root, dockerd or debootstrap: a cold build compiles the whole project on this
# machine's cores, far beyond what a CI test may take (docs/deploy.md says how long it took).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "${MOE_DOCKER_TEST:-0}" != 1 ]; then
  echo "docker image test is opt-in: MOE_DOCKER_TEST=1 runs it: skipped"
  exit 77
fi
[ "$(id -u)" = 0 ] || { echo "needs root (dockerd): skipped"; exit 77; }
for tool in dockerd debootstrap; do
  command -v "$tool" >/dev/null || { echo "$tool not installed: skipped"; exit 77; }
done
start=$SECONDS
bash "$repo/docker/build-image.sh" --tag moe:test
echo "image built in $((SECONDS - start)) s"
bash "$repo/docker/smoke-test.sh" moe:test
echo "build + smoke test: $((SECONDS - start)) s"
