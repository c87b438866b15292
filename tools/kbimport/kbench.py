"""The kbench binary as the importer uses it: its op registry (`kbench ops`) and its problem
loader (`kbench problem FILE --json`), which checks every YAML the importer writes."""
import json
import os
import subprocess

from .ir import kb_dtype


class KbenchError(Exception):
    pass


def default_binary(repo_root):
    return os.environ.get("KBENCH") or os.path.join(repo_root, "build", "bin", "kbench")


def load_registry(binary):
    """{op name: {min_inputs, max_inputs, attrs, required_attrs, ...}} from `kbench ops`."""
    try:
        out = subprocess.run([binary, "ops"], capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise KbenchError(f"cannot run {binary}: {e}")
    if out.returncode != 0:
        raise KbenchError(f"{binary} ops failed (exit {out.returncode}): {out.stderr.strip()}")
    return {op["name"]: op for op in json.loads(out.stdout)}


def load_problem(binary, yaml_path):
    """The Problem JSON of a YAML file, or raises KbenchError with kbench's message."""
    out = subprocess.run([binary, "problem", yaml_path, "--json"], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        msg = out.stderr.strip().splitlines()
        raise KbenchError(msg[-1] if msg else f"exit {out.returncode}")
    return json.loads(out.stdout)


def check_against(problem_json, ir):
    """Differences between kbench's inferred shapes and dtypes and PyTorch's (traced) ones."""
    values = problem_json.get("values", {})
    diffs = []
    for t in ir.inputs + ir.params:
        want = (list(t.shape), kb_dtype(t.m.dtype, t.name))
        got = values.get(t.name)
        if got is None or (got["shape"], got["dtype"]) != want:
            diffs.append(f"{t.name}: kbench {got}, PyTorch {want}")
    for n in ir.nodes:
        want = (list(n.m.shape), kb_dtype(n.m.dtype, n.out))
        got = values.get(n.out)
        if got is None or (got["shape"], got["dtype"]) != want:
            diffs.append(f"{n.out} ({n.op}): kbench {got and (got['shape'], got['dtype'])}, "
                         f"PyTorch {want}")
    return diffs
