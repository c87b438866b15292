"""One KernelBench-format file to one kbench problem: load, build the model, trace get_inputs()
and forward, lower to kbench ops, tidy the graph."""
import collections
import gc
import inspect

import torch
import torch.fx

from . import params as init_rules
from . import source, trace
from .errors import NotExpressible
from .ir import Const, LazyTuple, ParamRef, ProblemIR, TensorDecl, Val, kb_dtype
from .lower import Lowerer

# The model is built with this seed, so that the values the importer inspects (constants) are
# the same on every run.
BUILD_SEED = 0


class ImportResult:
    """A lowered problem plus what the proof tool needs to relate it to the original."""

    def __init__(self, ir, module, prep, forward_args, what):
        self.ir = ir
        self.module = module  # the loaded source module
        self.prep = prep  # GraphModule: draws (by input name order) -> forward's arguments
        self.forward_args = forward_args  # [(name, "tensor" | Python value)]
        self.what = what


def build_model(module, seed=BUILD_SEED):
    """Model(*get_init_inputs()) as KernelBench builds it (training mode), with creation tags."""
    tags = trace.CreationTags()
    torch.manual_seed(seed)
    with torch.no_grad(), tags:
        init = module.get_init_inputs()
        if not isinstance(init, (list, tuple)):
            raise NotExpressible("get_init_inputs() does not return a list")
        model = module.Model(*init)
    return model, tags


def _draw_dist(draw):
    if draw.kind == "uniform":
        return ("uniform", draw.a, draw.b)
    if draw.kind == "normal":
        return ("normal", draw.a, draw.b)
    if draw.kind == "randint":
        if draw.b - draw.a < 1:
            raise NotExpressible(f"get_inputs(): randint over an empty range [{draw.a}, {draw.b})")
        return ("randint", draw.a, draw.b)
    if draw.kind == "constant":
        return ("constant", draw.a)
    raise AssertionError(draw.kind)


def _factory(draw):
    return {"uniform": "rand", "normal": "randn", "randint": "randint"}.get(draw.kind, draw.kind)


def _ancestor_draws(node):
    """Draw placeholders a prep node depends on, in creation order."""
    seen, out = set(), []
    stack = [node]
    while stack:
        n = stack.pop()
        if not isinstance(n, torch.fx.Node) or n in seen:
            continue
        seen.add(n)
        if n.op == "placeholder":
            out.append(n)
        stack.extend(n.all_input_nodes)
    return sorted(out, key=lambda n: int(n.target[4:]))


def import_file(path, registry, what=None, module=None):
    """Imports one file (or `module`, already loaded from it); returns an ImportResult or raises
    NotExpressible."""
    what = what or path
    if module is None:
        module = source.load_module(path)
    try:
        model, tags = build_model(module)
    except NotExpressible:
        raise
    except Exception as e:
        raise NotExpressible(f"Model(*get_init_inputs()) fails: {type(e).__name__}: {e}")
    model.requires_grad_(False)
    try:
        prep_graph, prep_tracer = trace.trace_get_inputs(module)
    except NotExpressible:
        raise
    except Exception as e:
        raise NotExpressible(f"get_inputs() cannot be traced: {type(e).__name__}: {e}")
    out_node = [n for n in prep_graph.nodes if n.op == "output"][0]
    elements = list(out_node.args[0])
    fparams = trace.forward_param_names(model)
    if len(elements) > len(fparams):
        raise NotExpressible(f"get_inputs() returns {len(elements)} values, forward() takes "
                             f"{len(fparams)}")
    forward_inputs, forward_args = [], []
    for i, (name, default) in enumerate(fparams):
        if i < len(elements):
            e = elements[i]
            if isinstance(e, torch.fx.Node):
                forward_inputs.append((name, e.meta["val"]))
                forward_args.append((name, "tensor"))
            else:
                forward_inputs.append((name, e))
                forward_args.append((name, e))
        else:
            if default is inspect.Parameter.empty:
                raise NotExpressible(f"forward() argument {name} is not given by get_inputs()")
            forward_inputs.append((name, default))
            forward_args.append((name, default))

    def is_constant(target, tensor):
        if isinstance(tensor, torch.nn.Parameter):
            return init_rules.is_scalar_constant(tensor, tags)
        return not init_rules.is_random_tensor(tensor, tags)

    ftracer = trace.ConcreteTracer()
    ftracer.forward_inputs = forward_inputs
    ftracer.is_constant = is_constant
    try:
        with trace.DrawPatches(ftracer, prefix="fdraw", random_only=True):
            fgraph = ftracer.trace(model)
    except NotExpressible:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise NotExpressible(f"forward() cannot be traced: {type(e).__name__}: {msg}")

    ir = ProblemIR()
    lowerer = Lowerer(registry, ir, model, tags, what)

    # Inputs: the draws, named after forward()'s argument they feed, in argument order.
    draw_names = {}
    for i, e in enumerate(elements):
        if not isinstance(e, torch.fx.Node):
            continue
        arg = fparams[i][0]
        draws = [d for d in _ancestor_draws(e) if d.target not in draw_names]
        for k, d in enumerate(draws):
            if e is d:
                nm = arg
            elif len(draws) == 1:
                nm = f"{arg}_draw"
            else:
                nm = f"{arg}_draw{k}"
            draw_names[d.target] = ir.fresh(nm)
    placeholders = {}
    for target, name in draw_names.items():  # forward()'s argument order
        draw = prep_tracer.draws[target]
        kb_dtype(draw.dtype, f"input {name}")
        m = torch.empty(draw.shape, dtype=draw.dtype, device="meta")
        dist = _draw_dist(draw)
        ir.inputs.append(TensorDecl(name, m, dist, "input", source=target))
        placeholders[target] = Val(name, m)
    unused_draws = [t for t in prep_tracer.draws if t not in draw_names]
    try:
        prep_out = lowerer.lower_graph(prep_graph, {**placeholders, **{
            t: Val(f"unused_{t}", prep_tracer.placeholder_vals[t]) for t in unused_draws}})
    except NotExpressible as e:
        raise NotExpressible(f"get_inputs(): {e}")
    bound = {}
    for i, e in enumerate(elements):
        if isinstance(e, torch.fx.Node):
            arg = fparams[i][0]
            v = prep_out[i]
            if not isinstance(v, Val):
                raise NotExpressible(f"get_inputs(): value {i} is not a tensor kbench can draw")
            decl = ir.decl(v.name)
            if decl is not None and decl.name != arg and arg not in ir.used_names:
                # A draw cast right away (randint(...).bool()): the input takes the argument's name.
                v = _rename_input(ir, decl, arg)
            elif decl is None:  # computed from draws: name the result after the argument
                v = _rename(ir, v, arg)
                ir.depart(f"The file's get_inputs() computes {arg} from random draws; those steps are the "
                          f"first nodes of the graph (the candidate receives the draws)")
            bound[arg] = v
    placeholders_f = {name: bound[name] for name, kind in forward_args if kind == "tensor"}
    # Random tensors forward() draws on every call become inputs after forward()'s arguments.
    for target, draw in ftracer.draws.items():
        users = [n for n in fgraph.nodes if n.op == "placeholder" and n.target == target][0].users
        if not users:
            continue
        name = ir.fresh(f"forward_draw{target[5:]}")
        kb_dtype(draw.dtype, f"input {name}")
        m = torch.empty(draw.shape, dtype=draw.dtype, device="meta")
        ir.inputs.append(TensorDecl(name, m, _draw_dist(draw), "input", source=target))
        placeholders_f[target] = Val(name, m)
        ir.depart(f"forward() draws {name} ({list(draw.shape)}, torch.{_factory(draw)}) on "
                  f"every call; here it is an input drawn the same way")
    result = lowerer.lower_graph(fgraph, placeholders_f)
    outs = _flatten_outputs(lowerer, result)
    _tidy(ir, outs)
    prep_module = torch.fx.GraphModule(prep_tracer.root, prep_graph)
    res = ImportResult(ir, module, prep_module, forward_args, what)
    res.draw_names = draw_names
    res.prep_draws = prep_tracer.draws
    res.forward_draws = ftracer.draws
    del model
    gc.collect()
    return res


def _rename(ir, v, new):
    """Renames the node output `v` to `new` (made unique) everywhere."""
    name = ir.fresh(new)
    for n in ir.nodes:
        if n.out == v.name:
            n.out = name
        n.ins = [name if i == v.name else i for i in n.ins]
    ir.used_names.discard(v.name)
    return Val(name, v.m)


def _rename_input(ir, decl, new):
    old = decl.name
    ir.used_names.discard(old)
    decl.name = ir.fresh(new)
    for n in ir.nodes:
        n.ins = [decl.name if i == old else i for i in n.ins]
    return Val(decl.name, decl.m)


def _flatten_outputs(lowerer, result):
    items = []

    def walk(r):
        if isinstance(r, LazyTuple):
            for i in range(len(r)):
                walk(r.item(i))
        elif isinstance(r, (list, tuple)):
            for x in r:
                walk(x)
        else:
            items.append(r)

    walk(result)
    out = []
    for r in items:
        if isinstance(r, (Const,)) or not isinstance(r, (Val, ParamRef)):
            raise NotExpressible(f"forward() returns {type(r).__name__}, not a computed tensor")
        out.append(lowerer.T(r, "output"))
    return out


def _tidy(ir, outs):
    """Folds transposes into matmuls, drops unused nodes, names the outputs y (y0, y1, ...)."""
    producers = {n.out: n for n in ir.nodes}
    for v in outs:
        if v.name not in producers:
            raise NotExpressible(f"forward() returns {v.name}, an input or parameter unchanged")
    # Transposes of the last two dims feeding only a matmul become its transpose_a/b.
    uses = collections.Counter(i for n in ir.nodes for i in n.ins)
    for v in outs:
        uses[v.name] += 1
    for n in ir.nodes:
        if n.op != "matmul":
            continue
        for pos, flag in ((0, "transpose_a"), (1, "transpose_b")):
            src = producers.get(n.ins[pos])
            if src is None or src.op != "transpose" or uses[src.out] != 1:
                continue
            r = src.m.dim()
            if sorted((src.attrs["dim0"], src.attrs["dim1"])) != [r - 2, r - 1] or r < 2:
                continue
            if flag in n.attrs:
                continue
            n.ins[pos] = src.ins[0]
            n.attrs[flag] = True
            uses[src.out] -= 1
    # Dead nodes.
    live = {v.name for v in outs}
    kept = []
    for n in reversed(ir.nodes):
        if n.out in live:
            kept.append(n)
            live.update(n.ins)
    ir.nodes = list(reversed(kept))
    ir.params = [p for p in ir.params if p.name in live]
    for t in ir.inputs:
        if t.name not in live:
            raise NotExpressible(f"input {t.name} is not used by the model")
    # Outputs named y, or y0, y1, ... (when the names are free).
    names = ["y"] if len(outs) == 1 else [f"y{i}" for i in range(len(outs))]
    taken = {t.name for t in ir.inputs + ir.params} | {n.out for n in ir.nodes}
    final = []
    for v, want in zip(outs, names):
        if v.name in final:
            raise NotExpressible("forward() returns the same tensor twice")
        if want not in taken:
            for n in ir.nodes:
                if n.out == v.name:
                    n.out = want
                n.ins = [want if i == v.name else i for i in n.ins]
            taken.discard(v.name)
            taken.add(want)
            final.append(want)
        else:
            final.append(v.name)
    ir.outputs = final
