// Linear algebra ops: matmul, linear, scaled_dot_product_attention.
#include <cmath>
#include <limits>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

// Last two dims of a matrix operand after the optional transpose.
struct MatDims {
  int64_t rows, cols;
};
MatDims mat_dims(const Shape& s, bool transposed) {
  const int64_t r = s[s.size() - 2], c = s[s.size() - 1];
  return transposed ? MatDims{c, r} : MatDims{r, c};
}
Shape batch_of(const Shape& s) {
  return Shape(s.begin(), s.end() - 2);
}

ValueSpec matmul_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"a", "b"};
  require_rank(in[0], "a", 2, true);
  require_rank(in[1], "b", 2, true);
  require_floating(in[0], "a");
  require_same_dtype(in, k_names);
  const bool ta = attr_bool(at, "transpose_a", false);
  const bool tb = attr_bool(at, "transpose_b", false);
  const MatDims a = mat_dims(in[0].shape, ta), b = mat_dims(in[1].shape, tb);
  if (a.cols != b.rows)
    fail("inner dimensions differ: a is {}{}, b is {}{}", shape_str(in[0].shape),
         ta ? " (transpose_a)" : "", shape_str(in[1].shape), tb ? " (transpose_b)" : "");
  Shape out;
  try {
    out = broadcast_shapes(batch_of(in[0].shape), batch_of(in[1].shape));
  } catch (const Error& e) {
    fail("batch dims: {}", e.what());
  }
  out.push_back(a.rows);
  out.push_back(b.cols);
  return {out, in[0].dtype};
}

OpCost matmul_cost(const Attrs& at, std::span<const ValueSpec> in, const ValueSpec& out) {
  const MatDims a = mat_dims(in[0].shape, attr_bool(at, "transpose_a", false));
  const double batch = static_cast<double>(prod(out.shape, 0, out.shape.size() - 2));
  const double m = static_cast<double>(out.shape[out.shape.size() - 2]);
  const double n = static_cast<double>(out.shape.back());
  return io_cost(in, out, 2.0 * batch * m * n * static_cast<double>(a.cols));
}

void matmul_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const bool ta = attr_bool(at, "transpose_a", false);
  const bool tb = attr_bool(at, "transpose_b", false);
  const MatDims a = mat_dims(in[0].shape, ta), b = mat_dims(in[1].shape, tb);
  const int64_t m_dim = a.rows, k_dim = a.cols, n_dim = b.cols;
  const Shape out_batch = batch_of(out.shape);
  std::vector<double> row(static_cast<std::size_t>(n_dim));
  for_each_broadcast(batch_of(in[0].shape), batch_of(in[1].shape), out_batch,
                     [&](int64_t ia, int64_t ib, int64_t io) {
                       const double* pa = in[0].data.data() + ia * m_dim * k_dim;
                       const double* pb = in[1].data.data() + ib * k_dim * n_dim;
                       double* po = out.data.data() + io * m_dim * n_dim;
                       for (int64_t i = 0; i < m_dim; ++i) {
                         std::fill(row.begin(), row.end(), 0.0);
                         for (int64_t k = 0; k < k_dim; ++k) {
                           const double av = ta ? pa[k * m_dim + i] : pa[i * k_dim + k];
                           for (int64_t j = 0; j < n_dim; ++j)
                             row[j] += av * (tb ? pb[j * k_dim + k] : pb[k * n_dim + j]);
                         }
                         std::copy(row.begin(), row.end(), po + i * n_dim);
                       }
                     });
}

std::string matmul_torch(const Attrs& at, std::span<const std::string> n) {
  const std::string a = attr_bool(at, "transpose_a", false) ? n[0] + ".transpose(-2, -1)" : n[0];
  const std::string b = attr_bool(at, "transpose_b", false) ? n[1] + ".transpose(-2, -1)" : n[1];
  return fmt::format("torch.matmul({}, {})", a, b);
}

ValueSpec linear_infer(const Attrs&, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight", "bias"};
  require_rank(in[0], "x", 1, true);
  require_rank(in[1], "weight", 2);
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (x.back() != w[1])
    fail("in_features differ: x is {}, weight is {} (expected [out, {}])", shape_str(x),
         shape_str(w), x.back());
  if (in.size() == 3 && in[2].shape != Shape{w[0]})
    fail("bias must have shape [{}], got {}", w[0], shape_str(in[2].shape));
  Shape out = x;
  out.back() = w[0];
  return {out, in[0].dtype};
}

OpCost linear_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  const double k = static_cast<double>(in[0].shape.back());
  return io_cost(in, out, 2.0 * static_cast<double>(numel(out.shape)) * k);
}

void linear_cpu(const Attrs&, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t k_dim = in[0].shape.back(), n_dim = in[1].shape[0];
  const int64_t rows = in[0].size() / std::max<int64_t>(k_dim, 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n_dim; ++j) {
      double acc = in.size() == 3 ? in[2].data[j] : 0.0;
      for (int64_t k = 0; k < k_dim; ++k)
        acc += in[0].data[r * k_dim + k] * in[1].data[j * k_dim + k];
      out.data[r * n_dim + j] = acc;
    }
}

ValueSpec sdpa_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"q", "k", "v"};
  require_rank(in[0], "q", 2, true);
  require_rank(in[1], "k", 2, true);
  require_rank(in[2], "v", 2, true);
  require_floating(in[0], "q");
  require_same_dtype(in, k_names);
  const Shape &q = in[0].shape, &k = in[1].shape, &v = in[2].shape;
  if (q.back() != k.back())
    fail("embedding dims differ: q is {}, k is {}", shape_str(q), shape_str(k));
  if (k[k.size() - 2] != v[v.size() - 2])
    fail("sequence lengths differ: k is {}, v is {}", shape_str(k), shape_str(v));
  attr_bool(at, "causal", false);
  attr_double(at, "scale", 1.0);
  Shape out;
  try {
    out = broadcast_shapes(broadcast_shapes(batch_of(q), batch_of(k)), batch_of(v));
  } catch (const Error& e) {
    fail("batch dims: {}", e.what());
  }
  out.push_back(q[q.size() - 2]);
  out.push_back(v.back());
  return {out, in[0].dtype};
}

OpCost sdpa_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  const Shape &q = in[0].shape, &k = in[1].shape;
  const double batch = static_cast<double>(prod(out.shape, 0, out.shape.size() - 2));
  const double l = static_cast<double>(q[q.size() - 2]), s = static_cast<double>(k[k.size() - 2]);
  const double e = static_cast<double>(q.back()), ev = static_cast<double>(out.shape.back());
  // QK^T and PV, plus one flop per score for the softmax.
  return io_cost(in, out, batch * (2.0 * l * s * e + 2.0 * l * s * ev + l * s));
}

void sdpa_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape &qs = in[0].shape, &ks = in[1].shape;
  const int64_t l_dim = qs[qs.size() - 2], e_dim = qs.back(), s_dim = ks[ks.size() - 2];
  const int64_t ev_dim = out.shape.back();
  const bool causal = attr_bool(at, "causal", false);
  const double scale = attr_double(at, "scale", 1.0 / std::sqrt(static_cast<double>(e_dim)));
  const Shape out_batch = batch_of(out.shape);
  const Shape sq = broadcast_strides(batch_of(qs), out_batch);
  const Shape sk = broadcast_strides(batch_of(ks), out_batch);
  const Shape sv = broadcast_strides(batch_of(in[2].shape), out_batch);
  const Shape so = contiguous_strides(out_batch);
  std::vector<double> p(static_cast<std::size_t>(s_dim));
  for (int64_t b = 0; b < numel(out_batch); ++b) {
    int64_t oq = 0, ok = 0, ov = 0;
    for (std::size_t d = 0; d < out_batch.size(); ++d) {
      const int64_t i = (b / so[d]) % out_batch[d];
      oq += i * sq[d];
      ok += i * sk[d];
      ov += i * sv[d];
    }
    const double* q = in[0].data.data() + oq * l_dim * e_dim;
    const double* k = in[1].data.data() + ok * s_dim * e_dim;
    const double* v = in[2].data.data() + ov * s_dim * ev_dim;
    double* o = out.data.data() + b * l_dim * ev_dim;
    for (int64_t i = 0; i < l_dim; ++i) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < s_dim; ++j) {
        double acc = 0.0;
        for (int64_t e = 0; e < e_dim; ++e)
          acc += q[i * e_dim + e] * k[j * e_dim + e];
        // Causal attention keeps keys j <= i (top-left aligned, as PyTorch).
        p[j] = causal && j > i ? -std::numeric_limits<double>::infinity() : acc * scale;
        mx = std::max(mx, p[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < s_dim; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      for (int64_t c = 0; c < ev_dim; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < s_dim; ++j)
          acc += p[j] * v[j * ev_dim + c];
        o[i * ev_dim + c] = acc / sum;
      }
    }
  }
}

std::string sdpa_torch(const Attrs& at, std::span<const std::string> n) {
  std::string s = fmt::format("F.scaled_dot_product_attention({}, {}, {}", n[0], n[1], n[2]);
  if (attr_bool(at, "causal", false))
    s += ", is_causal=True";
  if (at.contains("scale"))
    s += fmt::format(", scale={}", attr_to_python(attr_double(at, "scale")));
  return s + ")";
}

} // namespace

void add_linalg_ops(std::vector<OpDef>& ops) {
  OpDef mm = make_op("matmul", 2, 2, {"transpose_a", "transpose_b"});
  mm.infer = matmul_infer;
  mm.cost = matmul_cost;
  mm.cpu = matmul_cpu;
  mm.torch = matmul_torch;
  ops.push_back(std::move(mm));

  OpDef lin = make_op("linear", 2, 3, {});
  lin.infer = linear_infer;
  lin.cost = linear_cost;
  lin.cpu = linear_cpu;
  lin.torch = [](const Attrs&, std::span<const std::string> n) {
    return fmt::format("F.linear({})", join_names(n));
  };
  ops.push_back(std::move(lin));

  OpDef sdpa = make_op("scaled_dot_product_attention", 3, 3, {"causal", "scale"});
  sdpa.infer = sdpa_infer;
  sdpa.cost = sdpa_cost;
  sdpa.cpu = sdpa_cpu;
  sdpa.torch = sdpa_torch;
  sdpa.cancellation_sensitive = true;
  ops.push_back(std::move(sdpa));
}

} // namespace kb::ops
