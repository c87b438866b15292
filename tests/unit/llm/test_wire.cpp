// Unit tests of the two HTTP dialects: request bodies, usage parsing, error classification.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include "wire.hpp"

namespace kb::llm {
namespace {

ChatRequest req() {
  ChatRequest r;
  r.messages = {{"system", "sys"}, {"user", "hello"}};
  r.seed = 7;
  r.problem_id = "l1/x";
  return r;
}

TEST(Wire, OpenAiBody) {
  auto m = *known_model_defaults("gpt-4o");
  m.temperature = 0.3;
  m.extra_body = {{"top_p", 0.9}, {"temperature", 0.1}};
  const auto b = wire::openai_body(m, req());
  EXPECT_EQ(b["model"], "gpt-4o");
  EXPECT_EQ(b["messages"].size(), 2u);
  EXPECT_EQ(b["messages"][0]["role"], "system");
  EXPECT_EQ(b["max_tokens"], m.max_output_tokens);
  EXPECT_EQ(b["seed"], 7);
  EXPECT_EQ(b["top_p"], 0.9);
  EXPECT_EQ(b["temperature"], 0.1); // extra body wins
  EXPECT_FALSE(b.contains("problem_id"));
  EXPECT_EQ(b["stream"], false);
}

TEST(Wire, OpenAiReasoningModelBody) {
  auto m = *known_model_defaults("o3");
  auto r = req();
  r.max_tokens = 1000;
  const auto b = wire::openai_body(m, r);
  EXPECT_EQ(b["max_completion_tokens"], 1000);
  EXPECT_FALSE(b.contains("max_tokens"));
  EXPECT_FALSE(b.contains("temperature"));
}

TEST(Wire, AnthropicBody) {
  auto m = *known_model_defaults("claude-sonnet-4-0");
  auto r = req();
  r.messages.insert(r.messages.begin() + 1, ChatMessage{"system", "more"});
  r.temperature = 0.5;
  const auto b = wire::anthropic_body(m, r);
  EXPECT_EQ(b["system"], "sys\n\nmore");
  ASSERT_EQ(b["messages"].size(), 1u);
  EXPECT_EQ(b["messages"][0]["role"], "user");
  EXPECT_EQ(b["max_tokens"], m.max_output_tokens);
  EXPECT_EQ(b["temperature"], 0.5);
  EXPECT_FALSE(b.contains("seed"));
}

TEST(Wire, ParseOpenAiUsage) {
  ChatResponse out;
  wire::parse_openai(R"({"choices":[{"message":{"role":"assistant","content":"hi",
      "reasoning_content":"hmm"},"finish_reason":"length"}],
      "usage":{"prompt_tokens":123,"completion_tokens":45}})",
                     req(), out);
  EXPECT_EQ(out.status, ChatStatus::ok);
  EXPECT_EQ(out.text, "hi");
  EXPECT_EQ(out.reasoning, "hmm");
  EXPECT_EQ(out.finish_reason, "length");
  EXPECT_EQ(out.tokens_in, 123);
  EXPECT_EQ(out.tokens_out, 45);
  EXPECT_FALSE(out.tokens_estimated);
}

TEST(Wire, ParseOpenAiWithoutUsageEstimates) {
  ChatResponse out;
  wire::parse_openai(R"({"choices":[{"message":{"content":"12345678"}}]})", req(), out);
  EXPECT_EQ(out.status, ChatStatus::ok);
  EXPECT_TRUE(out.tokens_estimated);
  EXPECT_EQ(out.tokens_out, 2);
  EXPECT_GT(out.tokens_in, 0);
}

TEST(Wire, ParseAnthropicUsage) {
  ChatResponse out;
  wire::parse_anthropic(R"({"type":"message","content":[{"type":"thinking","thinking":"t"},
      {"type":"text","text":"a"},{"type":"text","text":"b"}],"stop_reason":"max_tokens",
      "usage":{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":5}})",
                        req(), out);
  EXPECT_EQ(out.status, ChatStatus::ok);
  EXPECT_EQ(out.text, "ab");
  EXPECT_EQ(out.reasoning, "t");
  EXPECT_EQ(out.finish_reason, "max_tokens");
  EXPECT_EQ(out.tokens_in, 15);
  EXPECT_EQ(out.tokens_out, 20);
}

TEST(Wire, MalformedBodies) {
  for (const char* body :
       {"{not json", "[]", R"({"choices":[]})", R"({"choices":[{"message":{"content":5}}]})"}) {
    ChatResponse out;
    wire::parse_openai(body, req(), out);
    EXPECT_EQ(out.status, ChatStatus::malformed) << body;
    EXPECT_FALSE(out.error_class.empty()) << body;
  }
  ChatResponse out;
  wire::parse_anthropic(R"({"content":"text"})", req(), out);
  EXPECT_EQ(out.status, ChatStatus::malformed);
  EXPECT_EQ(out.error_class, "json_shape");
}

TEST(Wire, HttpErrors) {
  ChatResponse a;
  wire::classify_http_error(429, R"({"error":{"message":"slow down"}})", a);
  EXPECT_EQ(a.status, ChatStatus::rate_limited);
  EXPECT_EQ(a.error_class, "http_429");
  EXPECT_EQ(a.error_message, "HTTP 429: slow down");
  ChatResponse b;
  wire::classify_http_error(401, "plain text", b);
  EXPECT_EQ(b.status, ChatStatus::http_error);
  EXPECT_EQ(b.http_status, 401);
  EXPECT_EQ(b.error_message, "HTTP 401: plain text");
  ChatResponse c;
  wire::classify_http_error(500, std::string(5000, 'x'), c);
  EXPECT_LT(c.error_message.size(), 700u);
}

TEST(Wire, CurlErrors) {
  ChatResponse t;
  wire::classify_curl_error(CURLE_OPERATION_TIMEDOUT, true, "", t);
  EXPECT_EQ(t.status, ChatStatus::timeout);
  EXPECT_EQ(t.error_class, "read_timeout");
  ChatResponse c;
  wire::classify_curl_error(CURLE_OPERATION_TIMEDOUT, false, "", c);
  EXPECT_EQ(c.error_class, "connect_timeout");
  ChatResponse n;
  wire::classify_curl_error(CURLE_COULDNT_CONNECT, false, "refused", n);
  EXPECT_EQ(n.status, ChatStatus::network);
  EXPECT_EQ(n.error_class, "curl_7");
  EXPECT_NE(n.error_message.find("refused"), std::string::npos);
}

} // namespace
} // namespace kb::llm
