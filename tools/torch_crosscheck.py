#!/usr/bin/env python3
"""Cross-checks kbench's baselines against PyTorch: for each problem, renders it as a PyTorch
script (`kbench render`), has `kbench-baseline dump` write the inputs, parameters, baseline output
and float64 reference for one seed, runs the PyTorch model on exactly those tensors (TF32 off) and
reports the worst absolute and relative differences, as a table and as JSON.

Usage (on the GPU machine, from the repository root):
  tools/torch_crosscheck.py --bin build/bin [--level 1] [--problem l1/kb_softmax ...]
                            [--seed 0] [--max-gb 8] [--work /tmp/xcheck] [--json out.json]
Exit status: 0 when every checked problem agrees with kbench's baseline within the problem's
tolerance, 1 otherwise, 2 on a usage or tool error.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types

# kbench dtype name -> torch dtype name (bool travels as one byte per element).
_TORCH_DTYPES = {
    "f32": "float32",
    "f16": "float16",
    "bf16": "bfloat16",
    "i32": "int32",
    "i64": "int64",
    "b8": "uint8",
    "bool": "uint8",
    "f64": "float64",
}


def run(cmd, **kw):
    """Runs a command; raises RuntimeError with its stderr when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def load_tensor(torch, path, dtype, shape):
    """Reads raw little-endian bytes into a torch tensor of the kbench dtype."""
    if dtype not in _TORCH_DTYPES:
        raise RuntimeError(f"{path}: unknown dtype {dtype}")
    if sys.byteorder != "little":
        raise RuntimeError("dumps are little-endian; this host is not")
    tdtype = getattr(torch, _TORCH_DTYPES[dtype])
    with open(path, "rb") as f:
        data = bytearray(f.read())
    expected = math.prod(shape) if shape else 1
    size = torch.tensor([], dtype=tdtype).element_size()
    if len(data) != expected * size:
        raise RuntimeError(f"{path}: {len(data)} bytes, expected {expected * size} for {shape}")
    t = torch.frombuffer(data, dtype=tdtype).reshape(shape)
    return t.bool() if dtype in ("b8", "bool") else t


def read_manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        m = json.load(f)
    entries = m.get("tensors", m) if isinstance(m, dict) else m
    if not isinstance(entries, list):
        raise RuntimeError(f"{directory}/manifest.json: expected a list of tensors")
    return entries


def compare(torch, got, ref, atol, rtol):
    """Worst absolute and relative error of `got` against `ref`, and the count outside tolerance."""
    if got.shape != ref.shape:
        return {"shape_mismatch": f"{tuple(got.shape)} vs {tuple(ref.shape)}"}
    g = got.to(torch.float64)
    r = ref.to(device=g.device, dtype=torch.float64)
    diff = (g - r).abs()
    finite = torch.isfinite(r) & torch.isfinite(g)
    nan_parity = int((torch.isnan(g) != torch.isnan(r)).sum().item())
    diff = torch.where(finite, diff, torch.zeros_like(diff))
    rel = diff / r.abs().clamp_min(1e-30)
    rel = torch.where(r.abs() > 0, rel, diff)
    bad = int(((diff > atol + rtol * r.abs()) & finite).sum().item())
    return {
        "max_abs_err": float(diff.max().item()) if diff.numel() else 0.0,
        "max_rel_err": float(rel.max().item()) if rel.numel() else 0.0,
        "outside_tolerance": bad,
        "nan_parity_mismatches": nan_parity,
        "numel": int(diff.numel()),
    }


def check_problem(torch, args, problem, workdir):
    pid = problem["id"]
    safe = pid.replace("/", "_")
    pdir = os.path.join(workdir, safe)
    os.makedirs(pdir, exist_ok=True)
    pjson = os.path.join(pdir, "problem.json")
    with open(pjson, "w") as f:
        json.dump(problem, f)
    script = run([os.path.join(args.bin, "kbench"), "render", "--problem", pid] + args.levels_flag)
    dump_dir = os.path.join(pdir, "dump")
    shutil.rmtree(dump_dir, ignore_errors=True)
    run([os.path.join(args.bin, "kbench-baseline"), "dump", "--problem", pjson, "--seed",
         str(args.seed), "--out", dump_dir])
    entries = read_manifest(dump_dir)
    by_role = {}
    for e in entries:
        by_role.setdefault(e["role"], {})[e["name"]] = e

    def tensor(e):
        return load_tensor(torch, os.path.join(dump_dir, e["file"]), e["dtype"], e["shape"])

    module = types.ModuleType(f"kb_{safe}")
    exec(compile(script, f"<kbench render {pid}>", "exec"), module.__dict__)
    model = module.Model().cuda().eval()
    params = {name: tensor(e).cuda() for name, e in by_role.get("param", {}).items()}
    module.load_params(model, params)
    inputs = [tensor(by_role["input"][t["name"]]).cuda() for t in problem["inputs"]]
    with torch.no_grad():
        result = model(*inputs)
    outs = result if isinstance(result, (tuple, list)) else [result]
    torch.cuda.synchronize()

    atol, rtol = problem["tolerance"]["atol"], problem["tolerance"]["rtol"]
    row = {"problem": pid, "outputs": {}}
    for name, got in zip(problem["outputs"], outs):
        rec = {}
        if name in by_role.get("baseline", {}):
            rec["vs_kbench_baseline"] = compare(torch, got, tensor(by_role["baseline"][name]), atol,
                                                rtol)
        if name in by_role.get("reference", {}):
            rec["vs_f64"] = compare(torch, got, tensor(by_role["reference"][name]), atol, rtol)
            if name in by_role.get("baseline", {}):
                rec["kbench_baseline_vs_f64"] = compare(
                    torch, tensor(by_role["baseline"][name]).cuda(),
                    tensor(by_role["reference"][name]), atol, rtol)
        row["outputs"][name] = rec
    if not args.keep:
        shutil.rmtree(dump_dir, ignore_errors=True)
    return row


def agrees(row):
    for rec in row.get("outputs", {}).values():
        c = rec.get("vs_kbench_baseline")
        if c is None or "shape_mismatch" in c or c["outside_tolerance"] or c["nan_parity_mismatches"]:
            return False
    return "error" not in row and bool(row.get("outputs"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/bin", help="folder holding kbench and kbench-baseline")
    ap.add_argument("--levels-dir", default="", help="levels root (default: kbench's default)")
    ap.add_argument("--level", type=int, help="only this level")
    ap.add_argument("--problem", action="append", default=[], help="problem id (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-gb", type=float, default=0.0,
                    help="skip problems moving more than this many GB (0: no limit)")
    ap.add_argument("--work", default="", help="scratch folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the dumped tensors")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()
    args.levels_flag = ["--levels-dir", args.levels_dir] if args.levels_dir else []

    import torch  # imported late so --help works without PyTorch

    if not torch.cuda.is_available():
        print("torch_crosscheck: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    listing = [os.path.join(args.bin, "kbench"), "list", "--json"] + args.levels_flag
    if args.level is not None:
        listing += ["--level", str(args.level)]
    r = subprocess.run(listing, capture_output=True, text=True)
    if r.stderr.strip():
        print(r.stderr, file=sys.stderr, end="")
    try:
        problems = json.loads(r.stdout)
    except json.JSONDecodeError:
        print(f"torch_crosscheck: `{' '.join(listing)}` gave no JSON", file=sys.stderr)
        return 2
    if args.problem:
        wanted = set(args.problem)
        problems = [p for p in problems if p["id"] in wanted]
        missing = wanted - {p["id"] for p in problems}
        if missing:
            print(f"torch_crosscheck: unknown problems {sorted(missing)}", file=sys.stderr)
            return 2

    workdir = args.work or tempfile.mkdtemp(prefix="kb_xcheck_")
    rows = []
    for p in problems:
        if args.max_gb and p["min_bytes"] > args.max_gb * 1e9:
            rows.append({"problem": p["id"], "skipped": f"moves {p['min_bytes'] / 1e9:.1f} GB"})
            continue
        start = time.time()
        try:
            row = check_problem(torch, args, p, workdir)
        except Exception as e:  # one failing problem never stops the sweep
            row = {"problem": p["id"], "error": f"{type(e).__name__}: {e}"}
        row["seconds"] = round(time.time() - start, 2)
        row["agrees"] = agrees(row)
        rows.append(row)
        torch.cuda.empty_cache()
        print_row(row)
    print(json.dumps(rows, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if not args.work:
        shutil.rmtree(workdir, ignore_errors=True)
    checked = [r for r in rows if "skipped" not in r]
    return 0 if checked and all(r["agrees"] for r in checked) else 1


def print_row(row):
    if "error" in row:
        print(f"{row['problem']:<48} ERROR {row['error']}", flush=True)
        return
    for name, rec in row["outputs"].items():
        parts = []
        for key, label in (("vs_kbench_baseline", "torch-vs-kbench"), ("vs_f64", "torch-vs-f64"),
                           ("kbench_baseline_vs_f64", "kbench-vs-f64")):
            c = rec.get(key)
            if c is None:
                continue
            if "shape_mismatch" in c:
                parts.append(f"{label} SHAPE {c['shape_mismatch']}")
            else:
                parts.append(f"{label} abs {c['max_abs_err']:.3g} rel {c['max_rel_err']:.3g} "
                             f"bad {c['outside_tolerance']}")
        verdict = "ok" if row["agrees"] else "DIFFERS"
        print(f"{row['problem'] + ':' + name:<48} {verdict:<8} {'; '.join(parts)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
