#!/usr/bin/env bash
# The one GPU check for kbench's evaluator: GPU tests (ctest -L gpu with KB_REQUIRE_GPU=1, then
# the e2e label), kbench doctor and calibration, an eval of every example kernel, and the
# overhead/throughput/repeatability benchmark. Logs land in OUTDIR. Fits in ten minutes.
# Usage: tools/gpu_check.sh OUTDIR [BUILD_DIR]
#   BUILD_DIR defaults to build/ (or .carry/build when a bundle from tools/bundle_gpu.sh is there).
#   KB_GPU_CHECK_PARTS picks parts (comma-separated; default all): tests, examples, main, bench.
#   The GPU tests run one at a time, except the naive-candidate shards, which run eight at once
#   (they judge correctness only, and each spends most of its time in nvcc).
set -uo pipefail
out=${1:?usage: tools/gpu_check.sh OUTDIR [BUILD_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-}
. "$root/tools/gpu_env.sh"
export KB_CACHE_DIR=$out/cache
bin=$build/bin
kbench=$bin/kbench

parts=",${KB_GPU_CHECK_PARTS:-tests,examples,main,bench},"
want() { [[ $parts == *",$1,"* ]]; }

note "kbench GPU check, $(date -u +%FT%TZ), build $build"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$summary" 2>&1

step doctor 60 "$kbench" doctor
step doctor_json 60 "$kbench" doctor --json
cp "$out/doctor_json.log" "$out/doctor.json" 2>/dev/null
step calibrate 120 "$kbench" doctor --calibrate --output "$out/calibration.json"

# GPU tests, via CTest when its files are there, else the test binaries directly.
if want tests; then
  if [ -f "$build/CTestTestfile.cmake" ]; then
    step ctest_gpu 300 ctest --test-dir "$build" -L gpu -E NaiveOnGpu --output-on-failure \
      --timeout 120
    step ctest_gpu_naive 240 ctest --test-dir "$build" -R NaiveOnGpu -j8 --output-on-failure \
      --timeout 200
    step ctest_e2e 150 ctest --test-dir "$build" -L e2e -j4 --output-on-failure --timeout 90 \
      --no-tests=ignore
  else
    step test_eval_adversarial 300 "$bin/test_eval_adversarial"
  fi
fi

# Every shipped example kernel: verdict, times, speedup (JSON per kernel, one summary table).
calib=()
[ -f "$out/calibration.json" ] && calib=(--calibration "$out/calibration.json")
if want examples; then
: >"$out/examples.log"
for dir in "$root"/levels/examples/*/; do
  stem=$(basename "$dir")
  yaml=$(ls "$root"/levels/level*/"$stem".yaml 2>/dev/null | head -1)
  [ -n "$yaml" ] || { note "examples: no problem file for $stem"; continue; }
  for kind in plain tuned; do
    [ -f "$dir/$kind.cu" ] || continue
    json=$out/example_${stem}_$kind.json
    if timeout --kill-after=10 120 "$kbench" eval --problem "$yaml" "$dir/$kind.cu" --json \
      --time-cap 2 "${calib[@]}" >"$json" 2>>"$out/examples.log"; then
      python3 - "$json" "$stem" "$kind" >>"$out/examples.log" <<'EOF' || echo "$stem $kind: unreadable result" >>"$out/examples.log"
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("candidate_time") or {}
b = r.get("baseline_time") or {}
print(f"{sys.argv[2]:28s} {sys.argv[3]:6s} {r['outcome']:14s} cand {t.get('median_ms', 0):9.4f} ms "
      f"base {b.get('median_ms', 0):9.4f} ms speedup {r.get('speedup', 0):6.2f}x "
      f"roofline {r.get('roofline_pct', 0):5.1f}% flags {','.join(r.get('flags', [])) or '-'} "
      f"{r.get('message', '')[:160]}")
EOF
    else
      echo "$stem $kind: kbench eval failed (rc=$?)" >>"$out/examples.log"
      status=1
    fi
  done
done
note "examples:"
cat "$out/examples.log" >>"$summary"
grep -qv " correct " "$out/examples.log" && status=1
fi

# The README's main job with the shipped defaults (replay model, level 1), then its reports.
# Level 1 now holds every KernelBench problem, most answered by their naive candidates at full
# size: the whole level is its own GPU call (KB_GPU_CHECK_FULL=1 runs it here, with no limit of
# its own). By default the main job runs over the problems with example kernels.
if want main; then
if [ "${KB_GPU_CHECK_FULL:-0}" = 1 ]; then
  step main_job 3600 "$kbench" run --level 1 --db "$out/kbench.db" "${calib[@]}"
else
  examples=$(ls -d "$root"/levels/examples/*/ | xargs -n1 basename | paste -sd, -)
  step main_job 420 "$kbench" run --level 1 --problems "$examples" --db "$out/kbench.db" \
    "${calib[@]}"
fi
tail -n 5 "$out/main_job.log" >>"$summary"
step report 60 "$kbench" report --db "$out/kbench.db"
cat "$out/report.log" >>"$summary"
step report_html 60 "$kbench" report --db "$out/kbench.db" --format html -o "$out/report.html"
fi

# Overhead by phase, throughput and repeatability (fresh processes).
if want bench && [ -x "$bin/bench_eval" ]; then
  KB_BENCH_CANDIDATES=${KB_BENCH_CANDIDATES:-30} KB_BENCH_REPEATS=${KB_BENCH_REPEATS:-10} \
    step bench_eval 240 "$bin/bench_eval" --benchmark_out="$out/bench_eval.json" \
    --benchmark_out_format=json
  grep -E "BM_|----" "$out/bench_eval.log" >>"$summary"
  # The same repeatability with the launch hold (TimingOptions::hold_launch), for comparison.
  KB_BENCH_HOLD_LAUNCH=1 KB_BENCH_REPEATS=${KB_BENCH_REPEATS:-10} \
    step bench_eval_hold 180 "$bin/bench_eval" --benchmark_filter=Repeatability \
    --benchmark_out="$out/bench_eval_hold.json" --benchmark_out_format=json
  note "repeatability with the launch hold:"
  grep -E "BM_|----" "$out/bench_eval_hold.log" >>"$summary"
fi
note "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
