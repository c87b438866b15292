// Losses, mean-reduced to a scalar: mse_loss and cross_entropy.
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
}

} // namespace kb::ops
