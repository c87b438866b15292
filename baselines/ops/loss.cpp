// Losses reduced to a scalar (mse_loss, cross_entropy, smooth_l1_loss, huber_loss, kl_div,
// triplet_margin_loss) and cosine_similarity.
#include <cmath>
#include <limits>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

ValueSpec mse_infer(const Attrs&, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"input", "target"};
  require_floating(in[0], "input");
  require_same_dtype(in, k_names);
  if (in[0].shape != in[1].shape)
    fail("input {} and target {} must have the same shape", shape_str(in[0].shape),
         shape_str(in[1].shape));
  return {{}, in[0].dtype};
}

void mse_cpu(const Attrs&, std::span<const HostTensor> in, HostTensor& out) {
  double sum = 0.0;
  for (int64_t i = 0; i < in[0].size(); ++i) {
    const double d = in[0].data[i] - in[1].data[i];
    sum += d * d;
  }
  out.data[0] = sum / static_cast<double>(in[0].size());
}

ValueSpec cross_entropy_infer(const Attrs&, std::span<const ValueSpec> in) {
  require_rank(in[0], "logits", 2);
  require_rank(in[1], "target", 1);
  require_floating(in[0], "logits");
  if (in[1].dtype != DType::i64)
    fail("target must have dtype i64 (class indices), got {}", dtype_name(in[1].dtype));
  if (in[1].shape[0] != in[0].shape[0])
    fail("target {} must have one class index per row of logits {}", shape_str(in[1].shape),
         shape_str(in[0].shape));
  if (in[0].shape[1] < 1)
    fail("logits {} must have at least one class", shape_str(in[0].shape));
  return {{}, in[0].dtype};
}

void cross_entropy_cpu(const Attrs&, std::span<const HostTensor> in, HostTensor& out) {
  const int64_t n = in[0].shape[0], c = in[0].shape[1];
  double total = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const double t = in[1].data[r];
    if (!(t >= 0.0 && t < static_cast<double>(c) && t == std::floor(t)))
      fail("target value {} at index {} is not a class index in [0, {})", t, r, c);
    const double* row = in[0].data.data() + r * c;
    // log-sum-exp around the row maximum, so large logits do not overflow.
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < c; ++k)
      mx = std::isnan(row[k]) ? row[k] : std::max(mx, row[k]);
    double sum = 0.0;
    for (int64_t k = 0; k < c; ++k)
      sum += std::exp(row[k] - mx);
    total += mx + std::log(sum) - row[static_cast<int64_t>(t)];
  }
  out.data[0] = total / static_cast<double>(n);
}

// ----- element-wise losses: smooth_l1_loss, huber_loss, kl_div --------------------------------

ValueSpec pair_loss_infer(std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"input", "target"};
  require_floating(in[0], "input");
  require_same_dtype(in, k_names);
  if (in[0].shape != in[1].shape)
    fail("input {} and target {} must have the same shape", shape_str(in[0].shape),
         shape_str(in[1].shape));
  return {{}, in[0].dtype};
}

double beta_of(const Attrs& at) {
  const double beta = attr_double(at, "beta", 1.0);
  if (!(beta >= 0.0) || std::isinf(beta))
    fail("beta must be finite and >= 0, got {}", beta);
  return beta;
}

double delta_of(const Attrs& at) {
  const double delta = attr_double(at, "delta", 1.0);
  if (!(delta > 0.0) || std::isinf(delta))
    fail("delta must be finite and > 0, got {}", delta);
  return delta;
}

// Mean over all elements of f(input[i], target[i]).
template <class F> void mean_of_pairs(std::span<const HostTensor> in, HostTensor& out, F f) {
  double sum = 0.0;
  for (int64_t i = 0; i < in[0].size(); ++i)
    sum += f(in[0].data[i], in[1].data[i]);
  out.data[0] = sum / static_cast<double>(in[0].size());
}

// 0.5 d^2 / beta below beta, |d| - 0.5 beta above (beta = 0 is the L1 loss).
double smooth_l1(double x, double y, double beta) {
  const double z = std::abs(x - y);
  return z < beta ? 0.5 * z * z / beta : z - 0.5 * beta;
}

double huber(double x, double y, double delta) {
  const double z = std::abs(x - y);
  return z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
}

enum class KlReduction { batchmean, mean, sum };

KlReduction kl_reduction_of(const Attrs& at) {
  const std::string r = attr_string(at, "reduction", "mean");
  if (r == "batchmean")
    return KlReduction::batchmean;
  if (r == "mean")
    return KlReduction::mean;
  if (r == "sum")
    return KlReduction::sum;
  fail("reduction must be \"batchmean\", \"mean\" or \"sum\", got \"{}\"", r);
}

// target * (log(target) - input), with 0 where target is 0 (xlogy); exp(target) * (target - input)
// for a log-space target.
double kl_term(double input, double target, bool log_target) {
  if (log_target)
    return std::exp(target) * (target - input);
  const double xlogx = std::isnan(target) ? target
                       : target == 0.0    ? 0.0
                                          : target * std::log(target);
  return xlogx - target * input;
}

ValueSpec kl_div_infer(const Attrs& at, std::span<const ValueSpec> in) {
  kl_reduction_of(at);
  attr_bool(at, "log_target", false);
  return pair_loss_infer(in);
}

void kl_div_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const bool log_target = attr_bool(at, "log_target", false);
  double sum = 0.0;
  for (int64_t i = 0; i < in[0].size(); ++i)
    sum += kl_term(in[0].data[i], in[1].data[i], log_target);
  switch (kl_reduction_of(at)) {
  case KlReduction::batchmean:
    // PyTorch divides the sum by the first dim (a scalar input is its own batch).
    out.data[0] = in[0].shape.empty() ? sum : sum / static_cast<double>(in[0].shape[0]);
    break;
  case KlReduction::mean:
    out.data[0] = sum / static_cast<double>(in[0].size());
    break;
  case KlReduction::sum:
    out.data[0] = sum;
    break;
  }
}

// ----- triplet_margin_loss --------------------------------------------------------------------

struct TripletArgs {
  double margin, p, eps;
  bool swap;
};

TripletArgs triplet_args(const Attrs& at) {
  TripletArgs a{attr_double(at, "margin", 1.0), attr_double(at, "p", 2.0),
                attr_double(at, "eps", 1e-6), attr_bool(at, "swap", false)};
  if (!(a.p > 0.0) || std::isinf(a.p))
    fail("p must be finite and > 0, got {}", a.p);
  if (std::isnan(a.margin) || std::isinf(a.margin))
    fail("margin must be finite, got {}", a.margin);
  if (std::isnan(a.eps) || std::isinf(a.eps))
    fail("eps must be finite, got {}", a.eps);
  return a;
}

ValueSpec triplet_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"anchor", "positive", "negative"};
  triplet_args(at);
  require_floating(in[0], "anchor");
  require_same_dtype(in, k_names);
  if (in[0].shape.size() != 1 && in[0].shape.size() != 2)
    fail("anchor must have rank 1 or 2 ([D] or [N, D]), got {}", shape_str(in[0].shape));
  for (std::size_t i = 1; i < 3; ++i)
    if (in[i].shape != in[0].shape)
      fail("{} {} must have the shape of anchor {}", k_names[i], shape_str(in[i].shape),
           shape_str(in[0].shape));
  return {{}, in[0].dtype};
}

// ||a - b + eps||_p over `d` values (PyTorch's pairwise_distance adds eps to the difference).
double pairwise_distance(const double* a, const double* b, int64_t d, double p, double eps) {
  double s = 0.0;
  for (int64_t k = 0; k < d; ++k) {
    const double v = std::abs(a[k] - b[k] + eps);
    s += p == 2.0 ? v * v : p == 1.0 ? v : std::pow(v, p);
  }
  return p == 2.0 ? std::sqrt(s) : p == 1.0 ? s : std::pow(s, 1.0 / p);
}

void triplet_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const TripletArgs a = triplet_args(at);
  const int64_t d = in[0].shape.back();
  const int64_t rows = in[0].shape.size() == 2 ? in[0].shape[0] : 1;
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const double* an = in[0].data.data() + r * d;
    const double* po = in[1].data.data() + r * d;
    const double* ne = in[2].data.data() + r * d;
    const double dp = pairwise_distance(an, po, d, a.p, a.eps);
    double dn = pairwise_distance(an, ne, d, a.p, a.eps);
    if (a.swap)
      dn = std::min(dn, pairwise_distance(po, ne, d, a.p, a.eps));
    total += std::max(a.margin + dp - dn, 0.0);
  }
  out.data[0] = total / static_cast<double>(rows);
}

// ----- cosine_similarity ----------------------------------------------------------------------

double cosine_eps_of(const Attrs& at) {
  const double eps = attr_double(at, "eps", 1e-8);
  if (!(eps >= 0.0) || std::isinf(eps))
    fail("eps must be finite and >= 0, got {}", eps);
  return eps;
}

ValueSpec cosine_infer(const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"x1", "x2"};
  require_floating(in[0], "x1");
  require_same_dtype(in, k_names);
  cosine_eps_of(at);
  if (in[0].shape != in[1].shape)
    fail("x1 {} and x2 {} must have the same shape", shape_str(in[0].shape),
         shape_str(in[1].shape));
  require_rank(in[0], "x1", 1, true);
  const int64_t dim =
      normalize_dim(attr_int(at, "dim", 1), static_cast<int64_t>(in[0].shape.size()), "dim");
  return {reduced_shape(in[0].shape, {dim}, false), in[0].dtype};
}

// x1 . x2 / (max(||x1||, eps) * max(||x2||, eps)) along dim, as PyTorch computes it.
void cosine_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const Shape& s = in[0].shape;
  const int64_t dim = normalize_dim(attr_int(at, "dim", 1), static_cast<int64_t>(s.size()), "dim");
  const double eps = cosine_eps_of(at);
  const int64_t outer = prod(s, 0, dim), r_len = s[dim];
  const int64_t inner = prod(s, dim + 1, s.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double dot = 0.0, s1 = 0.0, s2 = 0.0;
      for (int64_t r = 0; r < r_len; ++r) {
        const int64_t k = (o * r_len + r) * inner + i;
        const double a = in[0].data[k], b = in[1].data[k];
        dot += a * b;
        s1 += a * a;
        s2 += b * b;
      }
      out.data[o * inner + i] = dot / (std::max(std::sqrt(s1), eps) * std::max(std::sqrt(s2), eps));
    }
}

} // namespace

void add_loss_ops(std::vector<OpDef>& ops) {
  OpDef mse = make_op("mse_loss", 2, 2, {});
  mse.infer = mse_infer;
  // A subtraction and a multiply-add per element.
  mse.cost = [](const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
    return io_cost(in, out, 2.0 * static_cast<double>(numel(in[0].shape)));
  };
  mse.cpu = mse_cpu;
  mse.torch = [](const Attrs&, std::span<const std::string> n) {
    return fmt::format("F.mse_loss({}, {})", n[0], n[1]);
  };
  mse.cancellation_sensitive = true;
  ops.push_back(std::move(mse));

  OpDef ce = make_op("cross_entropy", 2, 2, {});
  ce.infer = cross_entropy_infer;
  // As a reduction: one flop per logit.
  ce.cost = [](const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
    return io_cost(in, out, static_cast<double>(numel(in[0].shape)));
  };
  ce.cpu = cross_entropy_cpu;
  ce.torch = [](const Attrs&, std::span<const std::string> n) {
    return fmt::format("F.cross_entropy({}, {})", n[0], n[1]);
  };
  ce.cancellation_sensitive = true;
  ce.index_inputs = {1};
  ops.push_back(std::move(ce));

  // A subtraction, an absolute value and a compare-and-square per element.
  const auto three_per_element = [](const Attrs&, std::span<const ValueSpec> in,
                                    const ValueSpec& out) {
    return io_cost(in, out, 3.0 * static_cast<double>(numel(in[0].shape)));
  };

  OpDef sl1 = make_op("smooth_l1_loss", 2, 2, {"beta"});
  sl1.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    beta_of(at);
    return pair_loss_infer(in);
  };
  sl1.cost = three_per_element;
  sl1.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    const double beta = beta_of(at);
    mean_of_pairs(in, out, [beta](double x, double y) { return smooth_l1(x, y, beta); });
  };
  sl1.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.smooth_l1_loss({}, {}{})", n[0], n[1], py_kwargs(at, {"beta"}));
  };
  sl1.cancellation_sensitive = true;
  ops.push_back(std::move(sl1));

  OpDef hub = make_op("huber_loss", 2, 2, {"delta"});
  hub.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    delta_of(at);
    return pair_loss_infer(in);
  };
  hub.cost = three_per_element;
  hub.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    const double delta = delta_of(at);
    mean_of_pairs(in, out, [delta](double x, double y) { return huber(x, y, delta); });
  };
  hub.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.huber_loss({}, {}{})", n[0], n[1], py_kwargs(at, {"delta"}));
  };
  hub.cancellation_sensitive = true;
  ops.push_back(std::move(hub));

  OpDef kl = make_op("kl_div", 2, 2, {"reduction", "log_target"});
  kl.infer = kl_div_infer;
  kl.cost = three_per_element;
  kl.cpu = kl_div_cpu;
  kl.torch = [](const Attrs& at, std::span<const std::string> n) {
    // PyTorch's default reduction is "mean" (with a warning); it is always spelt out here.
    return fmt::format("F.kl_div({}, {}, reduction={}{})", n[0], n[1],
                       attr_to_python(AttrValue(attr_string(at, "reduction", "mean"))),
                       py_kwargs(at, {"log_target"}));
  };
  ops.push_back(std::move(kl));

  OpDef tri = make_op("triplet_margin_loss", 3, 3, {"margin", "p", "eps", "swap"});
  tri.infer = triplet_infer;
  // Per element and distance: a subtraction, the eps, a power (or square) and an add.
  tri.cost = [](const Attrs& at, std::span<const ValueSpec> in, const ValueSpec& out) {
    const double distances = attr_bool(at, "swap", false) ? 3.0 : 2.0;
    return io_cost(in, out, 4.0 * distances * static_cast<double>(numel(in[0].shape)));
  };
  tri.cpu = triplet_cpu;
  tri.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.triplet_margin_loss({}, {}, {}{})", n[0], n[1], n[2],
                       py_kwargs(at, {"margin", "p", "eps", "swap"}));
  };
  tri.cancellation_sensitive = true;
  ops.push_back(std::move(tri));

  OpDef cos = make_op("cosine_similarity", 2, 2, {"dim", "eps"});
  cos.infer = cosine_infer;
  // Three multiply-adds per pair of elements.
  cos.cost = [](const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
    return io_cost(in, out, 6.0 * static_cast<double>(numel(in[0].shape)));
  };
  cos.cpu = cosine_cpu;
  cos.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("F.cosine_similarity({}, {}{})", n[0], n[1], py_kwargs(at, {"dim", "eps"}));
  };
  ops.push_back(std::move(cos));
}

} // namespace kb::ops
