// Shared helpers of the op library: dim normalisation, broadcasting, argument checks, costs.
#include <algorithm>

#include "ops_internal.hpp"

namespace kb::ops {

OpDef make_op(std::string name, int min_inputs, int max_inputs, std::vector<std::string> attrs,
              std::vector<std::string> required) {
  OpDef d;
  d.name = std::move(name);
  d.min_inputs = min_inputs;
  d.max_inputs = max_inputs;
  d.attrs = std::move(attrs);
  d.required_attrs = std::move(required);
  return d;
}

int64_t normalize_dim(int64_t dim, int64_t rank, std::string_view attr) {
  if (rank == 0)
    fail("{} {} is out of range for a tensor of rank 0", attr, dim);
  if (dim < -rank || dim >= rank)
    fail("{} {} is out of range for a tensor of rank {} (expected {}..{})", attr, dim, rank, -rank,
         rank - 1);
  return dim < 0 ? dim + rank : dim;
}

std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t rank,
                                    std::string_view attr) {
  if (dims.empty())
    fail("{} must name at least one dim", attr);
  std::vector<int64_t> out;
  for (int64_t d : dims) {
    int64_t n = normalize_dim(d, rank, attr);
    if (std::find(out.begin(), out.end(), n) != out.end())
      fail("{} {} names dim {} twice", attr, fmt::format("[{}]", fmt::join(dims, ", ")), n);
    out.push_back(n);
  }
  return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    // Align from the right: missing leading dims count as 1.
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      fail("shapes {} and {} do not broadcast (dim {}: {} vs {})", shape_str(a), shape_str(b), i,
           da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size())
    return false;
  const std::size_t off = to.size() - from.size();
  for (std::size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[off + i])
      return false;
  return true;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape st(out.size(), 0);
  const Shape cs = contiguous_strides(in);
  const std::size_t off = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i)
    st[off + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

int64_t prod(const Shape& s, std::size_t begin, std::size_t end) {
  int64_t p = 1;
  for (std::size_t i = begin; i < end && i < s.size(); ++i)
    p = checked_mul(p, s[i]);
  return p;
}

void require_floating(const ValueSpec& v, std::string_view what) {
  if (!is_floating(v.dtype))
    fail("{} must have a floating dtype (f32, f16, bf16, f64), got {}", what, dtype_name(v.dtype));
}

void require_same_dtype(std::span<const ValueSpec> in, std::span<const char* const> names) {
  for (std::size_t i = 1; i < in.size(); ++i)
    if (in[i].dtype != in[0].dtype)
      fail("dtypes differ: {} is {}, {} is {}", names[0], dtype_name(in[0].dtype),
           i < names.size() ? names[i] : "an input", dtype_name(in[i].dtype));
}

void require_rank(const ValueSpec& v, std::string_view what, std::size_t rank, bool at_least) {
  const bool ok = at_least ? v.shape.size() >= rank : v.shape.size() == rank;
  if (!ok)
    fail("{} must have rank {}{}, got {} {}", what, at_least ? ">= " : "", rank, v.shape.size(),
         shape_str(v.shape));
}

void require_at_least(const std::vector<int64_t>& v, int64_t min_value, std::string_view attr) {
  for (int64_t x : v)
    if (x < min_value) {
      // A single int broadcast to every spatial dim reads best as itself.
      const bool uniform = std::all_of(v.begin(), v.end(), [&](int64_t y) { return y == x; });
      if (uniform)
        fail("{} must be >= {}, got {}", attr, min_value, x);
      fail("{} must be >= {}, got {} in [{}]", attr, min_value, x, fmt::join(v, ", "));
    }
}

const AttrValue& attr_value(const Attrs& a, std::string_view key) {
  auto it = a.find(key);
  if (it == a.end())
    fail("missing attribute '{}'", key);
  return it->second;
}

double bytes_of(const ValueSpec& v) {
  return static_cast<double>(numel(v.shape)) * static_cast<double>(dtype_size(v.dtype));
}

OpCost io_cost(std::span<const ValueSpec> in, const ValueSpec& out, double flops) {
  OpCost c;
  c.flops = flops;
  for (const auto& v : in)
    c.bytes += bytes_of(v);
  c.bytes += bytes_of(out);
  return c;
}

std::vector<int64_t> reduce_index_map(const Shape& shape, const std::vector<int64_t>& dims) {
  const Shape kept = reduced_shape(shape, dims, true);
  const Shape in_strides = contiguous_strides(shape);
  const Shape kept_strides = contiguous_strides(kept);
  const int64_t n = numel(shape);
  std::vector<int64_t> map(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (std::size_t d = 0; d < shape.size(); ++d)
      if (kept[d] != 1) // reduced dims (and unit dims) contribute nothing
        o += ((i / in_strides[d]) % shape[d]) * kept_strides[d];
    map[static_cast<std::size_t>(i)] = o;
  }
  return map;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), static_cast<int64_t>(d)) != dims.end();
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

std::string join_names(std::span<const std::string> names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string py_kwargs(const Attrs& a, std::initializer_list<std::string_view> keys) {
  std::string s;
  for (auto k : keys) {
    auto it = a.find(k);
    if (it != a.end())
      s += fmt::format(", {}={}", k, attr_to_python(it->second));
  }
  return s;
}

} // namespace kb::ops
