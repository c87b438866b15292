"""Initial distributions of a model's tensors: how PyTorch (or the file) initialises each parameter,
expressed as a kbench distribution, with the documented departures for constants.

kbench never draws a parameter as a constant (a kernel that ignores an all-ones weight would pass),
so a tensor that starts constant (a norm's weight of ones, a bias of zeros) is drawn N(c, 0.1)
around its start value c, and the problem's description says so (docs/problems.md).
"""
import math

import torch
import torch.nn as nn

from .errors import NotExpressible

# Modules initialised by kaiming_uniform_(a=sqrt(5)) with a bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)):
# both bounds come to 1/sqrt(fan_in) of the weight.
_KAIMING_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
CONSTANT_STD = 0.1


def fan_in(weight):
    """PyTorch's fan-in of a weight tensor: size(1) times the receptive field."""
    if weight.dim() < 2:
        raise NotExpressible("fan-in of a weight with fewer than 2 dimensions")
    return weight.shape[1] * math.prod(weight.shape[2:])


def _constant_value(t):
    """The value of a tensor whose elements are all equal, else None."""
    if t.numel() == 0:
        return None
    flat = t.detach().reshape(-1)
    first = flat[0]
    if bool((flat == first).all()):
        return float(first)
    return None


def short_float(v, dtype=torch.float32):
    """The shortest decimal that rounds to the same value in `dtype` (0.1 rather than
    0.10000000149011612 for a float32 0.1)."""
    v = float(v)
    if math.isinf(v) or math.isnan(v) or v == int(v) and abs(v) < 2**53:
        return v
    if dtype == torch.float64:
        return v
    ref = torch.tensor(v, dtype=dtype)
    for p in range(1, 18):
        s = float(f"{v:.{p}g}")
        if torch.tensor(s, dtype=dtype) == ref:
            return s
    return v


class InitRule:
    """A parameter's kbench distribution and the sentence that explains it."""

    def __init__(self, dist, note, start=None):
        self.dist = dist  # ("uniform", low, high) | ("normal", mean, std)
        self.note = note
        self.start = start  # PyTorch's constant start value, when the draw departs from it


def _uniform(b):
    return ("uniform", -b, b)


def _owner(model, qualname):
    path, _, leaf = qualname.rpartition(".")
    owner = model.get_submodule(path) if path else model
    parent_path, _, owner_name = path.rpartition(".")
    parent = None
    if path:
        parent = model.get_submodule(parent_path) if parent_path else model
    return owner, leaf, parent, owner_name


def _module_rule(owner, leaf, tensor):
    """PyTorch's default initialisation of a module's parameter, as an InitRule, else None."""
    if isinstance(owner, _KAIMING_MODULES) and leaf in ("weight", "bias"):
        b = 1.0 / math.sqrt(fan_in(owner.weight))
        return InitRule(_uniform(b), "U(-1/sqrt(fan_in), 1/sqrt(fan_in))")
    if isinstance(owner, _RECURRENT):
        b = 1.0 / math.sqrt(owner.hidden_size)
        return InitRule(_uniform(b), "U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))")
    if isinstance(owner, nn.MultiheadAttention) and leaf == "in_proj_weight":
        b = math.sqrt(6.0 / (tensor.shape[0] + tensor.shape[1]))
        return InitRule(_uniform(b), "U(-sqrt(6/(fan_in+fan_out)), sqrt(6/(fan_in+fan_out)))")
    if isinstance(owner, nn.Embedding) and leaf == "weight":
        return InitRule(("normal", 0.0, 1.0), "N(0, 1)")
    return None


def _same_dist(a, b):
    return a[0] == b[0] and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
                                for x, y in zip(a[1:], b[1:]))


def _fmt(v):
    return f"{v:.6g}"


def init_rule(model, qualname, tensor, tags):
    """How `tensor` (the model's attribute at `qualname`) was initialised, as an InitRule: the last
    initialisation recorded while the model was built (factories, nn.init, Tensor.uniform_ and
    such), else the module's documented default. Raises NotExpressible when it is not known."""
    owner, leaf, parent, owner_name = _owner(model, qualname)
    tag = tags.tag_of(tensor)
    c = _constant_value(tensor)
    if tensor.numel() == 1 and not (tag is not None and tag[0] == "constant"):
        c = None  # one random element is "all equal" too
    if c is not None:
        std = CONSTANT_STD * max(1.0, abs(c))
        c_txt = f"{short_float(c):g}"
        return InitRule(("normal", short_float(c), std), f"N({c_txt}, {std:g})", short_float(c))
    module_rule = _module_rule(owner, leaf, tensor)
    if tag is not None and tag[0] in ("normal", "uniform"):
        dist = (tag[0], float(tag[1]), float(tag[2]))
        if module_rule is not None and _same_dist(module_rule.dist, dist):
            return _checked(module_rule, qualname, tensor)
        note = (f"N({_fmt(dist[1])}, {_fmt(dist[2])})" if dist[0] == "normal"
                else f"U[{_fmt(dist[1])}, {_fmt(dist[2])})")
        return _checked(InitRule(dist, note + " as the file initialises it"), qualname, tensor)
    if tag is not None and tag[0] == "trunc_normal":
        _, mean, std, a, b = tag
        if (a - mean) / std <= -3.0 and (b - mean) / std >= 3.0:
            return InitRule(("normal", mean, std),
                            f"N({_fmt(mean)}, {_fmt(std)}) (the file truncates it at "
                            f"[{_fmt(a)}, {_fmt(b)}], 3 or more standard deviations out)")
        raise NotExpressible(f"parameter {qualname}: trunc_normal_ truncated within 3 standard "
                             f"deviations")
    if tag is not None and tag[0] == "unknown":
        raise NotExpressible(f"parameter {qualname}: initialised by nn.init.{tag[1]}, which has no "
                             f"kbench distribution")
    if module_rule is not None:
        return _checked(module_rule, qualname, tensor)
    raise NotExpressible(
        f"parameter {qualname} ({type(owner).__name__}.{leaf}, shape {list(tensor.shape)}): "
        f"its initialisation is not one the importer knows"
    )


def _checked(rule, qualname, tensor):
    """Guards a rule against what the model actually holds: a uniform rule must bound the values."""
    kind, lo, hi = rule.dist
    if kind == "uniform" and tensor.numel() > 0:
        t = tensor.detach()
        slack = 1e-6 * max(abs(lo), abs(hi))
        if float(t.min()) < lo - slack or float(t.max()) > hi + slack:
            raise NotExpressible(
                f"parameter {qualname}: values outside the expected initialisation {rule.note}"
            )
    return rule


def is_scalar_constant(tensor, tags):
    """True for a one-element tensor created from a Python number (nn.Parameter(torch.tensor(v))):
    the importer folds it into the graph as a number."""
    if tensor.numel() != 1:
        return False
    tag = tags.tag_of(tensor)
    return tag is not None and tag[0] == "constant"


def is_random_tensor(tensor, tags):
    """True for a plain tensor attribute or buffer drawn at random when the model was built
    (self.h0 = torch.randn(...)): kbench draws it like a parameter."""
    tag = tags.tag_of(tensor)
    return tag is not None and tag[0] in ("normal", "uniform")
