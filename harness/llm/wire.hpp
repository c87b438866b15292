// Internal to kb_llm: request bodies and response parsing of the two HTTP dialects, and the
// classification of transport failures. Pure functions, so unit tests can reach them.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "llm.hpp"

namespace kb::llm::wire {

// {"model", "messages", max tokens under cfg.max_tokens_field, "temperature" (when sent),
// "seed" (when set), "stream": false} with cfg.extra_body's keys merged last.
nlohmann::json openai_body(const ModelConfig& cfg, const ChatRequest& req);
// {"model", "max_tokens", "system" (system messages joined), "messages" (the rest),
// "temperature"} with cfg.extra_body merged last.
nlohmann::json anthropic_body(const ModelConfig& cfg, const ChatRequest& req);

// Fill text, reasoning, finish_reason and token counts from a 2xx body. On a body that is not
// the expected JSON: status malformed with error_class "json_parse" or "json_shape".
// When the body has no usage fields, tokens are estimated from `req` and the text.
void parse_openai(std::string_view body, const ChatRequest& req, ChatResponse& out);
void parse_anthropic(std::string_view body, const ChatRequest& req, ChatResponse& out);

// Status and message of a non-2xx reply: 429 -> rate_limited, others http_error; the message is
// the API's error.message when the body has one (bounded), else the start of the body.
void classify_http_error(int http_status, std::string_view body, ChatResponse& out);

// Status and error class of a libcurl failure (code is a CURLcode): timeouts -> timeout
// ("connect_timeout" or "read_timeout"), everything else network ("curl_<code>").
void classify_curl_error(int curl_code, bool connected, std::string_view detail, ChatResponse& out);

} // namespace kb::llm::wire
