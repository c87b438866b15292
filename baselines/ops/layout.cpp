// Layout ops: reshape, permute, transpose, slice, masked_fill_causal.
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
  int64_t dim, start, end;
};

SliceRange slice_range(const Attrs& at, const Shape& x) {
  const int64_t dim = normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.size()), "dim");
  const int64_t size = x[static_cast<std::size_t>(dim)];
  const int64_t start_attr = attr_int(at, "start"), end_attr = attr_int(at, "end");
  const int64_t start = start_attr < 0 ? start_attr + size : start_attr;
  const int64_t end = end_attr < 0 ? end_attr + size : end_attr;
  if (start < 0 || start >= size)
    fail("start {} is outside dim {} of size {}", start_attr, dim, size);
  if (end <= start || end > size)
    fail("end {} must lie after start {} and within dim {} of size {}", end_attr, start_attr, dim,
         size);
  return {dim, start, end};
}

void slice_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const SliceRange r = slice_range(at, in[0].shape);
  const auto d = static_cast<std::size_t>(r.dim);
  const int64_t outer = prod(in[0].shape, 0, d),
                inner = prod(in[0].shape, d + 1, in[0].shape.size());
  const int64_t size = in[0].shape[d], len = r.end - r.start;
  for (int64_t o = 0; o < outer; ++o)
    std::copy_n(in[0].data.begin() + (o * size + r.start) * inner, len * inner,
                out.data.begin() + o * len * inner);
}

std::string slice_torch(const Attrs& at, std::span<const std::string> n) {
  // Python slicing needs the dim's position: count ':' from the front, or from the back after
  // '...'.
  const int64_t dim = attr_int(at, "dim");
  const std::string range = fmt::format("{}:{}", attr_int(at, "start"), attr_int(at, "end"));
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

  OpDef slice = make_op("slice", 1, 1, {"dim", "start", "end"}, {"dim", "start", "end"});
  slice.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    const SliceRange r = slice_range(at, in[0].shape);
    ValueSpec out = in[0];
    out.shape[static_cast<std::size_t>(r.dim)] = r.end - r.start;
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
}

} // namespace kb::ops
