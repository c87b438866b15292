"""Tracing of a KernelBench-format file: get_inputs() and Model.forward as torch.fx graphs whose
nodes carry concrete shapes.

torch.fx's symbolic trace records nn.Module calls (call_module), functions (call_function) and
tensor methods (call_method) without running them. This tracer also propagates a value for every
node on the 'meta' device (shapes and dtypes, no memory), so that `x.size()`, `x.shape`, tuple
unpacking and `x.device` give concrete answers during the trace, as they do in eager PyTorch. The
graph therefore holds the file's shapes, and nothing of the size of the problem is allocated.

Constants (buffers and tensors the model creates without input data) keep their real values
(`node.meta['const']`) while they stay small, so that lowering can recognise masks and scalars.
"""
import copy
import inspect
import math
import operator

import torch
import torch.fx

from .errors import NotExpressible

# Factories as they are before get_inputs() patches them, and nn.Module's own __call__ and
# __getattr__ (tracing replaces them; shape propagation runs modules unpatched).
_EMPTY = torch.empty
_MODULE_CALL = torch.nn.Module.__call__
_MODULE_GETATTR = torch.nn.Module.__getattr__


class _UnpatchedModules:
    def __enter__(self):
        self.saved = (torch.nn.Module.__call__, torch.nn.Module.__getattr__)
        torch.nn.Module.__call__ = _MODULE_CALL
        torch.nn.Module.__getattr__ = _MODULE_GETATTR

    def __exit__(self, *exc):
        torch.nn.Module.__call__, torch.nn.Module.__getattr__ = self.saved
        return False

# Real values are computed for constant subexpressions up to this many elements.
CONST_FOLD_MAX_ELEMS = 1 << 22
# Ops without a meta kernel (in some PyTorch versions) run on real zeros up to this many elements.
REAL_FALLBACK_MAX_ELEMS = 1 << 24


def _is_tensor(v):
    return isinstance(v, torch.Tensor)


def _to_meta(v):
    """Tensors to the meta device (Parameters stay Parameters), other values as they are."""
    if isinstance(v, torch.nn.Parameter):
        return torch.nn.Parameter(v.detach().to("meta"), requires_grad=False)
    if _is_tensor(v):
        return v.detach().to("meta")
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
        return type(v)(_to_meta(x) for x in v)
    if isinstance(v, dict):
        return {k: _to_meta(x) for k, x in v.items()}
    return v


def _meta_module(mod):
    """A copy of `mod` whose parameters and buffers live on the meta device (no weight copies)."""
    memo = {}
    for t in list(mod.parameters(recurse=True)) + list(mod.buffers(recurse=True)):
        memo[id(t)] = _to_meta(t)
    for sub in mod.modules():
        for v in sub.__dict__.values():
            if _is_tensor(v) and id(v) not in memo:
                memo[id(v)] = _to_meta(v)
    return copy.deepcopy(mod, memo)


def _numel(v):
    return math.prod(v.shape) if _is_tensor(v) else 0


def _max_pool_out(size, k, s, p, d, ceil_mode):
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _shape_rule(fn_name, args, kwargs):
    """Output meta value of ops that lack a meta kernel in some PyTorch versions, else None."""
    if fn_name in ("min", "max", "minimum", "maximum") and len(args) == 2 and all(
        _is_tensor(a) for a in args
    ):
        shape = torch.broadcast_shapes(args[0].shape, args[1].shape)
        return _EMPTY(shape, dtype=torch.result_type(args[0], args[1]), device="meta")
    if fn_name in ("max_pool3d", "MaxPool3d") and args and _is_tensor(args[0]):
        x = args[0]
        k = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
        s = kwargs.get("stride", args[2] if len(args) > 2 else None)
        p = kwargs.get("padding", args[3] if len(args) > 3 else 0)
        d = kwargs.get("dilation", args[4] if len(args) > 4 else 1)
        c = kwargs.get("ceil_mode", args[5] if len(args) > 5 else False)
        if kwargs.get("return_indices", False):
            return None
        nd = 3
        t = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * nd
        k = t(k)
        s = t(s) if s is not None and s != [] else k
        p, d = t(p), t(d)
        spatial = [
            _max_pool_out(x.shape[-nd + i], k[i], s[i], p[i], d[i], c) for i in range(nd)
        ]
        return _EMPTY(list(x.shape[:-nd]) + spatial, dtype=x.dtype, device="meta")
    return None


def _real_zeros(v):
    if isinstance(v, torch.nn.Parameter):
        return torch.nn.Parameter(torch.zeros(v.shape, dtype=v.dtype), requires_grad=False)
    if _is_tensor(v):
        return torch.zeros(v.shape, dtype=v.dtype)
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
        return type(v)(_real_zeros(x) for x in v)
    return v


def _all_tensors(v):
    out = []
    if _is_tensor(v):
        out.append(v)
    elif isinstance(v, (list, tuple)):
        for x in v:
            out.extend(_all_tensors(x))
    elif isinstance(v, dict):
        for x in v.values():
            out.extend(_all_tensors(x))
    return out


class MetaProxy(torch.fx.Proxy):
    """A Proxy whose shape, dtype, size(), dim(), numel(), device and iteration are concrete."""

    def _meta(self):
        return self.node.meta.get("val")

    def __getattr__(self, k):
        v = self.node.meta.get("val")
        if _is_tensor(v):
            if k == "shape":
                return v.shape
            if k == "dtype":
                return v.dtype
            if k == "ndim":
                return v.dim()
            if k == "device":
                return torch.device("cpu")
            if k == "is_cuda":
                return False
            if k in ("size", "dim", "numel", "nelement", "ndimension"):
                return getattr(v, k)
        return super().__getattr__(k)

    def __len__(self):
        v = self.node.meta.get("val")
        if _is_tensor(v):
            return v.shape[0]
        if isinstance(v, (list, tuple)):
            return len(v)
        raise NotExpressible(f"len() of a traced value ({self.node.format_node()})")

    def __iter__(self):
        v = self.node.meta.get("val")
        if isinstance(v, (list, tuple)) or _is_tensor(v):
            return iter([self[i] for i in range(len(self))])
        raise NotExpressible(f"iteration over a traced value ({self.node.format_node()})")

    def __bool__(self):
        raise NotExpressible(
            "control flow on tensor data (a traced value used as a condition)"
        )

    def __index__(self):
        raise NotExpressible("a tensor value used as a Python integer (data-dependent shape)")


class Draw:
    """One random (or constant) tensor that get_inputs() creates."""

    def __init__(self, kind, a, b, shape, dtype):
        self.kind, self.a, self.b, self.shape, self.dtype = kind, a, b, tuple(shape), dtype

    def __repr__(self):
        return f"Draw({self.kind}, {self.a}, {self.b}, {list(self.shape)}, {self.dtype})"


def _size_args(args, kwargs):
    if "size" in kwargs:
        s = kwargs["size"]
    elif len(args) == 1 and isinstance(args[0], (list, tuple, torch.Size)):
        s = args[0]
    else:
        s = args
    out = []
    for d in s:
        if not isinstance(d, int):
            raise NotExpressible(f"get_inputs(): a size that is not an integer ({d!r})")
        out.append(int(d))
    return tuple(out)


class ConcreteTracer(torch.fx.Tracer):
    """torch.fx tracer with a meta value per node (see the module docstring)."""

    def __init__(self, leaf_modules=None):
        super().__init__()
        self.proxy_buffer_attributes = True
        self.placeholder_vals = {}
        self.forward_inputs = None  # [(name, value)]: a Draw-backed meta tensor or a Python value
        self.draws = {}
        self._meta_modules = {}
        # Which model tensors are constants (buffers such as a causal mask), not parameters.
        self.is_constant = lambda target, tensor: False

    # ---- nodes and their meta values -------------------------------------------------------

    def proxy(self, node):
        return MetaProxy(node, self)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if "val" not in node.meta:
            self._annotate(node)
        return node

    def _arg_vals(self, node, key):
        return torch.fx.node.map_arg((node.args, node.kwargs), lambda n: n.meta.get(key))

    def _const_ready(self, node):
        ok = True

        def visit(n):
            nonlocal ok
            if "const" not in n.meta:
                ok = False
            return n

        torch.fx.node.map_arg((node.args, node.kwargs), visit)
        return ok

    def _annotate(self, node):
        if node.op == "placeholder":
            node.meta["val"] = self.placeholder_vals[node.target]
            return
        if node.op == "get_attr":
            real = self._fetch_attr(node.target)
            node.meta["real"] = real
            node.meta["val"] = _to_meta(real)
            if _is_tensor(real) and self.is_constant(node.target, real) and (
                _numel(real) <= CONST_FOLD_MAX_ELEMS
            ):
                node.meta["const"] = real.detach()
            return
        if node.op == "output":
            return
        (args, kwargs) = self._arg_vals(node, "val")
        node.meta["val"] = self._run(node, args, kwargs)
        # Constant folding: every input is a known constant and the result is small (never for a
        # module call: its parameters are not constants).
        if node.op != "call_module" and self._const_ready(node) and all(
            _numel(t) <= CONST_FOLD_MAX_ELEMS for t in _all_tensors(node.meta["val"])
        ):
            (cargs, ckwargs) = self._arg_vals(node, "const")
            try:
                node.meta["const"] = self._call(node, cargs, ckwargs, real=True)
            except Exception:  # a constant that cannot be computed stays unknown
                pass

    def _fetch_attr(self, target):
        obj = self.root
        with _UnpatchedModules():
            for atom in target.split("."):
                obj = getattr(obj, atom)
        return obj

    def _call(self, node, args, kwargs, real=False):
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            self_obj, *rest = args
            return getattr(self_obj, node.target)(*rest, **kwargs)
        if node.op == "call_module":
            mod = self._fetch_attr(node.target) if real else self._meta_module_for(node.target)
            with _UnpatchedModules():
                return mod(*args, **kwargs)
        raise AssertionError(node.op)

    def _meta_module_for(self, target):
        if target not in self._meta_modules:
            self._meta_modules[target] = _meta_module(self._fetch_attr(target))
        return self._meta_modules[target]

    def _run(self, node, args, kwargs):
        args, kwargs = _to_meta(args), _to_meta(kwargs)
        try:
            with torch.no_grad():
                return self._call(node, args, kwargs)
        except NotExpressible:
            raise
        except Exception as e:  # no meta kernel, or an error of the model itself
            first_error = e
        fn_name = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_module":
            fn_name = type(self._fetch_attr(node.target)).__name__
            mod = self._fetch_attr(node.target)
            if fn_name == "MaxPool3d":
                kw = dict(kernel_size=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                          dilation=mod.dilation, ceil_mode=mod.ceil_mode,
                          return_indices=mod.return_indices)
                out = _shape_rule(fn_name, args, kw)
                if out is not None:
                    return out
        else:
            out = _shape_rule(fn_name, args, kwargs)
            if out is not None:
                return out
        tensors = _all_tensors((args, kwargs))
        if tensors and all(_numel(t) <= REAL_FALLBACK_MAX_ELEMS for t in tensors):
            try:
                with torch.no_grad():
                    if node.op == "call_module":
                        mod = _real_zeros_module(self._fetch_attr(node.target))
                        with _UnpatchedModules():
                            res = mod(*_real_zeros(args), **_real_zeros(kwargs))
                    else:
                        res = self._call(node, _real_zeros(args), _real_zeros(kwargs))
                return _to_meta(res)
            except Exception:
                pass
        raise NotExpressible(
            f"{node.format_node()}: cannot compute its shape ({type(first_error).__name__}: "
            f"{str(first_error).splitlines()[0] if str(first_error) else ''})"
        )

    # ---- roots --------------------------------------------------------------------------

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        if self.forward_inputs is None:
            return super().create_args_for_root(root_fn, is_module, concrete_args)
        args = [self.root] if is_module else []
        for name, value in self.forward_inputs:
            if _is_tensor(value):
                self.placeholder_vals[name] = value
                args.append(self.create_proxy("placeholder", name, (), {}))
            else:
                args.append(value)
        return root_fn, args


def _real_zeros_module(mod):
    memo = {}
    for t in list(mod.parameters(recurse=True)) + list(mod.buffers(recurse=True)):
        memo[id(t)] = _real_zeros(t)
    return copy.deepcopy(mod, memo)


# ---- get_inputs() -----------------------------------------------------------------------------


class DrawPatches:
    """Replaces torch's tensor factories while get_inputs() runs (or, random ones only, while
    forward() is traced): each random or constant tensor created becomes a placeholder (a Draw) of
    the tracer's graph."""

    def __init__(self, tracer, prefix="draw", random_only=False):
        self.tracer = tracer
        self.prefix = prefix
        self.random_only = random_only
        self.saved = {}

    def _new_draw(self, kind, a, b, shape, dtype):
        name = f"{self.prefix}{len(self.tracer.draws)}"
        self.tracer.draws[name] = Draw(kind, a, b, shape, dtype)
        self.tracer.placeholder_vals[name] = _EMPTY(shape, dtype=dtype, device="meta")
        return self.tracer.create_proxy("placeholder", name, (), {})

    def __enter__(self):
        def dtype_of(kwargs, default=torch.float32):
            d = kwargs.get("dtype")
            return d if d is not None else default

        def rand(*args, **kwargs):
            return self._new_draw("uniform", 0.0, 1.0, _size_args(args, kwargs), dtype_of(kwargs))

        def randn(*args, **kwargs):
            return self._new_draw("normal", 0.0, 1.0, _size_args(args, kwargs), dtype_of(kwargs))

        def randint(*args, **kwargs):
            pos = list(args)
            low = kwargs.get("low", 0)
            if "high" in kwargs:
                high = kwargs["high"]
                size = kwargs.get("size", pos[-1] if pos else None)
                if len(pos) >= 2:
                    low = pos[0]
            elif len(pos) == 2:
                high, size = pos[0], pos[1]
            elif len(pos) == 3:
                low, high, size = pos
            else:
                size = kwargs.get("size", pos[-1] if pos else None)
                if len(pos) == 1:
                    high = pos[0]
                else:
                    raise NotExpressible("get_inputs(): torch.randint with unexpected arguments")
            shape = _size_args((size,), {})
            return self._new_draw("randint", int(low), int(high), shape,
                                  dtype_of(kwargs, torch.int64))

        def like(kind):
            def f(x, *args, **kwargs):
                if kind == "randint_like":
                    low, high = (0, args[0]) if len(args) == 1 else (args[0], args[1])
                    return self._new_draw("randint", int(low), int(high), tuple(x.shape),
                                          dtype_of(kwargs, x.dtype))
                a, b = (0.0, 1.0)
                k = "uniform" if kind == "rand_like" else "normal"
                return self._new_draw(k, a, b, tuple(x.shape), dtype_of(kwargs, x.dtype))

            return f

        def filled(value):
            def f(*args, **kwargs):
                return self._new_draw("constant", float(value), None, _size_args(args, kwargs),
                                      dtype_of(kwargs))

            return f

        def full(size, fill_value, **kwargs):
            return self._new_draw("constant", float(fill_value), None, _size_args((size,), {}),
                                  dtype_of(kwargs))

        def refuse(name):
            def f(*args, **kwargs):
                raise NotExpressible(f"get_inputs(): torch.{name} (no input distribution for it)")

            return f

        patches = {
            "rand": rand,
            "randn": randn,
            "randint": randint,
            "rand_like": like("rand_like"),
            "randn_like": like("randn_like"),
            "randint_like": like("randint_like"),
            "ones": filled(1.0),
            "zeros": filled(0.0),
            "full": full,
            "empty": refuse("empty"),
            "randperm": refuse("randperm"),
            "normal": refuse("normal"),
            "arange": refuse("arange"),
            "linspace": refuse("linspace"),
            "eye": refuse("eye"),
        }
        if self.random_only:
            patches = {k: patches[k] for k in ("rand", "randn", "randint", "rand_like",
                                                "randn_like", "randint_like", "randperm",
                                                "normal")}
        for k, f in patches.items():
            self.saved[k] = getattr(torch, k)
            setattr(torch, k, f)
        return self

    def __exit__(self, *exc):
        for k, f in self.saved.items():
            setattr(torch, k, f)
        return False


def trace_get_inputs(module):
    """Traces `module.get_inputs()`; returns (graph, tracer). Each returned element of the graph's
    output is a draw placeholder, a node computed from draws, or a Python value."""
    tracer = ConcreteTracer()
    patches = DrawPatches(tracer)

    def get_inputs_root():
        with patches:
            out = module.get_inputs()
        if not isinstance(out, (list, tuple)):
            raise NotExpressible("get_inputs() does not return a list")
        return list(out)

    graph = tracer.trace(get_inputs_root)
    return graph, tracer


def forward_param_names(model):
    """Names of forward()'s parameters (after self), and their defaults."""
    sig = inspect.signature(type(model).forward)
    out = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise NotExpressible(f"forward() takes *{name}; name each input instead")
        out.append((name, p.default))
    return out


# ---- creation tags: how each tensor of the model was initialised ------------------------------


class CreationTags:
    """While a model is constructed, records how factories created tensors (randn, rand, ones,
    zeros, full, tensor) and scalings of those by Python numbers, keyed by storage address, so
    that parameters created from them (nn.Parameter(torch.randn(...))) have a known
    distribution."""

    def __init__(self):
        self.by_ptr = {}
        self.keep = []
        self.saved = {}

    def _tag(self, t, tag):
        if _is_tensor(t) and t.numel() > 0:
            self.by_ptr[(t.data_ptr(), tuple(t.shape), t.dtype)] = tag
            self.keep.append(t)
        return t

    def tag_of(self, t):
        if not _is_tensor(t) or t.numel() == 0:
            return None
        return self.by_ptr.get((t.data_ptr(), tuple(t.shape), t.dtype))

    def __enter__(self):
        tags = self

        def wrap(name, make_tag):
            orig = getattr(torch, name)

            def f(*args, **kwargs):
                out = orig(*args, **kwargs)
                tag = make_tag(args, kwargs)
                return tags._tag(out, tag) if tag is not None else out

            self.saved[("torch", name)] = orig
            setattr(torch, name, f)

        wrap("randn", lambda a, k: ("normal", 0.0, 1.0))
        wrap("rand", lambda a, k: ("uniform", 0.0, 1.0))
        wrap("ones", lambda a, k: ("constant", 1.0))
        wrap("zeros", lambda a, k: ("constant", 0.0))
        wrap("full", lambda a, k: ("constant", float(a[1] if len(a) > 1 else k["fill_value"])))

        def tensor_tag(a, k):
            data = a[0] if a else k.get("data")
            if isinstance(data, (int, float)) and not isinstance(data, bool):
                return ("constant", float(data))
            return ("data", None)

        wrap("tensor", tensor_tag)

        def scaled(op):
            orig = getattr(torch.Tensor, op)

            def f(self_t, other):
                out = orig(self_t, other)
                tag = tags.tag_of(self_t)
                if tag is not None and isinstance(other, (int, float)) and not isinstance(
                    other, bool
                ):
                    s = float(other) if op in ("__mul__", "__rmul__") else 1.0 / float(other)
                    if tag[0] == "normal":
                        tags._tag(out, ("normal", tag[1] * s, tag[2] * abs(s)))
                    elif tag[0] == "uniform":
                        lo, hi = sorted((tag[1] * s, tag[2] * s))
                        tags._tag(out, ("uniform", lo, hi))
                    elif tag[0] == "constant":
                        tags._tag(out, ("constant", tag[1] * s))
                return out

            self.saved[("Tensor", op)] = orig
            setattr(torch.Tensor, op, f)

        for op in ("__mul__", "__rmul__", "__truediv__"):
            scaled(op)

        init = torch.nn.init

        def fans(t):
            return init._calculate_fan_in_and_fan_out(t)

        def kaiming_std(t, a=0, mode="fan_in", nonlinearity="leaky_relu", **kw):
            fan_in, fan_out = fans(t)
            fan = fan_in if mode == "fan_in" else fan_out
            return init.calculate_gain(nonlinearity, a) / math.sqrt(fan)

        def xavier_std(t, gain=1.0, **kw):
            fan_in, fan_out = fans(t)
            return gain * math.sqrt(2.0 / float(fan_in + fan_out))

        def arg(a, k, i, name, default):
            return a[i] if len(a) > i else k.get(name, default)

        init_tags = {
            "uniform_": lambda t, a, k: ("uniform", float(arg(a, k, 0, "a", 0.0)),
                                         float(arg(a, k, 1, "b", 1.0))),
            "normal_": lambda t, a, k: ("normal", float(arg(a, k, 0, "mean", 0.0)),
                                        float(arg(a, k, 1, "std", 1.0))),
            "trunc_normal_": lambda t, a, k: ("trunc_normal", float(arg(a, k, 0, "mean", 0.0)),
                                              float(arg(a, k, 1, "std", 1.0)),
                                              float(arg(a, k, 2, "a", -2.0)),
                                              float(arg(a, k, 3, "b", 2.0))),
            "constant_": lambda t, a, k: ("constant", float(arg(a, k, 0, "val", 0.0))),
            "ones_": lambda t, a, k: ("constant", 1.0),
            "zeros_": lambda t, a, k: ("constant", 0.0),
            "kaiming_uniform_": lambda t, a, k: ("uniform",
                                                 -math.sqrt(3.0) * kaiming_std(t, *a, **k),
                                                 math.sqrt(3.0) * kaiming_std(t, *a, **k)),
            "kaiming_normal_": lambda t, a, k: ("normal", 0.0, kaiming_std(t, *a, **k)),
            "xavier_uniform_": lambda t, a, k: ("uniform", -math.sqrt(3.0) * xavier_std(t, *a, **k),
                                                math.sqrt(3.0) * xavier_std(t, *a, **k)),
            "xavier_normal_": lambda t, a, k: ("normal", 0.0, xavier_std(t, *a, **k)),
            "orthogonal_": lambda t, a, k: ("unknown", "orthogonal_"),
            "eye_": lambda t, a, k: ("unknown", "eye_"),
            "dirac_": lambda t, a, k: ("unknown", "dirac_"),
            "sparse_": lambda t, a, k: ("unknown", "sparse_"),
        }

        def init_wrap(name, make_tag):
            orig = getattr(init, name)

            def f(t, *a, **k):
                out = orig(t, *a, **k)
                tags._tag(t, make_tag(t, a, k))
                return out

            self.saved[("init", name)] = orig
            setattr(init, name, f)

        for name, make_tag in init_tags.items():
            if hasattr(init, name):
                init_wrap(name, make_tag)

        def method_wrap(name, make_tag):
            orig = getattr(torch.Tensor, name)

            def f(t, *a, **k):
                out = orig(t, *a, **k)
                tags._tag(t, make_tag(t, a, k))
                return out

            self.saved[("Tensor", name)] = orig
            setattr(torch.Tensor, name, f)

        method_wrap("uniform_", lambda t, a, k: ("uniform", float(arg(a, k, 0, "from", 0.0)),
                                                 float(arg(a, k, 1, "to", 1.0))))
        method_wrap("normal_", lambda t, a, k: ("normal", float(arg(a, k, 0, "mean", 0.0)),
                                                float(arg(a, k, 1, "std", 1.0))))
        method_wrap("fill_", lambda t, a, k: ("constant", float(arg(a, k, 0, "value", 0.0))))
        method_wrap("zero_", lambda t, a, k: ("constant", 0.0))
        return self

    def __exit__(self, *exc):
        where_obj = {"torch": torch, "Tensor": torch.Tensor, "init": torch.nn.init}
        for (where, name), f in reversed(list(self.saved.items())):
            setattr(where_obj[where], name, f)
        return False


OPERATOR_NAMES = {
    operator.add: "add",
    operator.iadd: "add",
    operator.sub: "sub",
    operator.isub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
    operator.floordiv: "floor_divide",
    operator.neg: "neg",
    operator.pos: "identity",
    operator.pow: "pow",
    operator.matmul: "matmul",
    operator.getitem: "getitem",
    operator.eq: "eq",
    operator.ne: "ne",
    operator.lt: "lt",
    operator.le: "le",
    operator.gt: "gt",
    operator.ge: "ge",
    operator.and_: "logical_and",
    operator.or_: "logical_or",
    operator.invert: "logical_not",
    getattr: "getattr",
}
