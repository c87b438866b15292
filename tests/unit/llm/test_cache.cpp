// Unit tests of cache keys and ChatResponse JSON round trips.
#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

ModelConfig model() {
  ModelConfig m = *known_model_defaults("gpt-4o");
  return m;
}

ChatRequest request() {
  ChatRequest r;
  r.messages = {{"system", "be fast"}, {"user", "write a kernel"}};
  return r;
}

TEST(CacheKey, StableAndSensitiveToEveryField) {
  const auto m = model();
  const auto r = request();
  const auto k = cache_key(m, r);
  EXPECT_EQ(k.size(), 16u);
  EXPECT_EQ(k, cache_key(m, r));
  // The effective temperature and max tokens count, not how they were given.
  auto same = r;
  same.temperature = m.temperature;
  same.max_tokens = m.max_output_tokens;
  EXPECT_EQ(cache_key(m, same), k);
  // The problem id is metadata for HTTP providers.
  same.problem_id = "l1/x";
  EXPECT_EQ(cache_key(m, same), k);

  std::vector<std::string> keys{k};
  auto add = [&](const ModelConfig& mm, const ChatRequest& rr) {
    keys.push_back(cache_key(mm, rr));
  };
  {
    auto r2 = r;
    r2.messages[1].content += " ";
    add(m, r2);
  }
  {
    auto r2 = r;
    r2.messages[0].role = "user";
    add(m, r2);
  }
  {
    auto r2 = r;
    r2.temperature = 0.7;
    add(m, r2);
  }
  {
    auto r2 = r;
    r2.max_tokens = 100;
    add(m, r2);
  }
  {
    auto r2 = r;
    r2.sample_index = 1;
    add(m, r2);
  }
  {
    auto r2 = r;
    r2.seed = 42;
    add(m, r2);
  }
  {
    auto m2 = m;
    m2.model_id = "gpt-4o-2024-08-06";
    add(m2, r);
  }
  {
    auto m2 = m;
    m2.base_url = "http://127.0.0.1:1/v1";
    add(m2, r);
  }
  {
    auto m2 = m;
    m2.provider = ProviderKind::anthropic;
    add(m2, r);
  }
  {
    auto m2 = m;
    m2.extra_body = {{"top_p", 0.5}};
    add(m2, r);
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end()) << "two keys collided";
}

TEST(CacheKey, ReplayKeyDependsOnProblem) {
  auto m = *known_model_defaults("replay");
  auto a = request();
  a.problem_id = "l1/a";
  auto b = a;
  b.problem_id = "l1/b";
  EXPECT_NE(cache_key(m, a), cache_key(m, b));
}

TEST(Cache, ResponseJsonRoundTrip) {
  ChatResponse r;
  r.text = "```cuda\nx\n```";
  r.reasoning = "think";
  r.tokens_in = 10;
  r.tokens_out = 20;
  r.tokens_estimated = true;
  r.cost_usd = 0.5;
  r.latency_s = 1.25;
  r.status = ChatStatus::rate_limited;
  r.error_class = "http_429";
  r.error_message = "slow down";
  r.http_status = 429;
  r.retries = 3;
  r.finish_reason = "length";
  r.request_hash = "0123456789abcdef";
  r.model = "gpt-4o";
  AttemptRecord a;
  a.status = ChatStatus::rate_limited;
  a.http_status = 429;
  a.retry_after_s = 2.0;
  a.wait_before_s = 0.5;
  r.attempts = {a, a};
  nlohmann::json j = r;
  const auto back = j.get<ChatResponse>();
  EXPECT_EQ(nlohmann::json(back), j);
  EXPECT_EQ(back.status, ChatStatus::rate_limited);
  EXPECT_EQ(back.attempts.size(), 2u);
  EXPECT_EQ(back.attempts[1].retry_after_s, 2.0);
  for (auto s :
       {ChatStatus::ok, ChatStatus::http_error, ChatStatus::timeout, ChatStatus::rate_limited,
        ChatStatus::malformed, ChatStatus::network, ChatStatus::budget})
    EXPECT_EQ(parse_chat_status(chat_status_name(s)), s);
}

} // namespace
} // namespace kb::llm
