#!/usr/bin/env bash
# Installs dependencies, builds, writes the demo model if needed, and runs it.
# Until the gateway exists (issue "Gateway") this runs the single-process engine on a prompt;
# then it becomes `moe up`. Extra arguments go to `moe generate` (e.g. --prompt "...").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
BUILD_DIR="${MOE_BUILD_DIR:-build}"
MOE="$BUILD_DIR/tools/moe"
MODEL="${MOE_MODEL:-$BUILD_DIR/demo-model}"
if [ ! -f "$MODEL/config.json" ]; then
  "$MOE" demo-model --out "$MODEL" --preset tiny --arch qwen3moe --dtype bf16
fi
"$MOE" --help
echo
if [ $# -eq 0 ]; then
  set -- --prompt "The quick brown fox" --max-tokens 24 --temperature 0
fi
"$MOE" generate --model "$MODEL" "$@"
