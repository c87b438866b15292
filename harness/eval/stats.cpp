// Timing statistics and tolerance rules shared by the parent, the workers and the tests.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "protocol.hpp"

namespace kb {

double median_of(std::vector<double> v) {
  if (v.empty())
    return 0.0;
  const std::size_t n = v.size();
  std::nth_element(v.begin(), v.begin() + n / 2, v.end());
  const double hi = v[n / 2];
  if (n % 2 == 1)
    return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + n / 2);
  return 0.5 * (lo + hi);
}

double quantile_of(std::vector<double> v, double q) {
  if (v.empty())
    return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double median_stderr(const std::vector<double>& v) {
  const std::size_t n = v.size();
  if (n < 3)
    return 0.0;
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  // Ranks of the binomial 95% interval of the median; no assumption about the distribution,
  // which for kernel timings is skewed with a long right tail.
  const double half_width = 0.98 * std::sqrt(static_cast<double>(n));
  const double mid = 0.5 * static_cast<double>(n);
  const auto lo = static_cast<std::size_t>(std::max(0.0, std::floor(mid - half_width)));
  const auto hi =
      static_cast<std::size_t>(std::min(static_cast<double>(n - 1), std::ceil(mid + half_width)));
  return (s[hi] - s[lo]) / (2.0 * 1.96);
}

bool timing_converged(const std::vector<double>& samples_ms, double target_rse, int min_samples) {
  if (static_cast<int>(samples_ms.size()) < std::max(3, min_samples))
    return false;
  const double med = median_of(samples_ms);
  if (!(med > 0.0))
    return false;
  return median_stderr(samples_ms) / med <= target_rse;
}

TimingStats summarize_timing(const std::vector<double>& samples_ms,
                             const std::vector<double>& host_ms, std::string stop_reason) {
  TimingStats t;
  t.samples = static_cast<int>(samples_ms.size());
  t.samples_ms = samples_ms;
  t.stop_reason = std::move(stop_reason);
  if (samples_ms.empty())
    return t;
  const double n = static_cast<double>(samples_ms.size());
  t.median_ms = median_of(samples_ms);
  t.mean_ms = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / n;
  t.min_ms = *std::min_element(samples_ms.begin(), samples_ms.end());
  double ss = 0.0;
  for (double x : samples_ms)
    ss += (x - t.mean_ms) * (x - t.mean_ms);
  t.stderr_ms = samples_ms.size() > 1 ? std::sqrt(ss / (n - 1.0)) / std::sqrt(n) : 0.0;
  t.median_stderr_ms = median_stderr(samples_ms);
  t.host_median_ms = median_of(host_ms);
  return t;
}

double ErrorStats::rms_err() const {
  return finite_count > 0 ? std::sqrt(sum_sq_err / static_cast<double>(finite_count)) : 0.0;
}

ErrorStats compare_host(const std::vector<double>& cand, const std::vector<double>& ref,
                        double atol, double rtol) {
  ErrorStats s;
  s.numel = static_cast<int64_t>(std::min(cand.size(), ref.size()));
  double cmin = std::numeric_limits<double>::infinity(), cmax = -cmin;
  double rmin = cmin, rmax = -cmin;
  for (int64_t i = 0; i < s.numel; ++i) {
    const double c = cand[i], r = ref[i];
    bool bad = false;
    if (std::isfinite(c)) {
      cmin = std::min(cmin, c);
      cmax = std::max(cmax, c);
    }
    if (std::isfinite(r)) {
      rmin = std::min(rmin, r);
      rmax = std::max(rmax, r);
    }
    if (std::isnan(c) && !std::isnan(r)) {
      ++s.nan_count;
      bad = true;
    } else if (std::isinf(c) && c != r) {
      ++s.inf_count;
      bad = true;
    } else if (!std::isfinite(r) && std::isfinite(c)) {
      ++s.missed_special;
      bad = true;
    } else if (std::isfinite(c) && std::isfinite(r)) {
      const double err = std::fabs(c - r);
      ++s.finite_count;
      s.sum_sq_err += err * err;
      s.max_abs_err = std::max(s.max_abs_err, err);
      if (r != 0.0)
        s.max_rel_err = std::max(s.max_rel_err, err / std::fabs(r));
      bad = err > atol + rtol * std::fabs(r);
    }
    if (bad) {
      ++s.mismatch_count;
      if (s.first_bad_index < 0)
        s.first_bad_index = i;
    }
  }
  s.cand_min = std::isfinite(cmin) ? cmin : 0.0;
  s.cand_max = std::isfinite(cmax) ? cmax : 0.0;
  s.ref_min = std::isfinite(rmin) ? rmin : 0.0;
  s.ref_max = std::isfinite(rmax) ? rmax : 0.0;
  return s;
}

std::string judge_output(const ErrorStats& cand, const ErrorStats* baseline, bool relative,
                         double k, double atol) {
  if (cand.nan_count > 0 || cand.inf_count > 0 || cand.missed_special > 0)
    return "nan_parity";
  // A candidate that is exactly constant where the reference is not computes nothing, even when
  // the reference's values all lie within the tolerance of that constant.
  if (cand.numel > 1 && cand.finite_count == cand.numel && cand.cand_min == cand.cand_max &&
      cand.ref_min != cand.ref_max)
    return "constant_output";
  if (cand.mismatch_count == 0)
    return {};
  if (relative && baseline) {
    const bool rms_ok = cand.rms_err() <= k * baseline->rms_err() + atol;
    const bool max_ok = cand.max_abs_err <= k * baseline->max_abs_err + atol;
    return rms_ok && max_ok ? std::string() : "values_vs_baseline";
  }
  return "values";
}

} // namespace kb
