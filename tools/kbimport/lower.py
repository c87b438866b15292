"""Lowering of traced torch.fx graphs to kbench graph nodes.

Every fx node (call_function, call_method, call_module) is mapped to kbench ops by a handler named
after the PyTorch function, method or module class it stands for. A handler either emits kbench
nodes or raises NotExpressible naming what is missing (an op the kbench binary lacks, an argument
kbench has no attribute for, a construct such as advanced indexing). The mapping table is the
handler registry at the end of this file; docs/problems.md lists it.

Only ops that the kbench binary's registry holds (`kbench ops`) are emitted; where two forms exist
(relu6 as its own op or as hardtanh(0, 6)), the importer takes the first one the registry has.
"""
import math
import operator

import torch
import torch.fx
import torch.nn as nn

from . import params as init_rules
from .errors import NotExpressible
from .ir import Const, Expanded, Fill, LazyTuple, Node, ParamRef, Val, kb_dtype
from .trace import OPERATOR_NAMES

_REQUIRED = object()
_ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def _parse_spec(spec):
    out, kwonly = [], False
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "*":
            kwonly = True
            continue
        if part.startswith("*"):
            out.append((part[1:], _REQUIRED, "var"))
            kwonly = True
            continue
        if "=" in part:
            name, default = part.split("=", 1)
            out.append((name.strip(), eval(default, {"inf": math.inf}), "kw" if kwonly else "pos"))
        else:
            out.append((part, _REQUIRED, "kw" if kwonly else "pos"))
    return out


# Signatures of the PyTorch functions and methods the importer knows, by canonical name (methods
# take the tensor as `input`). Positional arguments bind in this order.
SPECS = {
    "unary": "input, inplace=False",
    "gelu": "input, approximate='none'",
    "leaky_relu": "input, negative_slope=0.01, inplace=False",
    "elu": "input, alpha=1.0, inplace=False",
    "celu": "input, alpha=1.0, inplace=False",
    "hardtanh": "input, min_val=-1.0, max_val=1.0, inplace=False",
    "softplus": "input, beta=1, threshold=20",
    "clamp": "input, min=None, max=None",
    "clamp_min": "input, min",
    "clamp_max": "input, max",
    "binary": "input, other, *, alpha=1",
    "div": "input, other, *, rounding_mode=None",
    "pow": "input, exponent",
    "matmul": "input, other",
    "linear": "input, weight, bias=None",
    "addmm": "input, mat1, mat2, *, beta=1, alpha=1",
    "einsum": "equation, *operands",
    "softmax": "input, dim=None, _stacklevel=3, dtype=None",
    "reduce": "input, dim=None, keepdim=False, *, dtype=None",
    "amax": "input, dim=(), keepdim=False",
    "maxmin": "input, dim=None, keepdim=False, *, other=None",
    "argmax": "input, dim=None, keepdim=False",
    "logsumexp": "input, dim, keepdim=False",
    "scan": "input, dim, *, dtype=None",
    "norm": "input, p='fro', dim=None, keepdim=False, out=None, dtype=None",
    "vector_norm": "input, ord=2, dim=None, keepdim=False, *, dtype=None",
    "normalize": "input, p=2.0, dim=1, eps=1e-12, out=None",
    "shape_var": "input, *shape",
    "flatten": "input, start_dim=0, end_dim=-1",
    "unflatten": "input, dim, sizes",
    "squeeze": "input, dim=None",
    "unsqueeze": "input, dim",
    "permute": "input, *dims",
    "transpose": "input, dim0, dim1",
    "identity": "input, *args, **kwargs",
    "cast": "input, *args, **kwargs",
    "expand": "input, *sizes",
    "expand_as": "input, other",
    "view_as": "input, other",
    "repeat": "input, *sizes",
    "cat": "tensors, dim=0",
    "chunk": "input, chunks, dim=0",
    "split": "input, split_size_or_sections, dim=0",
    "unbind": "input, dim=0",
    "narrow": "input, dim, start, length",
    "select": "input, dim, index",
    "flip": "input, *dims",
    "roll": "input, shifts, dims=None",
    "tri": "input, diagonal=0",
    "diag": "input, diagonal=0",
    "masked_fill": "input, mask, value",
    "where": "condition, input, other",
    "gather": "input, dim, index, *, sparse_grad=False",
    "pad": "input, pad, mode='constant', value=None",
    "fill_like": "input, *, dtype=None, layout=None, device=None, pin_memory=False, "
    "requires_grad=False, memory_format=None",
    "full_like": "input, fill_value, *, dtype=None, layout=None, device=None, pin_memory=False, "
    "requires_grad=False, memory_format=None",
    "dropout": "input, p=0.5, training=True, inplace=False",
    "conv": "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1",
    "conv_transpose": "input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, "
    "dilation=1",
    "max_pool": "input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
    "return_indices=False",
    "avg_pool1d": "input, kernel_size, stride=None, padding=0, ceil_mode=False, "
    "count_include_pad=True",
    "avg_pool": "input, kernel_size, stride=None, padding=0, ceil_mode=False, "
    "count_include_pad=True, divisor_override=None",
    "adaptive_pool": "input, output_size, return_indices=False",
    "batch_norm": "input, running_mean, running_var, weight=None, bias=None, training=False, "
    "momentum=0.1, eps=1e-05",
    "layer_norm": "input, normalized_shape, weight=None, bias=None, eps=1e-05",
    "group_norm": "input, num_groups, weight=None, bias=None, eps=1e-05",
    "instance_norm": "input, running_mean=None, running_var=None, weight=None, bias=None, "
    "use_input_stats=True, momentum=0.1, eps=1e-05",
    "rms_norm": "input, normalized_shape, weight=None, eps=None",
    "loss2": "input, target, size_average=None, reduce=None, reduction='mean'",
    "cross_entropy": "input, target, weight=None, size_average=None, ignore_index=-100, "
    "reduce=None, reduction='mean', label_smoothing=0.0",
    "smooth_l1_loss": "input, target, size_average=None, reduce=None, reduction='mean', beta=1.0",
    "huber_loss": "input, target, reduction='mean', delta=1.0",
    "kl_div": "input, target, size_average=None, reduce=None, reduction='mean', log_target=False",
    "triplet_margin_loss": "anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False, "
    "size_average=None, reduce=None, reduction='mean'",
    "cosine_similarity": "x1, x2, dim=1, eps=1e-08",
    "sdpa": "query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, "
    "enable_gqa=False",
    "getitem": "input, idx",
    "copy": "input, src, non_blocking=False",
    "getattr": "input, name",
    "pixel_shuffle": "input, upscale_factor",
    "unfold": "input, dimension, size, step",
}
_PARSED = {k: _parse_spec(v) for k, v in SPECS.items()}

# Canonical names of functions and methods, and the signature each binds with.
UNARY_OPS = {
    "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "selu": "selu",
    "hardsigmoid": "hardsigmoid", "hardswish": "hardswish", "mish": "mish", "softsign": "softsign",
    "silu": "swish", "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
    "neg": "neg", "negative": "neg", "reciprocal": "reciprocal", "sign": "sign", "erf": "erf",
    "cos": "cos", "sin": "sin", "log2": "log2", "floor": "floor", "ceil": "ceil", "round": "round",
    "relu6": "relu6", "square": "square", "logsigmoid": "logsigmoid", "exp2": "exp2",
    "log1p": "log1p", "expm1": "expm1", "tan": "tan", "trunc": "trunc",
}
SIG_OF = {name: "unary" for name in UNARY_OPS}
SIG_OF.update({
    "gelu": "gelu", "leaky_relu": "leaky_relu", "elu": "elu", "celu": "celu",
    "hardtanh": "hardtanh", "softplus": "softplus", "clamp": "clamp", "clip": "clamp",
    "clamp_min": "clamp_min", "clamp_max": "clamp_max",
    "add": "binary", "sub": "binary", "subtract": "binary", "rsub": "binary", "mul": "binary",
    "multiply": "binary", "div": "div", "divide": "div", "true_divide": "div",
    "floor_divide": "binary", "maximum": "binary", "minimum": "binary", "fmax": "binary",
    "fmin": "binary", "pow": "pow", "float_power": "pow",
    "eq": "binary", "ne": "binary", "lt": "binary", "le": "binary", "gt": "binary", "ge": "binary",
    "logical_and": "binary", "logical_or": "binary", "logical_not": "unary",
    "matmul": "matmul", "mm": "matmul", "bmm": "matmul", "linear": "linear", "addmm": "addmm",
    "einsum": "einsum",
    "softmax": "softmax", "log_softmax": "softmax",
    "sum": "reduce", "mean": "reduce", "prod": "reduce", "amax": "amax", "amin": "amax",
    "max": "maxmin", "min": "maxmin", "argmax": "argmax", "argmin": "argmax",
    "logsumexp": "logsumexp", "cumsum": "scan", "cumprod": "scan",
    "norm": "norm", "vector_norm": "vector_norm", "normalize": "normalize",
    "view": "shape_var", "reshape": "shape_var", "flatten": "flatten", "unflatten": "unflatten",
    "squeeze": "squeeze", "unsqueeze": "unsqueeze", "permute": "permute",
    "transpose": "transpose", "swapaxes": "transpose", "swapdims": "transpose", "t": "unary",
    "contiguous": "identity", "clone": "identity", "detach": "identity", "identity": "identity",
    "to": "cast", "float": "cast", "type_as": "cast", "bool": "cast", "long": "cast",
    "int": "cast", "double": "cast", "half": "cast", "cpu": "identity", "cuda": "identity",
    "expand": "expand", "expand_as": "expand_as", "view_as": "view_as", "reshape_as": "view_as",
    "repeat": "repeat",
    "cat": "cat", "concat": "cat", "concatenate": "cat", "stack": "cat",
    "chunk": "chunk", "split": "split", "unbind": "unbind", "narrow": "narrow",
    "select": "select", "flip": "flip", "roll": "roll", "tril": "tri", "triu": "tri",
    "diag": "diag", "masked_fill": "masked_fill", "where": "where", "gather": "gather",
    "pad": "pad",
    "zeros_like": "fill_like", "ones_like": "fill_like", "full_like": "full_like",
    "dropout": "dropout", "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout",
    "alpha_dropout": "dropout", "feature_alpha_dropout": "dropout",
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv",
    "conv_transpose1d": "conv_transpose", "conv_transpose2d": "conv_transpose",
    "conv_transpose3d": "conv_transpose",
    "max_pool1d": "max_pool", "max_pool2d": "max_pool", "max_pool3d": "max_pool",
    "max_pool1d_with_indices": "max_pool", "max_pool2d_with_indices": "max_pool",
    "max_pool3d_with_indices": "max_pool",
    "avg_pool1d": "avg_pool1d", "avg_pool2d": "avg_pool", "avg_pool3d": "avg_pool",
    "adaptive_avg_pool1d": "adaptive_pool", "adaptive_avg_pool2d": "adaptive_pool",
    "adaptive_avg_pool3d": "adaptive_pool", "adaptive_max_pool1d": "adaptive_pool",
    "adaptive_max_pool2d": "adaptive_pool", "adaptive_max_pool3d": "adaptive_pool",
    "adaptive_max_pool1d_with_indices": "adaptive_pool",
    "adaptive_max_pool2d_with_indices": "adaptive_pool",
    "adaptive_max_pool3d_with_indices": "adaptive_pool",
    "batch_norm": "batch_norm", "layer_norm": "layer_norm", "group_norm": "group_norm",
    "instance_norm": "instance_norm", "rms_norm": "rms_norm",
    "mse_loss": "loss2", "l1_loss": "loss2", "cross_entropy": "cross_entropy",
    "smooth_l1_loss": "smooth_l1_loss", "huber_loss": "huber_loss", "kl_div": "kl_div",
    "triplet_margin_loss": "triplet_margin_loss", "cosine_similarity": "cosine_similarity",
    "scaled_dot_product_attention": "sdpa",
    "getitem": "getitem", "getattr": "getattr", "pixel_shuffle": "pixel_shuffle", "copy": "copy",
    "unfold": "unfold",
})

def canonical_function(target):
    """The canonical name of a call_function target (operator.add -> 'add', F.relu -> 'relu')."""
    if target in OPERATOR_NAMES:
        return OPERATOR_NAMES[target]
    name = getattr(target, "__name__", None)
    if name is None:
        return str(target)
    if name.startswith("_") and name.lstrip("_") in SIG_OF:
        name = name.lstrip("_")
    return name


def canonical_method(name):
    return name[:-1] if name.endswith("_") and name[:-1] in SIG_OF and name != "_" else name


def bind(canon, args, kwargs, what):
    sig = SIG_OF.get(canon)
    if sig is None:
        raise NotExpressible(f"{what}: no mapping for '{canon}'")
    spec = _PARSED[sig]
    out, pos = {}, list(args)
    extra_kwargs = dict(kwargs)
    for name, default, kind in spec:
        if kind == "var":
            if name == "kwargs":
                continue
            rest = pos
            pos = []
            if len(rest) == 1 and isinstance(rest[0], (list, tuple, torch.Size)):
                rest = list(rest[0])
            if name in extra_kwargs:
                rest = extra_kwargs.pop(name)
            out[name] = list(rest) if isinstance(rest, (list, tuple, torch.Size)) else rest
            continue
        if kind == "pos" and pos:
            out[name] = pos.pop(0)
        elif name in extra_kwargs:
            out[name] = extra_kwargs.pop(name)
        elif default is _REQUIRED:
            if sig in ("shape_var", "permute", "expand", "repeat", "flip"):
                out[name] = []
                continue
            raise NotExpressible(f"{what}: missing argument '{name}'")
        else:
            out[name] = default
    has_var_kwargs = any(n == "kwargs" for n, _, _ in spec)
    if pos:
        if has_var_kwargs:
            out["args"] = out.get("args", []) + pos
        else:
            raise NotExpressible(f"{what}: {len(pos)} unexpected positional argument(s)")
    if extra_kwargs:
        if has_var_kwargs:
            out["kwargs"] = extra_kwargs
        else:
            raise NotExpressible(
                f"{what}: unsupported argument(s) {', '.join(sorted(extra_kwargs))}"
            )
    return out


def _int_or_list(v):
    """An attribute that PyTorch takes as int or tuple: an int when every entry is equal."""
    if isinstance(v, (list, tuple, torch.Size)):
        v = [int(x) for x in v]
        if len(v) >= 1 and all(x == v[0] for x in v):
            return v[0]
        return v
    return int(v)


def _as_list(v, n):
    if isinstance(v, (list, tuple, torch.Size)):
        return [int(x) for x in v]
    return [int(v)] * n


def _dims_list(dim, rank):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(rank))
    if isinstance(dim, (list, tuple, torch.Size)):
        return [int(d) for d in dim]
    return int(dim)


def _norm_dim(d, rank):
    if not -max(rank, 1) <= d < max(rank, 1):
        raise NotExpressible(f"dimension {d} out of range for rank {rank}")
    return d % max(rank, 1)


def _num(v):
    """A Python number attribute: bools as bools, ints as ints, floats as floats."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    return float(v)


class Lowerer:
    """Lowers fx graphs into `ir` (a ProblemIR) using the ops of `registry`."""

    def __init__(self, registry, ir, model, tags, problem_what):
        self.registry = registry
        self.ir = ir
        self.model = model
        self.tags = tags
        self.what = problem_what
        self.param_vals = {}  # qualname -> Val
        self.attr_override = {}  # get_attr target -> value after an in-place update
        self.training = model.training if model is not None else True

    # ---- emission ---------------------------------------------------------------------------

    def has(self, op):
        return op in self.registry

    def emit(self, op, ins, attrs, m, hint=None):
        info = self.registry.get(op)
        if info is None:
            raise NotExpressible(f"op '{op}' is not in kbench's op registry")
        if not info["min_inputs"] <= len(ins) <= info["max_inputs"]:
            raise NotExpressible(
                f"op '{op}' takes {info['min_inputs']}..{info['max_inputs']} inputs, "
                f"the lowering has {len(ins)}"
            )
        for k in attrs:
            if k not in info["attrs"]:
                raise NotExpressible(f"op '{op}' has no attribute '{k}' in kbench's op registry")
        for v in ins:
            if not isinstance(v, Val):
                raise AssertionError(f"emit {op}: input {v!r} is not a value")
        kb_dtype(m.dtype, f"output of {op}")
        name = self.ir.fresh(hint or op)
        clean = {}
        for k, v in attrs.items():
            if isinstance(v, (tuple, torch.Size)):
                v = list(v)
            clean[k] = v
        self.ir.nodes.append(Node(name, op, [v.name for v in ins], clean, m))
        return Val(name, m)

    def unary(self, op, x, hint=None, **attrs):
        return self.emit(op, [x], attrs, x.m, hint)

    def reshape(self, x, shape, hint=None):
        shape = tuple(int(s) for s in shape)
        if x.shape == shape:
            return x
        return self.emit("reshape", [x], {"shape": list(shape)}, x.m.reshape(shape), hint or "reshape")

    def slice(self, x, dim, start, end, step=1, hint=None):
        size = x.shape[dim]
        if start == 0 and end == size and step == 1:
            return x
        attrs = {"dim": dim, "start": start, "end": end}
        if step != 1:
            attrs["step"] = step
        idx = [slice(None)] * x.rank
        idx[dim] = slice(start, end, step)
        return self.emit("slice", [x], attrs, x.m[tuple(idx)], hint or "slice")

    def transpose(self, x, d0, d1, hint=None):
        d0, d1 = _norm_dim(d0, x.rank), _norm_dim(d1, x.rank)
        if d0 == d1:
            return x
        return self.emit("transpose", [x], {"dim0": d0, "dim1": d1}, x.m.transpose(d0, d1),
                         hint or "transpose")

    def permute(self, x, dims, hint=None):
        dims = [_norm_dim(int(d), x.rank) for d in dims]
        if dims == list(range(x.rank)):
            return x
        swapped = [i for i, d in enumerate(dims) if d != i]
        if len(swapped) == 2:
            return self.transpose(x, swapped[0], swapped[1], hint)
        return self.emit("permute", [x], {"dims": dims}, x.m.permute(dims), hint or "permute")

    def scalar_op(self, op, x, s, hint=None):
        m = _ARITH[op](x.m, s)
        return self.emit(op, [x], {"scalar": _num(s)}, m, hint or op)

    def binary(self, op, a, b, hint=None):
        m = _ARITH[op](a.m, b.m) if op in _ARITH else torch.broadcast_tensors(a.m, b.m)[0]
        return self.emit(op, [a, b], {}, m, hint or op)

    # ---- values --------------------------------------------------------------------------------

    def T(self, v, what):
        """`v` as a kbench tensor value; parameters are declared on first use."""
        if isinstance(v, Val):
            return v
        if isinstance(v, ParamRef):
            return self.param(v.qualname, v.tensor)
        if isinstance(v, Expanded):
            return self.materialize_expand(v.val, tuple(v.m.shape))
        if isinstance(v, Const):
            shape = list(v.m.shape)
            raise NotExpressible(
                f"{what}: a constant tensor of shape {shape} used as data ({v.what}); kbench "
                f"problems hold no constant tensors"
            )
        if isinstance(v, Fill):
            like = v.like
            if isinstance(like, (Val, ParamRef)):
                # x * 0 (+ c): exact for the finite values kbench draws.
                src = self.T(like, what)
                if src.m.dtype == v.m.dtype and src.shape == tuple(v.m.shape):
                    zero = self.scalar_op("mul", src, 0.0 if src.m.is_floating_point() else 0,
                                          "zeros")
                    return zero if v.value == 0 else self.scalar_op("add", zero, v.value, "fill")
            raise NotExpressible(f"{what}: a constant-filled tensor (zeros_like/full_like) used "
                                 f"as data")
        if isinstance(v, LazyTuple):
            raise NotExpressible(f"{what}: a tuple where a tensor is expected")
        raise NotExpressible(f"{what}: {type(v).__name__} {v!r} where a tensor is expected")

    def scalar_of(self, v):
        """A Python number for numbers and one-element constants, else None."""
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, Const):
            return v.scalar()
        if isinstance(v, ParamRef) and init_rules.is_scalar_constant(v.tensor, self.tags):
            return init_rules.short_float(v.tensor.reshape(()).item(), v.tensor.dtype)
        if isinstance(v, Fill):
            return v.value
        return None

    def param(self, qualname, tensor):
        if qualname in self.param_vals:
            return self.param_vals[qualname]
        rule = init_rules.init_rule(self.model, qualname, tensor, self.tags)
        name = self.ir.fresh(qualname.replace(".", "_"))
        m = torch.empty(tuple(tensor.shape), dtype=tensor.dtype, device="meta")
        kb_dtype(tensor.dtype, f"parameter {qualname}")
        from .ir import TensorDecl

        decl = TensorDecl(name, m, rule.dist, "param", source=qualname, note=rule.note)
        decl.start = rule.start
        self.ir.params.append(decl)
        val = Val(name, m)
        self.param_vals[qualname] = val
        return val

    def module_param(self, path, leaf):
        t = getattr(self.model.get_submodule(path), leaf)
        if t is None:
            return None
        qual = f"{path}.{leaf}" if path else leaf
        return self.param(qual, t)

    def materialize_expand(self, x, shape):
        """x broadcast to `shape`, written as concatenations of copies along each expanded dim."""
        if len(shape) > x.rank:
            x = self.reshape(x, (1,) * (len(shape) - x.rank) + x.shape)
        for d, (have, want) in enumerate(zip(x.shape, shape)):
            if have == want:
                continue
            if have != 1 or want > 64:
                raise NotExpressible(f"expand of dim {d} from {have} to {want} (kbench has no "
                                     f"broadcast op; copies are written out only up to 64)")
            x = self.concat([x] * want, d)
        return x

    def concat(self, vals, dim, hint=None):
        if len(vals) == 1:
            return vals[0]
        m = torch.cat([v.m for v in vals], dim)
        return self.emit("concat", vals, {"dim": dim}, m, hint or "cat")

    # ---- graph walking ---------------------------------------------------------------------

    def lower_graph(self, graph, placeholders):
        """Lowers `graph`; `placeholders` maps placeholder names to values. Returns the lowered
        output structure (values, tuples, Python values)."""
        env = {}

        def value_of(a):
            return torch.fx.node.map_arg(a, lambda n: env[n])

        result = None
        for node in graph.nodes:
            if node.op == "placeholder":
                env[node] = placeholders[node.target]
            elif node.op == "get_attr":
                env[node] = self.get_attr(node)
            elif node.op == "output":
                result = value_of(node.args[0])
            else:
                if not node.users and not self._mutates(node):
                    continue  # a result nobody uses (out, _ = lstm(...))
                where = self._where(node)
                if "const" in node.meta and not self._touches_params(node, env):
                    env[node] = Const(node.meta["const"], node.meta["val"], where)
                    continue
                args, kwargs = value_of(node.args), value_of(node.kwargs)
                try:
                    out = self.lower_node(node, args, kwargs)
                except NotExpressible as e:
                    msg = str(e)
                    raise NotExpressible(msg if msg.startswith(where) else f"{where}: {msg}")
                env[node] = out
                self._rebind_inplace(node, env, out)
        return result

    def _where(self, node):
        if node.op == "call_module":
            return f"{node.target} ({type(self.model.get_submodule(node.target)).__name__})"
        if node.op == "call_method":
            return f".{node.target}()"
        return f"{canonical_function(node.target)}()"

    def _touches_params(self, node, env):
        found = False

        def visit(n):
            nonlocal found
            if isinstance(env.get(n), (ParamRef, Val)):
                found = True
            return n

        torch.fx.node.map_arg((node.args, node.kwargs), visit)
        return found

    def _mutates(self, node):
        if node.op == "call_method" and node.target.endswith("_"):
            return True
        if node.kwargs.get("inplace") is True:
            return True
        if node.op == "call_module":
            return getattr(self.model.get_submodule(node.target), "inplace", False) is True
        return False

    def _rebind_inplace(self, node, env, out):
        """After an in-place op (x.add_(y), F.relu(x, inplace=True), copy_), later uses of x see
        the new value."""
        inplace = False
        if node.op == "call_method" and node.target.endswith("_") and node.target not in (
            "requires_grad_",
        ):
            inplace = True
        if node.kwargs.get("inplace") is True:
            inplace = True
        if node.op == "call_module":
            mod = self.model.get_submodule(node.target)
            inplace = getattr(mod, "inplace", False) is True
        if inplace and node.args and isinstance(node.args[0], torch.fx.Node):
            src = node.args[0]
            env[src] = out
            if src.op == "get_attr":
                self.attr_override[src.target] = out

    def get_attr(self, node):
        if node.target in self.attr_override:
            return self.attr_override[node.target]
        real = node.meta["real"]
        if not isinstance(real, torch.Tensor):
            raise NotExpressible(f"attribute {node.target}: not a tensor")
        if isinstance(real, nn.Parameter) or init_rules.is_random_tensor(real, self.tags):
            if init_rules.is_scalar_constant(real, self.tags):
                return Const(real.detach(), node.meta["val"], f"parameter {node.target}")
            return ParamRef(node.target, real)
        return Const(real.detach() if real.numel() <= (1 << 24) else None, node.meta["val"],
                     f"buffer {node.target}")

    def lower_node(self, node, args, kwargs):
        m = node.meta.get("val")
        if node.op == "call_module":
            mod = self.model.get_submodule(node.target)
            h = MODULE_HANDLERS.get(type(mod).__name__)
            if h is None or not isinstance(mod, getattr(nn, type(mod).__name__, ())):
                raise NotExpressible(f"module {type(mod).__name__} has no lowering")
            return h(self, mod, node.target, args, kwargs, m)
        if node.op == "call_method":
            canon = canonical_method(node.target)
        else:
            canon = canonical_function(node.target)
        handler = HANDLERS.get(canon)
        if handler is None:
            raise NotExpressible(f"no lowering for {node.op} '{canon}'")
        a = bind(canon, args, kwargs, canon)
        return handler(self, canon, a, m)


# ---- handlers: element-wise ---------------------------------------------------------------------

HANDLERS = {}
MODULE_HANDLERS = {}


def handles(*names):
    def deco(f):
        for n in names:
            HANDLERS[n] = f
        return f

    return deco


def module_handler(*names):
    def deco(f):
        for n in names:
            MODULE_HANDLERS[n] = f
        return f

    return deco


def lower_unary(L, op, x, **attrs):
    """One element-wise op, or its lowering where kbench lacks the op."""
    if op == "relu6":
        if L.has("relu6"):
            return L.unary("relu6", x)
        return L.unary("hardtanh", x, "relu6", min_val=0.0, max_val=6.0)
    if op == "neg" and not L.has("neg"):
        return L.scalar_op("mul", x, -1.0 if x.m.is_floating_point() else -1, "neg")
    if op == "square" and not L.has("square"):
        return L.binary("mul", x, x, "square")
    if op == "rsqrt" and not L.has("rsqrt"):
        if L.has("reciprocal"):
            return L.unary("reciprocal", L.unary("sqrt", x), "rsqrt")
    return L.emit(op, [x], {k: v for k, v in attrs.items()}, x.m, op)


@handles(*UNARY_OPS)
def h_unary(L, canon, a, m):
    x = L.T(a["input"], canon)
    return lower_unary(L, UNARY_OPS[canon], x)


@handles("t")
def h_t(L, canon, a, m):
    x = L.T(a["input"], canon)
    return x if x.rank < 2 else L.transpose(x, 0, 1, "t")


@handles("gelu")
def h_gelu(L, canon, a, m):
    x = L.T(a["input"], canon)
    attrs = {} if a["approximate"] == "none" else {"approximate": a["approximate"]}
    return L.emit("gelu", [x], attrs, x.m, "gelu")


def _nondefault(**pairs):
    """Attributes whose value differs from PyTorch's default: name=(value, default)."""
    return {k: _num(v) for k, (v, d) in pairs.items() if v != d}


@handles("leaky_relu")
def h_leaky_relu(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.emit("leaky_relu", [x], _nondefault(negative_slope=(a["negative_slope"], 0.01)), x.m,
                  "leaky_relu")


@handles("elu")
def h_elu(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.emit("elu", [x], _nondefault(alpha=(float(a["alpha"]), 1.0)), x.m, "elu")


@handles("hardtanh")
def h_hardtanh(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.emit("hardtanh", [x], _nondefault(min_val=(float(a["min_val"]), -1.0),
                                               max_val=(float(a["max_val"]), 1.0)), x.m,
                  "hardtanh")


@handles("softplus")
def h_softplus(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.emit("softplus", [x], _nondefault(beta=(a["beta"], 1), threshold=(a["threshold"], 20)),
                  x.m, "softplus")


def clamp(L, x, lo, hi, hint="clamp"):
    attrs = {}
    if lo is not None:
        attrs["min"] = _num(lo)
    if hi is not None:
        attrs["max"] = _num(hi)
    if not attrs:
        raise NotExpressible("clamp without bounds")
    return L.emit("clamp", [x], attrs, x.m, hint)


@handles("clamp", "clip", "clamp_min", "clamp_max")
def h_clamp(L, canon, a, m):
    x = L.T(a["input"], canon)
    lo, hi = a.get("min"), a.get("max")
    slo = L.scalar_of(lo) if lo is not None else None
    shi = L.scalar_of(hi) if hi is not None else None
    if (lo is not None and slo is None) or (hi is not None and shi is None):
        raise NotExpressible("clamp with tensor bounds")
    return clamp(L, x, slo, shi)


_COMMUTATIVE = {"add", "mul", "maximum", "minimum"}


def binary_op(L, op, a, b, m, alpha=1):
    """add/sub/mul/div (and maximum/minimum) of two operands, tensors or numbers."""
    sa, sb = L.scalar_of(a), L.scalar_of(b)
    if alpha != 1:
        if sb is not None:
            sb = sb * alpha
        else:
            b = L.scalar_op("mul", L.T(b, op), alpha, "alpha")
    if sa is not None and sb is not None:
        raise NotExpressible(f"{op} of two constants")
    if op in ("maximum", "minimum", "fmax", "fmin"):
        s, t = (sb, a) if sb is not None else (sa, b)
        if s is not None:
            x = L.T(t, op)
            out = clamp(L, x, s, None) if op in ("maximum", "fmax") else clamp(L, x, None, s)
            return L.reshape(out, m.shape)
        x, y = _broadcast_pair(L, a, b, m, op)
        return L.emit(op.replace("f", "", 1) if op.startswith("fm") else op, [x, y], {},
                      torch.broadcast_tensors(x.m, y.m)[0], op)
    if sb is not None:
        x = L.T(a, op)
        out = L.scalar_op(op, x, sb)
        return L.reshape(out, m.shape)
    if sa is not None:
        x = L.T(b, op)
        if op in _COMMUTATIVE:
            out = L.scalar_op(op, x, sa)
        elif op == "sub":
            neg = lower_unary(L, "neg", x)
            out = L.scalar_op("add", neg, sa, "rsub")
        elif op == "div":
            if not L.has("reciprocal"):
                raise NotExpressible("a number divided by a tensor needs op 'reciprocal', which "
                                     "is not in kbench's op registry")
            r = L.unary("reciprocal", x)
            out = r if sa == 1 else L.scalar_op("mul", r, sa, "rdiv")
        else:
            raise NotExpressible(f"{op} with a number on the left")
        return L.reshape(out, m.shape)
    x, y = _broadcast_pair(L, a, b, m, op)
    return L.binary(op, x, y)


def _broadcast_pair(L, a, b, m, op):
    def unwrap(v):
        return v.val if isinstance(v, Expanded) else v

    ua, ub = unwrap(a), unwrap(b)
    if isinstance(ua, (Val, ParamRef)) and isinstance(ub, (Val, ParamRef)):
        x, y = L.T(ua, op), L.T(ub, op)
        if tuple(torch.broadcast_shapes(x.shape, y.shape)) == tuple(m.shape):
            return x, y
    return L.T(a, op), L.T(b, op)


@handles("add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "rsub",
         "maximum", "minimum", "fmax", "fmin")
def h_binary(L, canon, a, m):
    op = {"subtract": "sub", "multiply": "mul", "divide": "div", "true_divide": "div"}.get(
        canon, canon)
    if op == "div" and a.get("rounding_mode") is not None:
        raise NotExpressible(f"div with rounding_mode={a['rounding_mode']!r}")
    x, y = a["input"], a["other"]
    if op == "rsub":
        op, x, y = "sub", y, x
    return binary_op(L, op, x, y, m, a.get("alpha", 1))


@handles("floor_divide", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
         "logical_not")
def h_compare(L, canon, a, m):
    raise NotExpressible(f"'{canon}' on tensor data (kbench has comparisons only as masks of "
                         f"constants)")


@handles("pow", "float_power")
def h_pow(L, canon, a, m):
    base, e = a["input"], a["exponent"]
    se = L.scalar_of(e)
    if L.scalar_of(base) is not None and se is None:
        raise NotExpressible("a number raised to a tensor power")
    x = L.T(base, "pow")
    if se is None:
        return L.emit("pow", [x, L.T(e, "pow")], {}, torch.pow(x.m, L.T(e, "pow").m), "pow")
    if se == 1:
        return x
    if se == 2:
        return L.binary("mul", x, x, "square")
    if se == 0.5:
        return L.unary("sqrt", x)
    if L.has("pow"):
        return L.emit("pow", [x], {"scalar": _num(se)}, x.m, "pow")
    if se == 3:
        sq = L.binary("mul", x, x, "square")
        return L.binary("mul", sq, x, "cube")
    raise NotExpressible(f"x ** {se}: op 'pow' is not in kbench's op registry")


# ---- linear algebra -------------------------------------------------------------------------


def matmul(L, x, y, m):
    if x.rank == 1 and y.rank == 1:
        prod = L.binary("mul", x, y, "dot_terms")
        return L.emit("sum", [prod], {"dim": 0}, prod.m.sum(0), "dot")
    if x.rank == 1:
        x2 = L.reshape(x, (1, x.shape[0]))
        out = L.emit("matmul", [x2, y], {}, torch.matmul(x2.m, y.m), "matmul")
        return L.reshape(out, m.shape)
    if y.rank == 1:
        y2 = L.reshape(y, (y.shape[0], 1))
        out = L.emit("matmul", [x, y2], {}, torch.matmul(x.m, y2.m), "matmul")
        return L.reshape(out, m.shape)
    return L.emit("matmul", [x, y], {}, torch.matmul(x.m, y.m), "matmul")


@handles("matmul", "mm", "bmm")
def h_matmul(L, canon, a, m):
    return matmul(L, L.T(a["input"], canon), L.T(a["other"], canon), m)


@handles("linear")
def h_linear(L, canon, a, m):
    x, w = L.T(a["input"], "linear"), L.T(a["weight"], "linear")
    ins = [x, w] + ([L.T(a["bias"], "linear")] if a["bias"] is not None else [])
    return L.emit("linear", ins, {}, m, "linear")


@handles("addmm")
def h_addmm(L, canon, a, m):
    if a["beta"] != 1 or a["alpha"] != 1:
        raise NotExpressible("addmm with beta or alpha other than 1")
    x, y = L.T(a["mat1"], canon), L.T(a["mat2"], canon)
    prod = matmul(L, x, y, torch.matmul(x.m, y.m))
    return binary_op(L, "add", prod, a["input"], m)


def einsum(L, equation, operands, m):
    """Two-operand (and one-operand) einsum as permutes, reshapes and one batched matmul."""
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotExpressible("einsum with '...'")
    if "->" not in eq:
        raise NotExpressible("einsum without an explicit output ('->')")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    vals = [L.T(v, "einsum") for v in operands]
    if len(terms) != len(vals):
        raise NotExpressible("einsum: operand count does not match the equation")
    for t, v in zip(terms, vals):
        if len(set(t)) != len(t) or len(t) != v.rank:
            raise NotExpressible(f"einsum term '{t}' (repeated index or wrong rank)")
    size = {}
    for t, v in zip(terms, vals):
        for c, s in zip(t, v.shape):
            size[c] = s
    if len(vals) == 1:
        (t,), (x,) = terms, vals
        summed = [i for i, c in enumerate(t) if c not in out]
        if summed:
            x = L.emit("sum", [x], {"dim": summed}, x.m.sum(summed), "einsum_sum")
            t = "".join(c for c in t if c in out)
        return L.permute(x, [t.index(c) for c in out], "einsum")
    if len(vals) != 2:
        raise NotExpressible(f"einsum with {len(vals)} operands")
    (ta, tb), (xa, xb) = terms, vals
    batch = [c for c in ta if c in tb and c in out]
    contract = [c for c in ta if c in tb and c not in out]
    free_a = [c for c in ta if c not in tb]
    free_b = [c for c in tb if c not in ta]
    if any(c not in out for c in free_a + free_b):
        raise NotExpressible("einsum summing an index of one operand only")
    prod = lambda cs: math.prod(size[c] for c in cs)
    # Operands as [batch..., M, K] and [batch..., K, N]; batch dims stay separate when they match.
    pa = L.permute(xa, [ta.index(c) for c in batch + free_a + contract], "einsum_a")
    pb = L.permute(xb, [tb.index(c) for c in batch + contract + free_b], "einsum_b")
    bshape = tuple(size[c] for c in batch)
    ra = L.reshape(pa, bshape + (prod(free_a), prod(contract)), "einsum_a")
    if batch:
        rb = L.reshape(pb, bshape + (prod(contract), prod(free_b)), "einsum_b")
    else:
        rb = L.reshape(pb, (prod(contract), prod(free_b)), "einsum_b")
    mm = L.emit("matmul", [ra, rb], {}, torch.matmul(ra.m, rb.m), "einsum_mm")
    order = batch + free_a + free_b
    r = L.reshape(mm, tuple(size[c] for c in order), "einsum")
    return L.permute(r, [order.index(c) for c in out], "einsum")


@handles("einsum")
def h_einsum(L, canon, a, m):
    ops = a["operands"]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = list(ops[0])
    return einsum(L, a["equation"], ops, m)


# ---- reductions and scans ------------------------------------------------------------------


def reduce(L, op, x, dim, keepdim, hint=None):
    dims = _dims_list(dim, x.rank)
    dl = dims if isinstance(dims, list) else [dims]
    if x.rank == 0:
        return x
    m = getattr(torch, {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin",
                        "prod": "sum"}[op])(x.m, dl, keepdim)
    attrs = {"dim": dims}
    if keepdim:
        attrs["keepdim"] = True
    return L.emit(op, [x], attrs, m, hint or op)


@handles("sum", "mean", "prod")
def h_reduce(L, canon, a, m):
    if a["dtype"] is not None:
        raise NotExpressible(f"{canon} with dtype=")
    x = L.T(a["input"], canon)
    if canon == "prod" and isinstance(a["dim"], (list, tuple)):
        raise NotExpressible("prod over several dims")
    return reduce(L, canon, x, a["dim"], bool(a["keepdim"]))


@handles("amax", "amin")
def h_amax(L, canon, a, m):
    x = L.T(a["input"], canon)
    return reduce(L, "max" if canon == "amax" else "min", x, a["dim"], bool(a["keepdim"]))


@handles("max", "min")
def h_maxmin(L, canon, a, m):
    x, d, other = a["input"], a["dim"], a["other"]
    if other is None and d is not None and not isinstance(d, int):
        other, d = d, None  # torch.max(x, other_tensor)
    if other is not None:
        return binary_op(L, "maximum" if canon == "max" else "minimum", x, other, m)
    xv = L.T(x, canon)
    if d is None:
        return reduce(L, canon, xv, None, False)
    keep = bool(a["keepdim"])
    arg = "argmax" if canon == "max" else "argmin"

    def values():
        return reduce(L, canon, xv, int(d), keep)

    def indices():
        attrs = {"dim": int(d)}
        if keep:
            attrs["keepdim"] = True
        return L.emit(arg, [xv], attrs, getattr(torch, arg)(xv.m, int(d), keep), arg)

    return LazyTuple([values, indices], ("values", "indices"))


@handles("argmax", "argmin")
def h_argmax(L, canon, a, m):
    x = L.T(a["input"], canon)
    d, keep = a["dim"], bool(a["keepdim"])
    if d is None:
        if keep:
            raise NotExpressible(f"{canon} without dim and with keepdim")
        flat = L.reshape(x, (x.m.numel(),))
        return L.emit(canon, [flat], {"dim": 0}, getattr(torch, canon)(flat.m, 0), canon)
    attrs = {"dim": int(d)}
    if keep:
        attrs["keepdim"] = True
    return L.emit(canon, [x], attrs, m, canon)


def logsumexp(L, x, dim, keepdim, m):
    dims = _dims_list(dim, x.rank)
    if L.has("logsumexp"):
        attrs = {"dim": dims}
        if keepdim:
            attrs["keepdim"] = True
        return L.emit("logsumexp", [x], attrs, m, "logsumexp")
    # max-shifted form: log(sum(exp(x - max))) + max
    mx = reduce(L, "max", x, dims, True, "lse_max")
    sh = L.binary("sub", x, mx, "lse_shift")
    ex = L.unary("exp", sh, "lse_exp")
    sm = reduce(L, "sum", ex, dims, True, "lse_sum")
    lg = L.unary("log", sm, "lse_log")
    out = L.binary("add", lg, mx, "logsumexp")
    return L.reshape(out, m.shape, "logsumexp")


@handles("logsumexp")
def h_logsumexp(L, canon, a, m):
    return logsumexp(L, L.T(a["input"], canon), a["dim"], bool(a["keepdim"]), m)


@handles("cumsum", "cumprod")
def h_scan(L, canon, a, m):
    if a["dtype"] is not None:
        raise NotExpressible(f"{canon} with dtype=")
    x = L.T(a["input"], canon)
    return L.emit(canon, [x], {"dim": int(a["dim"])}, x.m, canon)


@handles("softmax", "log_softmax")
def h_softmax(L, canon, a, m):
    if a["dim"] is None:
        raise NotExpressible(f"{canon} without dim (implicit dim)")
    if a["dtype"] is not None:
        raise NotExpressible(f"{canon} with dtype=")
    x = L.T(a["input"], canon)
    return L.emit(canon, [x], {"dim": int(a["dim"])}, x.m, canon)


def p_norm(L, x, p, dim, keepdim, hint="norm"):
    if p in ("fro", 2, 2.0, None):
        sq = L.binary("mul", x, x, f"{hint}_sq")
        s = reduce(L, "sum", sq, dim, keepdim, f"{hint}_sum")
        return L.unary("sqrt", s, hint)
    if p in (1, 1.0):
        return reduce(L, "sum", L.unary("abs", x, f"{hint}_abs"), dim, keepdim, hint)
    if p in (math.inf, "inf"):
        return reduce(L, "max", L.unary("abs", x, f"{hint}_abs"), dim, keepdim, hint)
    raise NotExpressible(f"norm with p={p!r}")


@handles("norm")
def h_norm(L, canon, a, m):
    if a["dtype"] is not None:
        raise NotExpressible("norm with dtype=")
    x = L.T(a["input"], canon)
    return L.reshape(p_norm(L, x, a["p"], a["dim"], bool(a["keepdim"])), m.shape)


@handles("vector_norm")
def h_vector_norm(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.reshape(p_norm(L, x, a["ord"], a["dim"], bool(a["keepdim"])), m.shape)


@handles("normalize")
def h_normalize(L, canon, a, m):
    x = L.T(a["input"], canon)
    n = p_norm(L, x, a["p"], int(a["dim"]), True, "normalize_norm")
    d = clamp(L, n, float(a["eps"]), None, "normalize_den")
    return L.binary("div", x, d, "normalize")


# ---- layout ----------------------------------------------------------------------------------


@handles("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as",
         "reshape_as")
def h_reshape(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.reshape(x, m.shape, canon)


@handles("permute")
def h_permute(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.permute(x, a["dims"], "permute")


@handles("transpose", "swapaxes", "swapdims")
def h_transpose(L, canon, a, m):
    x = L.T(a["input"], canon)
    return L.transpose(x, int(a["dim0"]), int(a["dim1"]))


@handles("contiguous", "clone", "detach", "identity", "cpu", "cuda")
def h_identity(L, canon, a, m):
    v = a["input"]
    if isinstance(v, (Val, ParamRef, Expanded)):
        return v if not isinstance(v, ParamRef) else L.T(v, canon)
    return v


@handles("to", "float", "type_as", "bool", "long", "int", "double", "half")
def h_cast(L, canon, a, m):
    v = a["input"]
    x = L.T(v, canon)
    if x.m.dtype == m.dtype:
        return x
    decl = L.ir.decl(x.name)
    if decl is not None and decl.role == "input" and decl.dist[0] in ("randint", "constant"):
        # A draw cast right away (torch.randint(0, 2, s).bool()): the input is drawn in that dtype.
        decl.m = torch.empty(decl.shape, dtype=m.dtype, device="meta")
        kb_dtype(m.dtype, "input")
        if m.dtype == torch.bool and not (decl.dist[0] == "randint" and decl.dist[1] >= 0
                                          and decl.dist[2] <= 2):
            raise NotExpressible("a bool input drawn outside {0, 1}")
        return Val(x.name, decl.m)
    raise NotExpressible(f"dtype conversion {x.m.dtype} -> {m.dtype} (kbench has no cast op)")


@handles("expand", "expand_as")
def h_expand(L, canon, a, m):
    x = L.T(a["input"], canon)
    if tuple(m.shape) == x.shape:
        return x
    return Expanded(x, m)


@handles("repeat")
def h_repeat(L, canon, a, m):
    x = L.T(a["input"], canon)
    reps = [int(r) for r in a["sizes"]]
    if len(reps) > x.rank:
        x = L.reshape(x, (1,) * (len(reps) - x.rank) + x.shape)
    for d, r in enumerate(reps):
        if r != 1:
            x = L.concat([x] * r, d, "repeat")
    return x


def _cat_fill_to_pad(L, items, dim, m):
    """cat of zeros_like/full_like pieces at the ends and tensors between: a constant pad."""
    rank = m.dim()
    d = _norm_dim(dim, rank)
    before = after = 0
    values = set()
    while items and isinstance(items[0], Fill):
        before += items[0].m.shape[d]
        values.add(items[0].value)
        items = items[1:]
    while items and isinstance(items[-1], Fill):
        after += items[-1].m.shape[d]
        values.add(items[-1].value)
        items = items[:-1]
    if not items or len(values) != 1:
        raise NotExpressible("cat of constant-filled tensors only")
    mid = [L.T(v, "cat") for v in items]
    x = L.concat(mid, d)
    pads = [0, 0] * (rank - 1 - d) + [before, after]
    attrs = {"pad": pads}
    value = values.pop()
    if value != 0:
        attrs["value"] = _num(value)
    return L.emit("pad", [x], attrs, m, "pad")


@handles("cat", "concat", "concatenate", "stack")
def h_cat(L, canon, a, m):
    items = list(a["tensors"])
    dim = int(a["dim"])
    if canon == "stack":
        vals = [L.T(v, "stack") for v in items]
        return L.emit("stack", vals, {"dim": dim}, m, "stack")
    ends = [i for i, v in enumerate(items) if isinstance(v, Fill)]
    inner = [v for v in items if not isinstance(v, Fill)]
    if ends and inner and len({items[i].value for i in ends}) == 1:
        k = 0
        while k < len(items) and isinstance(items[k], Fill):
            k += 1
        j = len(items)
        while j > k and isinstance(items[j - 1], Fill):
            j -= 1
        if not any(isinstance(v, Fill) for v in items[k:j]):
            return _cat_fill_to_pad(L, items, dim, m)
    vals = [L.T(v, "cat") for v in items]
    return L.concat(vals, dim)


def _split_sizes(size, split):
    if isinstance(split, int):
        return [min(split, size - s) for s in range(0, size, split)]
    return [int(s) for s in split]


@handles("chunk", "split", "unbind")
def h_split(L, canon, a, m):
    x = L.T(a["input"], canon)
    d = _norm_dim(int(a["dim"]), x.rank)
    size = x.shape[d]
    if canon == "chunk":
        n = int(a["chunks"])
        step = -(-size // n)
        sizes = _split_sizes(size, step)
    elif canon == "split":
        sizes = _split_sizes(size, a["split_size_or_sections"])
    else:
        sizes = [1] * size
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def maker(s, n):
        def make():
            piece = L.slice(x, d, s, s + n, hint=canon)
            if canon == "unbind":
                return L.reshape(piece, x.shape[:d] + x.shape[d + 1:], canon)
            return piece

        return make

    return LazyTuple([maker(s, n) for s, n in zip(starts, sizes)])


@handles("narrow")
def h_narrow(L, canon, a, m):
    x = L.T(a["input"], canon)
    d = _norm_dim(int(a["dim"]), x.rank)
    s = int(a["start"]) % x.shape[d] if int(a["start"]) < 0 else int(a["start"])
    return L.slice(x, d, s, s + int(a["length"]), hint="narrow")


@handles("select")
def h_select(L, canon, a, m):
    x = L.T(a["input"], canon)
    d = _norm_dim(int(a["dim"]), x.rank)
    i = int(a["index"]) % x.shape[d]
    return L.reshape(L.slice(x, d, i, i + 1, hint="select"), m.shape, "select")


@handles("flip")
def h_flip(L, canon, a, m):
    x = L.T(a["input"], canon)
    dims = a["dims"] if isinstance(a["dims"], list) else [a["dims"]]
    return L.emit("flip", [x], {"dims": [int(d) for d in dims]}, x.m, "flip")


@handles("roll")
def h_roll(L, canon, a, m):
    x = L.T(a["input"], canon)
    if a["dims"] is None:
        raise NotExpressible("roll without dims (over the flattened tensor)")
    return L.emit("roll", [x], {"shifts": _int_or_list(a["shifts"]), "dims": _int_or_list(a["dims"])},
                  x.m, "roll")


@handles("tril", "triu")
def h_tri(L, canon, a, m):
    x = L.T(a["input"], canon)
    attrs = {} if int(a["diagonal"]) == 0 else {"diagonal": int(a["diagonal"])}
    return L.emit(canon, [x], attrs, x.m, canon)


@handles("diag")
def h_diag(L, canon, a, m):
    x = L.T(a["input"], canon)
    if x.rank != 1 or int(a["diagonal"]) != 0:
        raise NotExpressible("diag of a matrix or off the main diagonal")
    return L.emit("diag", [x], {}, m, "diag")


@handles("gather")
def h_gather(L, canon, a, m):
    x, idx = L.T(a["input"], canon), L.T(a["index"], canon)
    return L.emit("gather", [x, idx], {"dim": int(a["dim"])}, m, "gather")


@handles("pad")
def h_pad(L, canon, a, m):
    if a["mode"] != "constant":
        raise NotExpressible(f"pad with mode={a['mode']!r}")
    x = L.T(a["input"], canon)
    attrs = {"pad": [int(p) for p in a["pad"]]}
    if a["value"] not in (None, 0, 0.0):
        attrs["value"] = _num(a["value"])
    return L.emit("pad", [x], attrs, m, "pad")


def _is_causal_mask(mask, L_, S_, fill_where_true=True):
    """True when a boolean mask (broadcastable to [..., L, S]) is true exactly above the
    diagonal: the positions masked_fill_causal fills."""
    if mask is None or mask.dim() < 2:
        return False
    want = torch.triu(torch.ones(L_, S_, dtype=torch.bool), diagonal=1)
    lead = mask.reshape(-1, mask.shape[-2], mask.shape[-1])
    if tuple(lead.shape[1:]) != (L_, S_):
        return False
    return all(bool((lead[i] == want).all()) for i in range(lead.shape[0]))


@handles("masked_fill")
def h_masked_fill(L, canon, a, m):
    x = L.T(a["input"], canon)
    mask, value = a["mask"], L.scalar_of(a["value"])
    if value is None:
        raise NotExpressible("masked_fill with a tensor value")
    if isinstance(mask, Const) and mask.real is not None and mask.real.dtype == torch.bool:
        if x.rank >= 2 and _is_causal_mask(mask.real, x.shape[-2], x.shape[-1]):
            if tuple(torch.broadcast_shapes(mask.real.shape, x.shape)) != x.shape:
                raise NotExpressible("masked_fill whose mask broadcasts the tensor")
            attrs = {} if value == -math.inf else {"value": _num(value)}
            return L.emit("masked_fill_causal", [x], attrs, x.m, "masked")
        raise NotExpressible("masked_fill with a constant mask that is not causal")
    raise NotExpressible("masked_fill with a mask computed from data")


@handles("where")
def h_where(L, canon, a, m):
    c = a["condition"]
    if isinstance(c, Const) and c.real is not None and m.dim() >= 2:
        # where(causal_keep, x, value) == masked_fill_causal(x, value) when the kept part is the
        # lower triangle.
        keep = c.real
        x, other = a["input"], a["other"]
        val = L.scalar_of(other)
        if val is not None and _is_causal_mask(~keep, m.shape[-2], m.shape[-1]):
            xv = L.T(x, canon)
            attrs = {} if val == -math.inf else {"value": _num(val)}
            return L.emit("masked_fill_causal", [xv], attrs, xv.m, "masked")
    cv = L.T(c, canon)
    x, y = L.T(a["input"], canon), L.T(a["other"], canon)
    return L.emit("where", [cv, x, y], {}, m, "where")


@handles("zeros_like", "ones_like", "full_like")
def h_fill_like(L, canon, a, m):
    if a.get("dtype") is not None and a["dtype"] != m.dtype:
        raise NotExpressible(f"{canon} with another dtype")
    value = {"zeros_like": 0.0, "ones_like": 1.0}.get(canon)
    if value is None:
        value = L.scalar_of(a["fill_value"])
    return Fill(value, m, a["input"])


@handles("getitem")
def h_getitem(L, canon, a, m):
    v, idx = a["input"], a["idx"]
    if isinstance(v, LazyTuple):
        return v.item(idx)
    if isinstance(v, (list, tuple)):
        return v[idx]
    x = L.T(v, "indexing")
    return index(L, x, idx, m)


def index(L, x, idx, m):
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if any(isinstance(i, (Val, ParamRef, Const, list, torch.Tensor)) for i in idx):
        raise NotExpressible("indexing with a tensor or list (advanced indexing)")
    expanded = []
    for i in idx:
        if i is Ellipsis:
            expanded.extend([slice(None)] * (x.rank - n_real))
        else:
            expanded.append(i)
    d = 0
    out = x
    for i in expanded:
        if i is None:
            continue
        if isinstance(i, bool):
            raise NotExpressible("indexing with a bool")
        if isinstance(i, int):
            size = out.shape[d]
            j = i % size
            out = L.slice(out, d, j, j + 1, hint="index")
        elif isinstance(i, slice):
            size = out.shape[d]
            start, stop, step = i.indices(size)
            if step < 1:
                raise NotExpressible("a slice with a negative step")
            if stop <= start:
                raise NotExpressible("an empty slice")
            stop = start + ((stop - start - 1) // step) * step + 1 if step > 1 else stop
            if step > 1 and stop > size:
                stop = size
            out = L.slice(out, d, start, stop, step)
        else:
            raise NotExpressible(f"index {i!r}")
        d += 1
    return L.reshape(out, m.shape, "index")


@handles("copy")
def h_copy(L, canon, a, m):
    dst = a["input"]
    shape = tuple(dst.m.shape) if hasattr(dst, "m") else tuple(m.shape)
    src = a["src"]
    if isinstance(src, (Val, ParamRef)) and tuple(L.T(src, "copy_").shape) == shape:
        return L.T(src, "copy_")
    if isinstance(src, (Val, ParamRef, Expanded)):
        v = L.T(src, "copy_")
        return L.materialize_expand(v, shape)
    raise NotExpressible("copy_ from a constant")


@handles("getattr")
def h_getattr(L, canon, a, m):
    v, name = a["input"], a["name"]
    if isinstance(v, LazyTuple):
        return v.field(name)
    x = L.T(v, f".{name}")
    if name == "T":
        return L.permute(x, list(reversed(range(x.rank))), "T")
    if name == "mT":
        return L.transpose(x, -2, -1, "mT")
    if name in ("data",):
        return x
    raise NotExpressible(f"attribute .{name} of a tensor")


@handles("pixel_shuffle")
def h_pixel_shuffle(L, canon, a, m):
    x = L.T(a["input"], canon)
    r = int(a["upscale_factor"])
    n, c, h, w = x.shape[-4:] if x.rank == 4 else (None,) * 4
    if x.rank != 4:
        raise NotExpressible("pixel_shuffle of a tensor that is not 4-D")
    oc = c // (r * r)
    t = L.reshape(x, (n, oc, r, r, h, w), "pixel_shuffle")
    t = L.permute(t, [0, 1, 4, 2, 5, 3], "pixel_shuffle")
    return L.reshape(t, m.shape, "pixel_shuffle")


@handles("unfold")
def h_unfold(L, canon, a, m):
    x = L.T(a["input"], canon)
    d = _norm_dim(int(a["dimension"]), x.rank)
    size, step = int(a["size"]), int(a["step"])
    if size != step:
        raise NotExpressible("unfold with overlapping windows (size != step)")
    n = x.shape[d] // size
    x = L.slice(x, d, 0, n * size, hint="unfold")
    shape = x.shape[:d] + (n, size) + x.shape[d + 1:]
    r = L.reshape(x, shape, "unfold")
    perm = list(range(d + 1)) + list(range(d + 2, len(shape))) + [d + 1]
    return L.permute(r, perm, "unfold")


# ---- neural-network functions ---------------------------------------------------------------


@handles("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
         "feature_alpha_dropout")
def h_dropout(L, canon, a, m):
    x = a["input"]
    return dropout(L, x, float(a["p"]), bool(a["training"]), canon)


def dropout(L, x, p, training, what="dropout"):
    if p == 0.0 or not training:
        if training is False and p > 0:
            L.ir.note(f"{what} in evaluation mode is the identity")
        return L.T(x, what)
    raise NotExpressible(f"training-mode {what} with p={p:g} (a random mask on every call; kbench "
                         f"problems are deterministic)")


def conv(L, op, x, w, b, stride, padding, dilation, groups, output_padding=None, m=None):
    nd = int(op[-2])
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            k = w.shape[2:]
            dl = _as_list(dilation, nd)
            total = [dl[i] * (k[i] - 1) for i in range(nd)]
            if any(t % 2 for t in total) or any(s != 1 for s in _as_list(stride, nd)):
                raise NotExpressible("padding='same' with an asymmetric padding")
            padding = [t // 2 for t in total]
        else:
            raise NotExpressible(f"padding={padding!r}")
    attrs = {}
    for k, v, d in (("stride", stride, 1), ("padding", padding, 0),
                    ("output_padding", output_padding, 0), ("dilation", dilation, 1),
                    ("groups", groups, 1)):
        if v is None:
            continue
        v = _int_or_list(v) if k != "groups" else int(v)
        if v != d and v != [d] * nd:
            attrs[k] = v
    ins = [x, w] + ([b] if b is not None else [])
    return L.emit(op, ins, attrs, m, op)


@handles("conv1d", "conv2d", "conv3d")
def h_conv(L, canon, a, m):
    x, w = L.T(a["input"], canon), L.T(a["weight"], canon)
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    return conv(L, canon, x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"], None, m)


@handles("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def h_conv_transpose(L, canon, a, m):
    x, w = L.T(a["input"], canon), L.T(a["weight"], canon)
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    return conv(L, canon, x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"],
                 a["output_padding"], m)


def pool(L, op, x, m, kernel_size, stride, padding, dilation=1, ceil_mode=False,
         count_include_pad=True, divisor_override=None):
    k = _int_or_list(kernel_size)
    attrs = {"kernel_size": k}
    if stride is not None and stride != [] and _int_or_list(stride) != k:
        attrs["stride"] = _int_or_list(stride)
    if _int_or_list(padding) != 0:
        attrs["padding"] = _int_or_list(padding)
    if op.startswith("max") and _int_or_list(dilation) != 1:
        attrs["dilation"] = _int_or_list(dilation)
    if ceil_mode:
        attrs["ceil_mode"] = True
    if op.startswith("avg") and not count_include_pad:
        attrs["count_include_pad"] = False
    if divisor_override is not None:
        attrs["divisor_override"] = int(divisor_override)
    return L.emit(op, [x], attrs, m, op)


@handles("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
         "max_pool2d_with_indices", "max_pool3d_with_indices")
def h_max_pool(L, canon, a, m):
    if a["return_indices"] or canon.endswith("indices"):
        raise NotExpressible("max pooling with return_indices")
    x = L.T(a["input"], canon)
    return pool(L, canon[:10], x, m, a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                a["ceil_mode"])


@handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def h_avg_pool(L, canon, a, m):
    x = L.T(a["input"], canon)
    return pool(L, canon, x, m, a["kernel_size"], a["stride"], a["padding"], 1, a["ceil_mode"],
                a["count_include_pad"], a.get("divisor_override"))


def adaptive_pool(L, kind, nd, x, output_size, m):
    outs = list(m.shape[-nd:])
    if all(o == 1 for o in outs):
        # To one element per channel: a mean (max) over the pooled dims.
        dims = list(range(x.rank - nd, x.rank))
        return reduce(L, "mean" if kind == "avg" else "max", x, dims, True,
                      f"adaptive_{kind}_pool")
    op = f"adaptive_{kind}_pool{nd}d"
    size = _int_or_list(outs)
    return L.emit(op, [x], {"output_size": size}, m, op)


@handles("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
         "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
         "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
         "adaptive_max_pool3d_with_indices")
def h_adaptive(L, canon, a, m):
    if a["return_indices"] or canon.endswith("indices"):
        raise NotExpressible("adaptive max pooling with return_indices")
    x = L.T(a["input"], canon)
    kind = "avg" if "avg" in canon else "max"
    return adaptive_pool(L, kind, int(canon[-2]), x, a["output_size"], m)


def batch_norm(L, x, weight, bias, running_mean, running_var, training, eps, m, what):
    attrs = {} if eps == 1e-5 else {"eps": float(eps)}
    wb = [v for v in (weight, bias) if v is not None]
    if weight is None and bias is not None:
        raise NotExpressible(f"{what}: a bias without a weight")
    if training or running_mean is None:
        return L.emit("batch_norm_train", [x] + wb, attrs, m, "batch_norm")
    rm, rv = L.T(running_mean, what), L.T(running_var, what)
    return L.emit("batch_norm", [x, rm, rv] + wb, attrs, m, "batch_norm")


@handles("batch_norm")
def h_batch_norm(L, canon, a, m):
    x = L.T(a["input"], canon)
    w = L.T(a["weight"], canon) if a["weight"] is not None else None
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    return batch_norm(L, x, w, b, a["running_mean"], a["running_var"], bool(a["training"]),
                      a["eps"], m, canon)


@handles("layer_norm")
def h_layer_norm(L, canon, a, m):
    x = L.T(a["input"], canon)
    w = L.T(a["weight"], canon) if a["weight"] is not None else None
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    return layer_norm(L, x, a["normalized_shape"], w, b, a["eps"], m)


def layer_norm(L, x, normalized_shape, w, b, eps, m):
    if w is None and b is not None:
        raise NotExpressible("layer_norm with a bias and no weight")
    ns = [int(s) for s in (normalized_shape if isinstance(normalized_shape, (list, tuple,
                                                                            torch.Size))
                           else [normalized_shape])]
    attrs = {"normalized_shape": ns}
    if eps != 1e-5:
        attrs["eps"] = float(eps)
    return L.emit("layer_norm", [x] + [v for v in (w, b) if v is not None], attrs, m,
                  "layer_norm")


@handles("group_norm")
def h_group_norm(L, canon, a, m):
    x = L.T(a["input"], canon)
    w = L.T(a["weight"], canon) if a["weight"] is not None else None
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    return group_norm(L, x, int(a["num_groups"]), w, b, a["eps"], m)


def group_norm(L, x, groups, w, b, eps, m):
    if w is None and b is not None:
        raise NotExpressible("group_norm with a bias and no weight")
    attrs = {"num_groups": groups}
    if eps != 1e-5:
        attrs["eps"] = float(eps)
    return L.emit("group_norm", [x] + [v for v in (w, b) if v is not None], attrs, m, "group_norm")


@handles("instance_norm")
def h_instance_norm(L, canon, a, m):
    if not a["use_input_stats"]:
        raise NotExpressible("instance_norm with running statistics")
    x = L.T(a["input"], canon)
    w = L.T(a["weight"], canon) if a["weight"] is not None else None
    b = L.T(a["bias"], canon) if a["bias"] is not None else None
    attrs = {} if a["eps"] == 1e-5 else {"eps": float(a["eps"])}
    return L.emit("instance_norm", [x] + [v for v in (w, b) if v is not None], attrs, m,
                  "instance_norm")


@handles("rms_norm")
def h_rms_norm(L, canon, a, m):
    x = L.T(a["input"], canon)
    ns = a["normalized_shape"]
    ns = list(ns) if isinstance(ns, (list, tuple, torch.Size)) else [ns]
    w = L.T(a["weight"], canon) if a["weight"] is not None else None
    return rms_norm(L, x, len(ns), w, a["eps"], m)


def rms_norm(L, x, nd, w, eps, m):
    if eps is None:
        eps = torch.finfo(x.m.dtype).eps
        L.ir.note("rms_norm's default eps is the dtype's machine epsilon")
    attrs = {"dims": list(range(x.rank - nd, x.rank))}
    if eps != 1e-5:
        attrs["eps"] = float(eps)
    return L.emit("rms_norm", [x] + ([w] if w is not None else []), attrs, m, "rms_norm")


def _mean_reduction(reduction, what):
    if reduction != "mean":
        raise NotExpressible(f"{what} with reduction={reduction!r} (kbench's op takes the mean)")


@handles("mse_loss", "l1_loss")
def h_loss2(L, canon, a, m):
    _mean_reduction(a["reduction"], canon)
    x, t = L.T(a["input"], canon), L.T(a["target"], canon)
    if canon == "l1_loss":
        d = L.binary("sub", x, t, "l1_diff")
        return reduce(L, "mean", L.unary("abs", d, "l1_abs"), None, False, "l1_loss")
    return L.emit("mse_loss", [x, t], {}, m, "mse_loss")


@handles("cross_entropy")
def h_cross_entropy(L, canon, a, m):
    _mean_reduction(a["reduction"], canon)
    if a["weight"] is not None or a["label_smoothing"] != 0.0 or a["ignore_index"] != -100:
        raise NotExpressible("cross_entropy with weight, label_smoothing or ignore_index")
    x, t = L.T(a["input"], canon), L.T(a["target"], canon)
    if x.rank != 2 or t.m.dtype != torch.int64:
        raise NotExpressible("cross_entropy of other than [N, C] logits and i64 targets")
    return L.emit("cross_entropy", [x, t], {}, m, "cross_entropy")


@handles("smooth_l1_loss")
def h_smooth_l1(L, canon, a, m):
    _mean_reduction(a["reduction"], canon)
    x, t = L.T(a["input"], canon), L.T(a["target"], canon)
    return L.emit("smooth_l1_loss", [x, t], _nondefault(beta=(float(a["beta"]), 1.0)), m,
                  "smooth_l1_loss")


@handles("huber_loss")
def h_huber(L, canon, a, m):
    _mean_reduction(a["reduction"], canon)
    x, t = L.T(a["input"], canon), L.T(a["target"], canon)
    return L.emit("huber_loss", [x, t], _nondefault(delta=(float(a["delta"]), 1.0)), m,
                  "huber_loss")


@handles("kl_div")
def h_kl_div(L, canon, a, m):
    x, t = L.T(a["input"], canon), L.T(a["target"], canon)
    attrs = {}
    if a["reduction"] != "mean":
        attrs["reduction"] = a["reduction"]
    if a["log_target"]:
        attrs["log_target"] = True
    return L.emit("kl_div", [x, t], attrs, m, "kl_div")


def triplet(L, anchor, pos, neg, margin, p, eps, swap, reduction, m):
    _mean_reduction(reduction, "triplet_margin_loss")
    attrs = _nondefault(margin=(float(margin), 1.0), p=(p, 2), eps=(float(eps), 1e-6),
                        swap=(bool(swap), False))
    return L.emit("triplet_margin_loss", [anchor, pos, neg], attrs, m, "triplet_margin_loss")


@handles("triplet_margin_loss")
def h_triplet(L, canon, a, m):
    vals = [L.T(a[k], canon) for k in ("anchor", "positive", "negative")]
    return triplet(L, *vals, a["margin"], a["p"], a["eps"], a["swap"], a["reduction"], m)


@handles("cosine_similarity")
def h_cosine(L, canon, a, m):
    x, y = L.T(a["x1"], canon), L.T(a["x2"], canon)
    attrs = _nondefault(dim=(int(a["dim"]), 1), eps=(float(a["eps"]), 1e-8))
    return L.emit("cosine_similarity", [x, y], attrs, m, "cosine_similarity")


def sdpa(L, q, k, v, causal, scale, m):
    attrs = {}
    if causal:
        attrs["causal"] = True
    if scale is not None:
        attrs["scale"] = float(scale)
    return L.emit("scaled_dot_product_attention", [q, k, v], attrs, m, "attention")


@handles("scaled_dot_product_attention")
def h_sdpa(L, canon, a, m):
    if a["dropout_p"] != 0.0:
        raise NotExpressible("scaled_dot_product_attention with dropout")
    if a["enable_gqa"]:
        raise NotExpressible("scaled_dot_product_attention with enable_gqa")
    q, k, v = (L.T(a[n], canon) for n in ("query", "key", "value"))
    causal = bool(a["is_causal"])
    mask = a["attn_mask"]
    if mask is not None:
        if isinstance(mask, Const) and mask.real is not None and mask.real.dtype == torch.bool \
                and _is_causal_mask(~mask.real, q.shape[-2], k.shape[-2]) and not causal:
            causal = True
        else:
            raise NotExpressible("scaled_dot_product_attention with an attention mask")
    return sdpa(L, q, k, v, causal, a["scale"], m)


# ---- modules ---------------------------------------------------------------------------------


def _module_args(args, kwargs, names):
    out = list(args)
    for n in names[len(out):]:
        out.append(kwargs.get(n))
    return out


@module_handler("Identity")
def m_identity(L, mod, path, args, kwargs, m):
    return L.T(args[0], "Identity")


@module_handler("ReLU", "ReLU6", "Sigmoid", "Tanh", "SELU", "Hardsigmoid", "Hardswish", "Mish",
                "Softsign", "SiLU", "LogSigmoid")
def m_unary(L, mod, path, args, kwargs, m):
    op = {"ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "SELU": "selu",
          "Hardsigmoid": "hardsigmoid", "Hardswish": "hardswish", "Mish": "mish",
          "Softsign": "softsign", "SiLU": "swish", "LogSigmoid": "logsigmoid"}[type(mod).__name__]
    return lower_unary(L, op, L.T(args[0], type(mod).__name__))


@module_handler("GELU")
def m_gelu(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "GELU")
    attrs = {} if mod.approximate == "none" else {"approximate": mod.approximate}
    return L.emit("gelu", [x], attrs, x.m, "gelu")


@module_handler("LeakyReLU")
def m_leaky_relu(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "LeakyReLU")
    return L.emit("leaky_relu", [x], _nondefault(negative_slope=(mod.negative_slope, 0.01)), x.m,
                  "leaky_relu")


@module_handler("ELU")
def m_elu(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "ELU")
    return L.emit("elu", [x], _nondefault(alpha=(float(mod.alpha), 1.0)), x.m, "elu")


@module_handler("Hardtanh")
def m_hardtanh(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "Hardtanh")
    return L.emit("hardtanh", [x], _nondefault(min_val=(float(mod.min_val), -1.0),
                                               max_val=(float(mod.max_val), 1.0)), x.m,
                  "hardtanh")


@module_handler("Softplus")
def m_softplus(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "Softplus")
    return L.emit("softplus", [x], _nondefault(beta=(mod.beta, 1), threshold=(mod.threshold, 20)),
                  x.m, "softplus")


@module_handler("Softmax", "LogSoftmax")
def m_softmax(L, mod, path, args, kwargs, m):
    if mod.dim is None:
        raise NotExpressible(f"{type(mod).__name__} without dim (implicit dim)")
    x = L.T(args[0], type(mod).__name__)
    op = "softmax" if type(mod).__name__ == "Softmax" else "log_softmax"
    return L.emit(op, [x], {"dim": int(mod.dim)}, x.m, op)


@module_handler("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")
def m_dropout(L, mod, path, args, kwargs, m):
    return dropout(L, args[0], float(mod.p), mod.training, type(mod).__name__)


@module_handler("Flatten", "Unflatten")
def m_flatten(L, mod, path, args, kwargs, m):
    return L.reshape(L.T(args[0], type(mod).__name__), m.shape, "flatten")


@module_handler("PixelShuffle")
def m_pixel_shuffle(L, mod, path, args, kwargs, m):
    return h_pixel_shuffle(L, "pixel_shuffle", {"input": args[0],
                                                "upscale_factor": mod.upscale_factor}, m)


@module_handler("Linear")
def m_linear(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "Linear")
    w = L.module_param(path, "weight")
    b = L.module_param(path, "bias")
    return L.emit("linear", [x, w] + ([b] if b is not None else []), {}, m, path or "linear")


@module_handler("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                "ConvTranspose3d")
def m_conv(L, mod, path, args, kwargs, m):
    name = type(mod).__name__
    if mod.padding_mode != "zeros":
        raise NotExpressible(f"{name} with padding_mode={mod.padding_mode!r}")
    transposed = name.startswith("ConvTranspose")
    if transposed and (len(args) > 1 or kwargs.get("output_size") is not None):
        raise NotExpressible(f"{name} called with output_size")
    x = L.T(args[0], name)
    w = L.module_param(path, "weight")
    b = L.module_param(path, "bias")
    nd = name[-2]
    op = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    return conv(L, op, x, w, b, mod.stride, mod.padding, mod.dilation, mod.groups,
                mod.output_padding if transposed else None, m)


@module_handler("MaxPool1d", "MaxPool2d", "MaxPool3d")
def m_max_pool(L, mod, path, args, kwargs, m):
    if mod.return_indices:
        raise NotExpressible("MaxPool with return_indices")
    x = L.T(args[0], type(mod).__name__)
    op = f"max_pool{type(mod).__name__[-2]}d"
    return pool(L, op, x, m, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                mod.ceil_mode)


@module_handler("AvgPool1d", "AvgPool2d", "AvgPool3d")
def m_avg_pool(L, mod, path, args, kwargs, m):
    x = L.T(args[0], type(mod).__name__)
    op = f"avg_pool{type(mod).__name__[-2]}d"
    return pool(L, op, x, m, mod.kernel_size, mod.stride, mod.padding, 1, mod.ceil_mode,
                mod.count_include_pad, getattr(mod, "divisor_override", None))


@module_handler("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
                "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d")
def m_adaptive(L, mod, path, args, kwargs, m):
    name = type(mod).__name__
    if getattr(mod, "return_indices", False):
        raise NotExpressible(f"{name} with return_indices")
    x = L.T(args[0], name)
    return adaptive_pool(L, "avg" if "Avg" in name else "max", int(name[-2]), x, mod.output_size,
                         m)


@module_handler("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
def m_batch_norm(L, mod, path, args, kwargs, m):
    x = L.T(args[0], type(mod).__name__)
    w = L.module_param(path, "weight") if mod.affine else None
    b = L.module_param(path, "bias") if mod.affine else None
    # PyTorch uses batch statistics in training mode, and also in evaluation mode without running
    # statistics.
    use_batch = mod.training or not mod.track_running_stats
    rm = rv = None
    if not use_batch:
        rm = ParamRef(f"{path}.running_mean", mod.running_mean)
        rv = ParamRef(f"{path}.running_var", mod.running_var)
    return batch_norm(L, x, w, b, rm, rv, use_batch, mod.eps, m, type(mod).__name__)


@module_handler("LayerNorm")
def m_layer_norm(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "LayerNorm")
    w = L.module_param(path, "weight") if mod.elementwise_affine else None
    b = L.module_param(path, "bias") if mod.elementwise_affine and getattr(mod, "bias", None) \
        is not None else None
    return layer_norm(L, x, mod.normalized_shape, w, b, mod.eps, m)


@module_handler("GroupNorm")
def m_group_norm(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "GroupNorm")
    w = L.module_param(path, "weight") if mod.affine else None
    b = L.module_param(path, "bias") if mod.affine else None
    return group_norm(L, x, mod.num_groups, w, b, mod.eps, m)


@module_handler("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")
def m_instance_norm(L, mod, path, args, kwargs, m):
    name = type(mod).__name__
    if mod.track_running_stats and not mod.training:
        raise NotExpressible(f"{name} in evaluation mode with running statistics")
    x = L.T(args[0], name)
    if x.rank == int(name[-2]) + 1:
        raise NotExpressible(f"{name} on an unbatched input")
    w = L.module_param(path, "weight") if mod.affine else None
    b = L.module_param(path, "bias") if mod.affine else None
    attrs = {} if mod.eps == 1e-5 else {"eps": float(mod.eps)}
    return L.emit("instance_norm", [x] + [v for v in (w, b) if v is not None], attrs, m,
                  "instance_norm")


@module_handler("RMSNorm")
def m_rms_norm(L, mod, path, args, kwargs, m):
    x = L.T(args[0], "RMSNorm")
    w = L.module_param(path, "weight") if mod.elementwise_affine else None
    return rms_norm(L, x, len(mod.normalized_shape), w, mod.eps, m)


@module_handler("MSELoss", "L1Loss", "CrossEntropyLoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss")
def m_loss(L, mod, path, args, kwargs, m):
    name = type(mod).__name__
    canon = {"MSELoss": "mse_loss", "L1Loss": "l1_loss", "CrossEntropyLoss": "cross_entropy",
             "SmoothL1Loss": "smooth_l1_loss", "HuberLoss": "huber_loss",
             "KLDivLoss": "kl_div"}[name]
    a = {"input": args[0], "target": args[1] if len(args) > 1 else kwargs.get("target"),
         "reduction": mod.reduction}
    if canon == "cross_entropy":
        a.update(weight=mod.weight, label_smoothing=mod.label_smoothing,
                 ignore_index=mod.ignore_index)
    if canon == "smooth_l1_loss":
        a["beta"] = mod.beta
    if canon == "huber_loss":
        a["delta"] = mod.delta
    if canon == "kl_div":
        a["log_target"] = mod.log_target
    return HANDLERS[canon](L, canon, a, m)


@module_handler("TripletMarginLoss")
def m_triplet(L, mod, path, args, kwargs, m):
    vals = [L.T(v, "TripletMarginLoss") for v in _module_args(args, kwargs,
                                                                ["anchor", "positive", "negative"])]
    return triplet(L, *vals, mod.margin, mod.p, mod.eps, mod.swap, mod.reduction, m)


@module_handler("CosineSimilarity")
def m_cosine(L, mod, path, args, kwargs, m):
    x, y = (L.T(v, "CosineSimilarity") for v in _module_args(args, kwargs, ["x1", "x2"]))
    attrs = _nondefault(dim=(int(mod.dim), 1), eps=(float(mod.eps), 1e-8))
    return L.emit("cosine_similarity", [x, y], attrs, m, "cosine_similarity")


def _recurrent(L, mod, path, args, kwargs, m, kind):
    name = type(mod).__name__
    if getattr(mod, "proj_size", 0):
        raise NotExpressible(f"{name} with proj_size")
    if mod.dropout and mod.training and mod.num_layers > 1:
        raise NotExpressible(f"training-mode {name} with dropout={mod.dropout:g} between layers "
                             f"(a random mask on every call)")
    x = L.T(args[0], name)
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    if hx is None:
        raise NotExpressible(f"{name} without an initial state (zeros; kbench's {kind} takes it "
                             f"as an input)")
    if x.rank != 3:
        raise NotExpressible(f"{name} on an unbatched input")
    if kind == "lstm":
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise NotExpressible("LSTM state that is not (h0, c0)")
        states = [L.T(hx[0], name), L.T(hx[1], name)]
    else:
        states = [L.T(hx, name)]
    weights = []
    for layer in range(mod.num_layers):
        for suffix in ("", "_reverse") if mod.bidirectional else ("",):
            for w in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if mod.bias else ()):
                weights.append(L.module_param(path, f"{w}_l{layer}{suffix}"))
    attrs = {"hidden_size": mod.hidden_size}
    if mod.num_layers != 1:
        attrs["num_layers"] = mod.num_layers
    if mod.bidirectional:
        attrs["bidirectional"] = True
    if mod.batch_first:
        attrs["batch_first"] = True
    if not mod.bias:
        attrs["bias"] = False
    metas = m[0], (m[1] if kind == "gru" else m[1][0]), (m[1][1] if kind == "lstm" else None)

    def out(which, meta):
        def make():
            a = dict(attrs)
            if which != "out":
                a["output"] = which
            return L.emit(kind, [x] + states + weights, a, meta, f"{path}_{which}")

        return make

    if kind == "lstm":
        return LazyTuple([out("out", metas[0]),
                          lambda: LazyTuple([out("h_n", metas[1]), out("c_n", metas[2])])])
    return LazyTuple([out("out", metas[0]), out("h_n", metas[1])])


@module_handler("LSTM")
def m_lstm(L, mod, path, args, kwargs, m):
    return _recurrent(L, mod, path, args, kwargs, m, "lstm")


@module_handler("GRU")
def m_gru(L, mod, path, args, kwargs, m):
    return _recurrent(L, mod, path, args, kwargs, m, "gru")


def _mha_causal(mask, is_causal, Lq, Sk):
    """True for no mask (False) or a causal one (True); raises for other masks."""
    if mask is None:
        return bool(is_causal)
    if isinstance(mask, Const) and mask.real is not None:
        r = mask.real
        block = (r == -math.inf) if r.dtype != torch.bool else r
        if _is_causal_mask(block, Lq, Sk) and (r.dtype == torch.bool or bool(
                (r[~block] == 0).all())):
            return True
    raise NotExpressible("MultiheadAttention with an attention mask that is not causal")


def multihead_attention(L, mod, path, q_in, k_in, v_in, attn_mask, is_causal):
    name = "MultiheadAttention"
    if not mod._qkv_same_embed_dim:
        raise NotExpressible(f"{name} with kdim/vdim different from embed_dim")
    if mod.bias_k is not None or mod.add_zero_attn:
        raise NotExpressible(f"{name} with add_bias_kv or add_zero_attn")
    if mod.dropout and mod.training:
        raise NotExpressible(f"training-mode {name} with dropout={mod.dropout:g}")
    E, H = mod.embed_dim, mod.num_heads
    hd = E // H
    q_in, k_in, v_in = (L.T(v, name) for v in (q_in, k_in, v_in))
    if q_in.rank != 3:
        raise NotExpressible(f"{name} on an unbatched input")
    bf = mod.batch_first
    w = L.module_param(path, "in_proj_weight")
    b = L.module_param(path, "in_proj_bias") if mod.in_proj_bias is not None else None
    if q_in.name == k_in.name == v_in.name:
        qkv_m = torch.empty(q_in.shape[:-1] + (3 * E,), device="meta")
        qkv = L.emit("linear", [q_in, w] + ([b] if b is not None else []), {}, qkv_m,
                     f"{path}_qkv")
        q, k, v = (L.slice(qkv, 2, i * E, (i + 1) * E, hint=f"{path}_{n}")
                   for i, n in enumerate("qkv"))
    else:
        outs = []
        for i, (n, src) in enumerate(zip("qkv", (q_in, k_in, v_in))):
            wi = L.slice(w, 0, i * E, (i + 1) * E, hint=f"{path}_w{n}")
            bi = L.slice(b, 0, i * E, (i + 1) * E, hint=f"{path}_b{n}") if b is not None else None
            outs.append(L.emit("linear", [src, wi] + ([bi] if bi is not None else []), {},
                               torch.empty(src.shape[:-1] + (E,), device="meta"), f"{path}_{n}"))
        q, k, v = outs

    def heads(t, n):
        # [L, N, E] (or [N, L, E] batch first) -> [N, H, L, hd]
        a, bdim = t.shape[0], t.shape[1]
        r = L.reshape(t, (a, bdim, H, hd), f"{path}_{n}h")
        return L.permute(r, [0, 2, 1, 3] if bf else [1, 2, 0, 3], f"{path}_{n}h")

    qh, kh, vh = heads(q, "q"), heads(k, "k"), heads(v, "v")
    Lq, Sk = qh.shape[2], kh.shape[2]
    causal = _mha_causal(attn_mask, is_causal, Lq, Sk)
    att = sdpa(L, qh, kh, vh, causal, None, torch.empty(qh.shape[:3] + (vh.shape[3],),
                                                        device="meta"))
    back = L.permute(att, [0, 2, 1, 3] if bf else [2, 0, 1, 3], f"{path}_merge")
    merged = L.reshape(back, back.shape[:2] + (E,), f"{path}_merge")
    wo = L.module_param(f"{path}.out_proj" if path else "out_proj", "weight")
    bo = L.module_param(f"{path}.out_proj" if path else "out_proj", "bias")
    return L.emit("linear", [merged, wo] + ([bo] if bo is not None else []), {}, merged.m,
                  f"{path}_out")


@module_handler("MultiheadAttention")
def m_mha(L, mod, path, args, kwargs, m):
    names = ["query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
             "average_attn_weights", "is_causal"]
    a = dict(zip(names, args))
    a.update(kwargs)
    if a.get("key_padding_mask") is not None:
        raise NotExpressible("MultiheadAttention with key_padding_mask")
    out = lambda: multihead_attention(L, mod, path, a["query"], a["key"], a["value"],
                                      a.get("attn_mask"), a.get("is_causal", False))

    def weights():
        raise NotExpressible("MultiheadAttention's attention weights (need_weights output)")

    return LazyTuple([out, weights])


def _activation(L, act, x, what):
    if isinstance(act, str):
        act = {"relu": torch.nn.functional.relu, "gelu": torch.nn.functional.gelu}.get(act, act)
    if act is torch.nn.functional.relu or isinstance(act, nn.ReLU):
        return L.unary("relu", x)
    if act is torch.nn.functional.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return L.unary("gelu", x)
    raise NotExpressible(f"{what} with activation {act!r}")


def encoder_layer(L, mod, path, x, mask, is_causal):
    name = "TransformerEncoderLayer"
    for d in ("dropout", "dropout1", "dropout2"):
        p = getattr(mod, d).p
        if p and mod.training:
            raise NotExpressible(f"training-mode {name} with dropout={p:g}")
    sub = lambda n: f"{path}.{n}" if path else n

    def norm(n, v):
        ln = getattr(mod, n)
        w = L.module_param(sub(n), "weight") if ln.elementwise_affine else None
        b = L.module_param(sub(n), "bias") if ln.elementwise_affine and getattr(ln, "bias", None) \
            is not None else None
        return layer_norm(L, v, ln.normalized_shape, w, b, ln.eps, v.m)

    def sa(v):
        return multihead_attention(L, mod.self_attn, sub("self_attn"), v, v, v, mask, is_causal)

    def lin(n, v):
        lm = getattr(mod, n)
        w = L.module_param(sub(n), "weight")
        b = L.module_param(sub(n), "bias")
        return L.emit("linear", [v, w] + ([b] if b is not None else []), {},
                      torch.empty(v.shape[:-1] + (lm.out_features,), device="meta"), sub(n))

    def ff(v):
        return lin("linear2", _activation(L, mod.activation, lin("linear1", v), name))

    if mod.norm_first:
        x = L.binary("add", x, sa(norm("norm1", x)), f"{path}_res1")
        return L.binary("add", x, ff(norm("norm2", x)), f"{path}_res2")
    x = norm("norm1", L.binary("add", x, sa(x), f"{path}_res1"))
    return norm("norm2", L.binary("add", x, ff(x), f"{path}_res2"))


@module_handler("TransformerEncoderLayer")
def m_encoder_layer(L, mod, path, args, kwargs, m):
    a = dict(zip(["src", "src_mask", "src_key_padding_mask", "is_causal"], args))
    a.update(kwargs)
    if a.get("src_key_padding_mask") is not None:
        raise NotExpressible("TransformerEncoderLayer with src_key_padding_mask")
    x = L.T(a["src"], "TransformerEncoderLayer")
    return encoder_layer(L, mod, path, x, a.get("src_mask"), a.get("is_causal", False))


@module_handler("TransformerEncoder")
def m_encoder(L, mod, path, args, kwargs, m):
    a = dict(zip(["src", "mask", "src_key_padding_mask", "is_causal"], args))
    a.update(kwargs)
    if a.get("src_key_padding_mask") is not None:
        raise NotExpressible("TransformerEncoder with src_key_padding_mask")
    x = L.T(a["src"], "TransformerEncoder")
    for i, layer in enumerate(mod.layers):
        lp = f"{path}.layers.{i}" if path else f"layers.{i}"
        x = encoder_layer(L, layer, lp, x, a.get("mask"), a.get("is_causal") or False)
    if mod.norm is not None:
        ln = mod.norm
        np_ = f"{path}.norm" if path else "norm"
        w = L.module_param(np_, "weight") if ln.elementwise_affine else None
        b = L.module_param(np_, "bias") if ln.elementwise_affine else None
        x = layer_norm(L, x, ln.normalized_shape, w, b, ln.eps, x.m)
    return x
