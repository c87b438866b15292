#!/usr/bin/env bash
# The GPU check of kbench's baselines: times every problem's baseline (bench_baselines), times
# PyTorch eager on the same GPU with its defaults and with strict FP32 (tools/torch_time.py),
# writes the comparison table (tools/baseline_table.py), and with --crosscheck compares every
# baseline's output with PyTorch's (tools/torch_crosscheck.py). Logs land in OUTDIR.
# Usage: tools/baseline_check.sh OUTDIR [BUILD_DIR] [--crosscheck-only|--crosscheck]
#   [--problems "id id ..."]   restricts the timing and the cross-check to these problems
set -uo pipefail
out=${1:?usage: tools/baseline_check.sh OUTDIR [BUILD_DIR] [--crosscheck|--crosscheck-only]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=""
mode=time
problems=""
while [ $# -gt 0 ]; do
  case $1 in
  --crosscheck) mode=both ;;
  --crosscheck-only) mode=crosscheck ;;
  --problems) problems=$2; shift ;;
  -*) echo "baseline_check.sh: unknown flag $1" >&2; exit 2 ;;
  *) build=$1 ;;
  esac
  shift
done
. "$root/tools/gpu_env.sh"
bin=$build/bin
kbench=$bin/kbench
kb_times=$root/data/kernelbench-timings/H100_Modal/baseline_time_torch.json
note "kbench baseline check, $(date -u +%FT%TZ), build $build"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$summary" 2>&1

ids=$out/problems.txt
if [ -n "$problems" ]; then
  tr ' ' '\n' <<<"$problems" | grep -v '^$' >"$ids"
else
  "$kbench" list --json | python3 -c 'import json,sys; print("\n".join(p["id"] for p in json.load(sys.stdin)))' >"$ids"
fi
filter="^($(paste -sd'|' "$ids"))/"

if [ "$mode" != crosscheck ]; then
  step bench_baselines 420 "$bin/bench_baselines" --torch_times="$kb_times" --per_op=1 \
    --benchmark_filter="$filter" --benchmark_out="$out/bench_baselines.json" \
    --benchmark_out_format=json
  grep '^per-op' "$out/bench_baselines.log" >"$out/per_op.log"
  step torch_eager 420 python3 "$root/tools/torch_time.py" --kbench "$kbench" \
    --problems-file "$ids" --out-dir "$out/eager" --trials 20 --no-compile
  step torch_strict 420 python3 "$root/tools/torch_time.py" --kbench "$kbench" \
    --problems-file "$ids" --out-dir "$out/strict" --trials 20 --no-compile --strict-fp32
  step table 60 python3 "$root/tools/baseline_table.py" --kbench "$kbench" \
    --bench "$out/bench_baselines.json" --kernelbench "$kb_times" \
    --eager "$out/eager/baseline_time_torch.json" --strict "$out/strict/baseline_time_torch.json"
  cat "$out/table.log" >>"$summary"
fi
if [ "$mode" != time ]; then
  args=()
  while read -r id; do args+=(--problem "$id"); done <"$ids"
  KB_XCHECK_WORK=$out/xcheck-work step crosscheck 580 python3 "$root/tools/torch_crosscheck.py" \
    --bin "$bin" "${args[@]}" --json "$out/crosscheck.json"
  grep -vE '^\s|^\[|^\]|^\{|^\}' "$out/crosscheck.log" >>"$summary"
  rm -rf "$out/xcheck-work"
fi
note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
