// The model client: rate limits, retries with backoff, the answer cap, and a worker pool.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "llm.hpp"

namespace kb::llm {

namespace {
constexpr int k_max_in_flight = 64;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace

struct Client::Impl {
  ModelConfig cfg;
  ClientOptions opts;
  std::unique_ptr<Provider> provider;
  RetryPolicy policy;
  RateLimiter limiter;
  Redactor redactor;

  std::mutex stats_mutex;
  ClientStats stats;

  std::mutex rng_mutex;
  std::mt19937_64 rng;

  struct Job {
    ChatRequest request;
    std::promise<ChatResponse> promise;
  };
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<Job> queue;
  bool stopping = false;
  std::vector<std::thread> workers;

  Impl(ModelConfig c, ClientOptions o)
      : cfg(std::move(c)), opts(std::move(o)), policy(retry_policy_of(cfg)),
        limiter(cfg.requests_per_minute, cfg.tokens_per_minute), rng(opts.jitter_seed) {
    provider = opts.provider ? std::move(opts.provider) : make_provider(cfg, opts.replay_generator);
    if (!cfg.api_key_env.empty())
      if (const char* key = std::getenv(cfg.api_key_env.c_str()))
        redactor.add_secret(key);
    int n = opts.max_in_flight > 0 ? opts.max_in_flight : cfg.concurrency;
    n = std::clamp(n, 1, k_max_in_flight);
    workers.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      workers.emplace_back([this] { work(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(queue_mutex);
      stopping = true;
    }
    queue_cv.notify_all();
    for (auto& t : workers)
      t.join();
  }

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(queue_mutex);
        queue_cv.wait(lock, [this] { return stopping || !queue.empty(); });
        // Queued calls still run at shutdown so no future is left without a value.
        if (queue.empty())
          return;
        job = std::move(queue.front());
        queue.pop_front();
      }
      job.promise.set_value(run(job.request));
    }
  }

  double jitter_u() {
    std::lock_guard lock(rng_mutex);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  void log(const std::string& line) {
    if (opts.log)
      opts.log(redactor.redact(line));
  }

  int64_t request_estimate(const ChatRequest& r) const {
    int64_t in = 0;
    for (const auto& m : r.messages)
      in += estimate_tokens(m.content) + 4;
    return in + r.max_tokens.value_or(cfg.max_output_tokens);
  }

  ChatResponse run(const ChatRequest& req) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string key = cache_key(cfg, req);
    const int64_t estimate = request_estimate(req);
    ChatResponse out;
    std::vector<AttemptRecord> attempts;
    double wait_s = 0.0;
    int attempts_made = 0;
    for (int retry = 0;; ++retry) {
      limiter.acquire(static_cast<double>(estimate));
      out = provider->complete(req);
      ++attempts_made;
      AttemptRecord a = out.attempts.empty() ? AttemptRecord{} : out.attempts.back();
      a.wait_before_s = wait_s;
      attempts.push_back(a);
      if (out.ok())
        break;
      const auto delay = next_retry_delay_s(policy, retry, out.status, out.http_status,
                                            a.retry_after_s, jitter_u());
      log(fmt::format("model {}: attempt {} failed: {} {} {}{}", cfg.name, retry + 1,
                      chat_status_name(out.status), out.error_class, out.error_message,
                      delay ? fmt::format("; retrying in {:.3f} s", *delay) : ""));
      if (!delay)
        break;
      wait_s = *delay;
      std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    }
    out.attempts = std::move(attempts);
    out.retries = attempts_made - 1;
    if (cfg.provider == ProviderKind::openai)
      out.seed = req.seed;
    const auto cap = static_cast<std::size_t>(std::max(1, cfg.max_answer_bytes));
    if (out.text.size() > cap || out.reasoning.size() > cap) {
      out.answer_bytes = static_cast<int64_t>(std::max(out.text.size(), out.reasoning.size()));
      if (out.text.size() > cap)
        out.text.resize(cap);
      if (out.reasoning.size() > cap)
        out.reasoning.resize(cap);
      out.text.shrink_to_fit();
      out.reasoning.shrink_to_fit();
      log(fmt::format("model {}: answer of {} bytes cut to max_answer_bytes = {}", cfg.name,
                      out.answer_bytes, cap));
    }
    out.request_hash = key;
    out.model = cfg.name;
    out.latency_s = seconds_since(t0);
    out.error_message = redactor.redact(out.error_message);
    // A 429 that was retried away is rate_limited only when it is also the final answer.
    if (!out.ok() && out.http_status == 429)
      out.status = ChatStatus::rate_limited;
    record(out, attempts_made);
    return out;
  }

  void record(const ChatResponse& out, int attempts_made) {
    std::lock_guard lock(stats_mutex);
    ++stats.calls;
    stats.attempts += attempts_made;
    stats.retries += std::max(0, attempts_made - 1);
    if (out.ok()) {
      stats.tokens_in += out.tokens_in;
      stats.tokens_out += out.tokens_out;
      stats.cost_usd += out.cost_usd;
    } else {
      ++stats.failures[std::string(chat_status_name(out.status))];
    }
  }
};

Client::Client(ModelConfig cfg, ClientOptions options)
    : m_impl(std::make_unique<Impl>(std::move(cfg), std::move(options))) {}

Client::~Client() = default;

std::future<ChatResponse> Client::submit(ChatRequest request) {
  std::promise<ChatResponse> p;
  auto f = p.get_future();
  {
    std::lock_guard lock(m_impl->queue_mutex);
    m_impl->queue.push_back({std::move(request), std::move(p)});
  }
  m_impl->queue_cv.notify_one();
  return f;
}

ChatResponse Client::chat(ChatRequest request) {
  return submit(std::move(request)).get();
}

std::vector<ChatResponse> Client::chat_all(std::vector<ChatRequest> requests) {
  std::vector<std::future<ChatResponse>> futures;
  futures.reserve(requests.size());
  for (auto& r : requests)
    futures.push_back(submit(std::move(r)));
  std::vector<ChatResponse> out;
  out.reserve(futures.size());
  for (auto& f : futures)
    out.push_back(f.get());
  return out;
}

const ModelConfig& Client::config() const {
  return m_impl->cfg;
}

int Client::max_in_flight() const {
  return static_cast<int>(m_impl->workers.size());
}

ClientStats Client::stats() const {
  std::lock_guard lock(m_impl->stats_mutex);
  return m_impl->stats;
}

std::string Client::redact(std::string_view text) const {
  return m_impl->redactor.redact(text);
}

} // namespace kb::llm
