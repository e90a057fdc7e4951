#!/usr/bin/env bash
# Lints docker/Dockerfile and docker/Dockerfile.cuda with npm dockerfilelint (tests/npm).
# Exit 77 when node or the npm tools are absent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lint="$repo/tests/npm/node_modules/.bin/dockerfilelint"
command -v node >/dev/null || { echo "node not installed: skipped"; exit 77; }
[ -x "$lint" ] || { echo "dockerfilelint missing (scripts/install-deps.sh): skipped"; exit 77; }
for f in Dockerfile Dockerfile.cuda; do
  "$lint" "$repo/docker/$f"
done
# What the linter does not know: the image contract docs/deploy.md and deploy/ rely on.
for f in Dockerfile Dockerfile.cuda; do
  grep -q '^ENTRYPOINT \["moe"\]$' "$repo/docker/$f" || { echo "$f: ENTRYPOINT [\"moe\"]"; exit 1; }
  grep -q '^USER 10001:10001$' "$repo/docker/$f" || { echo "$f: USER 10001:10001"; exit 1; }
  [ "$(grep -c '^FROM ' "$repo/docker/$f")" -ge 2 ] || { echo "$f: not multi-stage"; exit 1; }
done
echo "dockerfilelint: both Dockerfiles clean"
