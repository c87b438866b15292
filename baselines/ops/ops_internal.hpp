// Helpers shared by the op library's implementation files: errors, dims, broadcasting, costs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "op.hpp"

namespace kb::ops {

// Throws kb::Error with a formatted message. The registry prefixes the op's name.
template <class... A> [[noreturn]] void fail(fmt::format_string<A...> f, A&&... args) {
  throw Error(fmt::format(f, std::forward<A>(args)...));
}

// A new op definition with its arity and attribute names; callbacks are filled in by the caller.
OpDef make_op(std::string name, int min_inputs, int max_inputs, std::vector<std::string> attrs,
              std::vector<std::string> required = {});

// Each implementation file appends its ops, in the order of docs/ops.md.
void add_linalg_ops(std::vector<OpDef>& ops);
void add_conv_ops(std::vector<OpDef>& ops);
void add_pool_ops(std::vector<OpDef>& ops);
void add_norm_ops(std::vector<OpDef>& ops);
void add_elementwise_ops(std::vector<OpDef>& ops);
void add_reduce_ops(std::vector<OpDef>& ops);
void add_loss_ops(std::vector<OpDef>& ops);
void add_layout_ops(std::vector<OpDef>& ops);
void add_recurrent_ops(std::vector<OpDef>& ops);

// ----- dims and shapes ------------------------------------------------------------------------

// Maps a possibly negative dim of attribute `attr` into [0, rank); throws when out of range.
int64_t normalize_dim(int64_t dim, int64_t rank, std::string_view attr);
// Normalised, distinct dims of a list attribute; throws on duplicates or out-of-range entries.
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t rank,
                                    std::string_view attr);
// Numpy broadcasting of two shapes; throws naming both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// True when `from` broadcasts to exactly `to`.
bool broadcasts_to(const Shape& from, const Shape& to);
// Element strides of `in` viewed with the shape `out` (0 along broadcast dims).
Shape broadcast_strides(const Shape& in, const Shape& out);
// Product of s[begin, end).
int64_t prod(const Shape& s, std::size_t begin, std::size_t end);

// ----- argument checks ------------------------------------------------------------------------

// Throws unless `v` has a floating dtype; `what` names the input ("x", "weight").
void require_floating(const ValueSpec& v, std::string_view what);
// Throws unless every input shares the dtype of the first; names the offending input.
void require_same_dtype(std::span<const ValueSpec> in, std::span<const char* const> names);
// Throws unless `v` has exactly rank `rank` (or at least `rank` when `at_least`).
void require_rank(const ValueSpec& v, std::string_view what, std::size_t rank,
                  bool at_least = false);
// A per-spatial-dim attribute of a convolution or pooling op as PyTorch takes it: one int for every
// dim, a list of one int (likewise), or a list of `sd` ints; `fallback` when absent. Throws naming
// the attribute on any other length or type.
std::vector<int64_t> spatial_ints(const Attrs& a, std::string_view key, std::size_t sd,
                                  std::vector<int64_t> fallback);
// Throws unless every entry of a list attribute is >= min_value.
void require_at_least(const std::vector<int64_t>& v, int64_t min_value, std::string_view attr);

// The raw value of an attribute; throws kb::Error("missing attribute 'key'") when absent.
const AttrValue& attr_value(const Attrs& a, std::string_view key);

// ----- costs ----------------------------------------------------------------------------------

double bytes_of(const ValueSpec& v);
// Every input read once plus the output written once, with the given flops.
OpCost io_cost(std::span<const ValueSpec> in, const ValueSpec& out, double flops);

// ----- iteration ------------------------------------------------------------------------------

// Calls fn(offset_a, offset_b, out_index) for every output element of a broadcast binary op.
template <class Fn>
void for_each_broadcast(const Shape& a, const Shape& b, const Shape& out, Fn fn) {
  const Shape sa = broadcast_strides(a, out);
  const Shape sb = broadcast_strides(b, out);
  const std::size_t rank = out.size();
  const int64_t n = numel(out);
  std::vector<int64_t> idx(rank, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(oa, ob, i);
    for (std::size_t d = rank; d-- > 0;) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < out[d])
        break;
      oa -= sa[d] * out[d];
      ob -= sb[d] * out[d];
      idx[d] = 0;
    }
  }
}

// For every element of a tensor of shape `shape`, the index of its slot in the tensor reduced over
// `dims` (normalised, distinct); the reduced tensor keeps the other dims in order.
std::vector<int64_t> reduce_index_map(const Shape& shape, const std::vector<int64_t>& dims);
// Shape after reducing `dims` (kept as 1 when keepdim).
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim);

// Python rendering of a list of names: "x, w, b".
std::string join_names(std::span<const std::string> names);
// ", key=value" for each attribute present in `a` among `keys`, in that order.
std::string py_kwargs(const Attrs& a, std::initializer_list<std::string_view> keys);

} // namespace kb::ops
