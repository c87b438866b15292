#!/usr/bin/env python3
"""Times each problem's PyTorch rendering (eager and torch.compile) on this machine's GPU and
writes KernelBench's timing JSON, for `kbench import-baselines`, so "% of PyTorch" is measured on
the same GPU as the kernels.

Usage:
  tools/torch_time.py --kbench build/bin/kbench --problem l1/matmul_square_4096 [--problem ...]
                      [--problems-file ids.txt] --out-dir results/torch [--trials 100]
                      [--no-compile] [--strict-fp32]
  kbench import-baselines results/torch/*.json --db results/kbench.db

For every problem id, `kbench render --problem ID` prints a KernelBench-style script (Model,
get_inputs, get_init_inputs). Each variant (eager, torch.compile) is timed like KernelBench:
3 warm-up calls, then per trial a 256 MiB L2 flush, device sync, CUDA events around one call,
device sync; the statistic is the mean rounded to 3 significant figures. Output files:
  baseline_time_torch.json                          (source pytorch-eager)
  baseline_time_torch_compile_inductor_default.json (source torch-compile)
keyed {"level<N>": {"<stem>.py": {...}}} where the problem id is "l<N>/<stem>". A problem that
fails (out of memory, an op this PyTorch lacks) is reported and left out; the exit status is then 1.

By default PyTorch runs with its own precision defaults (each entry records "precision":
"default"). --strict-fp32 turns TF32 off for matmuls and cuDNN (float32 matmul precision
"highest") and restricts scaled_dot_product_attention to its math backend for the timed calls,
so fp32 problems are timed at the precision kbench's baselines are held to ("precision":
"strict-fp32").
"""
import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

from torch_crosscheck import sdpa_context_factory  # same folder; needs no PyTorch to import


def fail(msg):
    print(f"torch_time.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def round3(x):
    return float(f"{x:.3g}")


def render(kbench, problem_id):
    r = subprocess.run([kbench, "render", "--problem", problem_id], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{problem_id}: kbench render failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def time_callable(torch, fn, inputs, trials, flush):
    with torch.no_grad():
        for _ in range(3):
            fn(*inputs)
        torch.cuda.synchronize()
        times = []
        for _ in range(trials):
            flush.zero_()  # evicts L2 (256 MiB > any L2)
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*inputs)
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop))
    return times


def stats(times, hardware, precision):
    return {
        "mean": round3(statistics.fmean(times)),
        "std": round3(statistics.pstdev(times)) if len(times) > 1 else 0.0,
        "min": round3(min(times)),
        "max": round3(max(times)),
        "num_trials": len(times),
        "hardware": hardware,
        "device": "cuda:0",
        "precision": precision,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kbench", default="build/bin/kbench")
    ap.add_argument("--problem", action="append", default=[])
    ap.add_argument("--problems-file")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--no-compile", action="store_true", help="time eager only")
    ap.add_argument("--strict-fp32", action="store_true",
                    help="TF32 off and scaled_dot_product_attention on its math backend")
    args = ap.parse_args()

    ids = list(args.problem)
    if args.problems_file:
        try:
            ids += [l.strip() for l in Path(args.problems_file).read_text().splitlines()
                    if l.strip() and not l.startswith("#")]
        except OSError as e:
            fail(f"{args.problems_file}: {e}")
    if not ids:
        fail("no problems given (--problem ID or --problems-file FILE)")
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed for this python")
    if not torch.cuda.is_available():
        fail("no CUDA device visible to PyTorch")
    hardware = torch.cuda.get_device_name(0)
    if args.strict_fp32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        try:
            timed_context = sdpa_context_factory(torch, "math")
        except RuntimeError as e:
            fail(f"--strict-fp32: {e}")
        precision = "strict-fp32"
    else:
        precision, timed_context = "default", contextlib.nullcontext
    flush = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.float32, device="cuda")

    eager, compiled = {}, {}
    failed = []
    for pid in ids:
        if "/" not in pid or not pid.startswith("l"):
            fail(f"{pid}: expected a problem id of the form l<level>/<name>")
        level_str, stem = pid.split("/", 1)
        level = f"level{int(level_str[1:])}"
        model = inputs = None
        try:  # one failing problem (out of memory, an op PyTorch lacks) never stops the sweep
            ns = {"__name__": "kbench_problem"}
            exec(compile(render(args.kbench, pid), f"<{pid}>", "exec"), ns)
            model = ns["Model"](*ns.get("get_init_inputs", lambda: [])()).cuda().eval()
            with torch.device("cuda"):  # draw the inputs on the GPU: CPU draws of GBs are slow
                inputs = [x.cuda() if hasattr(x, "cuda") else x for x in ns["get_inputs"]()]
            with timed_context():
                t = time_callable(torch, model, inputs, args.trials, flush)
            eager.setdefault(level, {})[f"{stem}.py"] = stats(t, hardware, precision)
            line = f"{pid}: eager {eager[level][stem + '.py']['mean']} ms"
            if not args.no_compile:
                fn = torch.compile(model)
                with timed_context():
                    t = time_callable(torch, fn, inputs, args.trials, flush)
                compiled.setdefault(level, {})[f"{stem}.py"] = stats(t, hardware, precision)
                line += f", torch.compile {compiled[level][stem + '.py']['mean']} ms"
            print(line, flush=True)
        except Exception as e:  # noqa: BLE001 - reported and counted below
            failed.append(pid)
            print(f"{pid}: FAILED {type(e).__name__}: {str(e)[:500]}", file=sys.stderr, flush=True)
        del model, inputs
        torch.cuda.empty_cache()

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline_time_torch.json").write_text(json.dumps(eager, indent=4) + "\n")
    if compiled:
        (out / "baseline_time_torch_compile_inductor_default.json").write_text(
            json.dumps(compiled, indent=4) + "\n")
    print(f"wrote {out}/ ({len(ids) - len(failed)} problems on {hardware})")
    if failed:
        print(f"torch_time.py: {len(failed)} problems failed: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
