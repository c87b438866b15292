// Layout ops: reshape, permute, transpose, slice, masked_fill_causal, concat, stack, pad, tril,
// triu, flip, roll, gather, diag.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

OpCost move_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  return io_cost(in, out, 0.0);
}

// Copies x into out where out's dim d walks x's dim perm[d].
void permute_copy(const HostTensor& x, const std::vector<int64_t>& perm, HostTensor& out) {
  const Shape xs = contiguous_strides(x.shape);
  Shape walk(perm.size());
  for (std::size_t d = 0; d < perm.size(); ++d)
    walk[d] = xs[static_cast<std::size_t>(perm[d])];
  const Shape os = contiguous_strides(out.shape);
  for (int64_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    for (std::size_t d = 0; d < perm.size(); ++d)
      src += ((i / os[d]) % out.shape[d]) * walk[d];
    out.data[i] = x.data[src];
  }
}

// ----- reshape ------------------------------------------------------------------------------

Shape resolve_reshape(const Attrs& at, const Shape& x) {
  Shape shape = attr_ints(at, "shape", 0, {});
  int infer_at = -1;
  int64_t known = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer_at >= 0)
        fail("shape {} has more than one -1", shape_str(shape));
      infer_at = static_cast<int>(i);
    } else if (shape[i] < 0) {
      fail("shape {} has a negative entry {} (only -1 is allowed)", shape_str(shape), shape[i]);
    } else {
      known = checked_mul(known, shape[i]);
    }
  }
  const int64_t n = numel(x);
  if (infer_at >= 0) {
    if (known == 0 || n % known != 0)
      fail("cannot reshape x {} ({} elements) into {}", shape_str(x), n, shape_str(shape));
    shape[static_cast<std::size_t>(infer_at)] = n / known;
  } else if (known != n) {
    fail("cannot reshape x {} ({} elements) into {} ({} elements)", shape_str(x), n,
         shape_str(shape), known);
  }
  return shape;
}

// ----- permute, transpose -------------------------------------------------------------------

std::vector<int64_t> permutation(const Attrs& at, const Shape& x) {
  const auto dims = attr_ints(at, "dims", 0, {});
  if (dims.size() != x.size())
    fail("dims [{}] must list each of the {} dims of x {} once", fmt::join(dims, ", "), x.size(),
         shape_str(x));
  return normalize_dims(dims, static_cast<int64_t>(x.size()), "dims");
}

std::vector<int64_t> transposition(const Attrs& at, const Shape& x) {
  const auto rank = static_cast<int64_t>(x.size());
  const int64_t d0 = normalize_dim(attr_int(at, "dim0"), rank, "dim0");
  const int64_t d1 = normalize_dim(attr_int(at, "dim1"), rank, "dim1");
  std::vector<int64_t> perm(x.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    perm[i] = static_cast<int64_t>(i);
  std::swap(perm[static_cast<std::size_t>(d0)], perm[static_cast<std::size_t>(d1)]);
  return perm;
}

ValueSpec permuted_spec(const ValueSpec& x, const std::vector<int64_t>& perm) {
  Shape out;
  for (int64_t p : perm)
    out.push_back(x.shape[static_cast<std::size_t>(p)]);
  return {out, x.dtype};
}

// ----- slice --------------------------------------------------------------------------------

struct SliceRange {
  int64_t dim, start, end, step;
  int64_t length() const { return (end - start + step - 1) / step; }
};

SliceRange slice_range(const Attrs& at, const Shape& x) {
  const int64_t dim = normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.size()), "dim");
  const int64_t size = x[static_cast<std::size_t>(dim)];
  const int64_t start_attr = attr_int(at, "start"), end_attr = attr_int(at, "end");
  const int64_t start = start_attr < 0 ? start_attr + size : start_attr;
  const int64_t end = end_attr < 0 ? end_attr + size : end_attr;
  const int64_t step = attr_int(at, "step", 1);
  if (start < 0 || start >= size)
    fail("start {} is outside dim {} of size {}", start_attr, dim, size);
  if (end <= start || end > size)
    fail("end {} must lie after start {} and within dim {} of size {}", end_attr, start_attr, dim,
         size);
  if (step < 1)
    fail("step must be >= 1, got {}", step);
  return {dim, start, end, step};
}

void slice_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const SliceRange r = slice_range(at, in[0].shape);
  const auto d = static_cast<std::size_t>(r.dim);
  const int64_t outer = prod(in[0].shape, 0, d),
                inner = prod(in[0].shape, d + 1, in[0].shape.size());
  const int64_t size = in[0].shape[d], len = r.length();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < len; ++k)
      std::copy_n(in[0].data.begin() + (o * size + r.start + k * r.step) * inner, inner,
                  out.data.begin() + (o * len + k) * inner);
}

std::string slice_torch(const Attrs& at, std::span<const std::string> n) {
  // Python slicing needs the dim's position: count ':' from the front, or from the back after
  // '...'.
  const int64_t dim = attr_int(at, "dim");
  const int64_t step = attr_int(at, "step", 1);
  std::string range = fmt::format("{}:{}", attr_int(at, "start"), attr_int(at, "end"));
  if (step != 1)
    range += fmt::format(":{}", step);
  std::string index;
  if (dim >= 0) {
    for (int64_t i = 0; i < dim; ++i)
      index += ":, ";
    index += range;
  } else {
    index = "..., " + range;
    for (int64_t i = 0; i < -dim - 1; ++i)
      index += ", :";
  }
  return fmt::format("{}[{}].contiguous()", n[0], index);
}

// ----- masked_fill_causal -------------------------------------------------------------------

void masked_fill_causal_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& x = in[0].shape;
  const int64_t l = x[x.size() - 2], s = x.back();
  const double value = attr_double(at, "value", -std::numeric_limits<double>::infinity());
  out.data = in[0].data;
  for (int64_t b = 0; b * l * s < out.size(); ++b)
    for (int64_t i = 0; i < l; ++i)
      for (int64_t j = i + 1; j < s; ++j)
        out.data[(b * l + i) * s + j] = value;
}

// ----- concat, stack ------------------------------------------------------------------------

// Inputs of concat and stack: 1 to this many (DenseNet's blocks concatenate dozens).
constexpr int k_max_joined_inputs = 256;

std::string input_names(std::size_t count) {
  return count == 1 ? "input" : fmt::format("inputs 0..{}", count - 1);
}

ValueSpec concat_infer(const Attrs& at, std::span<const ValueSpec> in) {
  const Shape& first = in[0].shape;
  if (first.empty())
    fail("input 0 is a scalar; concat needs rank >= 1");
  const int64_t dim = normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(first.size()), "dim");
  Shape out = first;
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (in[i].dtype != in[0].dtype)
      fail("dtypes differ: input 0 is {}, input {} is {}", dtype_name(in[0].dtype), i,
           dtype_name(in[i].dtype));
    if (in[i].shape.size() != first.size())
      fail("input {} {} has rank {}, input 0 {} has rank {}", i, shape_str(in[i].shape),
           in[i].shape.size(), shape_str(first), first.size());
    for (std::size_t d = 0; d < first.size(); ++d)
      if (static_cast<int64_t>(d) != dim && in[i].shape[d] != first[d])
        fail("input {} {} differs from input 0 {} in dim {} (only dim {} may differ)", i,
             shape_str(in[i].shape), shape_str(first), d, dim);
    out[static_cast<std::size_t>(dim)] =
        checked_add(out[static_cast<std::size_t>(dim)], in[i].shape[static_cast<std::size_t>(dim)]);
  }
  return {out, in[0].dtype};
}

// Copies each input's [outer, len_i * inner] block after the previous ones along the joined dim.
void join_cpu(std::span<const HostTensor> in, int64_t outer, const std::vector<int64_t>& chunk,
              HostTensor& out) {
  int64_t row = 0;
  for (int64_t c : chunk)
    row += c;
  int64_t offset = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(in[i].data.begin() + o * chunk[i], chunk[i], out.data.begin() + o * row + offset);
    offset += chunk[i];
  }
}

void concat_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& s = in[0].shape;
  const auto d = static_cast<std::size_t>(
      normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(s.size()), "dim"));
  const int64_t inner = prod(s, d + 1, s.size());
  std::vector<int64_t> chunk;
  for (const auto& t : in)
    chunk.push_back(t.shape[d] * inner);
  join_cpu(in, prod(s, 0, d), chunk, out);
}

int64_t stack_dim(const Attrs& at, const Shape& x) {
  // A stack adds a dim, so -1 means after the last one (PyTorch: dim in [-(rank+1), rank]).
  return normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.size()) + 1, "dim");
}

ValueSpec stack_infer(const Attrs& at, std::span<const ValueSpec> in) {
  const Shape& first = in[0].shape;
  const int64_t dim = stack_dim(at, first);
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (in[i].dtype != in[0].dtype)
      fail("dtypes differ: input 0 is {}, input {} is {}", dtype_name(in[0].dtype), i,
           dtype_name(in[i].dtype));
    if (in[i].shape != first)
      fail("input {} {} differs from input 0 {}; stack needs equal shapes", i,
           shape_str(in[i].shape), shape_str(first));
  }
  Shape out = first;
  out.insert(out.begin() + dim, static_cast<int64_t>(in.size()));
  return {out, in[0].dtype};
}

void stack_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& s = in[0].shape;
  const auto d = static_cast<std::size_t>(stack_dim(at, s));
  const int64_t inner = prod(s, d, s.size());
  join_cpu(in, prod(s, 0, d), std::vector<int64_t>(in.size(), inner), out);
}

std::string joined_torch(const char* fn, const Attrs& at, std::span<const std::string> n) {
  return fmt::format("torch.{}([{}], dim={})", fn, join_names(n), attr_int(at, "dim"));
}

// ----- pad ----------------------------------------------------------------------------------

// F.pad's list, last dim first, as (before, after) per dim of x (0 for dims it does not reach).
std::vector<std::pair<int64_t, int64_t>> pad_amounts(const Attrs& at, const Shape& x) {
  const auto pad = attr_ints(at, "pad", 0, {});
  if (pad.empty() || pad.size() % 2 != 0)
    fail("pad must list pairs (before, after), last dim first; got {} entries", pad.size());
  if (pad.size() / 2 > x.size())
    fail("pad has {} pairs for x {} of rank {}", pad.size() / 2, shape_str(x), x.size());
  std::vector<std::pair<int64_t, int64_t>> amounts(x.size(), {0, 0});
  for (std::size_t k = 0; k < pad.size() / 2; ++k)
    amounts[x.size() - 1 - k] = {pad[2 * k], pad[2 * k + 1]};
  return amounts;
}

ValueSpec pad_infer(const Attrs& at, std::span<const ValueSpec> in) {
  const auto amounts = pad_amounts(at, in[0].shape);
  const double value = attr_double(at, "value", 0.0);
  if (!is_floating(in[0].dtype) && (!std::isfinite(value) || value != std::trunc(value)))
    fail("value {} is not a whole number, which x of dtype {} needs", value,
         dtype_name(in[0].dtype));
  Shape out = in[0].shape;
  for (std::size_t d = 0; d < out.size(); ++d) {
    const int64_t size = checked_add(checked_add(out[d], amounts[d].first), amounts[d].second);
    if (size < 1)
      fail("padding ({}, {}) leaves dim {} of x {} with {} elements", amounts[d].first,
           amounts[d].second, d, shape_str(in[0].shape), size);
    out[d] = size;
  }
  return {out, in[0].dtype};
}

void pad_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& xs = in[0].shape;
  const auto amounts = pad_amounts(at, xs);
  const double value = attr_double(at, "value", 0.0);
  const Shape xst = contiguous_strides(xs), ost = contiguous_strides(out.shape);
  for (int64_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    bool inside = true;
    for (std::size_t d = 0; d < xs.size() && inside; ++d) {
      const int64_t c = (i / ost[d]) % out.shape[d] - amounts[d].first;
      inside = c >= 0 && c < xs[d];
      src += c * xst[d];
    }
    out.data[i] = inside ? in[0].data[src] : value;
  }
}

// ----- tril, triu ---------------------------------------------------------------------------

void triangle_cpu(bool lower, const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& x = in[0].shape;
  const int64_t rows = x[x.size() - 2], cols = x.back(), k = attr_int(at, "diagonal", 0);
  for (int64_t i = 0; i < out.size(); ++i) {
    const int64_t c = i % cols, r = (i / cols) % rows;
    const bool keep = lower ? c - r <= k : c - r >= k;
    out.data[i] = keep ? in[0].data[i] : 0.0;
  }
}

// ----- flip, roll ---------------------------------------------------------------------------

std::vector<int64_t> flip_dims(const Attrs& at, const Shape& x) {
  return normalize_dims(attr_ints(at, "dims", 0, {}), static_cast<int64_t>(x.size()), "dims");
}

void flip_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& xs = in[0].shape;
  std::vector<bool> flipped(xs.size(), false);
  for (int64_t d : flip_dims(at, xs))
    flipped[static_cast<std::size_t>(d)] = true;
  const Shape st = contiguous_strides(xs);
  for (int64_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    for (std::size_t d = 0; d < xs.size(); ++d) {
      const int64_t c = (i / st[d]) % xs[d];
      src += (flipped[d] ? xs[d] - 1 - c : c) * st[d];
    }
    out.data[i] = in[0].data[src];
  }
}

// Shift per dim of x (0 where not rolled); without `dims`, x is rolled as one flat dim, which is
// returned as a single entry. Shifts of a dim named twice add up, as in torch.roll.
std::vector<int64_t> roll_shifts(const Attrs& at, const Shape& x) {
  const auto shifts = attr_ints(at, "shifts", 0, {});
  if (!at.contains("dims")) {
    if (shifts.size() != 1)
      fail("without dims, shifts must be one int (x is rolled flat), got {} entries",
           shifts.size());
    return shifts;
  }
  const auto dims = attr_ints(at, "dims", 0, {});
  if (dims.empty() || dims.size() != shifts.size())
    fail("shifts ({} entries) and dims ({} entries) must have the same, non-zero length",
         shifts.size(), dims.size());
  std::vector<int64_t> per_dim(x.size(), 0);
  for (std::size_t k = 0; k < dims.size(); ++k) {
    const auto d =
        static_cast<std::size_t>(normalize_dim(dims[k], static_cast<int64_t>(x.size()), "dims"));
    // Reduce first so that the sum cannot overflow; an empty dim has nothing to roll.
    if (x[d] > 0)
      per_dim[d] = (per_dim[d] + shifts[k] % x[d]) % x[d];
  }
  return per_dim;
}

void roll_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& xs = in[0].shape;
  const auto shifts = roll_shifts(at, xs);
  // Rolled flat: one dim of all the elements.
  const Shape dims = at.contains("dims") ? xs : Shape{in[0].size()};
  const Shape st = contiguous_strides(dims);
  for (int64_t i = 0; i < out.size(); ++i) {
    int64_t src = 0;
    for (std::size_t d = 0; d < dims.size(); ++d) {
      const int64_t c = (i / st[d]) % dims[d]; // dims[d] > 0: i indexes an element
      const int64_t sh = shifts[d] % dims[d];
      src += ((c - sh) % dims[d] + dims[d]) % dims[d] * st[d];
    }
    out.data[i] = in[0].data[src];
  }
}

// ----- gather -------------------------------------------------------------------------------

ValueSpec gather_infer(const Attrs& at, std::span<const ValueSpec> in) {
  const ValueSpec &x = in[0], &index = in[1];
  if (index.dtype != DType::i64)
    fail("index must have dtype i64, got {}", dtype_name(index.dtype));
  if (index.shape.size() != x.shape.size())
    fail("index {} must have the rank of x {}", shape_str(index.shape), shape_str(x.shape));
  if (x.shape.empty())
    fail("x must have rank >= 1");
  const int64_t dim =
      normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.shape.size()), "dim");
  for (std::size_t d = 0; d < x.shape.size(); ++d)
    if (static_cast<int64_t>(d) != dim && index.shape[d] > x.shape[d])
      fail("index {} exceeds x {} in dim {} (only dim {} may be larger)", shape_str(index.shape),
           shape_str(x.shape), d, dim);
  return {index.shape, x.dtype};
}

void gather_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape &xs = in[0].shape, &is = in[1].shape;
  const auto dim = static_cast<std::size_t>(
      normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(xs.size()), "dim"));
  const Shape xst = contiguous_strides(xs), ist = contiguous_strides(is);
  for (int64_t i = 0; i < out.size(); ++i) {
    const double v = in[1].data[i];
    if (!(v >= 0 && v < static_cast<double>(xs[dim])) || v != std::floor(v))
      fail("index value {} at element {} is outside [0, {}) (dim {} of x {})", v, i, xs[dim], dim,
           shape_str(xs));
    int64_t src = 0;
    for (std::size_t d = 0; d < is.size(); ++d) {
      const int64_t c = d == dim ? static_cast<int64_t>(v) : (i / ist[d]) % is[d];
      src += c * xst[d];
    }
    out.data[i] = in[0].data[src];
  }
}

// ----- diag ---------------------------------------------------------------------------------

ValueSpec diag_infer(const Attrs& at, std::span<const ValueSpec> in) {
  const Shape& x = in[0].shape;
  const int64_t k = attr_int(at, "diagonal", 0);
  if (x.size() == 1) {
    const int64_t n = checked_add(x[0], k < 0 ? -k : k);
    return {{n, n}, in[0].dtype};
  }
  if (x.size() == 2) {
    // The k-th diagonal of a rows x cols matrix: cols - k elements above, rows + k below.
    const int64_t len = k >= 0 ? std::min(x[0], x[1] - k) : std::min(x[0] + k, x[1]);
    if (len < 1)
      fail("diagonal {} lies outside x {}", k, shape_str(x));
    return {{len}, in[0].dtype};
  }
  fail("x must have rank 1 (builds a diagonal matrix) or 2 (takes a diagonal), got {} {}", x.size(),
       shape_str(x));
}

void diag_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t k = attr_int(at, "diagonal", 0);
  const int64_t r0 = k >= 0 ? 0 : -k, c0 = k >= 0 ? k : 0; // first element of the diagonal
  if (in[0].shape.size() == 1) {
    std::fill(out.data.begin(), out.data.end(), 0.0);
    const int64_t n = out.shape[1];
    for (int64_t i = 0; i < in[0].size(); ++i)
      out.data[(r0 + i) * n + c0 + i] = in[0].data[i];
    return;
  }
  const int64_t cols = in[0].shape[1];
  for (int64_t i = 0; i < out.size(); ++i)
    out.data[i] = in[0].data[(r0 + i) * cols + c0 + i];
}

} // namespace

void add_layout_ops(std::vector<OpDef>& ops) {
  OpDef reshape = make_op("reshape", 1, 1, {"shape"}, {"shape"});
  reshape.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    return ValueSpec{resolve_reshape(at, in[0].shape), in[0].dtype};
  };
  reshape.cost = move_cost;
  reshape.cpu = [](const Attrs&, std::span<const HostTensor> in, HostTensor& out) {
    out.data = in[0].data;
  };
  reshape.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("{}.reshape({})", n[0], attr_to_python(attr_value(at, "shape")));
  };
  ops.push_back(std::move(reshape));

  OpDef permute = make_op("permute", 1, 1, {"dims"}, {"dims"});
  permute.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    return permuted_spec(in[0], permutation(at, in[0].shape));
  };
  permute.cost = move_cost;
  permute.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    permute_copy(in[0], permutation(at, in[0].shape), out);
  };
  permute.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("{}.permute({}).contiguous()", n[0], attr_to_python(attr_value(at, "dims")));
  };
  ops.push_back(std::move(permute));

  OpDef transpose = make_op("transpose", 1, 1, {"dim0", "dim1"}, {"dim0", "dim1"});
  transpose.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    return permuted_spec(in[0], transposition(at, in[0].shape));
  };
  transpose.cost = move_cost;
  transpose.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    permute_copy(in[0], transposition(at, in[0].shape), out);
  };
  transpose.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("{}.transpose({}, {}).contiguous()", n[0], attr_int(at, "dim0"),
                       attr_int(at, "dim1"));
  };
  ops.push_back(std::move(transpose));

  OpDef slice = make_op("slice", 1, 1, {"dim", "start", "end", "step"}, {"dim", "start", "end"});
  slice.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    const SliceRange r = slice_range(at, in[0].shape);
    ValueSpec out = in[0];
    out.shape[static_cast<std::size_t>(r.dim)] = r.length();
    return out;
  };
  slice.cost = move_cost;
  slice.cpu = slice_cpu;
  slice.torch = slice_torch;
  ops.push_back(std::move(slice));

  OpDef mfc = make_op("masked_fill_causal", 1, 1, {"value"});
  mfc.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    require_rank(in[0], "x", 2, true);
    require_floating(in[0], "x");
    attr_double(at, "value", 0.0);
    return in[0];
  };
  mfc.cost = move_cost;
  mfc.cpu = masked_fill_causal_cpu;
  mfc.torch = [](const Attrs& at, std::span<const std::string> n) {
    const double value = attr_double(at, "value", -std::numeric_limits<double>::infinity());
    return fmt::format("{0}.masked_fill(torch.ones({0}.shape[-2], {0}.shape[-1], dtype=torch.bool, "
                       "device={0}.device).triu(1), {1})",
                       n[0], attr_to_python(AttrValue(value)));
  };
  ops.push_back(std::move(mfc));

  OpDef concat = make_op("concat", 1, k_max_joined_inputs, {"dim"}, {"dim"});
  concat.infer = concat_infer;
  concat.cost = move_cost;
  concat.cpu = concat_cpu;
  concat.torch = [](const Attrs& at, std::span<const std::string> n) {
    return joined_torch("cat", at, n);
  };
  ops.push_back(std::move(concat));

  OpDef stack = make_op("stack", 1, k_max_joined_inputs, {"dim"}, {"dim"});
  stack.infer = stack_infer;
  stack.cost = move_cost;
  stack.cpu = stack_cpu;
  stack.torch = [](const Attrs& at, std::span<const std::string> n) {
    return joined_torch("stack", at, n);
  };
  ops.push_back(std::move(stack));

  OpDef pad = make_op("pad", 1, 1, {"pad", "value"}, {"pad"});
  pad.infer = pad_infer;
  pad.cost = move_cost;
  pad.cpu = pad_cpu;
  pad.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.pad({}, {}{})", n[0], attr_to_python(attr_value(at, "pad")),
                       py_kwargs(at, {"value"}));
  };
  ops.push_back(std::move(pad));

  for (const bool lower : {true, false}) {
    OpDef tri = make_op(lower ? "tril" : "triu", 1, 1, {"diagonal"});
    tri.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
      require_rank(in[0], "x", 2, true);
      attr_int(at, "diagonal", 0);
      return in[0];
    };
    tri.cost = move_cost;
    tri.cpu = [lower](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
      triangle_cpu(lower, at, in, out);
    };
    tri.torch = [lower](const Attrs& at, std::span<const std::string> n) {
      return fmt::format("torch.{}({}{})", lower ? "tril" : "triu", n[0],
                         py_kwargs(at, {"diagonal"}));
    };
    ops.push_back(std::move(tri));
  }

  OpDef flip = make_op("flip", 1, 1, {"dims"}, {"dims"});
  flip.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    flip_dims(at, in[0].shape);
    return in[0];
  };
  flip.cost = move_cost;
  flip.cpu = flip_cpu;
  flip.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.flip({}, dims={})", n[0],
                       attr_to_python(attr_ints(at, "dims", 0, {})));
  };
  ops.push_back(std::move(flip));

  OpDef roll = make_op("roll", 1, 1, {"shifts", "dims"}, {"shifts"});
  roll.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    if (in[0].shape.empty())
      fail("x must have rank >= 1");
    roll_shifts(at, in[0].shape);
    return in[0];
  };
  roll.cost = move_cost;
  roll.cpu = roll_cpu;
  roll.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.roll({}, shifts={}{})", n[0],
                       attr_to_python(attr_value(at, "shifts")), py_kwargs(at, {"dims"}));
  };
  ops.push_back(std::move(roll));

  OpDef gather = make_op("gather", 2, 2, {"dim"}, {"dim"});
  gather.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    require_floating(in[0], "x");
    return gather_infer(at, in);
  };
  gather.cost = move_cost;
  gather.cpu = gather_cpu;
  gather.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.gather({}, {}, {})", n[0], attr_int(at, "dim"), n[1]);
  };
  gather.index_inputs = {1};
  ops.push_back(std::move(gather));

  OpDef diag = make_op("diag", 1, 1, {"diagonal"});
  diag.infer = diag_infer;
  diag.cost = move_cost;
  diag.cpu = diag_cpu;
  diag.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.diag({}{})", n[0], py_kwargs(at, {"diagonal"}));
  };
  ops.push_back(std::move(diag));
}

} // namespace kb::ops
