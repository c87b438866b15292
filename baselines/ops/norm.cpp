// Normalisation ops: layer_norm, rms_norm, batch_norm (inference), batch_norm_train (batch
// statistics), group_norm, instance_norm.
#include <cmath>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

constexpr double k_default_eps = 1e-5;

double eps_of(const Attrs& at) {
  const double eps = attr_double(at, "eps", k_default_eps);
  if (!(eps >= 0.0))
    fail("eps must be >= 0, got {}", eps);
  return eps;
}

// Normalises `count` contiguous values in place with biased variance (two passes, so that a large
// common offset does not cancel the variance away).
void normalize_span(double* v, int64_t count, double eps) {
  double mean = 0.0;
  for (int64_t i = 0; i < count; ++i)
    mean += v[i];
  mean /= static_cast<double>(count);
  double var = 0.0;
  for (int64_t i = 0; i < count; ++i)
    var += (v[i] - mean) * (v[i] - mean);
  var /= static_cast<double>(count);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < count; ++i)
    v[i] = (v[i] - mean) * inv;
}

// Applies per-channel weight/bias (inputs `first` and `first + 1` when present) to [N, C, rest].
void channel_affine(std::span<const HostTensor> in, std::size_t first, HostTensor& out) {
  const int64_t n = out.shape[0], c = out.shape[1];
  const int64_t rest = prod(out.shape, 2, out.shape.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const double w = in.size() > first ? in[first].data[ch] : 1.0;
      const double b = in.size() > first + 1 ? in[first + 1].data[ch] : 0.0;
      double* v = out.data.data() + (i * c + ch) * rest;
      for (int64_t r = 0; r < rest; ++r)
        v[r] = v[r] * w + b;
    }
}

void require_channel_params(std::span<const ValueSpec> in, std::size_t first, int64_t c,
                            std::span<const char* const> names) {
  for (std::size_t i = first; i < in.size(); ++i)
    if (in[i].shape != Shape{c})
      fail("{} must have shape [{}] (the channels of x {}), got {}", names[i], c,
           shape_str(in[0].shape), shape_str(in[i].shape));
}

OpCost norm_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  return io_cost(in, out, 8.0 * static_cast<double>(numel(in[0].shape)));
}

// ----- layer_norm ---------------------------------------------------------------------------

Shape normalized_shape(const Attrs& at) {
  return attr_ints(at, "normalized_shape", 0, {});
}

ValueSpec layer_norm_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight", "bias"};
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  const Shape ns = normalized_shape(at);
  const Shape& x = in[0].shape;
  if (ns.empty())
    fail("normalized_shape must not be empty");
  if (ns.size() > x.size() || !std::equal(ns.begin(), ns.end(), x.end() - ns.size()))
    fail("normalized_shape {} must equal the last dims of x {}", shape_str(ns), shape_str(x));
  for (std::size_t i = 1; i < in.size(); ++i)
    if (in[i].shape != ns)
      fail("{} must have shape {} (normalized_shape), got {}", k_names[i], shape_str(ns),
           shape_str(in[i].shape));
  return in[0];
}

void layer_norm_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t inner = numel(normalized_shape(at));
  const double eps = eps_of(at);
  out.data = in[0].data;
  for (int64_t r = 0; r * inner < out.size(); ++r) {
    double* v = out.data.data() + r * inner;
    normalize_span(v, inner, eps);
    for (int64_t i = 0; i < inner; ++i)
      v[i] = v[i] * (in.size() > 1 ? in[1].data[i] : 1.0) + (in.size() > 2 ? in[2].data[i] : 0.0);
  }
}

std::string layer_norm_torch(const Attrs& at, std::span<const std::string> n) {
  std::string s =
      fmt::format("F.layer_norm({}, {}", n[0], attr_to_python(AttrValue(normalized_shape(at))));
  for (std::size_t i = 1; i < n.size(); ++i)
    s += ", " + n[i];
  return s + py_kwargs(at, {"eps"}) + ")";
}

// ----- rms_norm -----------------------------------------------------------------------------

ValueSpec rms_norm_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight"};
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  normalize_dims(attr_ints(at, "dims", 0, {}), static_cast<int64_t>(in[0].shape.size()), "dims");
  if (in.size() == 2 && !broadcasts_to(in[1].shape, in[0].shape))
    fail("weight {} does not broadcast to x {}", shape_str(in[1].shape), shape_str(in[0].shape));
  return in[0];
}

void rms_norm_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& x = in[0].shape;
  const auto dims =
      normalize_dims(attr_ints(at, "dims", 0, {}), static_cast<int64_t>(x.size()), "dims");
  const double eps = eps_of(at);
  const auto map = reduce_index_map(x, dims);
  const Shape kept = reduced_shape(x, dims, true);
  const double count = static_cast<double>(numel(x) / std::max<int64_t>(numel(kept), 1));
  std::vector<double> ms(static_cast<std::size_t>(numel(kept)), 0.0);
  for (int64_t i = 0; i < in[0].size(); ++i)
    ms[map[i]] += in[0].data[i] * in[0].data[i];
  for (auto& m : ms)
    m = 1.0 / std::sqrt(m / count + eps);
  for (int64_t i = 0; i < in[0].size(); ++i)
    out.data[i] = in[0].data[i] * ms[map[i]];
  if (in.size() == 2)
    for_each_broadcast(x, in[1].shape, x,
                       [&](int64_t, int64_t ow, int64_t io) { out.data[io] *= in[1].data[ow]; });
}

std::string rms_norm_torch(const Attrs& at, std::span<const std::string> n) {
  const double eps = attr_double(at, "eps", k_default_eps);
  std::string s =
      fmt::format("{} / torch.sqrt(torch.mean({} * {}, dim={}, keepdim=True) + {})", n[0], n[0],
                  n[0], attr_to_python(attr_value(at, "dims")), attr_to_python(AttrValue(eps)));
  if (n.size() == 2)
    s += " * " + n[1];
  return s;
}

// ----- batch_norm, group_norm, instance_norm ------------------------------------------------

ValueSpec batch_norm_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "running_mean", "running_var", "weight", "bias"};
  require_rank(in[0], "x", 2, true);
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  require_channel_params(in, 1, in[0].shape[1], k_names);
  return in[0];
}

void batch_norm_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const double eps = eps_of(at);
  const int64_t n = out.shape[0], c = out.shape[1];
  const int64_t rest = prod(out.shape, 2, out.shape.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const double mean = in[1].data[ch];
      const double inv = 1.0 / std::sqrt(in[2].data[ch] + eps);
      const int64_t base = (i * c + ch) * rest;
      for (int64_t r = 0; r < rest; ++r)
        out.data[base + r] = (in[0].data[base + r] - mean) * inv;
    }
  channel_affine(in, 3, out);
}

ValueSpec batch_norm_train_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight", "bias"};
  require_rank(in[0], "x", 2, true);
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  // PyTorch refuses training-mode statistics of a single value per channel.
  const int64_t per_channel = in[0].shape[0] * prod(in[0].shape, 2, in[0].shape.size());
  if (per_channel < 2)
    fail("x {} needs more than one value per channel for batch statistics", shape_str(in[0].shape));
  require_channel_params(in, 1, in[0].shape[1], k_names);
  return in[0];
}

// Statistics per channel over the batch and every spatial position (biased variance, two passes).
void batch_norm_train_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const double eps = eps_of(at);
  const int64_t n = out.shape[0], c = out.shape[1];
  const int64_t rest = prod(out.shape, 2, out.shape.size());
  const double count = static_cast<double>(n * rest);
  for (int64_t ch = 0; ch < c; ++ch) {
    double mean = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < rest; ++r)
        mean += in[0].data[(i * c + ch) * rest + r];
    mean /= count;
    double var = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < rest; ++r) {
        const double d = in[0].data[(i * c + ch) * rest + r] - mean;
        var += d * d;
      }
    const double inv = 1.0 / std::sqrt(var / count + eps);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < rest; ++r) {
        const int64_t k = (i * c + ch) * rest + r;
        out.data[k] = (in[0].data[k] - mean) * inv;
      }
  }
  channel_affine(in, 1, out);
}

std::string batch_norm_train_torch(const Attrs& at, std::span<const std::string> n) {
  std::string s = fmt::format("F.batch_norm({}, None, None", n[0]);
  if (n.size() > 1)
    s += ", weight=" + n[1];
  if (n.size() > 2)
    s += ", bias=" + n[2];
  return s + ", training=True" + py_kwargs(at, {"eps"}) + ")";
}

ValueSpec group_norm_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight", "bias"};
  require_rank(in[0], "x", 2, true);
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  const int64_t groups = attr_int(at, "num_groups");
  const int64_t c = in[0].shape[1];
  if (groups < 1)
    fail("num_groups must be >= 1, got {}", groups);
  if (c % groups != 0)
    fail("num_groups={} does not divide the {} channels of x {}", groups, c,
         shape_str(in[0].shape));
  require_channel_params(in, 1, c, k_names);
  return in[0];
}

void group_norm_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t groups = attr_int(at, "num_groups");
  const int64_t n = out.shape[0];
  const int64_t per_group = prod(out.shape, 1, out.shape.size()) / groups;
  out.data = in[0].data;
  for (int64_t g = 0; g < n * groups; ++g)
    normalize_span(out.data.data() + g * per_group, per_group, eps_of(at));
  channel_affine(in, 1, out);
}

ValueSpec instance_norm_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x", "weight", "bias"};
  require_rank(in[0], "x", 3, true);
  require_floating(in[0], "x");
  require_same_dtype(in, k_names);
  eps_of(at);
  if (prod(in[0].shape, 2, in[0].shape.size()) < 2)
    fail("x {} needs more than one spatial element per channel", shape_str(in[0].shape));
  require_channel_params(in, 1, in[0].shape[1], k_names);
  return in[0];
}

void instance_norm_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t rest = prod(out.shape, 2, out.shape.size());
  out.data = in[0].data;
  for (int64_t r = 0; r * rest < out.size(); ++r)
    normalize_span(out.data.data() + r * rest, rest, eps_of(at));
  channel_affine(in, 1, out);
}

OpDef norm_def(std::string name, int min_in, int max_in, std::vector<std::string> attrs,
               std::vector<std::string> required) {
  OpDef d = make_op(std::move(name), min_in, max_in, std::move(attrs), std::move(required));
  d.cost = norm_cost;
  d.cancellation_sensitive = true;
  return d;
}

} // namespace

void add_norm_ops(std::vector<OpDef>& ops) {
  OpDef ln = norm_def("layer_norm", 1, 3, {"normalized_shape", "eps"}, {"normalized_shape"});
  ln.infer = layer_norm_infer;
  ln.cpu = layer_norm_cpu;
  ln.torch = layer_norm_torch;
  ops.push_back(std::move(ln));

  OpDef rms = norm_def("rms_norm", 1, 2, {"dims", "eps"}, {"dims"});
  rms.infer = rms_norm_infer;
  rms.cpu = rms_norm_cpu;
  rms.torch = rms_norm_torch;
  ops.push_back(std::move(rms));

  OpDef bn = norm_def("batch_norm", 3, 5, {"eps"}, {});
  bn.infer = batch_norm_infer;
  bn.cpu = batch_norm_cpu;
  bn.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.batch_norm({}, training=False{})", join_names(n), py_kwargs(at, {"eps"}));
  };
  ops.push_back(std::move(bn));

  OpDef bnt = norm_def("batch_norm_train", 1, 3, {"eps"}, {});
  bnt.infer = batch_norm_train_infer;
  bnt.cpu = batch_norm_train_cpu;
  bnt.torch = batch_norm_train_torch;
  ops.push_back(std::move(bnt));

  OpDef gn = norm_def("group_norm", 1, 3, {"num_groups", "eps"}, {"num_groups"});
  gn.infer = group_norm_infer;
  gn.cpu = group_norm_cpu;
  gn.torch = [](const Attrs& at, std::span<const std::string> n) {
    std::string s = fmt::format("F.group_norm({}, {}", n[0], attr_int(at, "num_groups"));
    for (std::size_t i = 1; i < n.size(); ++i)
      s += ", " + n[i];
    return s + py_kwargs(at, {"eps"}) + ")";
  };
  ops.push_back(std::move(gn));

  OpDef in = norm_def("instance_norm", 1, 3, {"eps"}, {});
  in.infer = instance_norm_infer;
  in.cpu = instance_norm_cpu;
  in.torch = [](const Attrs& at, std::span<const std::string> n) {
    std::string s = "F.instance_norm(" + n[0];
    if (n.size() > 1)
      s += ", weight=" + n[1];
    if (n.size() > 2)
      s += ", bias=" + n[2];
    return s + py_kwargs(at, {"eps"}) + ")";
  };
  ops.push_back(std::move(in));
}

} // namespace kb::ops
