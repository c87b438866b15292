"""Loading a KernelBench-format file (a Python module defining Model, get_inputs() and
get_init_inputs()) and naming the problem it becomes."""
import importlib.util
import itertools
import math
import os
import re

import torch

from .errors import NotExpressible

_counter = itertools.count()


def _sdpa_formula(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                  enable_gqa=False):
    """F.scaled_dot_product_attention's definition, for PyTorch versions that lack it (< 2.0).
    Dispatches like PyTorch's own functions, so tracing records it as one call."""
    if torch.overrides.has_torch_function((query, key, value)):
        return torch.overrides.handle_torch_function(
            _sdpa_formula, (query, key, value), query, key, value, attn_mask=attn_mask,
            dropout_p=dropout_p, is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    if dropout_p != 0.0 or enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention shim: dropout or enable_gqa")
    L, S = query.shape[-2], key.shape[-2]
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    att = torch.matmul(query, key.transpose(-2, -1)) * s
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()
        att = att.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            att = att.masked_fill(~attn_mask, float("-inf"))
        else:
            att = att + attn_mask
    return torch.matmul(torch.softmax(att, dim=-1), value)


_sdpa_formula.__name__ = "scaled_dot_product_attention"


def install_shims():
    """Makes the functions of newer PyTorch versions that KernelBench files call available."""
    F = torch.nn.functional
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa_formula


def load_module(path):
    """Executes a KernelBench-format file as a fresh module; NotExpressible if it cannot run or
    lacks Model, get_inputs or get_init_inputs."""
    install_shims()
    name = f"kbimport_source_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        raise NotExpressible(f"the file imports {e.name!r}, which is not installed here")
    except Exception as e:
        raise NotExpressible(f"the file does not run: {type(e).__name__}: {e}")
    for attr in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, attr):
            raise NotExpressible(f"the file defines no {attr}")
    return module


def parse_name(path):
    """(number or None, rest) of a file name such as 23_Softmax.py."""
    stem = os.path.splitext(os.path.basename(path))[0]
    m = re.match(r"^(\d+)_(.*)$", stem)
    if m:
        return int(m.group(1)), m.group(2)
    return None, stem


def snake(text):
    """KernelBench's name in lower case, words joined by single underscores."""
    s = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return re.sub(r"_+", "_", s) or "problem"


def problem_stem(path, prefix="kb"):
    """The YAML file's stem: kb023_softmax for 23_Softmax.py (at most 100 characters)."""
    number, rest = parse_name(path)
    stem = f"{prefix}{number:03d}_{snake(rest)}" if number is not None else \
        f"{prefix}_{snake(rest)}"
    return stem[:100].rstrip("_")


def level_of(path):
    """The level number of a file in a level<N> folder, else None."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    m = re.match(r"^level(\d+)$", parent)
    return int(m.group(1)) if m else None


def human_title(path):
    number, rest = parse_name(path)
    return re.sub(r"\s+", " ", rest.replace("_", " ")).strip() or rest
