// Retry policy math, Retry-After parsing, the per-model rate limiter and token budgets.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <thread>

#include <curl/curl.h>

#include "llm.hpp"

namespace kb::llm {

RetryPolicy retry_policy_of(const ModelConfig& m) {
  RetryPolicy p;
  p.max_retries = m.max_retries;
  p.base_delay_s = m.retry_base_delay_s;
  p.max_delay_s = m.retry_max_delay_s;
  p.max_retry_after_s = m.max_retry_after_s;
  return p;
}

bool is_retryable(ChatStatus status, int http_status) {
  switch (status) {
  case ChatStatus::timeout:
  case ChatStatus::network:
  case ChatStatus::rate_limited:
    return true;
  case ChatStatus::http_error:
    return http_status == 429 || (http_status >= 500 && http_status <= 599);
  default:
    return false;
  }
}

double backoff_delay_s(const RetryPolicy& p, int retry, double u) {
  // Exponent clamped so 2^retry cannot overflow for absurd retry counts.
  const double d = std::min(p.max_delay_s, p.base_delay_s * std::ldexp(1.0, std::min(retry, 60)));
  const double j = std::clamp(p.jitter, 0.0, 1.0);
  return d * (1.0 - j * std::clamp(u, 0.0, 1.0));
}

std::optional<double> next_retry_delay_s(const RetryPolicy& p, int retries_done, ChatStatus status,
                                         int http_status, std::optional<double> retry_after_s,
                                         double u) {
  if (!is_retryable(status, http_status) || retries_done >= p.max_retries)
    return std::nullopt;
  if (retry_after_s && *retry_after_s > p.max_retry_after_s)
    return std::nullopt;
  const double backoff = backoff_delay_s(p, retries_done, u);
  return retry_after_s ? std::max(backoff, *retry_after_s) : backoff;
}

std::optional<double> parse_retry_after(std::string_view value,
                                        std::chrono::system_clock::time_point now) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
      s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
      s.remove_suffix(1);
    return s;
  };
  value = trim(value);
  if (value.empty())
    return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(value.front()))) {
    double seconds = 0.0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc() || ptr != value.data() + value.size() || !std::isfinite(seconds))
      return std::nullopt;
    return seconds;
  }
  // HTTP dates in all three RFC 9110 forms; libcurl's parser handles them.
  const std::string s(value);
  const time_t t = curl_getdate(s.c_str(), nullptr);
  if (t == -1)
    return std::nullopt;
  const auto when = std::chrono::system_clock::from_time_t(t);
  const double delta = std::chrono::duration<double>(when - now).count();
  return std::max(0.0, delta);
}

RateLimiter::RateLimiter(double requests_per_minute, double tokens_per_minute)
    : m_rpm(requests_per_minute), m_tpm(tokens_per_minute), m_requests(requests_per_minute),
      m_tokens(tokens_per_minute), m_last_s(0.0) {}

double RateLimiter::reserve(double now_s, double tokens) {
  std::lock_guard lock(m_mutex);
  if (!m_started) {
    m_started = true;
    m_last_s = now_s;
  }
  const double dt = std::max(0.0, now_s - m_last_s);
  m_last_s = std::max(m_last_s, now_s);
  double wait = 0.0;
  if (m_rpm > 0.0) {
    m_requests = std::min(m_rpm, m_requests + dt * m_rpm / 60.0);
    m_requests -= 1.0;
    if (m_requests < 0.0)
      wait = std::max(wait, -m_requests * 60.0 / m_rpm);
  }
  if (m_tpm > 0.0) {
    // A request larger than a whole minute's allowance would never fit; it waits for a full
    // bucket instead of forever.
    const double t = std::min(tokens, m_tpm);
    m_tokens = std::min(m_tpm, m_tokens + dt * m_tpm / 60.0);
    m_tokens -= t;
    if (m_tokens < 0.0)
      wait = std::max(wait, -m_tokens * 60.0 / m_tpm);
  }
  return wait;
}

void RateLimiter::acquire(double tokens) {
  if (m_rpm <= 0.0 && m_tpm <= 0.0)
    return;
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const double wait = reserve(now, tokens);
  if (wait > 0.0)
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
}

} // namespace kb::llm
