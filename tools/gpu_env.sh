# Sourced by the GPU check scripts: resolves the build and log folders, starts OUTDIR/summary.log
# and makes a build made elsewhere usable on this GPU machine.
# Expects $root (checkout), $out (log dir) and $build (build dir; empty: .carry/build when a bundle
# from tools/bundle_gpu.sh is there, else build/). Sets $summary and $status=0, defines `note` and
# `step`, exports PATH, LD_LIBRARY_PATH and KB_REQUIRE_GPU.
if [ -z "$build" ]; then
  if [ -d "$root/.carry/build" ]; then build=$root/.carry/build; else build=$root/build; fi
fi
build=$(cd "$build" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary=$out/summary.log
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
status=0

# A build made elsewhere records its source and build paths (CTest files, KB_SOURCE_DIR): make
# those paths resolve here.
if [ -f "$build/CTestTestfile.cmake" ]; then
  rec_src=$(sed -n 's/^# Source directory: //p' "$build/CTestTestfile.cmake" | head -1)
  rec_build=$(sed -n 's/^# Build directory: //p' "$build/CTestTestfile.cmake" | head -1)
  for pair in "$rec_src:$root" "$rec_build:$build"; do
    want=${pair%%:*} have=${pair#*:}
    if [ -n "$want" ] && [ ! -e "$want" ]; then
      mkdir -p "$(dirname "$want")" && ln -s "$have" "$want" && note "linked $want -> $have"
    fi
  done
fi
# cuDNN 9.19 (matching the headers the build used) before the system's 9.14, when present.
cudnn=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
[ -d "$cudnn" ] && export LD_LIBRARY_PATH=$cudnn:${LD_LIBRARY_PATH:-}
[ -d /opt/torch/.venv/bin ] && export PATH=$PATH:/opt/torch/.venv/bin
export PATH=$PATH:/usr/local/cuda/bin
export KB_REQUIRE_GPU=1

step() { # step NAME TIMEOUT CMD...: runs CMD with a timeout, output to OUTDIR/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  note "$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" $((SECONDS - t0)))"
  [ $rc -ne 0 ] && status=1
  return $rc
}
