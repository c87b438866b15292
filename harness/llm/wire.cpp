// Request bodies and response parsing of the OpenAI-compatible and Anthropic chat APIs.
#include "wire.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

namespace kb::llm::wire {

namespace {

constexpr std::size_t k_max_error_chars = 600;

std::string bounded(std::string_view s, std::size_t n = k_max_error_chars) {
  if (s.size() <= n)
    return std::string(s);
  return fmt::format("{}... ({} more bytes)", s.substr(0, n), s.size() - n);
}

void merge_extra(nlohmann::json& body, const nlohmann::json& extra) {
  if (!extra.is_object())
    return;
  for (auto it = extra.begin(); it != extra.end(); ++it)
    body[it.key()] = it.value();
}

int64_t estimate_input(const ChatRequest& req) {
  int64_t n = 0;
  for (const auto& m : req.messages)
    n += estimate_tokens(m.content) + 4; // role and separators cost a few tokens each
  return n;
}

void set_malformed(ChatResponse& out, std::string cls, std::string msg) {
  out.status = ChatStatus::malformed;
  out.error_class = std::move(cls);
  out.error_message = std::move(msg);
}

int64_t as_count(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number())
    return -1;
  return it->get<int64_t>();
}

void fill_estimates(const ChatRequest& req, ChatResponse& out) {
  out.tokens_in = estimate_input(req);
  out.tokens_out = estimate_tokens(out.text) + estimate_tokens(out.reasoning);
  out.tokens_estimated = true;
}

} // namespace

nlohmann::json openai_body(const ModelConfig& cfg, const ChatRequest& req) {
  nlohmann::json body{{"model", cfg.model_id}, {"messages", req.messages}, {"stream", false}};
  body[cfg.max_tokens_field] = req.max_tokens.value_or(cfg.max_output_tokens);
  if (cfg.send_temperature)
    body["temperature"] = req.temperature.value_or(cfg.temperature);
  if (req.seed)
    body["seed"] = *req.seed;
  merge_extra(body, cfg.extra_body);
  return body;
}

nlohmann::json anthropic_body(const ModelConfig& cfg, const ChatRequest& req) {
  std::string system;
  auto messages = nlohmann::json::array();
  for (const auto& m : req.messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
    } else {
      messages.push_back(m);
    }
  }
  nlohmann::json body{{"model", cfg.model_id},
                      {"max_tokens", req.max_tokens.value_or(cfg.max_output_tokens)},
                      {"messages", std::move(messages)}};
  if (!system.empty())
    body["system"] = system;
  if (cfg.send_temperature)
    body["temperature"] = req.temperature.value_or(cfg.temperature);
  merge_extra(body, cfg.extra_body);
  return body;
}

void parse_openai(std::string_view body, const ChatRequest& req, ChatResponse& out) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded())
    return set_malformed(out, "json_parse",
                         fmt::format("response is not JSON: {}", bounded(body, 200)));
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
      j["choices"].empty() || !j["choices"][0].is_object())
    return set_malformed(out, "json_shape",
                         fmt::format("response has no choices: {}", bounded(body, 200)));
  const auto& choice = j["choices"][0];
  const auto msg = choice.value("message", nlohmann::json::object());
  if (!msg.is_object())
    return set_malformed(out, "json_shape", "choices[0].message is not an object");
  if (msg.contains("content") && msg["content"].is_string())
    out.text = msg["content"].get<std::string>();
  else if (msg.contains("content") && !msg["content"].is_null())
    return set_malformed(out, "json_shape", "choices[0].message.content is not a string");
  // vLLM/SGLang/DeepSeek put separated reasoning here; OpenRouter uses "reasoning".
  for (const char* key : {"reasoning_content", "reasoning"})
    if (msg.contains(key) && msg[key].is_string())
      out.reasoning = msg[key].get<std::string>();
  if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
    out.finish_reason = choice["finish_reason"].get<std::string>();
  out.status = ChatStatus::ok;
  const auto usage = j.value("usage", nlohmann::json());
  const int64_t in = usage.is_object() ? as_count(usage, "prompt_tokens") : -1;
  const int64_t tout = usage.is_object() ? as_count(usage, "completion_tokens") : -1;
  if (in >= 0 && tout >= 0) {
    out.tokens_in = in;
    out.tokens_out = tout;
    out.tokens_estimated = false;
  } else {
    fill_estimates(req, out);
  }
}

void parse_anthropic(std::string_view body, const ChatRequest& req, ChatResponse& out) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded())
    return set_malformed(out, "json_parse",
                         fmt::format("response is not JSON: {}", bounded(body, 200)));
  if (!j.is_object() || !j.contains("content") || !j["content"].is_array())
    return set_malformed(out, "json_shape",
                         fmt::format("response has no content array: {}", bounded(body, 200)));
  for (const auto& block : j["content"]) {
    if (!block.is_object())
      continue;
    const std::string type = block.value("type", "");
    if (type == "text" && block.contains("text") && block["text"].is_string())
      out.text += block["text"].get<std::string>();
    else if (type == "thinking" && block.contains("thinking") && block["thinking"].is_string())
      out.reasoning += block["thinking"].get<std::string>();
  }
  if (j.contains("stop_reason") && j["stop_reason"].is_string())
    out.finish_reason = j["stop_reason"].get<std::string>();
  out.status = ChatStatus::ok;
  const auto usage = j.value("usage", nlohmann::json());
  const int64_t in = usage.is_object() ? as_count(usage, "input_tokens") : -1;
  const int64_t tout = usage.is_object() ? as_count(usage, "output_tokens") : -1;
  if (in >= 0 && tout >= 0) {
    // Prompt caching reports cached input separately; all of it is input the call consumed.
    const int64_t created = as_count(usage, "cache_creation_input_tokens");
    const int64_t read = as_count(usage, "cache_read_input_tokens");
    out.tokens_in = in + std::max<int64_t>(0, created) + std::max<int64_t>(0, read);
    out.tokens_out = tout;
    out.tokens_estimated = false;
  } else {
    fill_estimates(req, out);
  }
}

void classify_http_error(int http_status, std::string_view body, ChatResponse& out) {
  out.http_status = http_status;
  out.status = http_status == 429 ? ChatStatus::rate_limited : ChatStatus::http_error;
  out.error_class = fmt::format("http_{}", http_status);
  std::string detail;
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string())
      detail = e["message"].get<std::string>();
    else if (e.is_string())
      detail = e.get<std::string>();
  }
  if (detail.empty())
    detail = std::string(body);
  out.error_message = fmt::format("HTTP {}: {}", http_status, bounded(detail));
}

void classify_curl_error(int curl_code, bool connected, std::string_view detail,
                         ChatResponse& out) {
  const auto code = static_cast<CURLcode>(curl_code);
  if (code == CURLE_OPERATION_TIMEDOUT) {
    out.status = ChatStatus::timeout;
    out.error_class = connected ? "read_timeout" : "connect_timeout";
  } else {
    out.status = ChatStatus::network;
    out.error_class = fmt::format("curl_{}", curl_code);
  }
  out.error_message =
      fmt::format("{} ({})", curl_easy_strerror(code), detail.empty() ? "no detail" : detail);
}

} // namespace kb::llm::wire
