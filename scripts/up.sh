#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole system on this machine: `moe up` (expert
# services, an attention worker and the OpenAI-compatible gateway on loopback, port 8000).
# Without --model it writes and serves the built-in demo model. Extra arguments go to `moe up`
# (e.g. --model DIR --experts 4 --port 8080). Try:
#   curl http://127.0.0.1:8000/v1/completions -d '{"prompt": "Hello", "max_tokens": 16}'
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR="${MOE_BUILD_DIR:-build}"
exec "$BUILD_DIR/tools/moe" up "$@"
