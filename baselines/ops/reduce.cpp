// Reductions and scans: sum, mean, max, min, prod, logsumexp, argmax, argmin, softmax,
// log_softmax, cumsum, cumprod.
#include <cmath>
#include <limits>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

OpCost per_input_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  return io_cost(in, out, static_cast<double>(numel(in[0].shape)));
}

// Splits a tensor around one dim: outer blocks, the dim's extent, inner stride.
struct Axis {
  int64_t outer, extent, inner;
};
Axis split_axis(const Shape& s, int64_t dim) {
  const auto d = static_cast<std::size_t>(dim);
  return {prod(s, 0, d), s[d], prod(s, d + 1, s.size())};
}

std::string keepdim_kw(const Attrs& at) {
  return attr_bool(at, "keepdim", false) ? ", keepdim=True" : "";
}

// ----- sum, mean, max, min ------------------------------------------------------------------

enum class ReduceKind { sum, mean, max, min };

std::vector<int64_t> reduce_dims(const Attrs& at, const Shape& x) {
  return normalize_dims(attr_ints(at, "dim", 0, {}), static_cast<int64_t>(x.size()), "dim");
}

ValueSpec reduce_infer(const Attrs& at, std::span<const ValueSpec> in) {
  require_floating(in[0], "x");
  const auto dims = reduce_dims(at, in[0].shape);
  return {reduced_shape(in[0].shape, dims, attr_bool(at, "keepdim", false)), in[0].dtype};
}

void reduce_cpu(ReduceKind kind, const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const auto dims = reduce_dims(at, in[0].shape);
  const auto map = reduce_index_map(in[0].shape, dims);
  const double init = kind == ReduceKind::max   ? -std::numeric_limits<double>::infinity()
                      : kind == ReduceKind::min ? std::numeric_limits<double>::infinity()
                                                : 0.0;
  std::fill(out.data.begin(), out.data.end(), init);
  for (int64_t i = 0; i < in[0].size(); ++i) {
    double& o = out.data[map[i]];
    const double v = in[0].data[i];
    switch (kind) {
    case ReduceKind::sum:
    case ReduceKind::mean:
      o += v;
      break;
    // NaN propagates, as torch.amax/amin.
    case ReduceKind::max:
      if (v > o || std::isnan(v))
        o = std::isnan(o) ? o : v;
      break;
    case ReduceKind::min:
      if (v < o || std::isnan(v))
        o = std::isnan(o) ? o : v;
      break;
    }
  }
  if (kind == ReduceKind::mean && out.size() > 0) {
    const double count = static_cast<double>(in[0].size() / out.size());
    for (auto& o : out.data)
      o /= count;
  }
}

OpDef reduce_def(const char* name, const char* torch_fn, ReduceKind kind) {
  OpDef d = make_op(name, 1, 1, {"dim", "keepdim"}, {"dim"});
  d.infer = reduce_infer;
  d.cost = per_input_cost;
  d.cpu = [kind](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    reduce_cpu(kind, at, in, out);
  };
  d.torch = [torch_fn](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("{}({}, dim={}{})", torch_fn, n[0], attr_to_python(attr_value(at, "dim")),
                       keepdim_kw(at));
  };
  d.cancellation_sensitive = kind == ReduceKind::sum || kind == ReduceKind::mean;
  return d;
}

// ----- prod, logsumexp ----------------------------------------------------------------------

// torch.prod reduces one dim (an int, not a list).
OpDef prod_def() {
  OpDef d = make_op("prod", 1, 1, {"dim", "keepdim"}, {"dim"});
  d.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    require_floating(in[0], "x");
    const int64_t dim =
        normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(in[0].shape.size()), "dim");
    return ValueSpec{reduced_shape(in[0].shape, {dim}, attr_bool(at, "keepdim", false)),
                     in[0].dtype};
  };
  d.cost = per_input_cost;
  d.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    const int64_t dim =
        normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(in[0].shape.size()), "dim");
    const auto map = reduce_index_map(in[0].shape, {dim});
    std::fill(out.data.begin(), out.data.end(), 1.0);
    for (int64_t i = 0; i < in[0].size(); ++i)
      out.data[map[i]] *= in[0].data[i];
  };
  d.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.prod({}, dim={}{})", n[0], attr_int(at, "dim"), keepdim_kw(at));
  };
  return d;
}

// log(sum(exp(x))) over `dim`, stably: the maximum m is subtracted before exp and added back, so
// no exp overflows; an all -inf slice gives -inf, a +inf gives +inf, a NaN gives NaN.
void logsumexp_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const auto dims = reduce_dims(at, in[0].shape);
  const auto map = reduce_index_map(in[0].shape, dims);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> mx(out.data.size(), -inf);
  std::vector<bool> nan(out.data.size(), false);
  for (int64_t i = 0; i < in[0].size(); ++i) {
    const double v = in[0].data[i];
    nan[map[i]] = nan[map[i]] || std::isnan(v);
    mx[map[i]] = std::max(mx[map[i]], v);
  }
  std::vector<double> sum(out.data.size(), 0.0);
  for (int64_t i = 0; i < in[0].size(); ++i)
    if (std::isfinite(mx[map[i]]))
      sum[map[i]] += std::exp(in[0].data[i] - mx[map[i]]);
  for (std::size_t o = 0; o < out.data.size(); ++o)
    out.data[o] = nan[o]                 ? std::numeric_limits<double>::quiet_NaN()
                  : std::isfinite(mx[o]) ? mx[o] + std::log(sum[o])
                                         : mx[o];
}

OpDef logsumexp_def() {
  OpDef d = make_op("logsumexp", 1, 1, {"dim", "keepdim"}, {"dim"});
  d.infer = reduce_infer;
  d.cost = per_input_cost;
  d.cpu = logsumexp_cpu;
  d.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.logsumexp({}, dim={}{})", n[0], attr_to_python(attr_value(at, "dim")),
                       keepdim_kw(at));
  };
  return d;
}

// ----- argmax, argmin -----------------------------------------------------------------------

ValueSpec arg_infer(const Attrs& at, std::span<const ValueSpec> in) {
  require_floating(in[0], "x");
  const int64_t dim =
      normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(in[0].shape.size()), "dim");
  if (in[0].shape[static_cast<std::size_t>(dim)] == 0)
    fail("dim {} of x {} is empty", dim, shape_str(in[0].shape));
  return {reduced_shape(in[0].shape, {dim}, attr_bool(at, "keepdim", false)), DType::i64};
}

void arg_cpu(bool is_max, const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& x = in[0].shape;
  const Axis ax =
      split_axis(x, normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.size()), "dim"));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t i = 0; i < ax.inner; ++i) {
      const double* p = in[0].data.data() + o * ax.extent * ax.inner + i;
      int64_t best = 0;
      // Strict comparison keeps the first index on ties; the first NaN wins, as in PyTorch.
      for (int64_t k = 1; k < ax.extent && !std::isnan(p[best * ax.inner]); ++k) {
        const double v = p[k * ax.inner], b = p[best * ax.inner];
        if (std::isnan(v) || (is_max ? v > b : v < b))
          best = k;
      }
      out.data[o * ax.inner + i] = static_cast<double>(best);
    }
}

OpDef arg_def(const char* name, bool is_max) {
  OpDef d = make_op(name, 1, 1, {"dim", "keepdim"}, {"dim"});
  d.infer = arg_infer;
  d.cost = per_input_cost;
  d.cpu = [is_max](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    arg_cpu(is_max, at, in, out);
  };
  d.torch = [name](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.{}({}, dim={}{})", name, n[0], attr_int(at, "dim"), keepdim_kw(at));
  };
  return d;
}

// ----- softmax, log_softmax, cumsum ---------------------------------------------------------

ValueSpec along_dim_infer(const Attrs& at, std::span<const ValueSpec> in) {
  require_floating(in[0], "x");
  normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(in[0].shape.size()), "dim");
  return in[0];
}

enum class ScanKind { softmax, log_softmax, cumsum, cumprod };

void along_dim_cpu(ScanKind kind, const Attrs& at, std::span<const HostTensor> in,
                   HostTensor& out) {
  const Shape& x = in[0].shape;
  const Axis ax =
      split_axis(x, normalize_dim(attr_int(at, "dim"), static_cast<int64_t>(x.size()), "dim"));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t i = 0; i < ax.inner; ++i) {
      const int64_t base = o * ax.extent * ax.inner + i;
      const double* p = in[0].data.data() + base;
      double* q = out.data.data() + base;
      if (kind == ScanKind::cumsum) {
        double acc = 0.0;
        for (int64_t k = 0; k < ax.extent; ++k)
          q[k * ax.inner] = acc += p[k * ax.inner];
        continue;
      }
      if (kind == ScanKind::cumprod) {
        double acc = 1.0;
        for (int64_t k = 0; k < ax.extent; ++k)
          q[k * ax.inner] = acc *= p[k * ax.inner];
        continue;
      }
      // Subtracting the maximum keeps exp from overflowing.
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < ax.extent; ++k)
        mx = std::isnan(p[k * ax.inner]) ? p[k * ax.inner] : std::max(mx, p[k * ax.inner]);
      double sum = 0.0;
      for (int64_t k = 0; k < ax.extent; ++k)
        sum += std::exp(p[k * ax.inner] - mx);
      for (int64_t k = 0; k < ax.extent; ++k) {
        const double z = p[k * ax.inner] - mx;
        q[k * ax.inner] = kind == ScanKind::softmax ? std::exp(z) / sum : z - std::log(sum);
      }
    }
}

OpDef along_dim_def(const char* name, ScanKind kind) {
  OpDef d = make_op(name, 1, 1, {"dim"}, {"dim"});
  d.infer = along_dim_infer;
  d.cost = per_input_cost;
  d.cpu = [kind](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    along_dim_cpu(kind, at, in, out);
  };
  d.torch = [name](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.{}({}, dim={})", name, n[0], attr_int(at, "dim"));
  };
  d.cancellation_sensitive = kind != ScanKind::cumprod;
  return d;
}

} // namespace

void add_reduce_ops(std::vector<OpDef>& ops) {
  ops.push_back(reduce_def("sum", "torch.sum", ReduceKind::sum));
  ops.push_back(reduce_def("mean", "torch.mean", ReduceKind::mean));
  ops.push_back(reduce_def("max", "torch.amax", ReduceKind::max));
  ops.push_back(reduce_def("min", "torch.amin", ReduceKind::min));
  ops.push_back(prod_def());
  ops.push_back(logsumexp_def());
  ops.push_back(arg_def("argmax", true));
  ops.push_back(arg_def("argmin", false));
  ops.push_back(along_dim_def("softmax", ScanKind::softmax));
  ops.push_back(along_dim_def("log_softmax", ScanKind::log_softmax));
  ops.push_back(along_dim_def("cumsum", ScanKind::cumsum));
  ops.push_back(along_dim_def("cumprod", ScanKind::cumprod));
}

} // namespace kb::ops
