#!/usr/bin/env python3
"""Semantic proof of imported KernelBench problems: for each source file, the PyTorch rendering
of its imported YAML (`kbench render`) and the file's own Model, given the same inputs and the
same weights, must agree within the problem's tolerance.

For each file: the importer re-traces it (tools/kbimport) to learn which model tensor every YAML
parameter stands for; the original Model is built as KernelBench builds it (get_init_inputs(),
training mode, torch.manual_seed(--seed)); the YAML's inputs are drawn from their distributions
(seed --seed) and turned into forward()'s arguments by the file's own get_inputs() steps (triu,
softmax, scaling, ...); random tensors forward() draws itself are replaced by the YAML inputs that
stand for them; the rendered module gets the original's weights through load_params(). Outputs
are compared as |rendering - original| <= atol + rtol * |original| with the problem's tolerance.

With --screen-seeds K (K >= 2) the problem as kbench evaluates it (the rendering, with inputs and
parameters drawn from the YAML's distributions, a new draw per seed) also goes through the
catalog's degenerate-output screen over K seeds (the three tests of screen_outputs(),
docs/problems.md): near-constant across seeds, mostly within tolerance of zero, equal to an input.

With --shrink the proof covers the importer's lowering of each file rather than the committed
YAML: the file's module-level sizes are shrunk (batch sizes to --shrink-batch, other sizes halved
to at most --shrink-max; lists and tuples of sizes too), the shrunk file is imported into a
temporary folder and that problem is proven. This is how a CPU proves every file; a file whose
sizes depend on each other in ways halving breaks reports the error of the shrunk import.

Usage (from the repository root):
  tools/kernelbench_proof.py /path/to/KernelBench/level1 [--device cpu|cuda] [--seed 0]
      [--max-elems 3e7] [--max-gflop 20] [--screen-seeds 3] [--json out.json] [--only kb023_...]
Problems over the size guard (--max-elems: elements of all values of the graph; --max-gflop) are
reported as skipped, not failed. Exit status: 0 when every checked problem agrees (and, with
--fail-on-degenerate, none is flagged), 1 otherwise, 2 on a usage error.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import shutil
import tempfile
import time
import types
import warnings


def _reexec_with_torch():
    try:
        import torch  # noqa: F401

        return
    except ImportError:
        pass
    alt = os.environ.get("KB_TORCH_PYTHON", "/usr/bin/python3")
    if os.environ.get("KB_IMPORT_REEXEC") or not os.path.exists(alt) or os.path.realpath(
            alt) == os.path.realpath(sys.executable):
        sys.exit("kernelbench_proof: PyTorch is not importable (set KB_TORCH_PYTHON)")
    os.environ["KB_IMPORT_REEXEC"] = "1"
    os.execv(alt, [alt] + sys.argv)


_reexec_with_torch()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from kbimport import cli as import_cli  # noqa: E402
from kbimport import importer, kbench, source, yamlout  # noqa: E402
from kbimport.errors import NotExpressible  # noqa: E402

TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                "i32": torch.int32, "i64": torch.int64, "bool": torch.bool}


def numel(shape):
    return math.prod(shape) if shape else 1


def draw(spec, gen, device):
    """A tensor drawn from a Problem-JSON tensor spec's dist on the CPU generator `gen`."""
    d, shape, dt = spec["dist"], tuple(spec["shape"]), TORCH_DTYPES[spec["dtype"]]
    kind, a, b = d["kind"], d.get("a"), d.get("b")
    if kind == "uniform":
        t = torch.empty(shape, dtype=torch.float32).uniform_(a, b, generator=gen)
    elif kind in ("normal", "ill_conditioned"):
        t = torch.empty(shape, dtype=torch.float32).normal_(a, b, generator=gen)
    elif kind == "randint":
        t = torch.randint(int(a), int(b), shape, generator=gen)
    elif kind == "constant":
        t = torch.full(shape, a)
    else:
        raise ValueError(f"unknown dist {kind}")
    return t.to(dt).to(device)


def draw_spec(d):
    """A Problem-JSON-like spec of an importer Draw (draws the problem does not declare)."""
    kind = {"uniform": "uniform", "normal": "normal", "randint": "randint",
            "constant": "constant"}[d.kind]
    dtype = {v: k for k, v in TORCH_DTYPES.items()}[d.dtype]
    return {"dist": {"kind": kind, "a": d.a, "b": d.b}, "shape": list(d.shape), "dtype": dtype}


def tensor_at(model, qualname):
    obj = model
    for atom in qualname.split("."):
        obj = getattr(obj, atom)
    return obj


def flatten(out):
    if isinstance(out, (list, tuple)):
        items = []
        for o in out:
            items.extend(flatten(o))
        return items
    return [out]


class ForwardDraws:
    """While the original's forward() runs, its k-th random factory call returns `values[k]`."""

    NAMES = ("rand", "randn", "randint", "rand_like", "randn_like", "randint_like")

    def __init__(self, values):
        self.values = values
        self.k = 0
        self.saved = {}

    def __enter__(self):
        def fake(*args, **kwargs):
            if self.k >= len(self.values):
                raise RuntimeError("forward() draws more random tensors than when traced")
            v = self.values[self.k]
            self.k += 1
            return v

        for n in self.NAMES:
            self.saved[n] = getattr(torch, n)
            setattr(torch, n, fake)
        return self

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch, n, f)
        return False


def render_module(binary, yaml_path):
    script = subprocess.run([binary, "render", "--problem", yaml_path], capture_output=True,
                            text=True, timeout=300)
    if script.returncode != 0:
        raise RuntimeError(f"kbench render failed: {script.stderr.strip()}")
    mod = types.ModuleType("kb_rendered")
    exec(compile(script.stdout, f"<kbench render {yaml_path}>", "exec"), mod.__dict__)
    return mod


def compare(got, ref, atol, rtol):
    """(ok, max_abs, max_rel, bad_fraction) of got against ref."""
    if tuple(got.shape) != tuple(ref.shape):
        return False, math.inf, math.inf, 1.0
    g, r = got.detach().to("cpu", torch.float64), ref.detach().to("cpu", torch.float64)
    if g.numel() == 0:
        return True, 0.0, 0.0, 0.0
    diff = (g - r).abs()
    bound = atol + rtol * r.abs()
    bad = ~(diff <= bound)  # NaN counts as bad
    nan_match = torch.isnan(g) & torch.isnan(r)
    bad &= ~nan_match
    rel = diff / r.abs().clamp_min(1e-30)
    return (not bool(bad.any()), float(diff.max()), float(rel.max()),
            float(bad.double().mean()))


def screen(outputs_per_seed, inputs_per_seed, input_names, output_names, atol, rtol):
    """The catalog's degenerate-output screen (harness/catalog/roofline.cpp, screen_outputs())."""
    reasons = []

    def within(c, r):
        return (c - r).abs() <= atol + rtol * r.abs()

    n = len(outputs_per_seed)
    for o, name in enumerate(output_names):
        first = outputs_per_seed[0][o].double()
        if n >= 2 and all(s[o].shape == first.shape and bool(within(s[o].double(), first).all())
                          for s in outputs_per_seed[1:]):
            reasons.append(f"output {name} is near-constant across seeds")
        total = sum(s[o].numel() for s in outputs_per_seed)
        near0 = sum(int(within(torch.zeros_like(s[o].double()), s[o].double()).sum())
                    for s in outputs_per_seed)
        if total and near0 > 0.9 * total:
            reasons.append(f"output {name} is mostly within tolerance of zero "
                           f"({100.0 * near0 / total:.1f}% of elements)")
        for k, iname in enumerate(input_names):
            ins = [s[k] for s in inputs_per_seed]
            if any(tuple(i.shape) != tuple(s[o].shape) for i, s in zip(ins, outputs_per_seed)):
                continue
            if all(bool(within(i.double(), s[o].double()).all())
                   for i, s in zip(ins, outputs_per_seed)):
                reasons.append(f"identity on input {iname}: output {name} equals it within "
                               f"tolerance")
    return reasons


SHRINK_MAX = 256


def shrink_value(name, v, limit=SHRINK_MAX, batch=2):
    """A smaller stand-in for a module-level size: batch sizes to `batch`, other sizes over
    `limit` halved until they are at most `limit` (powers of two stay divisors, odd sizes stay
    odd)."""
    if isinstance(v, bool) or not isinstance(v, int):
        return v
    if name.lower() in ("batch_size", "batch") and v > batch:
        return batch
    while v > limit:
        v = v // 2 if v % 2 == 0 else (v // 2) | 1  # odd sizes stay odd
    return v


def shrink_module(module, limit=SHRINK_MAX, batch=2):
    """Rewrites the file's module-level integer sizes (and tuples of them) in place."""
    changed = {}
    for name, v in list(vars(module).items()):
        if name.startswith("_"):
            continue
        if isinstance(v, int) and not isinstance(v, bool):
            nv = shrink_value(name, v, limit, batch)
        elif isinstance(v, (tuple, list)) and v and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v):
            nv = type(v)(shrink_value(name, x, limit, batch) for x in v)
        else:
            continue
        if nv != v:
            setattr(module, name, nv)
            changed[name] = (v, nv)
    return changed


def shrunk_problem(path, registry, binary, workdir, limit=SHRINK_MAX, batch=2):
    """The file imported at shrunk sizes: (ImportResult, YAML path, what changed)."""
    module = source.load_module(path)
    changed = shrink_module(module, limit, batch)
    res = importer.import_file(path, registry, module=module)
    level = source.level_of(path)
    stem = source.problem_stem(path)
    d = os.path.join(workdir, f"level{level}")
    os.makedirs(d, exist_ok=True)
    yaml_path = os.path.join(d, stem + ".yaml")
    text = yamlout.render(res.ir, name=stem, origin=f"{os.path.basename(path)} (shrunk)",
                          provenance=("kbench", "", "shrunk"), header="shrunk for a proof")
    with open(yaml_path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return res, yaml_path, changed


def prove(path, yaml_path, binary, registry, args, shrunk=None):
    row = {"file": path, "yaml": yaml_path}
    if shrunk is not None:
        res, yaml_path, changed = shrunk
        row["shrunk"] = {k: list(v) for k, v in changed.items()}
    pj = kbench.load_problem(binary, yaml_path)
    row["id"] = pj["id"]
    values = pj["values"]
    elems = sum(numel(v["shape"]) for v in values.values())
    row["elements"] = elems
    row["gflop"] = pj["flops"] / 1e9
    if elems > args.max_elems or pj["flops"] / 1e9 > args.max_gflop:
        row["status"] = "skipped (size)"
        return row
    if shrunk is None:
        res = importer.import_file(path, registry)
    want = [(p["name"], list(p["shape"])) for p in pj["params"]]
    have = [(p.name, list(p.shape)) for p in res.ir.params]
    if want != have or [i["name"] for i in pj["inputs"]] != [t.name for t in res.ir.inputs]:
        row["status"] = "stale"
        row["detail"] = "the committed YAML's inputs or parameters differ from a fresh import"
        return row
    device = torch.device(args.device)
    atol, rtol = pj["tolerance"]["atol"], pj["tolerance"]["rtol"]
    input_specs = {i["name"]: i for i in pj["inputs"]}
    decl_by_source = {t.source: t.name for t in res.ir.inputs}
    rendered = render_module(binary, yaml_path)
    seed = args.seed
    torch.manual_seed(seed)
    with torch.no_grad():
        model = res.module.Model(*res.module.get_init_inputs()).to(device)
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    drawn = {name: draw(spec, gen, device) for name, spec in input_specs.items()}
    # get_inputs()'s draws, in creation order, then its steps (triu, softmax, ...).
    prep_draws = []
    for target in sorted((n.target for n in res.prep.graph.nodes if n.op == "placeholder"),
                         key=lambda t: int(t[4:])):
        if target in decl_by_source:
            prep_draws.append(drawn[decl_by_source[target]])
        else:
            prep_draws.append(draw(draw_spec(res.prep_draws[target]), gen, device))
    with torch.no_grad():
        prepared = list(res.prep(*prep_draws))
    fwd_values = []
    for k in range(len(res.forward_draws)):
        target = f"fdraw{k}"
        if target in decl_by_source:
            fwd_values.append(drawn[decl_by_source[target]])
        else:
            fwd_values.append(draw(draw_spec(res.forward_draws[target]), gen, device))
    args_ = prepared + [v for (_, v) in res.forward_args[len(prepared):]]
    t0 = time.time()
    with torch.no_grad(), ForwardDraws(fwd_values):
        ref = flatten(model(*args_))
    row["original_s"] = round(time.time() - t0, 3)
    rmodel = rendered.Model()
    tensors = {p.name: tensor_at(model, p.source).detach().cpu().clone() for p in res.ir.params}
    rendered.load_params(rmodel, tensors)
    rmodel = rmodel.to(device)
    with torch.no_grad():
        got = flatten(rmodel(*[drawn[i["name"]] for i in pj["inputs"]]))
    if len(got) != len(ref):
        row["status"] = "FAIL"
        row["detail"] = f"{len(got)} outputs, the original has {len(ref)}"
        return row
    ok_all, worst_abs, worst_rel, worst_bad = True, 0.0, 0.0, 0.0
    for g, r in zip(got, ref):
        ok, mabs, mrel, bad = compare(g, r, atol, rtol)
        ok_all &= ok
        worst_abs, worst_rel, worst_bad = max(worst_abs, mabs), max(worst_rel, mrel), max(
            worst_bad, bad)
    row.update(status="agrees" if ok_all else "FAIL", max_abs=worst_abs, max_rel=worst_rel,
               bad_fraction=worst_bad, atol=atol, rtol=rtol)
    del model, ref, got, prepared, prep_draws
    if args.screen_seeds >= 2:
        # The problem as kbench evaluates it: inputs and parameters drawn from the YAML's
        # distributions, one draw per seed, through the rendering.
        outputs_per_seed, inputs_per_seed = [], []
        for k in range(args.screen_seeds):
            g = torch.Generator().manual_seed(args.seed + 1000 + k)
            ins = [draw(spec, g, device) for spec in pj["inputs"]]
            ps = {p["name"]: draw(p, g, "cpu") for p in pj["params"]}
            rendered.load_params(rmodel, {n: t.to(device) for n, t in ps.items()})
            with torch.no_grad():
                outs = flatten(rmodel(*ins))
            outputs_per_seed.append([o.detach().cpu() for o in outs])
            inputs_per_seed.append([i.cpu() for i in ins])
        row["screen"] = screen(outputs_per_seed, inputs_per_seed,
                               [i["name"] for i in pj["inputs"]], pj["outputs"], atol, rtol)
    return row


def main():
    ap = argparse.ArgumentParser(prog="kernelbench_proof.py", description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", help="KernelBench-format files, level folders or checkout")
    ap.add_argument("--levels-dir", default=os.path.join(import_cli.REPO_ROOT, "levels"))
    ap.add_argument("--kbench", default=None)
    ap.add_argument("--prefix", default="kb")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-elems", type=float, default=3e7,
                    help="skip problems whose values hold more elements in all (default 3e7)")
    ap.add_argument("--max-gflop", type=float, default=20.0,
                    help="skip problems of more GFLOP (default 20)")
    ap.add_argument("--screen-seeds", type=int, default=0,
                    help="run the degenerate-output screen over this many seeds (>= 2)")
    ap.add_argument("--fail-on-degenerate", action="store_true")
    ap.add_argument("--only", action="append", default=[], help="only these YAML stems")
    ap.add_argument("--shrink", action="store_true",
                    help="prove the importer's lowering of each file at shrunk sizes (batch 2, "
                         "other sizes halved to at most --shrink-max) instead of the committed "
                         "YAML")
    ap.add_argument("--shrink-batch", type=int, default=2,
                    help="batch size --shrink sets (default 2)")
    ap.add_argument("--shrink-max", type=int, default=SHRINK_MAX,
                    help=f"largest size --shrink leaves (default {SHRINK_MAX})")
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    binary = args.kbench or kbench.default_binary(import_cli.REPO_ROOT)
    registry = kbench.load_registry(binary)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    source.install_shims()
    warnings.simplefilter("ignore", UserWarning)
    workdir = tempfile.mkdtemp(prefix="kbproof-")
    rows = []
    for f in import_cli.collect_files(args.paths):
        level = source.level_of(f)
        stem = source.problem_stem(f, args.prefix)
        if args.only and stem not in args.only:
            continue
        yaml_path = os.path.join(args.levels_dir, f"level{level}", stem + ".yaml")
        if not os.path.exists(yaml_path) and not args.shrink:
            row = {"file": f, "id": f"l{level}/{stem}", "status": "not imported"}
        else:
            try:
                shrunk = None
                if args.shrink:
                    try:
                        shrunk = shrunk_problem(f, registry, binary, workdir, args.shrink_max,
                                                args.shrink_batch)
                    except NotExpressible as e:
                        rows.append({"file": f, "id": f"l{level}/{stem}",
                                     "status": "not expressible", "detail": str(e)})
                        print(f"{'not expressible':15} l{level}/{stem:67} {e}", flush=True)
                        continue
                row = prove(f, yaml_path, binary, registry, args, shrunk)
            except (NotExpressible, RuntimeError, ValueError, kbench.KbenchError) as e:
                row = {"file": f, "id": f"l{level}/{stem}", "status": "ERROR",
                       "detail": f"{type(e).__name__}: {e}"}
        rows.append(row)
        extra = ""
        if "max_abs" in row:
            extra = f"max|d| {row['max_abs']:.3g}  max rel {row['max_rel']:.3g}"
        if row.get("screen"):
            extra += "  DEGENERATE: " + "; ".join(row["screen"])
        if row.get("detail"):
            extra += "  " + row["detail"]
        print(f"{row['status']:15} {row['id']:70} {extra}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())), file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": args.device, "seed": args.seed, "torch": torch.__version__,
                       "rows": rows}, fh, indent=1)
            fh.write("\n")
    failed = any(r["status"] in ("FAIL", "ERROR", "stale") for r in rows)
    degenerate = any(r.get("screen") for r in rows)
    return 1 if failed or (args.fail_on_degenerate and degenerate) else 0


if __name__ == "__main__":
    sys.exit(main())
