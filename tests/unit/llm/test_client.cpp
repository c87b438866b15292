// Unit tests of the client's policy with a scripted in-process provider (no network): retries,
// no retry on 4xx, the answer cap, statistics; and the replay provider on a temporary directory.
#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <gtest/gtest.h>

#include "llm.hpp"

namespace kb::llm {
namespace {

// Answers each attempt with the next scripted status.
class ScriptedProvider final : public Provider {
public:
  struct Step {
    ChatStatus status;
    int http_status;
    std::optional<double> retry_after_s;
  };
  ScriptedProvider(ModelConfig cfg, std::deque<Step> steps, std::atomic<int>* calls)
      : m_cfg(std::move(cfg)), m_steps(std::move(steps)), m_calls(calls) {}
  const ModelConfig& config() const override { return m_cfg; }
  ChatResponse complete(const ChatRequest& req) override {
    ++*m_calls;
    Step s{ChatStatus::ok, 200, std::nullopt};
    {
      std::lock_guard lock(m_mutex);
      if (!m_steps.empty()) {
        s = m_steps.front();
        m_steps.pop_front();
      }
    }
    ChatResponse r;
    r.status = s.status;
    r.http_status = s.http_status;
    if (s.status == ChatStatus::ok) {
      r.text = "answer to " + req.messages.back().content;
      r.tokens_in = 100;
      r.tokens_out = 50;
    } else {
      r.error_class = "http_" + std::to_string(s.http_status);
      r.error_message = "failure";
    }
    AttemptRecord a;
    a.status = r.status;
    a.http_status = r.http_status;
    a.retry_after_s = s.retry_after_s;
    r.attempts.push_back(a);
    return r;
  }

private:
  ModelConfig m_cfg;
  std::mutex m_mutex;
  std::deque<Step> m_steps;
  std::atomic<int>* m_calls;
};

ModelConfig fast_model() {
  ModelConfig m;
  m.name = "scripted";
  m.provider = ProviderKind::openai;
  m.base_url = "http://127.0.0.1:9/v1";
  m.model_id = "scripted";
  m.max_retries = 3;
  m.retry_base_delay_s = 0.001;
  m.retry_max_delay_s = 0.01;
  m.price_in_per_mtok = 1.0;
  m.price_out_per_mtok = 2.0;
  m.concurrency = 2;
  return m;
}

Client make_client(std::deque<ScriptedProvider::Step> steps, std::atomic<int>* calls,
                   std::vector<std::string>* log = nullptr) {
  ClientOptions o;
  o.provider = std::make_unique<ScriptedProvider>(fast_model(), std::move(steps), calls);
  if (log) {
    auto mtx = std::make_shared<std::mutex>();
    o.log = [log, mtx](const std::string& line) {
      std::lock_guard lock(*mtx);
      log->push_back(line);
    };
  }
  return Client(fast_model(), std::move(o));
}

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.messages = {{"user", std::move(text)}};
  return r;
}

TEST(Client, RetriesServerErrorsThenSucceeds) {
  std::atomic<int> calls{0};
  std::vector<std::string> log;
  auto c = make_client({{ChatStatus::http_error, 500, {}}, {ChatStatus::rate_limited, 429, 0.002}},
                       &calls, &log);
  auto r = c.chat(ask("q"));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.retries, 2);
  EXPECT_EQ(calls.load(), 3);
  ASSERT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ(r.attempts[0].http_status, 500);
  EXPECT_EQ(r.attempts[1].http_status, 429);
  EXPECT_GE(r.attempts[2].wait_before_s, 0.002); // Retry-After honoured
  EXPECT_EQ(log.size(), 2u);
  EXPECT_EQ(r.request_hash.size(), 16u);
  const auto s = c.stats();
  EXPECT_EQ(s.calls, 1);
  EXPECT_EQ(s.attempts, 3);
  EXPECT_EQ(s.retries, 2);
}

TEST(Client, NoRetryOnClientErrors) {
  for (int code : {400, 401, 403, 404}) {
    std::atomic<int> calls{0};
    auto c = make_client({{ChatStatus::http_error, code, {}}}, &calls);
    auto r = c.chat(ask("q"));
    EXPECT_EQ(r.status, ChatStatus::http_error) << code;
    EXPECT_EQ(r.http_status, code);
    EXPECT_EQ(r.retries, 0) << code;
    EXPECT_EQ(calls.load(), 1) << code;
    EXPECT_EQ(c.stats().failures.at("http_error"), 1);
  }
}

TEST(Client, GivesUpAfterMaxRetries) {
  std::atomic<int> calls{0};
  auto c = make_client({{ChatStatus::rate_limited, 429, {}},
                        {ChatStatus::rate_limited, 429, {}},
                        {ChatStatus::rate_limited, 429, {}},
                        {ChatStatus::rate_limited, 429, {}},
                        {ChatStatus::rate_limited, 429, {}}},
                       &calls);
  auto r = c.chat(ask("q"));
  EXPECT_EQ(r.status, ChatStatus::rate_limited);
  EXPECT_EQ(r.retries, 3);
  EXPECT_EQ(calls.load(), 4);
}

TEST(Client, RetryAfterBeyondLimitStopsRetrying) {
  std::atomic<int> calls{0};
  auto c = make_client({{ChatStatus::rate_limited, 429, 1e6}}, &calls);
  auto r = c.chat(ask("q"));
  EXPECT_EQ(r.status, ChatStatus::rate_limited);
  EXPECT_EQ(calls.load(), 1);
}

// Answers longer than max_answer_bytes are cut to it, keeping the size as received.
TEST(Client, LongAnswersAreCappedAndTheirSizeKept) {
  std::atomic<int> calls{0};
  ModelConfig m = fast_model();
  m.max_answer_bytes = 1024;
  ClientOptions o;
  o.provider = std::make_unique<ScriptedProvider>(m, std::deque<ScriptedProvider::Step>{}, &calls);
  Client c(m, std::move(o));
  const auto r = c.chat(ask(std::string(5000, 'q')));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.text.size(), 1024u);
  EXPECT_EQ(r.answer_bytes, 5000 + 10); // "answer to " + the question
  const auto small = c.chat(ask("q"));
  EXPECT_EQ(small.answer_bytes, 0);
  EXPECT_EQ(small.text, "answer to q");
}

TEST(Client, CostAndTokenTotals) {
  std::atomic<int> calls{0};
  auto c = make_client({}, &calls);
  std::vector<ChatRequest> reqs;
  for (int i = 0; i < 10; ++i) {
    auto q = ask("q" + std::to_string(i));
    reqs.push_back(q);
  }
  auto rs = c.chat_all(reqs);
  ASSERT_EQ(rs.size(), 10u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(rs[static_cast<size_t>(i)].text, "answer to q" + std::to_string(i)); // in order
  const auto s = c.stats();
  EXPECT_EQ(s.tokens_in, 1000);
  EXPECT_EQ(s.tokens_out, 500);
}

TEST(Client, MissingKeyVariableIsAConfigError) {
  auto m = fast_model();
  m.api_key_env = "KB_TEST_SURELY_UNSET_VARIABLE";
  try {
    Client c(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KB_TEST_SURELY_UNSET_VARIABLE"), std::string::npos);
  }
}

TEST(Replay, CyclesThroughFilesPerSampleIndex) {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / "kb_llm_replay_test";
  fs::remove_all(dir);
  fs::create_directories(dir / "matmul");
  std::ofstream(dir / "matmul" / "b.cu") << "// kernel b\nextern \"C\" int kb_forward();\n";
  std::ofstream(dir / "matmul" / "a.cu") << "// kernel a\nextern \"C\" int kb_forward();\n";
  std::ofstream(dir / "matmul" / "notes.txt") << "not a kernel";
  std::ofstream(dir / "relu.cu") << "// single relu";
  auto m = *known_model_defaults("replay");
  m.replay_dir = dir.string();
  Client c(m);
  auto q = ask("write it");
  q.problem_id = "l1/matmul";
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    q.sample_index = i;
    auto r = c.chat(q);
    ASSERT_TRUE(r.ok()) << r.error_message;
    EXPECT_TRUE(r.tokens_estimated);
    EXPECT_EQ(r.tokens_out, estimate_tokens(r.text));
    auto code = extract_code(r.text);
    ASSERT_TRUE(code.found);
    got.push_back(code.code.substr(0, 11));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"// kernel a", "// kernel b", "// kernel a", "// kernel b"}));
  q.problem_id = "l1/relu";
  q.sample_index = 0;
  EXPECT_EQ(extract_code(c.chat(q).text).code, "// single relu\n");
  q.problem_id = "l1/none";
  auto miss = c.chat(q);
  EXPECT_EQ(miss.status, ChatStatus::http_error);
  EXPECT_EQ(miss.error_class, "replay_not_found");
  EXPECT_EQ(miss.retries, 0);
  fs::remove_all(dir);
}

// A problem without files is answered by the generator: with its kernel, or with a one-line
// answer without code that says why there is none (an answer, never a provider failure). Files,
// where they exist, still win.
TEST(Replay, ProblemsWithoutFilesGetTheGeneratedKernelOrTheReason) {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / "kb_llm_replay_generator_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "relu.cu") << "// file relu\n";
  auto m = *known_model_defaults("replay");
  m.replay_dir = dir.string();
  ClientOptions o;
  std::vector<std::string> asked;
  std::mutex mu;
  o.replay_generator = [&](const std::string& id) {
    std::lock_guard lock(mu);
    asked.push_back(id);
    GeneratedKernel g;
    g.label = "generated naive kernel";
    if (id == "l1/gelu")
      g.source = "// generated gelu\nextern \"C\" int kb_forward();";
    else if (id == "l1/throws")
      throw Error("generator failed on purpose");
    else
      g.reason = "op 'fancy' has no naive kernel yet";
    return g;
  };
  Client c(m, std::move(o));
  auto q = ask("write it");
  q.problem_id = "l1/relu";
  EXPECT_EQ(extract_code(c.chat(q).text).code, "// file relu\n");
  q.problem_id = "l1/gelu";
  const ChatResponse gen = c.chat(q);
  ASSERT_TRUE(gen.ok()) << gen.error_message;
  EXPECT_NE(gen.text.find("generated naive kernel"), std::string::npos) << gen.text;
  EXPECT_EQ(extract_code(gen.text).code, "// generated gelu\nextern \"C\" int kb_forward();\n");
  EXPECT_TRUE(gen.tokens_estimated);
  EXPECT_GT(gen.tokens_out, 0);
  q.problem_id = "l1/fancy";
  const ChatResponse none = c.chat(q);
  ASSERT_TRUE(none.ok()) << none.error_message;
  EXPECT_EQ(none.error_class, "");
  EXPECT_FALSE(extract_code(none.text).found);
  EXPECT_NE(none.text.find("op 'fancy' has no naive kernel yet"), std::string::npos) << none.text;
  EXPECT_NE(none.text.find("l1/fancy"), std::string::npos) << none.text;
  EXPECT_EQ(none.text.find('\n'), std::string::npos) << none.text;
  q.problem_id = "l1/throws";
  const ChatResponse thrown = c.chat(q);
  ASSERT_TRUE(thrown.ok());
  EXPECT_NE(thrown.text.find("generator failed on purpose"), std::string::npos) << thrown.text;
  EXPECT_EQ(asked, (std::vector<std::string>{"l1/gelu", "l1/fancy", "l1/throws"}));
  fs::remove_all(dir);
}

} // namespace
} // namespace kb::llm
