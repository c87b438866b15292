// Unit tests of retry policy math, Retry-After parsing, rate limiting and token budgets.
#include <chrono>

#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

TEST(Retry, RetryableClasses) {
  EXPECT_TRUE(is_retryable(ChatStatus::rate_limited, 429));
  EXPECT_TRUE(is_retryable(ChatStatus::http_error, 500));
  EXPECT_TRUE(is_retryable(ChatStatus::http_error, 503));
  EXPECT_TRUE(is_retryable(ChatStatus::timeout, 0));
  EXPECT_TRUE(is_retryable(ChatStatus::network, 0));
  EXPECT_FALSE(is_retryable(ChatStatus::http_error, 400));
  EXPECT_FALSE(is_retryable(ChatStatus::http_error, 401));
  EXPECT_FALSE(is_retryable(ChatStatus::http_error, 404));
  EXPECT_FALSE(is_retryable(ChatStatus::malformed, 200));
  EXPECT_FALSE(is_retryable(ChatStatus::budget, 0));
  EXPECT_FALSE(is_retryable(ChatStatus::ok, 200));
}

TEST(Retry, ExponentialBackoffWithJitterBounds) {
  RetryPolicy p;
  p.base_delay_s = 0.5;
  p.max_delay_s = 10.0;
  p.jitter = 0.5;
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 0, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 1, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 3, 0.0), 4.0);
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 5, 0.0), 10.0); // capped
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 1000, 0.0), 10.0);
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 2, 1.0), 1.0); // 2 * (1 - 0.5)
  for (double u : {0.0, 0.3, 0.99}) {
    const double d = backoff_delay_s(p, 2, u);
    EXPECT_GE(d, 1.0);
    EXPECT_LE(d, 2.0);
  }
  p.jitter = 0.0;
  EXPECT_DOUBLE_EQ(backoff_delay_s(p, 2, 0.7), 2.0);
}

TEST(Retry, NextDelayHonoursRetryAfterAndLimits) {
  RetryPolicy p;
  p.max_retries = 2;
  p.base_delay_s = 1.0;
  p.jitter = 0.0;
  p.max_retry_after_s = 30.0;
  EXPECT_EQ(next_retry_delay_s(p, 0, ChatStatus::http_error, 500, std::nullopt, 0.5), 1.0);
  EXPECT_EQ(next_retry_delay_s(p, 1, ChatStatus::http_error, 502, std::nullopt, 0.5), 2.0);
  EXPECT_FALSE(next_retry_delay_s(p, 2, ChatStatus::http_error, 500, std::nullopt, 0.5));
  EXPECT_EQ(next_retry_delay_s(p, 0, ChatStatus::rate_limited, 429, 7.0, 0.5), 7.0);
  EXPECT_EQ(next_retry_delay_s(p, 1, ChatStatus::rate_limited, 429, 0.5, 0.5), 2.0);
  EXPECT_FALSE(next_retry_delay_s(p, 0, ChatStatus::rate_limited, 429, 31.0, 0.5));
  EXPECT_FALSE(next_retry_delay_s(p, 0, ChatStatus::http_error, 400, std::nullopt, 0.5));
  EXPECT_FALSE(next_retry_delay_s(p, 0, ChatStatus::http_error, 401, 1.0, 0.5));
}

TEST(Retry, RetryAfterSeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(parse_retry_after("120", now), 120.0);
  EXPECT_EQ(parse_retry_after(" 3 ", now), 3.0);
  EXPECT_EQ(parse_retry_after("1.5", now), 1.5);
  EXPECT_EQ(parse_retry_after("0", now), 0.0);
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_FALSE(parse_retry_after("12abc", now));
}

TEST(Retry, RetryAfterHttpDate) {
  // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 s after the epoch.
  const auto date = std::chrono::system_clock::from_time_t(1445412480);
  const auto r =
      parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - std::chrono::seconds(30));
  ASSERT_TRUE(r);
  EXPECT_NEAR(*r, 30.0, 1e-6);
  // Obsolete RFC 850 form, and a date in the past (never negative).
  const auto r850 =
      parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", date - std::chrono::seconds(5));
  ASSERT_TRUE(r850);
  EXPECT_NEAR(*r850, 5.0, 1e-6);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + std::chrono::hours(1)), 0.0);
}

TEST(RateLimit, RequestsPerMinute) {
  RateLimiter rl(60.0, 0.0); // one per second, burst of 60
  double t = 100.0;
  for (int i = 0; i < 60; ++i)
    EXPECT_EQ(rl.reserve(t, 0), 0.0) << i;
  EXPECT_NEAR(rl.reserve(t, 0), 1.0, 1e-9);        // 61st waits one interval
  EXPECT_NEAR(rl.reserve(t, 0), 2.0, 1e-9);        // queued behind it
  EXPECT_NEAR(rl.reserve(t + 10.0, 0), 0.0, 1e-9); // 10 s later: debt of 2 repaid, 8 left
}

TEST(RateLimit, TokensPerMinute) {
  RateLimiter rl(0.0, 6000.0); // 100 tokens/s
  EXPECT_EQ(rl.reserve(0.0, 5000), 0.0);
  EXPECT_NEAR(rl.reserve(0.0, 2000), 10.0, 1e-9); // 1000 short -> 10 s
  EXPECT_NEAR(rl.reserve(20.0, 100), 0.0, 1e-9);
  // A request above the whole minute's allowance waits for a full bucket, not forever.
  RateLimiter big(0.0, 1000.0);
  EXPECT_EQ(big.reserve(0.0, 1e9), 0.0);
  EXPECT_NEAR(big.reserve(0.0, 1e9), 60.0, 1e-9);
}

TEST(RateLimit, UnlimitedNeverWaits) {
  RateLimiter rl(0.0, 0.0);
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(rl.reserve(0.0, 1e6), 0.0);
}

} // namespace
} // namespace kb::llm
