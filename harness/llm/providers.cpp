// Providers: the OpenAI-compatible and Anthropic HTTP dialects over libcurl, and replay.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include <curl/curl.h>
#include <fmt/format.h>

#include "wire.hpp"

namespace kb::llm {

namespace {

namespace fs = std::filesystem;

// Bodies are capped so a misbehaving server cannot exhaust memory.
constexpr std::size_t k_max_body_bytes = 64u << 20;

void global_curl_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Received {
  std::string body;
  std::optional<std::string> retry_after;
  bool overflow = false;
  // Idle tracking for the read timeout: the last time any byte moved in either direction.
  std::chrono::steady_clock::time_point last_activity;
  curl_off_t last_down = 0, last_up = 0;
  double read_timeout_s = 0.0;
  bool idle_abort = false;
};

// libcurl's low-speed limit averages the rate over a window of several seconds, so a request
// whose upload finished just before the server went silent is detected seconds late. Instead the
// idle time is measured here; libcurl calls this at least once per second while idle.
int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                curl_off_t ulnow) {
  (void)dltotal;
  (void)ultotal;
  auto* r = static_cast<Received*>(user);
  const auto now = std::chrono::steady_clock::now();
  if (dlnow != r->last_down || ulnow != r->last_up) {
    r->last_down = dlnow;
    r->last_up = ulnow;
    r->last_activity = now;
    return 0;
  }
  if (std::chrono::duration<double>(now - r->last_activity).count() > r->read_timeout_s) {
    r->idle_abort = true;
    return 1;
  }
  return 0;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Received*>(user);
  const size_t bytes = size * n;
  if (r->body.size() + bytes > k_max_body_bytes) {
    r->overflow = true;
    return 0; // aborts the transfer with CURLE_WRITE_ERROR
  }
  r->body.append(data, bytes);
  return bytes;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Received*>(user);
  const std::string_view line(data, size * n);
  constexpr std::string_view name = "retry-after:";
  if (line.size() > name.size()) {
    bool match = true;
    for (size_t i = 0; i < name.size() && match; ++i)
      match = std::tolower(static_cast<unsigned char>(line[i])) == name[i];
    if (match) {
      std::string v(line.substr(name.size()));
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n'))
        v.pop_back();
      r->retry_after = v;
    }
  }
  return size * n;
}

// Easy handles are pooled so each worker thread keeps its connection alive across calls;
// a handle is used by one thread at a time.
class HandlePool {
public:
  ~HandlePool() {
    for (CURL* h : m_free)
      curl_easy_cleanup(h);
  }
  CURL* take() {
    {
      std::lock_guard lock(m_mutex);
      if (!m_free.empty()) {
        CURL* h = m_free.back();
        m_free.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void give(CURL* h) {
    std::lock_guard lock(m_mutex);
    m_free.push_back(h);
  }

private:
  std::mutex m_mutex;
  std::vector<CURL*> m_free;
};

class HttpProvider final : public Provider {
public:
  explicit HttpProvider(ModelConfig cfg) : m_cfg(std::move(cfg)) {
    global_curl_init();
    if (!m_cfg.api_key_env.empty()) {
      const char* key = std::getenv(m_cfg.api_key_env.c_str());
      if (key == nullptr || *key == '\0')
        throw Error(fmt::format("model '{}': environment variable {} (api_key_env) is not set",
                                m_cfg.name, m_cfg.api_key_env));
      m_key = key;
      m_redactor.add_secret(m_key);
    }
    std::string base = m_cfg.base_url;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    m_url = m_cfg.provider == ProviderKind::anthropic ? base + "/v1/messages"
                                                      : base + "/chat/completions";
  }

  const ModelConfig& config() const override { return m_cfg; }

  ChatResponse complete(const ChatRequest& req) override {
    ChatResponse out;
    out.model = m_cfg.name;
    const bool anthropic = m_cfg.provider == ProviderKind::anthropic;
    const std::string body =
        (anthropic ? wire::anthropic_body(m_cfg, req) : wire::openai_body(m_cfg, req)).dump();

    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    // Header lines holding the key live only in this slist and are freed below; nothing else
    // keeps a copy.
    if (anthropic) {
      headers = curl_slist_append(
          headers, fmt::format("anthropic-version: {}", m_cfg.anthropic_version).c_str());
      if (!m_key.empty())
        headers = curl_slist_append(headers, fmt::format("x-api-key: {}", m_key).c_str());
    } else if (!m_key.empty()) {
      headers = curl_slist_append(headers, fmt::format("Authorization: Bearer {}", m_key).c_str());
    }
    // Without this, libcurl waits for "100 Continue" on large bodies, which some servers never
    // send.
    headers = curl_slist_append(headers, "Expect:");

    CURL* h = m_pool.take();
    Received rx;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, m_url.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rx);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &rx);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::ceil(m_cfg.connect_timeout_s * 1000.0)));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::ceil(m_cfg.total_timeout_s * 1000.0)));
    rx.read_timeout_s = m_cfg.read_timeout_s;
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &rx);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);

    const auto t0 = std::chrono::steady_clock::now();
    rx.last_activity = t0;
    const CURLcode rc = curl_easy_perform(h);
    out.latency_s = seconds_since(t0);
    long http_status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
    curl_off_t connect_us = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
    // Drop the header list (which references the key) from the handle before pooling it.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    m_pool.give(h);
    curl_slist_free_all(headers);

    out.http_status = static_cast<int>(http_status);
    AttemptRecord attempt;
    if (rx.retry_after)
      attempt.retry_after_s = parse_retry_after(*rx.retry_after, std::chrono::system_clock::now());
    if (rc != CURLE_OK && rx.idle_abort) {
      out.status = ChatStatus::timeout;
      out.error_class = "read_timeout";
      out.error_message =
          fmt::format("no data from the server for {:g} s (read_timeout_s)", m_cfg.read_timeout_s);
    } else if (rc != CURLE_OK) {
      std::string detail = errbuf;
      if (rx.overflow)
        detail = fmt::format("response body larger than {} bytes", k_max_body_bytes);
      wire::classify_curl_error(rc, connect_us > 0 || http_status > 0, detail, out);
    } else if (http_status < 200 || http_status > 299) {
      wire::classify_http_error(out.http_status, rx.body, out);
    } else if (anthropic) {
      wire::parse_anthropic(rx.body, req, out);
    } else {
      wire::parse_openai(rx.body, req, out);
    }
    out.error_message = m_redactor.redact(out.error_message);
    if (out.ok())
      out.cost_usd = cost_usd(m_cfg, out.tokens_in, out.tokens_out);
    attempt.status = out.status;
    attempt.http_status = out.http_status;
    attempt.error_class = out.error_class;
    attempt.latency_s = out.latency_s;
    out.attempts.push_back(attempt);
    return out;
  }

private:
  ModelConfig m_cfg;
  std::string m_key;
  std::string m_url;
  Redactor m_redactor;
  HandlePool m_pool;
};

class ReplayProvider final : public Provider {
public:
  ReplayProvider(ModelConfig cfg, KernelGenerator generator)
      : m_cfg(std::move(cfg)), m_generator(std::move(generator)) {
    if (m_cfg.replay_dir.empty())
      m_cfg.replay_dir = "levels/examples";
  }

  const ModelConfig& config() const override { return m_cfg; }

  ChatResponse complete(const ChatRequest& req) override {
    const auto t0 = std::chrono::steady_clock::now();
    ChatResponse out;
    out.model = m_cfg.name;
    const std::string stem = fs::path(req.problem_id).filename().string();
    std::vector<fs::path> files;
    std::error_code ec;
    const fs::path dir = fs::path(m_cfg.replay_dir) / stem;
    if (!stem.empty() && fs::is_directory(dir, ec)) {
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file(ec) && e.path().extension() == ".cu")
          files.push_back(e.path());
    } else if (!stem.empty() && fs::is_regular_file(fs::path(m_cfg.replay_dir) / (stem + ".cu"))) {
      files.push_back(fs::path(m_cfg.replay_dir) / (stem + ".cu"));
    }
    std::sort(files.begin(), files.end());
    AttemptRecord attempt;
    const std::string missing = fmt::format("no kernel files {}/*.cu (or {}.cu)", dir.string(),
                                            (fs::path(m_cfg.replay_dir) / stem).string());
    if (files.empty() && !stem.empty() && m_generator) {
      GeneratedKernel g;
      try {
        g = m_generator(req.problem_id);
      } catch (const std::exception& e) {
        g.reason = e.what();
      }
      if (g.source) {
        std::string code = *g.source;
        if (!code.empty() && code.back() != '\n')
          code += '\n';
        answer(out, req,
               fmt::format("Replayed {} for problem '{}' ({}):\n\n```cuda\n{}```\n",
                           g.label.empty() ? "generated kernel" : g.label, req.problem_id, missing,
                           code));
      } else {
        // An answer without code: the attempt is the model's no_code, with this reason.
        answer(out, req,
               fmt::format("No kernel for problem '{}': {}, and none could be generated: {}",
                           req.problem_id, missing, g.reason));
      }
    } else if (files.empty()) {
      out.status = ChatStatus::http_error;
      out.error_class = "replay_not_found";
      out.error_message = stem.empty()
                              ? "replay needs the request's problem_id"
                              : fmt::format("{} for problem '{}'", missing, req.problem_id);
    } else {
      const auto n = static_cast<int64_t>(files.size());
      const auto& file = files[static_cast<size_t>(((req.sample_index % n) + n) % n)];
      std::string code;
      try {
        code = read_file(file.string());
      } catch (const Error& e) {
        out.status = ChatStatus::http_error;
        out.error_class = "replay_unreadable";
        out.error_message = e.what();
      }
      if (out.error_class.empty()) {
        if (!code.empty() && code.back() != '\n')
          code += '\n';
        answer(
            out, req,
            fmt::format("Replayed kernel {}:\n\n```cuda\n{}```\n", file.filename().string(), code));
      }
    }
    out.latency_s = seconds_since(t0);
    attempt.status = out.status;
    attempt.error_class = out.error_class;
    attempt.latency_s = out.latency_s;
    out.attempts.push_back(attempt);
    return out;
  }

private:
  // A successful answer with `text`, tokens estimated from its length.
  void answer(ChatResponse& out, const ChatRequest& req, std::string text) const {
    out.text = std::move(text);
    out.finish_reason = "stop";
    int64_t in = 0;
    for (const auto& m : req.messages)
      in += estimate_tokens(m.content) + 4;
    out.tokens_in = in;
    out.tokens_out = estimate_tokens(out.text);
    out.tokens_estimated = true;
    out.cost_usd = cost_usd(m_cfg, out.tokens_in, out.tokens_out);
  }

  ModelConfig m_cfg;
  KernelGenerator m_generator;
};

} // namespace

std::unique_ptr<Provider> make_provider(const ModelConfig& cfg, KernelGenerator generator) {
  if (cfg.name.empty())
    throw Error("model config without a name");
  switch (cfg.provider) {
  case ProviderKind::replay:
    return std::make_unique<ReplayProvider>(cfg, std::move(generator));
  case ProviderKind::openai:
  case ProviderKind::anthropic:
    if (cfg.base_url.rfind("http://", 0) != 0 && cfg.base_url.rfind("https://", 0) != 0)
      throw Error(fmt::format("model '{}': base_url '{}' must start with http:// or https://",
                              cfg.name, redact_patterns(cfg.base_url)));
    if (cfg.model_id.empty())
      throw Error(fmt::format("model '{}': empty model id", cfg.name));
    return std::make_unique<HttpProvider>(cfg);
  }
  throw Error(fmt::format("model '{}': unknown provider", cfg.name));
}

} // namespace kb::llm
