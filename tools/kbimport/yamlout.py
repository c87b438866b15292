"""The problem YAML text of an imported problem (docs/problems.md's schema), byte-stable: the same
import always writes the same bytes."""
import collections
import json
import math

from .ir import kb_dtype


def num(v):
    """A number as YAML: ints as ints, floats with a point or exponent, infinities as .inf."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        raise ValueError("NaN attribute")
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def dist_num(v):
    """A distribution parameter: integral values without a point (low: 0, high: 1)."""
    v = float(v)
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def value(v):
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return num(v)


def dist_yaml(d):
    kind = d[0]
    if kind == "uniform":
        return f"{{kind: uniform, low: {dist_num(d[1])}, high: {dist_num(d[2])}}}"
    if kind == "normal":
        return f"{{kind: normal, mean: {dist_num(d[1])}, std: {dist_num(d[2])}}}"
    if kind == "randint":
        return f"{{kind: randint, low: {int(d[1])}, high: {int(d[2])}}}"
    if kind == "constant":
        return f"{{kind: constant, value: {dist_num(d[1])}}}"
    raise ValueError(kind)


def dist_text(d):
    """A distribution in words, for descriptions."""
    kind = d[0]
    g = lambda x: f"{float(x):.6g}"
    if kind == "uniform":
        return f"U[{g(d[1])}, {g(d[2])})"
    if kind == "normal":
        return f"N({g(d[1])}, {g(d[2])})"
    if kind == "randint":
        return f"integers in [{int(d[1])}, {int(d[2])})"
    return f"constant {g(d[1])}"


def _tensor_line(t):
    shape = "[" + ", ".join(str(s) for s in t.shape) + "]"
    line = (f"  - {{name: {t.name}, shape: {shape}, dtype: {kb_dtype(t.m.dtype, t.name)}, "
            f"dist: {dist_yaml(t.dist)}")
    if t.check_dists is not None:
        line += ", check_dists: [" + ", ".join(dist_yaml(d) for d in t.check_dists) + "]"
    return line + "}"


def _names(items, limit=6):
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def op_summary(ir):
    ops = [n.op for n in ir.nodes]
    if len(ops) <= 12:
        return ", ".join(ops)
    counts = collections.Counter(ops)
    order = sorted(counts, key=lambda o: (-counts[o], ops.index(o)))
    return f"{len(ops)} nodes: " + ", ".join(f"{o} x{counts[o]}" for o in order)


def describe(ir, origin):
    """The description: what the graph computes, how inputs and parameters are drawn, and every
    departure from the source."""
    parts = [f"Imported from {origin} at its shapes by tools/kernelbench_import.py. "
             f"Ops: {op_summary(ir)}."]
    ins = "; ".join(f"{t.name} {list(t.shape)} {dist_text(t.dist)}" for t in ir.inputs)
    parts.append(f"Inputs as get_inputs() draws them: {ins}.")
    by_rule = collections.OrderedDict()
    starts = collections.OrderedDict()
    for p in ir.params:
        if getattr(p, "start", None) is not None:
            starts.setdefault(dist_text(p.dist), []).append(p.source)
        else:
            by_rule.setdefault(p.note, []).append(p.source)
    if by_rule:
        parts.append("Parameters as PyTorch initialises them: " + "; ".join(
            f"{_names(v)} {k}" for k, v in by_rule.items()) + ".")
    if starts:
        parts.append("Parameters that start constant in PyTorch are drawn around that value "
                     "(kbench never draws a constant parameter): " + "; ".join(
                         f"{_names(v)} {k}" for k, v in starts.items()) + ".")
    if any(n.op == "batch_norm_train" for n in ir.nodes):
        parts.append("BatchNorm runs in training mode (batch statistics), as KernelBench never "
                     "calls .eval().")
    for d in ir.departures + ir.notes:
        parts.append(d if d.endswith(".") else d + ".")
    return " ".join(parts)


def render(ir, *, name, origin, provenance, header):
    """The YAML text. `provenance` is (source, version, ref)."""
    src, version, ref = provenance
    lines = [f"# {header}"]
    lines.append(f"name: {json.dumps(name, ensure_ascii=False)}")
    lines.append(f"description: {json.dumps(describe(ir, origin), ensure_ascii=False)}")
    lines.append(f"provenance: {{source: {src}, version: {json.dumps(version)}, "
                 f"ref: {json.dumps(ref, ensure_ascii=False)}}}")
    lines.append("inputs:")
    lines.extend(_tensor_line(t) for t in ir.inputs)
    if ir.params:
        lines.append("params:")
        lines.extend(_tensor_line(t) for t in ir.params)
    lines.append("graph:")
    for n in ir.nodes:
        attrs = "".join(f", {k}: {value(v)}" for k, v in n.attrs.items())
        lines.append(f"  - {{out: {n.out}, op: {n.op}, in: [{', '.join(n.ins)}]{attrs}}}")
    lines.append(f"outputs: [{', '.join(ir.outputs)}]")
    return "\n".join(lines) + "\n"
