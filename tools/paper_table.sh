#!/usr/bin/env bash
# The seed article's table on this machine's GPU, from the shipped example kernels: PyTorch eager
# and torch.compile timed here (tools/torch_time.py), imported into the results database, every
# example kernel answered by the replay model and evaluated (best-of-2: plain.cu and tuned.cu),
# and the paper table with each problem's kernel time, % of eager, % of torch.compile and % of
# roofline.
# Usage: tools/paper_table.sh OUTDIR [BUILD_DIR]   (BUILD_DIR defaults to build/)
set -euo pipefail
out=${1:?usage: tools/paper_table.sh OUTDIR [BUILD_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build}
kbench=$build/bin/kbench
python=${PYTHON:-python3}
mkdir -p "$out"
db=$out/paper.db

# The problems that have example kernels (one folder per problem stem).
ids=()
for dir in "$root"/levels/examples/*/; do
  stem=$(basename "$dir")
  yaml=$(ls "$root"/levels/level*/"$stem".yaml 2>/dev/null | head -1)
  if [ -z "$yaml" ]; then
    echo "paper_table.sh: levels/examples/$stem has no problem file; skipped" >&2
    continue
  fi
  level=$(basename "$(dirname "$yaml")")
  ids+=("l${level#level}/$stem")
done
[ ${#ids[@]} -gt 0 ] || { echo "paper_table.sh: no example kernels under levels/examples" >&2; exit 2; }
problems=$(IFS=,; echo "${ids[*]}")
echo "problems: $problems"

# 1. PyTorch on this GPU, with its default precision (what the article measured against).
args=()
for id in "${ids[@]}"; do args+=(--problem "$id"); done
"$python" "$root/tools/torch_time.py" --kbench "$kbench" "${args[@]}" --out-dir "$out/torch"
"$kbench" import-baselines "$out"/torch/*.json --db "$db"

# 2. The replay model answers with both example kernels of each problem.
"$kbench" run --problems "$problems" --strategy best-of-n --samples 2 --db "$db" \
  --levels-dir "$root/levels"

# 3. The paper table: speedups as % of PyTorch's speed, roofline %.
"$kbench" report --db "$db" --format markdown --percent -o "$out/paper.md"
"$kbench" report --db "$db" --format csv --table paper -o "$out/paper.csv"
echo "paper table: $out/paper.md (CSV: $out/paper.csv)"
