#!/usr/bin/env bash
# Installs kbench's dependencies from the distribution's packages (Debian 12 / Ubuntu 24.04),
# then configures and builds into build/. Usage: tools/setup.sh [--no-install] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
build_dir=build
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0 ;;
    --build-dir) build_dir="$2"; shift ;;
    *) echo "setup.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

packages=(
  cmake ninja-build g++ pkg-config git
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libcurl4-openssl-dev libsqlite3-dev sqlite3 libxxhash-dev libboost-math-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium
  python3-torch python3-yaml
  slurm-wlm
)

if [ "$install" = 1 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The CUDA toolkit (nvcc, cuBLAS, cuDNN) comes from NVIDIA's installer, not from apt here.
if [ -z "${CUDACXX:-}" ]; then
  for c in /usr/local/cuda/bin/nvcc "$(command -v nvcc || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then export CUDACXX="$c"; break; fi
  done
fi
if [ -z "${CUDACXX:-}" ]; then
  echo "setup.sh: nvcc not found: install the CUDA toolkit (13.x) or set CUDACXX" >&2
  exit 1
fi

jobs=$(nproc)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir" -j "$jobs"
echo "setup.sh: built into $build_dir/ (binaries in $build_dir/bin)"
