#!/usr/bin/env bash
# Runs the whole test suite through CTest. GPU tests skip without a device (set KB_REQUIRE_GPU=1 to
# make them fail instead). Usage: tools/test.sh [--build-dir DIR] [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
if [ "${1:-}" = "--build-dir" ]; then build_dir="$2"; shift 2; fi
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "$@"
