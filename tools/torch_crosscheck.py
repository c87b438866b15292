#!/usr/bin/env python3
"""Cross-checks kbench's baselines against PyTorch: for each problem, renders it as a PyTorch
script (`kbench render`), has `kbench-baseline dump` write the inputs, parameters, baseline output
and float64 reference for one seed, runs the PyTorch model on exactly those tensors (TF32 off,
scaled_dot_product_attention on its math backend unless told otherwise) and reports the worst
absolute and relative differences, as a table and as JSON.

Usage (on the GPU machine, from the repository root):
  tools/torch_crosscheck.py --bin build/bin [--level 1] [--problem l1/kb_softmax ...]
                            [--seed 0] [--max-gb 8] [--work DIR] [--keep] [--chunk-mb 256]
                            [--sdpa-backend math|default] [--json out.json]

Dumps go to --work, else $KB_XCHECK_WORK, else ./.xcheck-work; a folder on tmpfs or ramfs is
refused. Each problem's dump is deleted once it is checked (unless --keep), and a problem whose
dump would not fit in the free disk space is reported as an error without being dumped. Inputs
and parameters are streamed to the GPU through one reusable host buffer, and outputs are compared
against the dumped files slice by slice (--chunk-mb of float64 per slice), so host and GPU memory
stay bounded by the problem's own tensors plus a few slices.

With --cpu (no GPU needed) it checks the float64 CPU references instead: `kbench cpu-reference`
draws each problem's inputs and parameters on the host (the host twin of the harness's generator)
and writes them with the float64 CPU reference outputs in the same dump format; the PyTorch
rendering then runs on the CPU in float64 on exactly those tensors, and its outputs must match the
references within --cpu-rtol / --cpu-atol (default 1e-9 / 1e-12: both sides compute in float64).
--problems-dir DIR checks every problem YAML in DIR (such as tests/data/ops-torch, one small
problem per op) instead of the catalog; the files are staged into a level1/ folder under the work
folder, since problem ids need one.
  tools/torch_crosscheck.py --cpu --bin build/bin --problems-dir tests/data/ops-torch

Exit status: 0 when every checked problem agrees with kbench's baseline (with --cpu: its float64
CPU reference) within the problem's tolerance (with --cpu: the --cpu tolerances), 1 otherwise, 2
on a usage or tool error.
"""
import argparse
import contextlib
import ctypes
import gc
import inspect
import json
import math
import os
import re
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
# Bytes per element of each kbench dtype, as the dump writes them.
DTYPE_SIZES = {"f32": 4, "f16": 2, "bf16": 2, "i32": 4, "i64": 8, "b8": 1, "bool": 1, "f64": 8}
_BOOL_DTYPES = ("b8", "bool")
_MAX_ELEM_SIZE = max(DTYPE_SIZES.values())
# Filesystems held in RAM: a dump there competes with the host memory the check itself needs.
_RAM_FILESYSTEMS = ("tmpfs", "ramfs")
# Free space kept on top of a dump's tensors (problem.json, manifest, filesystem slack).
_DISK_MARGIN_BYTES = 256 << 20


# ---- Pure helpers (no PyTorch) ------------------------------------------------------------------


def numel(shape):
    """Element count of a shape given as a list of ints ([] is a scalar: one element)."""
    return math.prod(shape) if shape else 1


def slice_plan(count, elem_size, chunk_elems):
    """Splits a flat tensor of `count` elements of `elem_size` bytes into consecutive slices of at
    most `chunk_elems` elements; yields (first_element, elements, byte_offset, byte_length)."""
    if count < 0 or elem_size < 1 or chunk_elems < 1:
        raise ValueError(f"bad slice plan: {count} elements of {elem_size} bytes, "
                         f"{chunk_elems} per slice")
    for start in range(0, count, chunk_elems):
        n = min(chunk_elems, count - start)
        yield start, n, start * elem_size, n * elem_size


def chunk_elems_for(chunk_mb):
    """Elements per comparison slice: `chunk_mb` MiB of float64, at least one element."""
    if not 0 < chunk_mb < float("inf"):
        raise ValueError(f"--chunk-mb must be a positive number, got {chunk_mb}")
    return max(1, int(chunk_mb * (1 << 20)) // 8)


def read_exact(f, view):
    """Fills the writable buffer `view` from the binary file `f`; raises at end of file."""
    done, want = 0, len(view)
    while done < want:
        n = f.readinto(view[done:])
        if not n:
            raise RuntimeError(f"{getattr(f, 'name', 'file')}: ended {want - done} bytes early")
        done += n


def empty_stats():
    return {"max_abs_err": 0.0, "max_rel_err": 0.0, "outside_tolerance": 0,
            "nan_parity_mismatches": 0, "numel": 0}


def merge_stats(acc, part):
    """Combines the statistics of two disjoint slices (maxima of maxima, sums of counts)."""
    return {
        "max_abs_err": max(acc["max_abs_err"], part["max_abs_err"]),
        "max_rel_err": max(acc["max_rel_err"], part["max_rel_err"]),
        "outside_tolerance": acc["outside_tolerance"] + part["outside_tolerance"],
        "nan_parity_mismatches": acc["nan_parity_mismatches"] + part["nan_parity_mismatches"],
        "numel": acc["numel"] + part["numel"],
    }


def tensor_bytes(spec):
    """Bytes of a {"dtype", "shape"} spec as dumped; None when the dtype or shape is missing."""
    dtype, shape = spec.get("dtype"), spec.get("shape")
    if dtype not in DTYPE_SIZES or shape is None:
        return None
    return numel(shape) * DTYPE_SIZES[dtype]


def expected_dump_bytes(problem):
    """Bytes `kbench-baseline dump` writes for a `kbench list --json` entry: every input and
    parameter, and each output twice (the baseline in its dtype, the reference in float64).
    None when the entry lacks the shapes or dtypes needed."""
    total = 0
    for spec in list(problem.get("inputs", [])) + list(problem.get("params", [])):
        b = tensor_bytes(spec)
        if b is None:
            return None
        total += b
    values = problem.get("values", {})
    for name in problem.get("outputs", []):
        spec = values.get(name)
        b = tensor_bytes(spec) if spec else None
        if b is None:
            return None
        total += b + numel(spec["shape"]) * DTYPE_SIZES["f64"]
    return total


def manifest_bytes(entries):
    """Bytes of the tensors a dump's manifest lists."""
    return sum(tensor_bytes(e) or 0 for e in entries)


def mount_fstype(path, mounts_text):
    """Filesystem type of the mount holding the absolute, resolved `path`, from the text of
    /proc/mounts; None when no mount point matches."""
    best, fstype = None, None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
        prefix = mnt.rstrip("/") + "/"
        if path == mnt or path.startswith(prefix):
            if best is None or len(mnt) >= len(best):  # the deepest, latest mount wins
                best, fstype = mnt, parts[2]
    return fstype


def default_workdir(environ, cwd):
    """$KB_XCHECK_WORK when set, else .xcheck-work under the current directory."""
    return environ.get("KB_XCHECK_WORK") or os.path.join(cwd, ".xcheck-work")


def problem_dir(workdir, pid):
    return os.path.join(workdir, pid.replace("/", "_"))


_LEVEL_DIR = re.compile(r"level([0-9]{1,3})")
_YAML_SUFFIXES = (".yaml", ".yml")


def stage_problems(problems_dir, stage_root):
    """Copies the problem YAML files of `problems_dir` into `stage_root`/level<N>/, where kbench's
    catalog accepts them (a problem's id is l<N>/<file stem>, N from its folder): files directly in
    `problems_dir` go to level1/, files in a level<N>/ subfolder keep their N. Returns a list of
    {"id", "staged", "source"} sorted by id; raises RuntimeError when two files would share an id
    or the folder holds no problem."""
    if not os.path.isdir(problems_dir):
        raise RuntimeError(f"--problems-dir {problems_dir} is not a folder")
    found = []  # (level, source path)
    for name in sorted(os.listdir(problems_dir)):
        path = os.path.join(problems_dir, name)
        if os.path.isfile(path) and name.endswith(_YAML_SUFFIXES):
            found.append((1, path))
            continue
        m = _LEVEL_DIR.fullmatch(name)
        if m and os.path.isdir(path):
            for sub in sorted(os.listdir(path)):
                sub_path = os.path.join(path, sub)
                if os.path.isfile(sub_path) and sub.endswith(_YAML_SUFFIXES):
                    found.append((int(m.group(1)), sub_path))
    if not found:
        raise RuntimeError(f"--problems-dir {problems_dir} holds no .yaml problem")
    staged, sources = [], {}
    for level, src in found:
        stem = os.path.splitext(os.path.basename(src))[0]
        pid = f"l{level}/{stem}"
        if pid in sources:
            raise RuntimeError(f"{src} and {sources[pid]} would both be problem {pid}")
        sources[pid] = src
        folder = os.path.join(stage_root, f"level{level}")
        os.makedirs(folder, exist_ok=True)
        dst = os.path.join(folder, os.path.basename(src))
        shutil.copyfile(src, dst)
        staged.append({"id": pid, "staged": dst, "source": src})
    return sorted(staged, key=lambda e: e["id"])


def agrees_cpu(row):
    """True when a --cpu row compared every output with its float64 reference and each lies
    within the tolerance with matching NaNs."""
    outputs = row.get("outputs", {})
    if "error" in row or not outputs:
        return False
    for rec in outputs.values():
        c = rec.get("vs_f64")
        if c is None or "shape_mismatch" in c:
            return False
        if c["outside_tolerance"] or c["nan_parity_mismatches"]:
            return False
    return True


# ---- PyTorch side -------------------------------------------------------------------------------


def run(cmd, **kw):
    """Runs a command; raises RuntimeError with its stderr when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def torch_dtype(torch, dtype):
    if dtype not in _TORCH_DTYPES:
        raise RuntimeError(f"unknown dtype {dtype}")
    return getattr(torch, _TORCH_DTYPES[dtype])


class SliceReader:
    """Reads raw little-endian tensor files slice by slice through one reusable host buffer
    (page-locked where possible), so no file is ever held whole in host memory."""

    def __init__(self, torch, chunk_elems, device="cuda", pin=True):
        if sys.byteorder != "little":
            raise RuntimeError("dumps are little-endian; this host is not")
        self.torch, self.chunk, self.device = torch, chunk_elems, device
        capacity = chunk_elems * _MAX_ELEM_SIZE
        try:
            if not pin:
                raise RuntimeError("page-locked memory not wanted")
            self.host = torch.empty(capacity, dtype=torch.uint8, pin_memory=True)
        except RuntimeError:
            self.host = torch.empty(capacity, dtype=torch.uint8)
        # A writable Python buffer over the tensor's memory, for readinto (no numpy needed).
        raw = (ctypes.c_ubyte * capacity).from_address(self.host.data_ptr())
        self.view = memoryview(raw).cast("B")

    def host_slices(self, path, dtype, shape):
        """Yields (first_element, elements, host tensor) per slice of the file; the host tensor
        aliases the shared buffer and is valid only until the next slice is read."""
        tdtype = torch_dtype(self.torch, dtype)
        size, count = DTYPE_SIZES[dtype], numel(shape)
        actual = os.path.getsize(path)
        if actual != count * size:
            raise RuntimeError(f"{path}: {actual} bytes, expected {count * size} for {shape}")
        with open(path, "rb", buffering=0) as f:
            for start, n, offset, nbytes in slice_plan(count, size, self.chunk):
                f.seek(offset)
                read_exact(f, self.view[:nbytes])
                yield start, n, self.host[:nbytes].view(tdtype)

    def device_slices(self, path, dtype, shape):
        """Yields (first_element, elements, device tensor) per slice; bool files come back as
        torch.bool. Each copy completes before the shared buffer is refilled."""
        for start, n, host in self.host_slices(path, dtype, shape):
            t = host.to(self.device, copy=True)  # blocking: the host buffer is free on return
            yield start, n, (t.bool() if dtype in _BOOL_DTYPES else t)

    def load(self, path, dtype, shape):
        """The whole file as a device tensor of `shape`, filled slice by slice."""
        torch = self.torch
        dst = torch.empty(numel(shape), dtype=torch_dtype(torch, dtype), device=self.device)
        for start, n, host in self.host_slices(path, dtype, shape):
            dst[start:start + n].copy_(host)  # blocking host-to-device copy
        t = dst.reshape(tuple(shape))
        return t.bool() if dtype in _BOOL_DTYPES else t


def slice_stats(torch, got, ref, atol, rtol):
    """compare()'s statistics for one flat slice, computed in float64 on the slice only:
    diff = |g - r| where both are finite (else 0); rel = diff / max(|r|, 1e-30), or diff where
    r == 0; outside tolerance: finite and diff > atol + rtol * |r|; NaN parity: isnan(g) !=
    isnan(r)."""
    g = got.to(torch.float64)
    r = ref.to(device=g.device, dtype=torch.float64)
    diff = (g - r).abs()
    finite = torch.isfinite(r) & torch.isfinite(g)
    nan_parity = (torch.isnan(g) != torch.isnan(r)).sum()
    del g
    diff = torch.where(finite, diff, torch.zeros_like(diff))
    r_abs = r.abs()
    del r
    rel = diff / r_abs.clamp_min(1e-30)
    rel = torch.where(r_abs > 0, rel, diff)
    bad = ((diff > atol + rtol * r_abs) & finite).sum()
    vals = torch.stack([diff.max(), rel.max(), bad.to(torch.float64),
                        nan_parity.to(torch.float64)]).tolist()  # one device sync per slice
    return {
        "max_abs_err": float(vals[0]),
        "max_rel_err": float(vals[1]),
        "outside_tolerance": int(vals[2]),
        "nan_parity_mismatches": int(vals[3]),
        "numel": int(diff.numel()),
    }


def compare_to_file(torch, reader, got, entry, path, atol, rtol):
    """Worst absolute and relative error of the device tensor `got` against a dumped file, and
    the count outside tolerance, read and compared one slice at a time."""
    shape = tuple(entry["shape"])
    if tuple(got.shape) != shape:
        return {"shape_mismatch": f"{tuple(got.shape)} vs {shape}"}
    flat = got.reshape(-1)
    acc = empty_stats()
    for start, n, ref in reader.device_slices(path, entry["dtype"], entry["shape"]):
        acc = merge_stats(acc, slice_stats(torch, flat[start:start + n], ref, atol, rtol))
    return acc


def compare_files(torch, reader, got_entry, got_path, ref_entry, ref_path, atol, rtol):
    """compare_to_file() for two dumped files, both read one slice at a time."""
    got_shape, ref_shape = tuple(got_entry["shape"]), tuple(ref_entry["shape"])
    if got_shape != ref_shape:
        return {"shape_mismatch": f"{got_shape} vs {ref_shape}"}
    acc = empty_stats()
    got_slices = reader.device_slices(got_path, got_entry["dtype"], got_entry["shape"])
    ref_slices = reader.device_slices(ref_path, ref_entry["dtype"], ref_entry["shape"])
    for (_, _, got), (_, _, ref) in zip(got_slices, ref_slices):
        acc = merge_stats(acc, slice_stats(torch, got, ref, atol, rtol))
    return acc


def read_manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        m = json.load(f)
    entries = m.get("tensors", m) if isinstance(m, dict) else m
    if not isinstance(entries, list):
        raise RuntimeError(f"{directory}/manifest.json: expected a list of tensors")
    return entries


def sdpa_context_factory(torch, backend):
    """A zero-argument callable returning the context manager the model runs under: for "math",
    one that restricts scaled_dot_product_attention to its math backend (plain matmuls that
    honour the TF32 flags); for "default", PyTorch's own backend choice."""
    if backend == "default":
        return contextlib.nullcontext
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # PyTorch >= 2.3
        return lambda: sdpa_kernel(SDPBackend.MATH)
    except ImportError:
        pass
    legacy = getattr(torch.backends.cuda, "sdp_kernel", None)  # before torch.nn.attention
    if legacy is None:
        raise RuntimeError(f"--sdpa-backend math needs a PyTorch that can select "
                           f"scaled_dot_product_attention's backend (2.0 or later); this is "
                           f"PyTorch {torch.__version__}; pass --sdpa-backend default instead")
    # Only the math backend: every fused backend this version knows of is switched off.
    wanted = {"enable_math": True, "enable_flash": False, "enable_mem_efficient": False,
              "enable_cudnn": False}
    accepted = inspect.signature(legacy).parameters
    flags = {k: v for k, v in wanted.items() if k in accepted}
    return lambda: legacy(**flags)


def check_problem(torch, args, problem, workdir, reader, sdpa_context):
    pid = problem["id"]
    pdir = problem_dir(workdir, pid)
    os.makedirs(pdir, exist_ok=True)
    dump_dir = os.path.join(pdir, "dump")
    shutil.rmtree(dump_dir, ignore_errors=True)
    need = expected_dump_bytes(problem)
    if need is not None:
        free = shutil.disk_usage(pdir).free
        if free < need + _DISK_MARGIN_BYTES:
            return {"problem": pid, "sdpa_backend": args.sdpa_backend,
                    "error": f"dump needs {need / 1e9:.1f} GB but {workdir} has "
                             f"{free / 1e9:.1f} GB free (use --work elsewhere)"}
    pjson = os.path.join(pdir, "problem.json")
    with open(pjson, "w") as f:
        json.dump(problem, f)
    script = run([os.path.join(args.bin, "kbench"), "render", "--problem", pid] + args.levels_flag)
    run([os.path.join(args.bin, "kbench-baseline"), "dump", "--problem", pjson, "--seed",
         str(args.seed), "--out", dump_dir])
    entries = read_manifest(dump_dir)
    by_role = {}
    for e in entries:
        by_role.setdefault(e["role"], {})[e["name"]] = e

    def path(e):
        return os.path.join(dump_dir, e["file"])

    def load(e):
        return reader.load(path(e), e["dtype"], e["shape"])

    module = types.ModuleType(f"kb_{pid.replace('/', '_')}")
    exec(compile(script, f"<kbench render {pid}>", "exec"), module.__dict__)
    model = module.Model().cuda().eval()
    params = {name: load(e) for name, e in by_role.get("param", {}).items()}
    module.load_params(model, params)  # copies into the model's own buffers
    del params
    inputs = [load(by_role["input"][t["name"]]) for t in problem["inputs"]]
    with torch.no_grad(), sdpa_context():
        result = model(*inputs)
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    torch.cuda.synchronize()
    del result, inputs, model, module  # only the outputs stay on the GPU for the comparison
    gc.collect()
    torch.cuda.empty_cache()

    atol, rtol = problem["tolerance"]["atol"], problem["tolerance"]["rtol"]
    row = {"problem": pid, "sdpa_backend": args.sdpa_backend,
           "dump_gb": round(manifest_bytes(entries) / 1e9, 3), "outputs": {}}
    baselines, references = by_role.get("baseline", {}), by_role.get("reference", {})
    for i, name in enumerate(problem["outputs"][:len(outs)]):
        got, outs[i] = outs[i], None
        rec = {}
        if name in baselines:
            rec["vs_kbench_baseline"] = compare_to_file(torch, reader, got, baselines[name],
                                                        path(baselines[name]), atol, rtol)
        if name in references:
            rec["vs_f64"] = compare_to_file(torch, reader, got, references[name],
                                            path(references[name]), atol, rtol)
        del got
        torch.cuda.empty_cache()
        if name in baselines and name in references:
            rec["kbench_baseline_vs_f64"] = compare_files(
                torch, reader, baselines[name], path(baselines[name]), references[name],
                path(references[name]), atol, rtol)
        row["outputs"][name] = rec
    return row


def check_problem_cpu(torch, args, entry, workdir, reader):
    """--cpu: the rendered module in float64 on the CPU against `kbench cpu-reference`'s float64
    references, on the tensors that command drew. `entry` is {"id", "ref", "source"}: ref is what
    kbench resolves (an id, or a staged YAML path), source what messages should name."""
    pid = entry["id"]
    pdir = problem_dir(workdir, pid)
    os.makedirs(pdir, exist_ok=True)
    dump_dir = os.path.join(pdir, "dump")
    shutil.rmtree(dump_dir, ignore_errors=True)
    kbench = os.path.join(args.bin, "kbench")
    script = run([kbench, "render", "--problem", entry["ref"]] + args.levels_flag)
    run([kbench, "cpu-reference", entry["ref"], "--seed", str(args.seed), "--out", dump_dir] +
        args.levels_flag)
    with open(os.path.join(dump_dir, "manifest.json")) as f:
        manifest = json.load(f)
    by_role = {}
    for e in manifest["tensors"]:
        by_role.setdefault(e["role"], {})[e["name"]] = e

    def load(e):
        t = reader.load(os.path.join(dump_dir, e["file"]), e["dtype"], e["shape"])
        return t.to(torch.float64) if t.is_floating_point() else t

    module = types.ModuleType(f"kb_cpu_{pid.replace('/', '_')}")
    exec(compile(script, f"<kbench render {entry['source']}>", "exec"), module.__dict__)
    model = module.Model().double().eval()
    module.load_params(model, {name: load(e) for name, e in by_role.get("param", {}).items()})
    inputs = [load(by_role["input"][name]) for name in manifest["inputs"]]
    with torch.no_grad():
        result = model(*inputs)
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    row = {"problem": pid, "source": entry["source"], "outputs": {}}
    if len(outs) != len(manifest["outputs"]):
        row["error"] = (f"the PyTorch module returned {len(outs)} outputs, the problem declares "
                        f"{len(manifest['outputs'])}")
        return row
    for name, got in zip(manifest["outputs"], outs):
        ref = by_role["reference"][name]
        rec = {"vs_f64": compare_to_file(torch, reader, got, ref,
                                         os.path.join(dump_dir, ref["file"]), args.cpu_atol,
                                         args.cpu_rtol)}
        if got.is_floating_point() and got.dtype != torch.float64:
            rec["torch_dtype"] = str(got.dtype)  # the rendering left float64: worth a look
        row["outputs"][name] = rec
    return row


def install_sdpa_formula(torch):
    """PyTorch before 2.0 lacks F.scaled_dot_product_attention: defines it by the formula its
    documentation gives (softmax(q k^T * scale + causal mask) v, scale 1/sqrt(E) by default), so
    renderings of attention run on such a PyTorch. Returns True when it had to."""
    F = torch.nn.functional
    if hasattr(F, "scaled_dot_product_attention"):
        return False

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        if attn_mask is not None or dropout_p != 0.0:
            raise NotImplementedError("the fallback scaled_dot_product_attention supports "
                                      "neither attn_mask nor dropout")
        e = query.shape[-1]
        s = (1.0 / math.sqrt(e)) if scale is None else scale
        scores = query @ key.transpose(-2, -1) * s
        if is_causal:
            L, S = query.shape[-2], key.shape[-2]
            keep = torch.ones(L, S, dtype=torch.bool, device=query.device).tril(0)
            scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1) @ value

    F.scaled_dot_product_attention = sdpa
    return True


def main_cpu(args, chunk_elems):
    """--cpu: every selected problem's float64 CPU reference against PyTorch on the CPU."""
    try:
        import torch  # imported late so --help works without PyTorch
    except ImportError:
        print("torch_crosscheck: PyTorch is not installed for this python", file=sys.stderr)
        return 2
    # Tensors a rendering creates itself (torch.tensor(0.5), torch.ones(...)) follow the default.
    torch.set_default_dtype(torch.float64)
    if install_sdpa_formula(torch):
        print("torch_crosscheck: PyTorch " + torch.__version__ + " has no "
              "F.scaled_dot_product_attention; using its documented formula instead",
              file=sys.stderr)
    workdir = os.path.realpath(args.work or default_workdir(os.environ, os.getcwd()))
    created = not os.path.exists(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        print(f"torch_crosscheck: cannot create {workdir}: {e}", file=sys.stderr)
        return 2
    # A folder of this run's own, so runs sharing a work folder (parallel tests) never meet.
    rundir = tempfile.mkdtemp(prefix="cpu-", dir=workdir)
    try:
        return run_cpu(torch, args, chunk_elems, rundir)
    finally:
        if args.keep:
            print(f"torch_crosscheck: kept {rundir}", file=sys.stderr)
        else:
            shutil.rmtree(rundir, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(workdir)  # only when empty


def cpu_entries(args, stage_root):
    """The problems --cpu checks, as {"id", "ref", "source", "level"}: the YAML files of
    --problems-dir staged under `stage_root`, else the catalog's; then --level and --problem
    (an id or a file stem) applied. Raises RuntimeError on a usage error."""
    entries = []
    if args.problems_dir:
        try:
            staged = stage_problems(args.problems_dir, stage_root)
        except OSError as e:
            raise RuntimeError(str(e)) from e
        args.levels_flag = []  # staged paths resolve on their own
        for e in staged:
            entries.append({"id": e["id"], "ref": e["staged"], "source": e["source"],
                            "level": int(e["id"][1:e["id"].index("/")])})
    else:
        listing = [os.path.join(args.bin, "kbench"), "list", "--json"] + args.levels_flag
        r = subprocess.run(listing, capture_output=True, text=True)
        if r.stderr.strip():
            print(r.stderr, file=sys.stderr, end="")
        try:
            problems = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise RuntimeError(f"`{' '.join(listing)}` gave no JSON") from e
        for p in problems:
            if args.max_gb and p["min_bytes"] > args.max_gb * 1e9:
                continue
            entries.append({"id": p["id"], "ref": p["id"], "source": p.get("source_path", p["id"]),
                            "level": p["level"]})
    if args.level is not None:
        entries = [e for e in entries if e["level"] == args.level]
    if args.problem:
        wanted = set(args.problem)
        entries = [e for e in entries if e["id"] in wanted or e["id"].split("/", 1)[1] in wanted]
        missing = wanted - {e["id"] for e in entries} - {e["id"].split("/", 1)[1] for e in entries}
        if missing:
            raise RuntimeError(f"unknown problems {sorted(missing)}")
    return entries


def run_cpu(torch, args, chunk_elems, rundir):
    """--cpu's sweep inside this run's own folder; returns the exit status."""
    try:
        entries = cpu_entries(args, os.path.join(rundir, "staged-levels"))
    except RuntimeError as e:
        print(f"torch_crosscheck: {e}", file=sys.stderr)
        return 2
    reader = SliceReader(torch, chunk_elems, device="cpu", pin=False)
    rows = []
    for e in entries:
        start = time.perf_counter()
        try:
            row = check_problem_cpu(torch, args, e, rundir, reader)
        except Exception as ex:  # one failing problem never stops the sweep
            message = f"{type(ex).__name__}: {ex}"
            if e["ref"] != e["source"]:
                message = message.replace(e["ref"], e["source"])  # name the file, not its copy
            row = {"problem": e["id"], "source": e["source"], "error": message}
        finally:
            if not args.keep:
                shutil.rmtree(problem_dir(rundir, e["id"]), ignore_errors=True)
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["agrees"] = agrees_cpu(row)
        rows.append(row)
        print_row(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    bad = [r["problem"] for r in rows if not r["agrees"]]
    print(f"torch_crosscheck --cpu: {len(rows)} problems, {len(rows) - len(bad)} agree with "
          f"PyTorch in float64 (rtol {args.cpu_rtol:g}, atol {args.cpu_atol:g})"
          + (f"; differing or failing: {', '.join(bad)}" if bad else ""), flush=True)
    return 0 if rows and not bad else 1


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
    ap.add_argument("--work", default="",
                    help="scratch folder on a disk (default: $KB_XCHECK_WORK, else ./.xcheck-work)")
    ap.add_argument("--keep", action="store_true", help="keep the dumped tensors")
    ap.add_argument("--chunk-mb", type=float, default=256.0,
                    help="MiB of float64 per comparison slice (default 256: 2^25 elements)")
    ap.add_argument("--sdpa-backend", choices=("math", "default"), default="math",
                    help="scaled_dot_product_attention backend: math (exact fp32 matmuls, the "
                         "default) or PyTorch's default choice (fused kernels)")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    ap.add_argument("--cpu", action="store_true",
                    help="no GPU: compare kbench's float64 CPU references (`kbench cpu-reference`) "
                         "with the PyTorch rendering run on the CPU in float64")
    ap.add_argument("--problems-dir", default="",
                    help="with --cpu: check the problem YAML files of this folder (e.g. "
                         "tests/data/ops-torch) instead of the catalog")
    ap.add_argument("--cpu-rtol", type=float, default=1e-9, help="relative tolerance of --cpu")
    ap.add_argument("--cpu-atol", type=float, default=1e-12, help="absolute tolerance of --cpu")
    args = ap.parse_args()
    args.levels_flag = ["--levels-dir", args.levels_dir] if args.levels_dir else []
    try:
        chunk_elems = chunk_elems_for(args.chunk_mb)
    except ValueError as e:
        print(f"torch_crosscheck: {e}", file=sys.stderr)
        return 2
    if args.problems_dir and not args.cpu:
        print("torch_crosscheck: --problems-dir needs --cpu", file=sys.stderr)
        return 2
    if args.cpu:
        return main_cpu(args, chunk_elems)

    try:
        import torch  # imported late so --help works without PyTorch
    except ImportError:
        print("torch_crosscheck: PyTorch is not installed for this python", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_crosscheck: no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        sdpa_context = sdpa_context_factory(torch, args.sdpa_backend)
    except RuntimeError as e:
        print(f"torch_crosscheck: {e}", file=sys.stderr)
        return 2

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

    workdir = os.path.realpath(args.work or default_workdir(os.environ, os.getcwd()))
    created = not os.path.exists(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
        with open("/proc/mounts") as f:
            fstype = mount_fstype(workdir, f.read())
    except OSError as e:
        if not os.path.isdir(workdir):
            print(f"torch_crosscheck: cannot create {workdir}: {e}", file=sys.stderr)
            return 2
        fstype = None  # no /proc/mounts: the per-problem free-space check still applies
    if fstype in _RAM_FILESYSTEMS:
        print(f"torch_crosscheck: {workdir} is on {fstype} (held in RAM); pass --work or set "
              f"KB_XCHECK_WORK to a folder on disk", file=sys.stderr)
        if created:
            os.rmdir(workdir)
        return 2

    reader = SliceReader(torch, chunk_elems)
    rows = []
    for p in problems:
        if args.max_gb and p["min_bytes"] > args.max_gb * 1e9:
            rows.append({"problem": p["id"], "skipped": f"moves {p['min_bytes'] / 1e9:.1f} GB"})
            continue
        start = time.perf_counter()
        try:
            row = check_problem(torch, args, p, workdir, reader, sdpa_context)
        except Exception as e:  # one failing problem never stops the sweep
            row = {"problem": p["id"], "sdpa_backend": args.sdpa_backend,
                   "error": f"{type(e).__name__}: {e}"}
        finally:
            if not args.keep:
                shutil.rmtree(problem_dir(workdir, p["id"]), ignore_errors=True)
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["agrees"] = agrees(row)
        rows.append(row)
        torch.cuda.empty_cache()
        print_row(row)
    print(json.dumps(rows, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if created and not args.keep:
        with contextlib.suppress(OSError):
            os.rmdir(workdir)  # only when empty
    checked = [r for r in rows if "skipped" not in r]
    return 0 if checked and all(r["agrees"] for r in checked) else 1


def print_row(row):
    took = f"({row['seconds']:.1f} s)"
    if "error" in row:
        print(f"{row['problem']:<48} ERROR {row['error']} {took}", flush=True)
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
        print(f"{row['problem'] + ':' + name:<48} {verdict:<8} {'; '.join(parts)} {took}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
