"""The importer's intermediate form of a kbench problem: declared inputs and parameters, graph
nodes, outputs, and the values lowering passes around (kbench values, constants, lazy tuples)."""
import keyword
import math
import re

import torch

from .errors import NotExpressible

KB_DTYPES = {
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.bool: "bool",
}

# Names the catalog refuses for values (they would clash in the PyTorch rendering).
RESERVED = set(keyword.kwlist) | {
    "self", "torch", "nn", "F", "math", "training", "forward", "cuda", "cpu", "to", "eval",
    "train", "float", "half", "double", "parameters", "buffers", "state_dict", "Model",
    "get_inputs", "get_init_inputs", "load_params", "gen",
}


def kb_dtype(dtype, what):
    if dtype not in KB_DTYPES:
        raise NotExpressible(f"{what}: dtype {dtype} (kbench has {', '.join(KB_DTYPES.values())})")
    return KB_DTYPES[dtype]


def meta_like(shape, dtype=torch.float32):
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


class Val:
    """A tensor value of the kbench graph: an input, a parameter or a node's output."""

    __slots__ = ("name", "m")

    def __init__(self, name, m):
        self.name = name
        self.m = m  # a meta tensor: shape and dtype

    @property
    def shape(self):
        return tuple(self.m.shape)

    @property
    def rank(self):
        return self.m.dim()

    def __repr__(self):
        return f"Val({self.name}, {list(self.shape)}, {self.m.dtype})"


class Const:
    """A tensor that does not depend on inputs or parameters: its real value when small."""

    __slots__ = ("real", "m", "what")

    def __init__(self, real, m, what):
        self.real, self.m, self.what = real, m, what

    def scalar(self):
        """The value as a Python number when it has one element, else None."""
        if self.real is not None and self.real.numel() == 1:
            v = self.real.reshape(()).item()
            return bool(v) if self.real.dtype == torch.bool else v
        return None


class ParamRef:
    """A model tensor used as a parameter; declared in the problem on first use."""

    __slots__ = ("qualname", "tensor")

    def __init__(self, qualname, tensor):
        self.qualname, self.tensor = qualname, tensor


class Expanded:
    """x.expand(...) not yet materialised: broadcasting consumers use x itself."""

    __slots__ = ("val", "m")

    def __init__(self, val, m):
        self.val, self.m = val, m


class Fill:
    """zeros_like / ones_like / full_like: a constant tensor of a traced value's shape; `like` is
    that value."""

    __slots__ = ("value", "m", "like")

    def __init__(self, value, m, like=None):
        self.value, self.m, self.like = value, m, like


class LazyTuple:
    """A tuple whose items are emitted on first use (max with dim: values and indices; LSTM:
    output, (h_n, c_n)); `fields` names items for attribute access (.values, .indices)."""

    def __init__(self, makers, fields=()):
        self.makers = list(makers)
        self.fields = tuple(fields)
        self.made = {}

    def item(self, i):
        if not isinstance(i, int) or not -len(self.makers) <= i < len(self.makers):
            raise NotExpressible(f"index {i!r} into a result tuple of {len(self.makers)} items")
        i %= len(self.makers)
        if i not in self.made:
            self.made[i] = self.makers[i]()
        return self.made[i]

    def field(self, name):
        if name not in self.fields:
            raise NotExpressible(f"attribute .{name} of a result tuple")
        return self.item(self.fields.index(name))

    def __len__(self):
        return len(self.makers)


class TensorDecl:
    """An input or parameter of the problem."""

    def __init__(self, name, m, dist, role, source=None, check_dists=None, note=None):
        self.name = name
        self.m = m
        self.dist = dist  # ("uniform", lo, hi) | ("normal", mean, std) | ("randint", lo, hi) | ...
        self.role = role  # "input" | "param"
        self.source = source  # params: the model's qualified name; inputs: the draw's name
        self.check_dists = check_dists  # None: the catalog's defaults; [] for none
        self.note = note

    @property
    def shape(self):
        return tuple(self.m.shape)


class Node:
    __slots__ = ("out", "op", "ins", "attrs", "m")

    def __init__(self, out, op, ins, attrs, m):
        self.out, self.op, self.ins, self.attrs, self.m = out, op, list(ins), dict(attrs), m


class ProblemIR:
    def __init__(self):
        self.inputs = []
        self.params = []
        self.nodes = []
        self.outputs = []
        self.departures = []  # sentences for the description, in order of first appearance
        self.notes = []
        self.used_names = set()

    def fresh(self, hint):
        """A new value name from `hint`: an identifier, not reserved, not used yet."""
        base = re.sub(r"[^0-9A-Za-z_]", "_", hint or "v")
        base = re.sub(r"_+", "_", base).strip("_") or "v"
        if base[0].isdigit():
            base = "v" + base
        if base in RESERVED:
            base += "_"
        name, k = base, 1
        while name in self.used_names:
            name = f"{base}_{k}"
            k += 1
        self.used_names.add(name)
        return name

    def depart(self, sentence):
        if sentence not in self.departures:
            self.departures.append(sentence)

    def note(self, sentence):
        if sentence not in self.notes:
            self.notes.append(sentence)

    def decl(self, name):
        for t in self.inputs + self.params:
            if t.name == name:
                return t
        return None


def numel(shape):
    return math.prod(shape) if shape else 1
