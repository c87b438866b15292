#!/usr/bin/env python3
"""Builds the baseline-speed table of docs/baselines.md: kbench's baseline time per problem (from
bench_baselines' JSON output) next to PyTorch eager times (KernelBench's H100 table, and times
measured with tools/torch_time.py on the same GPU, with PyTorch's defaults and with strict FP32),
and lists the problems where the baseline is more than 10% slower than PyTorch eager.

Usage:
  tools/baseline_table.py --bench bench_baselines.json [--kernelbench baseline_time_torch.json]
                          [--eager eager/baseline_time_torch.json]
                          [--strict strict/baseline_time_torch.json] [--kbench build/bin/kbench]
Ratios are PyTorch time / kbench baseline time: above 1 means the kbench baseline is faster.
The reference for the 10% rule is the measured eager time when given, else KernelBench's table.
"""
import argparse
import json
import subprocess
import sys


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"baseline_table.py: {what} {path}: {e}", file=sys.stderr)
        sys.exit(2)


def torch_time(times, level, stem):
    """Mean ms of `stem` in a KernelBench-style timing file ({"level1": {"stem.py": {...}}})."""
    entry = (times or {}).get(f"level{level}", {}).get(f"{stem}.py")
    return entry.get("mean") if entry else None


def kernelbench_time(times, ref):
    """KernelBench's mean ms for a provenance ref such as "L1/19 19_ReLU"."""
    parts = (ref or "").split()
    if len(parts) < 2 or not parts[0].startswith("L") or "/" not in parts[0]:
        return None
    return torch_time(times, int(parts[0][1:parts[0].index("/")]), parts[1])


def bench_times(bench):
    """Problem id -> mean ms of the baseline, from Google Benchmark's JSON output."""
    out = {}
    for b in bench.get("benchmarks", []):
        if b.get("error_occurred"):
            out[b["name"].split("/manual_time")[0]] = None
            continue
        name = b["name"].split("/iterations")[0].split("/manual_time")[0]
        if "mean_ms" in b:
            out[name] = b["mean_ms"]
    return out


def fmt_ms(v):
    return "-" if v is None else (f"{v:.3f}" if v < 100 else f"{v:.1f}")


def fmt_ratio(a, b):
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, help="bench_baselines --benchmark_out JSON")
    ap.add_argument("--kernelbench", help="KernelBench's baseline_time_torch.json (H100)")
    ap.add_argument("--eager", help="tools/torch_time.py output, PyTorch defaults")
    ap.add_argument("--strict", help="tools/torch_time.py --strict-fp32 output")
    ap.add_argument("--kbench", default="build/bin/kbench")
    args = ap.parse_args()

    bench = bench_times(load_json(args.bench, "bench output"))
    kb_times = load_json(args.kernelbench, "KernelBench times") if args.kernelbench else {}
    eager = load_json(args.eager, "eager times") if args.eager else {}
    strict = load_json(args.strict, "strict times") if args.strict else {}
    r = subprocess.run([args.kbench, "list", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"baseline_table.py: kbench list failed: {r.stderr.strip()}", file=sys.stderr)
        return 2
    problems = json.loads(r.stdout)

    rows, slow = [], []
    for p in sorted(problems, key=lambda p: p["id"]):
        pid = p["id"]
        if pid not in bench:
            continue
        stem = pid.split("/", 1)[1]
        base = bench[pid]
        kb = (kernelbench_time(kb_times, p["provenance"].get("ref"))
              if p["provenance"].get("source") == "kernelbench" else None)
        me = torch_time(eager, p["level"], stem)
        ms = torch_time(strict, p["level"], stem)
        ref = me if me is not None else kb
        rows.append(f"| {pid} | {fmt_ms(base)} | {fmt_ms(kb)} | {fmt_ms(me)} | {fmt_ratio(ref, base)}"
                    f" | {fmt_ms(ms)} | {fmt_ratio(ms, base)} |")
        if base is not None and ref is not None and ref / base < 1 / 1.1:
            slow.append((pid, ref / base, None if ms is None else ms / base))

    print("| problem | kbench baseline (ms) | PyTorch eager, KernelBench table (ms) | "
          "PyTorch eager, measured (ms) | eager / baseline | PyTorch strict FP32, measured (ms) | "
          "strict / baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print(f"More than 10% slower than PyTorch eager: {len(slow)}")
    for pid, ratio, sratio in slow:
        tail = "" if sratio is None else f", strict-FP32 ratio {sratio:.2f}"
        print(f"- {pid}: eager ratio {ratio:.2f}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
