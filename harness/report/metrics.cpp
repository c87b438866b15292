// Metric definitions: fast_p, geometric mean, pass@k and the Mann-Whitney U test.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <boost/math/distributions/normal.hpp>
#include <fmt/format.h>

#include "report.hpp"

namespace kb::report {

double fast_p(const std::vector<std::optional<double>>& best_speedups, double p) {
  if (best_speedups.empty())
    return 0.0;
  auto n = std::count_if(best_speedups.begin(), best_speedups.end(),
                         [p](const auto& s) { return s && *s > p; });
  return static_cast<double>(n) / static_cast<double>(best_speedups.size());
}

std::optional<double> geometric_mean(const std::vector<double>& values) {
  if (values.empty())
    return std::nullopt;
  double log_sum = 0.0;
  for (double v : values) {
    if (!(v > 0.0))
      throw Error(fmt::format("geometric mean of a non-positive value {}", v));
    log_sum += std::log(v);
  }
  return std::exp(log_sum / static_cast<double>(values.size()));
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 0 || c < 0 || c > n || k < 1 || k > n)
    throw Error(
        fmt::format("pass@k needs 0 <= c <= n and 1 <= k <= n (n={}, c={}, k={})", n, c, k));
  if (n - c < k)
    return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i): stable for large n.
  double ratio = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i)
    ratio *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - ratio;
}

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty())
    throw Error("Mann-Whitney U test needs two non-empty samples");
  const auto n1 = static_cast<int64_t>(a.size()), n2 = static_cast<int64_t>(b.size());
  struct Obs {
    double v;
    int group;
  };
  std::vector<Obs> all;
  all.reserve(a.size() + b.size());
  for (double v : a)
    all.push_back({v, 0});
  for (double v : b)
    all.push_back({v, 1});
  std::sort(all.begin(), all.end(), [](const Obs& x, const Obs& y) { return x.v < y.v; });
  // Mid-ranks for ties; the tie term corrects the variance.
  double rank_sum_a = 0.0, tie_term = 0.0;
  bool ties = false;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].v == all[i].v)
      ++j;
    double t = static_cast<double>(j - i);
    double mid = (static_cast<double>(i) + 1.0 + static_cast<double>(j)) / 2.0;
    for (std::size_t k = i; k < j; ++k)
      if (all[k].group == 0)
        rank_sum_a += mid;
    if (t > 1) {
      ties = true;
      tie_term += t * t * t - t;
    }
    i = j;
  }
  MannWhitney r;
  r.u = rank_sum_a - static_cast<double>(n1 * (n1 + 1)) / 2.0;
  const double mean_u = static_cast<double>(n1 * n2) / 2.0;

  if (!ties && n1 <= 50 && n2 <= 50) {
    // Exact null distribution of U by counting: f(i, j, u) = f(i-1, j, u-j) + f(i, j-1, u).
    const int64_t max_u = n1 * n2;
    std::vector<std::vector<double>> prev(n2 + 1, std::vector<double>(max_u + 1, 0.0));
    for (int64_t j = 0; j <= n2; ++j)
      prev[j][0] = 1.0; // i = 0: only U = 0
    for (int64_t i = 1; i <= n1; ++i) {
      std::vector<std::vector<double>> cur(n2 + 1, std::vector<double>(max_u + 1, 0.0));
      cur[0][0] = 1.0;
      for (int64_t j = 1; j <= n2; ++j)
        for (int64_t u = 0; u <= i * j; ++u)
          cur[j][u] = (u >= j ? prev[j][u - j] : 0.0) + cur[j - 1][u];
      prev.swap(cur);
    }
    const auto& dist = prev[n2];
    double total = std::accumulate(dist.begin(), dist.end(), 0.0);
    auto u_int = static_cast<int64_t>(std::llround(r.u));
    double lower = 0.0, upper = 0.0;
    for (int64_t u = 0; u <= max_u; ++u) {
      if (u <= u_int)
        lower += dist[u];
      if (u >= u_int)
        upper += dist[u];
    }
    r.p_value = std::min(1.0, 2.0 * std::min(lower, upper) / total);
    r.exact = true;
    return r;
  }

  const double n = static_cast<double>(n1 + n2);
  double var = static_cast<double>(n1 * n2) / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
  if (var <= 0.0) { // every observation equal
    r.p_value = 1.0;
    return r;
  }
  double diff = r.u - mean_u;
  double corrected = std::max(0.0, std::abs(diff) - 0.5); // continuity correction
  r.z = (diff < 0 ? -corrected : corrected) / std::sqrt(var);
  boost::math::normal_distribution<double> normal;
  r.p_value = std::min(1.0, 2.0 * boost::math::cdf(boost::math::complement(normal, std::abs(r.z))));
  return r;
}

} // namespace kb::report
