#!/usr/bin/env bash
# Installs dependencies, builds, writes the demo model if needed, and serves it.
# Extra arguments go to the serving command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR="${MOE_BUILD_DIR:-build}"
"$BUILD_DIR/tools/moe" --help
