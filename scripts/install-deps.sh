#!/usr/bin/env bash
# Installs every Debian (and npm) package the build and the tests need.
# Idempotent: safe to run again; does nothing slow when everything is present.
# Run as root on Debian 12 (bookworm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

APT_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # RPC, messages, basics
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # HTTP, JSON, metrics, logging
  libboost-dev libboost-system-dev nlohmann-json3-dev libsimdjson-dev prometheus-cpp-dev
  libssl-dev  # HTTPS to the Kubernetes API (scheduler/scaling/kubernetes_provider)
  libspdlog-dev libfmt-dev
  # solvers
  coinor-libcbc-dev coinor-libcgl-dev coinor-libosi-dev coinor-libclp-dev coinor-libcoinutils-dev
  libglpk-dev
  # CPU GEMM (oneDNN's CMake config wants OpenCL headers)
  libdnnl-dev ocl-icd-opencl-dev opencl-headers
  # tokenizers
  libpcre2-dev libsentencepiece-dev
  libicu-dev  # NFC/NFKC normalizers and Unicode classes in model/tokenizer
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # tools used by tests
  curl python3 prometheus
  yamllint  # deploy/ manifests (tests/deploy)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: apt packages present"
fi

# npm tools used by tests (pinned in tests/npm/package-lock.json).
if [ -f "$here/tests/npm/package.json" ]; then
  if [ ! -d "$here/tests/npm/node_modules" ] || \
     [ "$here/tests/npm/package-lock.json" -nt "$here/tests/npm/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/npm"
    (cd "$here/tests/npm" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "install-deps: npm packages present"
  fi
fi
