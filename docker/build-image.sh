#!/usr/bin/env bash
# Builds the `moe` container image on a machine without a container registry.
#
#   bash docker/build-image.sh [--cuda] [--tag NAME] [--worktree] [--no-ccache-seed]
#
# What it does (each step is skipped when already done, so it is safe to run again):
#   1. starts a private Docker engine (Debian's docker.io `dockerd`) unless one answers on
#      $MOE_DOCKER_HOST: no bridge, no iptables, data and exec roots under $MOE_DOCKER_DIR
#      (default /tmp/moe-docker), niced so a build does not starve the machine;
#   2. makes the `debian:bookworm` base image with debootstrap + `docker import` when the engine
#      has none (no registry is reachable here; the Debian mirror is);
#   3. seeds the build's ccache cache mount with this machine's ccache (so a rebuild of what the
#      host already compiled is mostly cache hits);
#   4. builds docker/Dockerfile (or Dockerfile.cuda) from `git archive HEAD` (committed sources
#      only; --worktree: the work tree as it is) with `--network host`.
# Prints the engine address to use afterwards:  DOCKER_HOST=unix://... docker run ...
#
# Needs root, docker.io and debootstrap (apt-get install docker.io debootstrap).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="$here/docker/Dockerfile"
tag="moe:latest"
use_worktree=0
seed_ccache=1
while (($#)); do
  case "$1" in
    --cuda) dockerfile="$here/docker/Dockerfile.cuda"; tag="moe:cuda" ;;
    --tag) tag="$2"; shift ;;
    --worktree) use_worktree=1 ;;
    --no-ccache-seed) seed_ccache=0 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

state="${MOE_DOCKER_DIR:-/tmp/moe-docker}"
export DOCKER_HOST="${MOE_DOCKER_HOST:-unix://$state/docker.sock}"
# Debian's docker.io client (20.10) builds with its built-in BuildKit; a newer client without
# the buildx plugin cannot. Prefer it when both are installed.
docker_cli="${DOCKER:-}"
if [ -z "$docker_cli" ]; then
  if [ -x /usr/bin/docker ]; then docker_cli=/usr/bin/docker; else docker_cli=docker; fi
fi
mirror="${MOE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "build-image: $*" >&2; }

# ---- 1. the engine ------------------------------------------------------------------------
start_engine() {
  if "$docker_cli" version >/dev/null 2>&1; then
    log "engine answers on $DOCKER_HOST"
    return
  fi
  command -v dockerd >/dev/null || { log "dockerd missing: apt-get install docker.io"; exit 1; }
  mkdir -p "$state/data" "$state/exec"
  log "starting dockerd (data root $state/data, log $state/dockerd.log)"
  # setsid: the engine outlives this script (stop it with: kill $(cat $state/dockerd.pid)).
  setsid nice -n 10 dockerd \
    --host "$DOCKER_HOST" --data-root "$state/data" --exec-root "$state/exec" \
    --pidfile "$state/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
    >"$state/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if "$docker_cli" version >/dev/null 2>&1; then
      log "engine up (pid $(cat "$state/dockerd.pid"))"
      return
    fi
    sleep 1
  done
  log "dockerd did not answer in 60 s; last lines of its log:"
  tail -20 "$state/dockerd.log" >&2
  exit 1
}

# ---- 2. the base image --------------------------------------------------------------------
ensure_base() {
  if "$docker_cli" image inspect debian:bookworm >/dev/null 2>&1; then
    log "base image debian:bookworm present"
    return
  fi
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }
  local root
  root="$(mktemp -d "$state/rootfs.XXXXXX")"
  log "debootstrap bookworm (minbase) from $mirror into $root"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$state/debootstrap.log" 2>&1 || {
    tail -20 "$state/debootstrap.log" >&2
    exit 1
  }
  # The same suites as a stock image: updates and security fixes.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "$docker_cli" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - debian:bookworm >/dev/null
  rm -rf "$root"
  log "imported debian:bookworm"
}

# ---- 3. ccache seed -----------------------------------------------------------------------
seed_cache() {
  local dir
  dir="$(ccache -k cache_dir 2>/dev/null || true)"
  if [ "$seed_ccache" = 0 ] || [ -z "$dir" ] || [ ! -d "$dir" ]; then
    log "no ccache seed"
    return
  fi
  log "seeding the build's ccache mount from $dir ($(du -sh "$dir" | cut -f1))"
  # Copies into the cache mount the Dockerfiles use (id moe-ccache); entries already there stay.
  DOCKER_BUILDKIT=1 "$docker_cli" build --network host -q -f - "$dir" >/dev/null <<'EOF'
FROM debian:bookworm
RUN --mount=type=cache,id=moe-ccache,target=/ccache --mount=type=bind,target=/seed \
    cp -a --no-clobber /seed/. /ccache/ && rm -f /ccache/ccache.conf && date > /seeded
EOF
}

# ---- 4. the build ---------------------------------------------------------------------------
build() {
  local ctx
  if [ "$use_worktree" = 1 ]; then
    ctx="$here"
  else
    ctx="$(mktemp -d "$state/context.XXXXXX")"
    git -C "$here" archive HEAD | tar -x -C "$ctx"
  fi
  log "building $tag from $(basename "$dockerfile") (context: ${ctx})"
  local start=$SECONDS
  # SRC_DIR: the container builds at the same path as this checkout, so the seeded ccache,
  # which keys on paths relative to the build directory's depth, hits.
  DOCKER_BUILDKIT=1 "$docker_cli" build --network host --progress plain \
    --build-arg "SRC_DIR=$here" -f "$dockerfile" -t "$tag" "$ctx"
  log "built $tag in $((SECONDS - start)) s"
  if [ "$use_worktree" = 0 ]; then rm -rf "$ctx"; fi
}

mkdir -p "$state"
start_engine
ensure_base
if [ "$(basename "$dockerfile")" = Dockerfile ]; then seed_cache; fi
build
echo "DOCKER_HOST=$DOCKER_HOST"
