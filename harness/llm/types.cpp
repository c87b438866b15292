// Chat value types: status names, JSON conversions, token estimates, cache keys, memory cache.
#include <array>

#include "llm.hpp"

namespace kb::llm {

namespace {
constexpr std::array<std::pair<ChatStatus, std::string_view>, 7> k_status_names{{
    {ChatStatus::ok, "ok"},
    {ChatStatus::http_error, "http_error"},
    {ChatStatus::timeout, "timeout"},
    {ChatStatus::rate_limited, "rate_limited"},
    {ChatStatus::malformed, "malformed"},
    {ChatStatus::network, "network"},
    {ChatStatus::budget, "budget"},
}};
} // namespace

std::string_view chat_status_name(ChatStatus s) {
  for (const auto& [v, n] : k_status_names)
    if (v == s)
      return n;
  return "unknown";
}

std::optional<ChatStatus> parse_chat_status(std::string_view name) {
  for (const auto& [v, n] : k_status_names)
    if (n == name)
      return v;
  return std::nullopt;
}

int64_t estimate_tokens(std::string_view text) {
  return static_cast<int64_t>((text.size() + 3) / 4);
}

void to_json(nlohmann::json& j, const ChatMessage& m) {
  j = nlohmann::json{{"role", m.role}, {"content", m.content}};
}

void from_json(const nlohmann::json& j, ChatMessage& m) {
  m.role = j.at("role").get<std::string>();
  m.content = j.at("content").get<std::string>();
}

void to_json(nlohmann::json& j, const AttemptRecord& a) {
  j = nlohmann::json{{"status", chat_status_name(a.status)},
                     {"http_status", a.http_status},
                     {"error_class", a.error_class},
                     {"latency_s", a.latency_s},
                     {"wait_before_s", a.wait_before_s}};
  if (a.retry_after_s)
    j["retry_after_s"] = *a.retry_after_s;
}

void from_json(const nlohmann::json& j, AttemptRecord& a) {
  a.status = parse_chat_status(j.value("status", "ok")).value_or(ChatStatus::network);
  a.http_status = j.value("http_status", 0);
  a.error_class = j.value("error_class", "");
  a.latency_s = j.value("latency_s", 0.0);
  a.wait_before_s = j.value("wait_before_s", 0.0);
  if (j.contains("retry_after_s"))
    a.retry_after_s = j.at("retry_after_s").get<double>();
}

void to_json(nlohmann::json& j, const ChatResponse& r) {
  j = nlohmann::json{{"text", r.text},
                     {"reasoning", r.reasoning},
                     {"tokens_in", r.tokens_in},
                     {"tokens_out", r.tokens_out},
                     {"tokens_estimated", r.tokens_estimated},
                     {"cost_usd", r.cost_usd},
                     {"latency_s", r.latency_s},
                     {"status", chat_status_name(r.status)},
                     {"error_class", r.error_class},
                     {"error_message", r.error_message},
                     {"http_status", r.http_status},
                     {"retries", r.retries},
                     {"finish_reason", r.finish_reason},
                     {"request_hash", r.request_hash},
                     {"model", r.model},
                     {"cached", r.cached},
                     {"attempts", r.attempts}};
}

void from_json(const nlohmann::json& j, ChatResponse& r) {
  r.text = j.value("text", "");
  r.reasoning = j.value("reasoning", "");
  r.tokens_in = j.value("tokens_in", int64_t{0});
  r.tokens_out = j.value("tokens_out", int64_t{0});
  r.tokens_estimated = j.value("tokens_estimated", false);
  r.cost_usd = j.value("cost_usd", 0.0);
  r.latency_s = j.value("latency_s", 0.0);
  r.status = parse_chat_status(j.value("status", "ok")).value_or(ChatStatus::network);
  r.error_class = j.value("error_class", "");
  r.error_message = j.value("error_message", "");
  r.http_status = j.value("http_status", 0);
  r.retries = j.value("retries", 0);
  r.finish_reason = j.value("finish_reason", "");
  r.request_hash = j.value("request_hash", "");
  r.model = j.value("model", "");
  r.cached = j.value("cached", false);
  r.attempts = j.value("attempts", std::vector<AttemptRecord>{});
}

std::string cache_key(const ModelConfig& m, const ChatRequest& r) {
  // Canonical JSON: nlohmann's object keys are sorted, numbers printed shortest-round-trip, so
  // the same request hashes the same everywhere.
  nlohmann::json j{
      {"provider", provider_kind_name(m.provider)},
      {"base_url", m.base_url},
      {"model", m.model_id},
      {"messages", r.messages},
      {"temperature", r.temperature.value_or(m.temperature)},
      {"max_tokens", r.max_tokens.value_or(m.max_output_tokens)},
      {"extra_body", m.extra_body},
      {"sample_index", r.sample_index},
  };
  if (r.seed)
    j["seed"] = *r.seed;
  // Replay answers depend on the problem, not on the text sent.
  if (m.provider == ProviderKind::replay)
    j["problem_id"] = r.problem_id;
  return content_hash(j.dump());
}

} // namespace kb::llm
