// Timing statistics: median, distribution-free standard error of the median, stopping rule.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "protocol.hpp"

namespace {

TEST(Stats, Median) {
  EXPECT_DOUBLE_EQ(kb::median_of({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(kb::median_of({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(kb::median_of({}), 0.0);
}

TEST(Stats, MedianStderrMatchesTheoryForNormalSamples) {
  // For N(mu, s) the median's standard error is sqrt(pi/2) s / sqrt(n).
  std::mt19937_64 rng(7);
  std::normal_distribution<double> d(10.0, 1.0);
  const int n = 4000;
  std::vector<double> v(n);
  for (auto& x : v)
    x = d(rng);
  const double expected = std::sqrt(M_PI / 2.0) / std::sqrt(static_cast<double>(n));
  EXPECT_NEAR(kb::median_stderr(v), expected, 0.25 * expected);
  EXPECT_EQ(kb::median_stderr({1.0, 2.0}), 0.0);
}

TEST(Stats, MedianStderrIgnoresOutliers) {
  std::vector<double> v(1000, 1.0);
  for (int i = 0; i < 1000; ++i)
    v[i] = 1.0 + 0.001 * (i % 10);
  const double before = kb::median_stderr(v);
  for (int i = 0; i < 20; ++i)
    v[i] = 1000.0; // 2% wild samples (a context switch, a clock change)
  EXPECT_LT(kb::median_stderr(v), 3 * before + 1e-4);
}

TEST(Stats, StoppingRule) {
  std::vector<double> tight(100, 1.0);
  for (int i = 0; i < 100; ++i)
    tight[i] = 1.0 + 0.001 * (i % 7);
  EXPECT_TRUE(kb::timing_converged(tight, 0.005, 20));
  EXPECT_FALSE(kb::timing_converged(std::vector<double>(tight.begin(), tight.begin() + 10), 0.005,
                                    20)); // too few samples
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> wide(0.5, 1.5);
  std::vector<double> noisy(100);
  for (auto& x : noisy)
    x = wide(rng);
  EXPECT_FALSE(kb::timing_converged(noisy, 0.005, 20)); // ~3% relative stderr
}

TEST(Stats, Summary) {
  const auto t = kb::summarize_timing({1, 2, 3, 4, 100}, {2, 3, 4, 5, 101}, "converged");
  EXPECT_DOUBLE_EQ(t.median_ms, 3.0);
  EXPECT_DOUBLE_EQ(t.mean_ms, 22.0);
  EXPECT_DOUBLE_EQ(t.min_ms, 1.0);
  EXPECT_DOUBLE_EQ(t.host_median_ms, 4.0);
  EXPECT_EQ(t.samples, 5);
  EXPECT_EQ(t.samples_ms.size(), 5u);
  EXPECT_EQ(t.stop_reason, "converged");
  EXPECT_GT(t.stderr_ms, 0.0);
}

} // namespace
