#!/usr/bin/env bash
# yamllint (config deploy/.yamllint) on every YAML file of deploy/ and tests/deploy.
# Exit 77 when yamllint is absent (scripts/install-deps.sh installs it).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v yamllint >/dev/null || { echo "yamllint not installed: skipped"; exit 77; }
yamllint -s -c "$repo/deploy/.yamllint" "$repo/deploy" "$repo/tests/deploy"
echo "yamllint: clean ($(find "$repo/deploy" "$repo/tests/deploy" -name '*.y*ml' | wc -l) files)"
