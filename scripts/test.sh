#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (ctest labels: unit, integration, golden, gpu).
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR="${MOE_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j"${MOE_JOBS:-$(nproc)}" "$@"
