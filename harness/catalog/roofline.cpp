// Physical floors of a problem (roofline) and screening of reference outputs for degenerate
// problems that a trivial candidate (zeros, identity, constant) would pass.
#include "catalog.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace kb {

namespace {

// One GPU model of the datasheet table. All figures are the vendors' datasheet peaks (not
// measured here): memory bandwidth in GB/s and dense (no 2:4 structured sparsity) TFLOP/s for
// plain FP32 and for TF32/FP16/BF16 on the tensor cores. docs/ceilings.md lists the sources.
struct DatasheetEntry {
  const char* model; // gpu_name prefix: "NVIDIA H100 SXM"
  double bandwidth_gbs, fp32_tflops, tf32_tflops, fp16_tflops, bf16_tflops;
};

// NVIDIA H100 Tensor Core GPU datasheet (SXM5 and PCIe, NVL), H200 datasheet (SXM and NVL),
// A100 datasheet, L40S / L40 / L4 datasheets, Ada Lovelace architecture whitepaper (RTX 4090),
// Blackwell architecture technical brief (HGX B200 at 1000 W). Datasheets print the sparse
// tensor figures; the dense ones are half of them.
constexpr DatasheetEntry k_h100_sxm{"NVIDIA H100 SXM", 3350.0, 67.0, 495.0, 990.0, 990.0};
constexpr DatasheetEntry k_h100_pcie{"NVIDIA H100 PCIe", 2000.0, 51.0, 378.0, 756.0, 756.0};
constexpr DatasheetEntry k_h100_nvl{"NVIDIA H100 NVL", 3900.0, 60.0, 417.5, 835.5, 835.5};
constexpr DatasheetEntry k_h200_sxm{"NVIDIA H200 SXM", 4800.0, 67.0, 495.0, 990.0, 990.0};
constexpr DatasheetEntry k_h200_nvl{"NVIDIA H200 NVL", 4800.0, 60.0, 417.5, 835.5, 835.5};
constexpr DatasheetEntry k_a100_sxm_40{"NVIDIA A100 SXM4 40GB", 1555.0, 19.5, 156.0, 312.0, 312.0};
constexpr DatasheetEntry k_a100_sxm_80{"NVIDIA A100 SXM4 80GB", 2039.0, 19.5, 156.0, 312.0, 312.0};
constexpr DatasheetEntry k_a100_pcie_40{"NVIDIA A100 PCIe 40GB", 1555.0, 19.5, 156.0, 312.0, 312.0};
constexpr DatasheetEntry k_a100_pcie_80{"NVIDIA A100 PCIe 80GB", 1935.0, 19.5, 156.0, 312.0, 312.0};
constexpr DatasheetEntry k_l40s{"NVIDIA L40S", 864.0, 91.6, 183.0, 362.05, 362.05};
constexpr DatasheetEntry k_l40{"NVIDIA L40", 864.0, 90.5, 90.5, 181.05, 181.05};
constexpr DatasheetEntry k_l4{"NVIDIA L4", 300.0, 30.3, 60.0, 121.0, 121.0};
// RTX 4090: FP16 with FP16 accumulation (330.3); with FP32 accumulation, and BF16, 165.2. The
// floor is a lower bound, so it takes the faster FP16 rate.
constexpr DatasheetEntry k_rtx_4090{"NVIDIA GeForce RTX 4090", 1008.0, 82.6, 82.6, 330.3, 165.2};
constexpr DatasheetEntry k_b200{"NVIDIA B200", 8000.0, 80.0, 1100.0, 2250.0, 2250.0};

GpuCeilings ceilings_of(const DatasheetEntry& e) {
  GpuCeilings c;
  c.gpu_name = fmt::format("{} (datasheet)", e.model);
  c.bandwidth_gbs = e.bandwidth_gbs;
  c.fp32_tflops = e.fp32_tflops;
  c.tf32_tflops = e.tf32_tflops;
  c.fp16_tflops = e.fp16_tflops;
  c.bf16_tflops = e.bf16_tflops;
  c.measured = false;
  return c;
}

// Lower-case alphanumeric words of a device name: "NVIDIA A100-SXM4-80GB" -> nvidia a100 sxm4
// 80gb.
std::vector<std::string> name_words(std::string_view name) {
  std::vector<std::string> words;
  std::string w;
  for (char ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!w.empty()) {
      words.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty())
    words.push_back(std::move(w));
  return words;
}

} // namespace

GpuCeilings datasheet_ceilings_h100() {
  GpuCeilings c = ceilings_of(k_h100_sxm);
  c.gpu_name = "NVIDIA H100 80GB HBM3 (SXM, datasheet)";
  return c;
}

std::optional<GpuCeilings> datasheet_ceilings(std::string_view device_name) {
  const std::vector<std::string> words = name_words(device_name);
  auto has = [&](std::string_view w) {
    return std::find(words.begin(), words.end(), w) != words.end();
  };
  auto has_prefix = [&](std::string_view p) {
    return std::any_of(words.begin(), words.end(),
                       [&](const std::string& w) { return w.starts_with(p); });
  };
  const DatasheetEntry* e = nullptr;
  if (has("h100")) {
    // "NVIDIA H100 80GB HBM3" is the SXM5 board; "NVIDIA H100 PCIe" and "NVIDIA H100 NVL" say
    // so. A bare "H100" is ambiguous (SXM and PCIe differ by 1.7x in bandwidth).
    if (has("pcie"))
      e = &k_h100_pcie;
    else if (has("nvl"))
      e = &k_h100_nvl;
    else if (has("hbm3") || has_prefix("sxm"))
      e = &k_h100_sxm;
  } else if (has("h200")) {
    // "NVIDIA H200" is the SXM board, "NVIDIA H200 NVL" the PCIe card.
    e = has("nvl") ? &k_h200_nvl : &k_h200_sxm;
  } else if (has("a100")) {
    // "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB",
    // "NVIDIA A100 80GB PCIe": both the form factor and the memory size must be named.
    const bool pcie = has("pcie"), sxm = has_prefix("sxm");
    const bool gb40 = has("40gb"), gb80 = has("80gb");
    if (pcie != sxm && gb40 != gb80)
      e = pcie ? (gb80 ? &k_a100_pcie_80 : &k_a100_pcie_40)
               : (gb80 ? &k_a100_sxm_80 : &k_a100_sxm_40);
  } else if (has("l40s")) {
    e = &k_l40s;
  } else if (has("l40")) {
    e = &k_l40;
  } else if (has("l4")) {
    e = &k_l4;
  } else if (has("rtx") && has("4090")) {
    // The RTX 4090 D (China) and the laptop RTX 4090 are different chips.
    if (!has("d") && !has("laptop") && !has("mobile"))
      e = &k_rtx_4090;
  } else if (has("b200")) {
    e = &k_b200;
  }
  if (!e)
    return std::nullopt;
  return ceilings_of(*e);
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
