#!/usr/bin/env bash
# Packs a built tree for a GPU machine that has the CUDA driver and toolkit but not every library
# this build links: copies build/bin (debug info stripped), the CTest files, and the shared
# libraries the GPU machine may lack into DEST/build, keeping paths so CTest runs there unchanged.
# Usage: tools/bundle_gpu.sh [BUILD_DIR] [DEST] [--pack]   (defaults: build .carry)
#   --pack: also compress the bundle into DEST/build.tar.xz and drop the folder (unpack on the GPU
#   machine with `tar -xJf DEST/build.tar.xz -C DEST`).
set -euo pipefail
cd "$(dirname "$0")/.."
pack=0
args=()
for a in "$@"; do
  if [ "$a" = --pack ]; then pack=1; else args+=("$a"); fi
done
build=${args[0]:-build}
dest=${args[1]:-.carry}
rm -rf "$dest/build" "$dest/build.tar.xz"
mkdir -p "$dest/build/bin/lib"
# CTest metadata (absolute paths inside point at this checkout's build dir).
(cd "$build" && find . \( -name CTestTestfile.cmake -o -name '*_tests.cmake' -o -name '*_include.cmake' \) -print0 |
  xargs -0 -I{} cp --parents {} "../$dest/build/")
for f in "$build"/bin/*; do
  [ -f "$f" ] || continue
  cp "$f" "$dest/build/bin/"
  strip --strip-debug "$dest/build/bin/$(basename "$f")" 2>/dev/null || true
done
# Libraries that differ between distributions (soname or presence): carry Debian's copies.
for f in "$build"/bin/*; do
  [ -x "$f" ] && [ -f "$f" ] || continue
  ldd "$f" 2>/dev/null | awk '/=>/ {print $3}' | grep -E 'yaml-cpp|spdlog|xxhash|libfmt|benchmark|httplib' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$dest/build/bin/lib/"; done
du -sh "$dest/build"
if [ $pack = 1 ]; then
  tar -cJf "$dest/build.tar.xz" -C "$dest" build
  rm -rf "$dest/build"
  du -sh "$dest/build.tar.xz"
fi
