// Physical floors of a problem (roofline) and screening of reference outputs for degenerate
// problems that a trivial candidate (zeros, identity, constant) would pass.
#include "catalog.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace kb {

GpuCeilings datasheet_ceilings_h100() {
  GpuCeilings c;
  c.gpu_name = "NVIDIA H100 80GB HBM3 (SXM, datasheet)";
  c.bandwidth_gbs = 3350.0;
  c.fp32_tflops = 67.0;
  c.tf32_tflops = 495.0; // dense
  c.fp16_tflops = 990.0; // dense
  c.bf16_tflops = 990.0; // dense
  c.measured = false;
  return c;
}

double floor_time_ms(const Problem& p, const GpuCeilings& c) {
  // The floor is a lower bound: take the fastest peak any declared floating dtype may use
  // under the problem's precision contract.
  double peak_tflops = 0.0;
  auto consider = [&](DType t) {
    double peak = 0.0;
    switch (t) {
    case DType::f16:
      peak = c.fp16_tflops;
      break;
    case DType::bf16:
      peak = c.bf16_tflops;
      break;
    case DType::f32:
      peak = c.fp32_tflops;
      if (p.precision.allow_tf32)
        peak = std::max(peak, c.tf32_tflops);
      if (p.precision.allow_reduced)
        peak = std::max({peak, c.fp16_tflops, c.bf16_tflops});
      break;
    default:
      peak = c.fp32_tflops; // integer work: count it at the plain FP32 rate
      break;
    }
    peak_tflops = std::max(peak_tflops, peak);
  };
  for (const auto& t : p.inputs)
    consider(t.dtype);
  for (const auto& t : p.params)
    consider(t.dtype);
  double compute_ms = 0.0;
  if (p.flops > 0.0) {
    if (!(peak_tflops > 0.0))
      throw Error(fmt::format("ceilings of '{}' give no compute peak for {}", c.gpu_name, p.id));
    compute_ms = p.flops / (peak_tflops * 1e12) * 1e3;
  }
  if (!(c.bandwidth_gbs > 0.0))
    throw Error(fmt::format("ceilings of '{}' give no memory bandwidth", c.gpu_name));
  const double memory_ms = p.min_bytes / (c.bandwidth_gbs * 1e9) * 1e3;
  return std::max(compute_ms, memory_ms);
}

namespace {

bool within(double candidate, double reference, const Tolerance& tol) {
  return std::fabs(candidate - reference) <= tol.atol + tol.rtol * std::fabs(reference);
}

} // namespace

std::string screen_outputs(const Problem& p,
                           const std::vector<std::vector<std::vector<double>>>& outputs_per_seed,
                           const std::vector<std::vector<std::vector<double>>>& inputs_per_seed) {
  std::vector<std::string> reasons;
  const std::size_t n_seeds = outputs_per_seed.size();
  for (std::size_t o = 0; o < p.outputs.size(); ++o) {
    const std::string& name = p.outputs[o];
    for (const auto& seed : outputs_per_seed)
      if (seed.size() <= o)
        throw Error(fmt::format("screen_outputs: a seed lacks output '{}'", name));

    // 1. The same output whatever the inputs: a constant candidate would pass.
    if (n_seeds >= 2) {
      const auto& first = outputs_per_seed[0][o];
      bool constant = true;
      for (std::size_t s = 1; s < n_seeds && constant; ++s) {
        const auto& other = outputs_per_seed[s][o];
        if (other.size() != first.size()) {
          constant = false;
          break;
        }
        for (std::size_t i = 0; i < first.size(); ++i)
          if (!within(other[i], first[i], p.tolerance)) {
            constant = false;
            break;
          }
      }
      if (constant)
        reasons.push_back(fmt::format("output {} is near-constant across seeds", name));
    }

    // 2. Mostly zero within tolerance: an all-zero candidate would pass almost everywhere.
    std::size_t total = 0, near_zero = 0;
    for (const auto& seed : outputs_per_seed)
      for (double v : seed[o]) {
        ++total;
        if (within(0.0, v, p.tolerance))
          ++near_zero;
      }
    if (total > 0 && static_cast<double>(near_zero) > 0.9 * static_cast<double>(total))
      reasons.push_back(
          fmt::format("output {} is mostly within tolerance of zero ({:.1f}% of elements)", name,
                      100.0 * static_cast<double>(near_zero) / static_cast<double>(total)));

    // 3. Equal to an input of the same shape: the identity would pass.
    const ValueSpec& out_spec = p.output_spec(name);
    for (std::size_t k = 0; k < p.inputs.size(); ++k) {
      if (p.inputs[k].shape != out_spec.shape || n_seeds == 0)
        continue;
      bool identity = true;
      for (std::size_t s = 0; s < n_seeds && identity; ++s) {
        if (inputs_per_seed.size() <= s || inputs_per_seed[s].size() <= k)
          throw Error(fmt::format("screen_outputs: seed {} lacks input '{}'", s, p.inputs[k].name));
        const auto& in = inputs_per_seed[s][k];
        const auto& out = outputs_per_seed[s][o];
        if (in.size() != out.size()) {
          identity = false;
          break;
        }
        for (std::size_t i = 0; i < out.size(); ++i)
          if (!within(in[i], out[i], p.tolerance)) {
            identity = false;
            break;
          }
      }
      if (identity)
        reasons.push_back(fmt::format("identity on input {}: output {} equals it within "
                                      "tolerance",
                                      p.inputs[k].name, name));
    }
  }
  return fmt::format("{}", fmt::join(reasons, "; "));
}

} // namespace kb
