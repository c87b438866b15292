// End-to-end tests of the HTTP providers against a real kbench-mock-llm process on 127.0.0.1:
// usage parsing, retries and their counts, no retry on 400/401, bounded timeouts, truncated and
// malformed bodies, the Anthropic dialect, 64 concurrent requests, and key redaction.
#include <chrono>
#include <cstdlib>
#include <mutex>

#include <gtest/gtest.h>

#include "llm.hpp"
#include "mock_process.hpp"

namespace kb::llm {
namespace {

using nlohmann::json;
// The mock server binary built beside the tests.
class MockLlmServer : public test::MockLlmServer {
public:
  explicit MockLlmServer(const json& script, const std::string& dialect = "both",
                         double max_seconds = 300.0)
      : test::MockLlmServer(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script, dialect,
                            max_seconds) {}
};

constexpr const char* k_key_env = "KB_E2E_MOCK_KEY";
constexpr const char* k_key = "sk-e2e-mock-Secret-0123456789abcdef";

ModelConfig openai_model(const MockLlmServer& s) {
  ModelConfig m;
  m.name = "mock-openai";
  m.provider = ProviderKind::openai;
  m.base_url = s.url() + "/v1";
  m.model_id = "mock-model";
  m.max_retries = 3;
  m.retry_base_delay_s = 0.01;
  m.retry_max_delay_s = 0.05;
  m.connect_timeout_s = 2.0;
  m.read_timeout_s = 5.0;
  m.total_timeout_s = 20.0;
  m.price_in_per_mtok = 1.0;
  m.price_out_per_mtok = 4.0;
  return m;
}

ChatRequest ask(std::string text = "write the kernel") {
  ChatRequest r;
  r.messages = {{"system", "You write CUDA."}, {"user", std::move(text)}};
  r.problem_id = "l1/relu";
  return r;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(LlmE2e, OpenAiUsageTokensAndCost) {
  MockLlmServer s(json{{"fallback", {{"tokens_in", 1234}, {"tokens_out", 567}}}});
  auto m = openai_model(s);
  m.extra_body = {{"top_p", 0.95}};
  Client c(m);
  auto q = ask();
  q.seed = 11;
  q.temperature = 0.25;
  auto r = c.chat(q);
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.tokens_in, 1234);
  EXPECT_EQ(r.tokens_out, 567);
  EXPECT_FALSE(r.tokens_estimated);
  EXPECT_NEAR(r.cost_usd, (1234 * 1.0 + 567 * 4.0) / 1e6, 1e-12);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.retries, 0);
  EXPECT_TRUE(extract_code(r.text).found);
  const auto sent = s.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["path"], "/v1/chat/completions");
  EXPECT_EQ(sent[0]["body"]["model"], "mock-model");
  EXPECT_EQ(sent[0]["body"]["seed"], 11);
  EXPECT_EQ(sent[0]["body"]["temperature"], 0.25);
  EXPECT_EQ(sent[0]["body"]["top_p"], 0.95);
  EXPECT_EQ(sent[0]["body"]["messages"].size(), 2u);
  EXPECT_FALSE(sent[0]["body"].contains("problem_id"));
}

TEST(LlmE2e, MissingUsageIsEstimated) {
  MockLlmServer s(json{{"fallback", {{"usage", false}}}});
  Client c(openai_model(s));
  auto r = c.chat(ask());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.tokens_estimated);
  EXPECT_EQ(r.tokens_out, estimate_tokens(r.text));
}

TEST(LlmE2e, RateLimitRetriedHonouringRetryAfter) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "rate_limit"}, {"retry_after", "1"}},
                                                {{"fault", "rate_limit"}, {"retry_after", "0"}}})},
                       {"fallback", json::object()}});
  Client c(openai_model(s));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.chat(ask());
  const double wall = seconds_since(t0);
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.retries, 2);
  EXPECT_GE(wall, 1.0); // waited for Retry-After: 1
  EXPECT_LT(wall, 5.0);
  ASSERT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ(r.attempts[0].http_status, 429);
  EXPECT_EQ(r.attempts[0].retry_after_s, 1.0);
  EXPECT_GE(r.attempts[1].wait_before_s, 1.0);
  EXPECT_EQ(s.stats()["requests"], 3);
  EXPECT_EQ(s.stats()["by_status"]["429"], 2);
}

TEST(LlmE2e, ServerErrorsRetriedUntilExhausted) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "server_error"}, {"repeat", 10}}})},
                       {"fallback", json::object()}});
  auto m = openai_model(s);
  m.max_retries = 2;
  Client c(m);
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::http_error);
  EXPECT_EQ(r.http_status, 500);
  EXPECT_EQ(r.error_class, "http_500");
  EXPECT_EQ(r.retries, 2);
  EXPECT_EQ(s.stats()["requests"], 3);
  EXPECT_EQ(c.stats().failures.at("http_error"), 1);
}

TEST(LlmE2e, ServerErrorThenSuccess) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "server_error"}, {"status", 503}}})},
                       {"fallback", json::object()}});
  Client c(openai_model(s));
  auto r = c.chat(ask());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.retries, 1);
  EXPECT_EQ(r.attempts[0].http_status, 503);
  EXPECT_EQ(s.stats()["requests"], 2);
}

TEST(LlmE2e, NoRetryOn400) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "http_error"}, {"status", 400}}})},
                       {"fallback", json::object()}});
  Client c(openai_model(s));
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::http_error);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.retries, 0);
  EXPECT_NE(r.error_message.find("injected HTTP error"), std::string::npos) << r.error_message;
  EXPECT_EQ(s.stats()["requests"], 1);
}

TEST(LlmE2e, NoRetryOn401AndKeyIsSent) {
  MockLlmServer s(json{{"require_key", "the-right-key-000"}, {"fallback", json::object()}});
  ::setenv(k_key_env, k_key, 1);
  auto m = openai_model(s);
  m.api_key_env = k_key_env;
  Client c(m);
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::http_error);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.retries, 0);
  EXPECT_EQ(s.stats()["requests"], 1);
  EXPECT_EQ(s.stats()["auth_wrong"], 1);

  MockLlmServer ok(json{{"require_key", k_key}, {"fallback", json::object()}});
  auto m2 = openai_model(ok);
  m2.api_key_env = k_key_env;
  Client c2(m2);
  EXPECT_TRUE(c2.chat(ask()).ok());
  EXPECT_EQ(ok.stats()["auth_ok"], 1);
}

TEST(LlmE2e, ReadTimeoutIsBounded) {
  MockLlmServer s(json{{"fallback", {{"fault", "delay"}, {"delay_ms", 8000}}}});
  auto m = openai_model(s);
  m.read_timeout_s = 1.0;
  m.max_retries = 0;
  Client c(m);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.chat(ask());
  const double wall = seconds_since(t0);
  EXPECT_EQ(r.status, ChatStatus::timeout);
  EXPECT_EQ(r.error_class, "read_timeout");
  EXPECT_GE(wall, 0.9);
  EXPECT_LT(wall, 4.0);
}

TEST(LlmE2e, TimeoutRetriedThenSucceeds) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "delay"}, {"delay_ms", 6000}}})},
                       {"fallback", json::object()}});
  auto m = openai_model(s);
  m.read_timeout_s = 1.0;
  Client c(m);
  auto r = c.chat(ask());
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.retries, 1);
  EXPECT_EQ(r.attempts[0].status, ChatStatus::timeout);
  EXPECT_LT(r.latency_s, 5.0);
}

TEST(LlmE2e, ShortDelayWithinTimeoutSucceeds) {
  MockLlmServer s(json{{"fallback", {{"fault", "delay"}, {"delay_ms", 300}}}});
  Client c(openai_model(s));
  auto r = c.chat(ask());
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r.latency_s, 0.3);
  EXPECT_EQ(r.retries, 0);
}

TEST(LlmE2e, TruncatedBodyIsANetworkFailureAndRetried) {
  MockLlmServer s(json{{"answers", json::array({{{"fault", "truncated"}, {"repeat", 10}}})},
                       {"fallback", json::object()}});
  auto m = openai_model(s);
  m.max_retries = 1;
  Client c(m);
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::network);
  EXPECT_EQ(r.error_class, "curl_18"); // CURLE_PARTIAL_FILE
  EXPECT_EQ(r.retries, 1);
  EXPECT_EQ(s.stats()["requests"], 2);
}

TEST(LlmE2e, MalformedJsonNotRetried) {
  MockLlmServer s(
      json{{"answers", json::array({{{"fault", "malformed"}}})}, {"fallback", json::object()}});
  Client c(openai_model(s));
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::malformed);
  EXPECT_EQ(r.error_class, "json_parse");
  EXPECT_EQ(r.retries, 0);
  EXPECT_EQ(s.stats()["requests"], 1);
}

TEST(LlmE2e, AnswersWithoutCodeBadCodeAndWrongCode) {
  MockLlmServer s(json{
      {"answers",
       json::array({{{"fault", "no_code"}}, {{"fault", "compile_error"}}, {{"fault", "wrong"}}})}});
  Client c(openai_model(s));
  auto none = c.chat(ask());
  auto bad = c.chat(ask());
  auto wrong = c.chat(ask());
  ASSERT_TRUE(none.ok() && bad.ok() && wrong.ok());
  EXPECT_FALSE(extract_code(none.text).found);
  auto b = extract_code(bad.text);
  ASSERT_TRUE(b.found);
  EXPECT_NE(b.code.find("undeclared_scale"), std::string::npos);
  auto w = extract_code(wrong.text);
  ASSERT_TRUE(w.found);
  EXPECT_NE(w.code.find("kb_forward"), std::string::npos);
  EXPECT_NE(w.code.find("zero_kernel"), std::string::npos);
  // The script is spent: the mock answers 410, which is not retried.
  auto gone = c.chat(ask());
  EXPECT_EQ(gone.http_status, 410);
  EXPECT_EQ(gone.retries, 0);
}

TEST(LlmE2e, AnswersChosenByModelAndMessage) {
  MockLlmServer s(
      json{{"answers",
            json::array({{{"model", "model-b"}, {"text", "for b"}, {"repeat", -1}},
                         {{"match", "softmax"}, {"text", "softmax answer"}, {"repeat", -1}}})},
           {"fallback", {{"text", "default"}}}});
  auto ma = openai_model(s);
  auto mb = openai_model(s);
  mb.name = "b";
  mb.model_id = "model-b";
  Client a(ma), b(mb);
  EXPECT_EQ(b.chat(ask()).text, "for b");
  EXPECT_EQ(a.chat(ask("write a softmax kernel")).text, "softmax answer");
  EXPECT_EQ(a.chat(ask()).text, "default");
  EXPECT_EQ(s.stats()["by_model"]["model-b"], 1);
}

TEST(LlmE2e, AnthropicDialect) {
  MockLlmServer s(json{{"require_key", k_key},
                       {"answers", json::array({{{"fault", "rate_limit"}, {"retry_after", "0"}}})},
                       {"fallback", {{"tokens_in", 77}, {"tokens_out", 88}}}},
                  "anthropic");
  ::setenv(k_key_env, k_key, 1);
  ModelConfig m = openai_model(s);
  m.name = "mock-claude";
  m.provider = ProviderKind::anthropic;
  m.base_url = s.url();
  m.api_key_env = k_key_env;
  Client c(m);
  auto r = c.chat(ask());
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.tokens_in, 77);
  EXPECT_EQ(r.tokens_out, 88);
  EXPECT_EQ(r.finish_reason, "end_turn");
  EXPECT_EQ(r.retries, 1);
  EXPECT_TRUE(extract_code(r.text).found);
  const auto sent = s.requests();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1]["path"], "/v1/messages");
  EXPECT_TRUE(sent[1]["has_anthropic_version"].get<bool>());
  EXPECT_EQ(sent[1]["body"]["system"], "You write CUDA.");
  EXPECT_EQ(sent[1]["body"]["messages"].size(), 1u);
  EXPECT_EQ(s.stats()["auth_ok"], 2);
  // The OpenAI endpoint is not served in anthropic-only mode.
  Client o(openai_model(s));
  EXPECT_EQ(o.chat(ask()).http_status, 404);
}

TEST(LlmE2e, SixtyFourConcurrentRequests) {
  MockLlmServer s(json{{"fallback", {{"fault", "delay"}, {"delay_ms", 300}}}});
  auto m = openai_model(s);
  m.concurrency = 64;
  Client c(m);
  std::vector<ChatRequest> reqs;
  for (int i = 0; i < 64; ++i) {
    auto q = ask("request " + std::to_string(i));
    q.sample_index = i;
    reqs.push_back(q);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto rs = c.chat_all(reqs);
  const double wall = seconds_since(t0);
  for (const auto& r : rs)
    ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(s.stats()["requests"], 64);
  EXPECT_EQ(s.stats()["max_in_flight"], 64);
  EXPECT_LT(wall, 0.3 * 64 / 8); // far from serial (19.2 s)
}

TEST(LlmE2e, ConnectionRefusedIsNetworkAndBounded) {
  int port = 0;
  {
    MockLlmServer s(json::object());
    port = s.port();
  } // stopped: nothing listens there now
  ModelConfig m;
  m.name = "refused";
  m.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  m.model_id = "x";
  m.max_retries = 2;
  m.retry_base_delay_s = 0.01;
  m.retry_max_delay_s = 0.02;
  Client c(m);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.chat(ask());
  EXPECT_EQ(r.status, ChatStatus::network);
  EXPECT_EQ(r.error_class, "curl_7");
  EXPECT_EQ(r.retries, 2);
  EXPECT_LT(seconds_since(t0), 3.0);
}

TEST(LlmE2e, KeyNeverAppearsInRecordedText) {
  // The server echoes the key in its error messages, as some APIs do.
  MockLlmServer s(json{
      {"answers",
       json::array({{{"fault", "server_error"}, {"error_message", std::string("bad key ") + k_key}},
                    {{"fault", "http_error"},
                     {"status", 401},
                     {"error_message", std::string("Incorrect API key provided: ") + k_key}}})}});
  ::setenv(k_key_env, k_key, 1);
  auto m = openai_model(s);
  m.api_key_env = k_key_env;
  std::mutex mtx;
  std::vector<std::string> log;
  ClientOptions o;
  o.log = [&](const std::string& line) {
    std::lock_guard lock(mtx);
    log.push_back(line);
  };
  Client c(m, std::move(o));
  auto r = c.chat(ask());
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.retries, 1);
  std::string recorded = json(r).dump();
  for (const auto& l : log)
    recorded += l + "\n";
  EXPECT_EQ(log.size(), 2u);
  EXPECT_NE(recorded.find("Incorrect API key provided: [REDACTED]"), std::string::npos) << recorded;
  EXPECT_EQ(recorded.find(k_key), std::string::npos) << recorded;
  EXPECT_EQ(recorded.find("Secret-0123"), std::string::npos) << recorded;
  EXPECT_EQ(c.redact(std::string("x ") + k_key), "x [REDACTED]");
  // A missing variable names the variable, never a value.
  auto m2 = m;
  m2.api_key_env = "KB_E2E_UNSET_KEY_VARIABLE";
  try {
    Client bad(m2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KB_E2E_UNSET_KEY_VARIABLE"), std::string::npos);
  }
}

TEST(LlmE2e, MockServerExitsAfterMaxSeconds) {
  MockLlmServer s(json::object(), "both", 0.5);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(s.stop(), 0); // had already exited by itself; status 0
  // A stop right after start (possibly before the listen loop runs) ends it promptly too.
  const auto t0 = std::chrono::steady_clock::now();
  MockLlmServer quick(json::object());
  EXPECT_EQ(quick.stop(), 0);
  EXPECT_LT(seconds_since(t0), 5.0);
}

} // namespace
} // namespace kb::llm
