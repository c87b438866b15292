// Unit tests of the search strategies, budgets and gateway with a fake model and evaluator.
#include <algorithm>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "search.hpp"

namespace kb::search {
namespace {

const char* k_kernel = "#include <kbench/kb_abi.h>\nextern \"C\" int kb_forward(){return 0;}\n";

std::string fenced(const std::string& code, const std::string& prose = "Plan: tile it.") {
  return prose + "\n\n```cuda\n" + code + "```\n";
}

// A scripted model: answer(request) decides the text; every request is kept.
class FakePort final : public LlmPort {
public:
  std::function<llm::ChatResponse(const llm::ChatRequest&)> answer;
  std::vector<llm::ChatRequest> requests;
  llm::ModelConfig cfg;
  std::mutex mutex;

  FakePort() { cfg.name = "fake"; }
  std::future<Answer> ask(const std::string&, llm::ChatRequest r) override {
    Answer a;
    a.response = answer(r);
    a.response.model = "fake";
    {
      std::lock_guard lock(mutex);
      requests.push_back(r);
      a.call_id = static_cast<int64_t>(requests.size());
    }
    std::promise<Answer> p;
    p.set_value(a);
    return p.get_future();
  }
  const llm::ModelConfig& model() const override { return cfg; }
};

llm::ChatResponse ok(std::string text) {
  llm::ChatResponse r;
  r.text = std::move(text);
  r.tokens_in = 10;
  r.tokens_out = 10;
  return r;
}

// A fake evaluator: verdict(draft) decides the result; ids count from 100.
struct FakeEval {
  std::function<EvalResult(const CandidateDraft&)> verdict;
  std::vector<CandidateDraft> drafts;
  std::mutex mutex;
  EvaluateFn fn() {
    return [this](CandidateDraft d) {
      EvalResult r;
      if (d.source.empty()) {
        r.outcome = Outcome::no_code;
        r.message = d.no_code_reason;
      } else {
        r = verdict(d);
      }
      std::lock_guard lock(mutex);
      drafts.push_back(d);
      std::promise<Verdict> p;
      p.set_value(Verdict{100 + static_cast<int64_t>(drafts.size()) - 1, r});
      return p.get_future();
    };
  }
};

EvalResult correct(double speedup) {
  EvalResult r;
  r.outcome = Outcome::correct;
  r.speedup = speedup;
  r.roofline_pct = 42.0;
  r.candidate_time = TimingStats{};
  r.candidate_time->median_ms = 1.0;
  r.baseline_time = TimingStats{};
  r.baseline_time->median_ms = speedup;
  return r;
}

class SearchTest : public ::testing::Test {
protected:
  void SetUp() override {
    prompts = llm::PromptLibrary::load(std::string(KB_SOURCE_DIR) + "/prompts");
    problem.id = "l1/test_problem";
    ctx.problem = &problem;
    ctx.prompts = &*prompts;
    ctx.prompt.problem_id = problem.id;
    ctx.prompt.problem_pytorch = "class Model(nn.Module): pass";
    ctx.prompt.abi_header = "/* abi */";
    ctx.llm = &port;
    ctx.evaluate = eval.fn();
    ctx.scope = "l1/test_problem|fake";
  }
  Problem problem;
  std::optional<llm::PromptLibrary> prompts;
  FakePort port;
  FakeEval eval;
  SearchContext ctx;
};

TEST_F(SearchTest, OneshotAsksOnceAndRecordsRoundZeroWithoutParent) {
  port.answer = [](const llm::ChatRequest&) { return ok(fenced(k_kernel)); };
  eval.verdict = [](const CandidateDraft&) { return correct(1.5); };
  StrategyOptions o;
  o.temperature = 0.0;
  const SearchResult r = make_strategy(o)->run(ctx);
  ASSERT_EQ(port.requests.size(), 1u);
  EXPECT_EQ(port.requests[0].temperature, 0.0);
  EXPECT_EQ(port.requests[0].problem_id, "l1/test_problem");
  ASSERT_EQ(eval.drafts.size(), 1u);
  EXPECT_EQ(eval.drafts[0].strategy, "oneshot");
  EXPECT_EQ(eval.drafts[0].round, 0);
  EXPECT_FALSE(eval.drafts[0].parent_id);
  EXPECT_EQ(eval.drafts[0].source, k_kernel);
  EXPECT_EQ(r.best_id, 100);
  EXPECT_DOUBLE_EQ(r.best_speedup, 1.5);
  EXPECT_EQ(r.stop_code, "done");
  EXPECT_EQ(r.stop, kb::search::StopKind::done);
}

// An answer without code is the model's no_code attempt; a call that failed at the provider
// after retries is no attempt at all: counted as a provider failure, never a draft.
TEST_F(SearchTest, AnswersWithoutCodeAreNoCodeDraftsAndProviderFailuresAreNot) {
  port.answer = [](const llm::ChatRequest& r) {
    if (r.sample_index == 0)
      return ok("I would tile it but here is no code.");
    llm::ChatResponse f;
    f.status = r.sample_index == 1 ? llm::ChatStatus::rate_limited : llm::ChatStatus::timeout;
    f.error_class = r.sample_index == 1 ? "http_429" : "read";
    f.http_status = r.sample_index == 1 ? 429 : 0;
    f.retries = 4;
    return f;
  };
  eval.verdict = [](const CandidateDraft&) { return correct(1.0); };
  StrategyOptions o;
  o.kind = StrategyKind::best_of_n;
  o.samples = 3;
  const SearchResult r = make_strategy(o)->run(ctx);
  ASSERT_EQ(eval.drafts.size(), 1u);
  EXPECT_TRUE(eval.drafts[0].source.empty());
  EXPECT_NE(eval.drafts[0].no_code_reason.find("no code"), std::string::npos);
  EXPECT_EQ(r.provider_failures, 2);
  EXPECT_FALSE(r.best_id);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].outcome, Outcome::no_code);
  llm::ChatResponse replay_missing;
  replay_missing.status = llm::ChatStatus::http_error;
  replay_missing.error_class = "replay_not_found";
  EXPECT_EQ(provider_failure_class(replay_missing), "");
  llm::ChatResponse malformed;
  malformed.status = llm::ChatStatus::malformed;
  EXPECT_EQ(provider_failure_class(malformed), "malformed");
}

// A short one-line answer without code is its own reason (a replay model without a kernel says
// why); a long one is not copied into the reason.
TEST_F(SearchTest, ShortAnswersWithoutCodeGiveTheirReason) {
  const std::string why = "No kernel for problem 'l1/x': none could be generated: op 'y' has no "
                          "naive kernel yet";
  port.answer = [&](const llm::ChatRequest& r) {
    return ok(r.sample_index == 0 ? why : "Long prose.\n" + std::string(800, 'x'));
  };
  StrategyOptions o;
  o.kind = StrategyKind::best_of_n;
  o.samples = 2;
  make_strategy(o)->run(ctx);
  ASSERT_EQ(eval.drafts.size(), 2u);
  std::sort(eval.drafts.begin(), eval.drafts.end(), [](const auto& a, const auto& b) {
    return a.answer->response.text.size() < b.answer->response.text.size();
  });
  EXPECT_EQ(eval.drafts[0].no_code_reason, "no code in the answer: no code block: " + why);
  EXPECT_EQ(eval.drafts[1].no_code_reason, "no code in the answer: no code block");
}

TEST_F(SearchTest, BestOfNSamplesIndependentlyAndKeepsTheFastest) {
  port.answer = [](const llm::ChatRequest& r) {
    return ok(fenced(std::string(k_kernel) + "// " + std::to_string(r.sample_index) + "\n"));
  };
  eval.verdict = [](const CandidateDraft& d) {
    return correct(d.source.find("// 2") != std::string::npos ? 3.0 : 1.0);
  };
  StrategyOptions o;
  o.kind = StrategyKind::best_of_n;
  o.samples = 4;
  const SearchResult r = make_strategy(o)->run(ctx);
  ASSERT_EQ(port.requests.size(), 4u);
  std::vector<int> idx;
  for (const auto& q : port.requests) {
    idx.push_back(q.sample_index);
    EXPECT_EQ(q.messages, port.requests[0].messages);
  }
  std::sort(idx.begin(), idx.end());
  EXPECT_EQ(idx, (std::vector<int>{0, 1, 2, 3}));
  // Independent samples: the sampling temperature and one seed per sample by default.
  std::vector<int64_t> seeds;
  for (const auto& q : port.requests) {
    ASSERT_TRUE(q.temperature);
    EXPECT_DOUBLE_EQ(*q.temperature, k_sampling_temperature);
    EXPECT_GT(*q.temperature, 0.0);
    ASSERT_TRUE(q.seed);
    seeds.push_back(*q.seed - q.sample_index);
  }
  EXPECT_EQ(std::set<int64_t>(seeds.begin(), seeds.end()).size(), 1u);
  EXPECT_EQ(r.best_id, 102);
  EXPECT_DOUBLE_EQ(r.best_speedup, 3.0);
  for (const auto& d : eval.drafts)
    EXPECT_EQ(d.strategy, "best-of-n");
}

TEST_F(SearchTest, RefineFeedsBackTheVerdictAndDropsReasoning) {
  int turn = 0;
  port.answer = [&](const llm::ChatRequest&) {
    ++turn;
    return ok("<think>secret chain of thought</think>Turn " + std::to_string(turn) +
              " plan.\n\n```cuda\n" + k_kernel + "// turn " + std::to_string(turn) + "\n```\n");
  };
  eval.verdict = [](const CandidateDraft& d) {
    EvalResult r;
    if (d.round == 0) {
      r.outcome = Outcome::compile_error;
      r.message = "nvcc exited with status 2";
      r.compile_log = "kernel.cu(4): error: identifier \"undeclared_scale\" is undefined";
    } else if (d.round == 1) {
      r.outcome = Outcome::mismatch;
      MismatchInfo m;
      m.output = "y";
      m.mismatch_count = 1234;
      m.max_abs_err = 0.5;
      m.reason = "values";
      r.mismatch = m;
    } else {
      r = correct(2.25);
    }
    return r;
  };
  StrategyOptions o;
  o.kind = StrategyKind::refine;
  o.turns = 4;
  const SearchResult r = make_strategy(o)->run(ctx);
  ASSERT_EQ(port.requests.size(), 4u);
  // Turn 1 carries the compile log; turn 2 the mismatch statistics; turn 3 the speedup.
  const auto& m1 = port.requests[1].messages;
  ASSERT_EQ(m1.size(), 4u);
  EXPECT_EQ(m1[2].role, "assistant");
  EXPECT_EQ(m1[2].content.find("secret chain of thought"), std::string::npos);
  EXPECT_NE(m1[2].content.find("// turn 1"), std::string::npos);
  EXPECT_NE(m1[3].content.find("undeclared_scale"), std::string::npos);
  const auto& m2 = port.requests[2].messages;
  EXPECT_NE(m2.back().content.find("1234"), std::string::npos);
  const auto& m3 = port.requests[3].messages;
  EXPECT_NE(m3.back().content.find("2.25"), std::string::npos);
  EXPECT_NE(m3.back().content.find("42"), std::string::npos); // roofline %
  // Parents chain through the turns, rounds count them.
  ASSERT_EQ(eval.drafts.size(), 4u);
  EXPECT_FALSE(eval.drafts[0].parent_id);
  for (int t = 1; t < 4; ++t) {
    EXPECT_EQ(eval.drafts[t].round, t);
    EXPECT_EQ(eval.drafts[t].parent_id, 100 + t - 1);
  }
  EXPECT_EQ(r.best_id, 102);
}

// Refine's next turn needs the last answer: an unanswered request stops the search there, so a
// resume (which asks it again) continues on the recorded path.
TEST_F(SearchTest, RefineStopsAtAProviderFailure) {
  port.answer = [](const llm::ChatRequest& r) {
    if (r.sample_index == 1) {
      llm::ChatResponse f;
      f.status = llm::ChatStatus::timeout;
      return f;
    }
    return ok(fenced(k_kernel));
  };
  eval.verdict = [](const CandidateDraft&) { return correct(1.0); };
  StrategyOptions o;
  o.kind = StrategyKind::refine;
  o.turns = 4;
  const SearchResult r = make_strategy(o)->run(ctx);
  EXPECT_EQ(port.requests.size(), 2u);
  EXPECT_EQ(eval.drafts.size(), 1u);
  EXPECT_EQ(r.provider_failures, 1);
  EXPECT_EQ(r.stop_code, "provider_failure");
  EXPECT_EQ(r.stop, kb::search::StopKind::provider_failure);
  EXPECT_NE(r.stop_message.find("timeout"), std::string::npos) << r.stop_message;
}

TEST_F(SearchTest, RefineKeepsTheConversationWithinTheContextBudget) {
  port.answer = [](const llm::ChatRequest&) {
    return ok(std::string(8000, 'x') + "\n```cuda\n" + k_kernel + std::string(8000, '/') +
              "\n```\n");
  };
  eval.verdict = [](const CandidateDraft&) { return correct(1.0); };
  StrategyOptions o;
  o.kind = StrategyKind::refine;
  o.turns = 6;
  o.summary_chars = 100;
  o.context_tokens = 6000;
  make_strategy(o)->run(ctx);
  ASSERT_EQ(port.requests.size(), 6u);
  const auto& last = port.requests.back().messages;
  int64_t tokens = 0;
  for (const auto& m : last)
    tokens += llm::estimate_tokens(m.content);
  EXPECT_LE(tokens, 6000 + 3000); // the newest turn is always kept
  EXPECT_LT(last.size(), 2u + 2u * 5u);
  EXPECT_NE(last[1].content.find("omitted"), std::string::npos);
  // Explanations are cut to summary_chars.
  EXPECT_EQ(last[2].content.find(std::string(200, 'x')), std::string::npos);
}

TEST_F(SearchTest, IdeasMeasuresTheBankThenConditionsOnEarlierResults) {
  ctx.bank = {{"tuned.cu", std::string(k_kernel) + "// bank\n"}};
  port.answer = [](const llm::ChatRequest& r) {
    const std::string& u = r.messages.back().content;
    if (u.find("Propose") != std::string::npos) {
      if (u.find("Use warp shuffles") != std::string::npos)
        return ok("1. Use vectorised float4 loads.\n2. Fuse the epilogue.");
      return ok("Here are ideas:\n1. Use warp shuffles for the reduction.\n"
                "2) **Tile through shared memory** so each\n   block reuses loads.");
    }
    return ok(fenced(std::string(k_kernel) + "// impl " + std::to_string(r.sample_index) + "\n"));
  };
  eval.verdict = [](const CandidateDraft& d) {
    if (d.idea.find("warp shuffles") != std::string::npos)
      return correct(d.source.find("impl 1") != std::string::npos ? 1.8 : 1.2);
    if (d.strategy == "bank")
      return correct(1.1);
    EvalResult r;
    r.outcome = Outcome::runtime_error;
    r.message = "illegal memory access";
    return r;
  };
  StrategyOptions o;
  o.kind = StrategyKind::ideas;
  o.rounds = 2;
  o.ideas = 2;
  o.branches = 2;
  o.seeds = 1;
  const SearchResult r = make_strategy(o)->run(ctx);
  // Bank first: strategy "bank", round 0, no LLM call.
  ASSERT_GE(eval.drafts.size(), 1u);
  EXPECT_EQ(eval.drafts[0].strategy, "bank");
  EXPECT_EQ(eval.drafts[0].round, 0);
  EXPECT_FALSE(eval.drafts[0].answer);
  // Round 1: 2 ideas x 2 branches from the bank seed (id 100).
  int round1 = 0;
  for (const auto& d : eval.drafts)
    if (d.round == 1) {
      ++round1;
      EXPECT_EQ(d.parent_id, 100);
      EXPECT_EQ(d.strategy, "ideas");
    }
  EXPECT_EQ(round1, 4);
  EXPECT_EQ(eval.drafts[1].idea, "Use warp shuffles for the reduction.");
  EXPECT_EQ(eval.drafts[3].idea, "Tile through shared memory so each block reuses loads.");
  // The realisation prompt carries the seed kernel.
  bool saw_seed = false;
  for (const auto& q : port.requests)
    if (q.messages.back().content.find("// bank") != std::string::npos)
      saw_seed = true;
  EXPECT_TRUE(saw_seed);
  // Round 2's idea request lists round 1's ideas with their results.
  std::vector<std::string> idea_prompts;
  for (const auto& q : port.requests)
    if (q.messages.back().content.find("Propose") != std::string::npos)
      idea_prompts.push_back(q.messages.back().content);
  ASSERT_EQ(idea_prompts.size(), 2u);
  EXPECT_NE(idea_prompts[0].find("tuned.cu"), std::string::npos);
  EXPECT_NE(idea_prompts[1].find("Use warp shuffles"), std::string::npos);
  EXPECT_NE(idea_prompts[1].find("correct, 1.8x"), std::string::npos);
  EXPECT_NE(idea_prompts[1].find("runtime_error: illegal memory access"), std::string::npos);
  // Round 2 realisations start from the best kernel of round 1 (1.8x, id 102).
  for (const auto& d : eval.drafts)
    if (d.round == 2)
      EXPECT_EQ(d.parent_id, 102);
  EXPECT_DOUBLE_EQ(r.best_speedup, 1.8);
  EXPECT_EQ(r.best_id, 102);
}

TEST(ParseIdeas, ListsOfSeveralShapes) {
  EXPECT_EQ(parse_ideas("1. a\n2. b\n"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(parse_ideas("Intro\n**Idea 1:** fuse\nmore\n**Idea 2:** tile"),
            (std::vector<std::string>{"fuse more", "tile"}));
  EXPECT_EQ(parse_ideas("- x\n- y"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(parse_ideas("just one idea"), (std::vector<std::string>{"just one idea"}));
  EXPECT_EQ(parse_ideas("<think>1. hidden</think>1) shown"), (std::vector<std::string>{"shown"}));
}

TEST(Budget, SequentialRequestsStopExactlyAtTheLimit) {
  BudgetLedger ledger({.tokens = 1000}, {});
  int admitted = 0;
  std::optional<Refusal> why;
  for (int i = 0; i < 100; ++i) {
    why = ledger.admit("p", {100, 100, 0});
    if (why)
      break;
    ++admitted;
    ledger.settle("p", {100, 100, 0}, {100, 100, 0, 1});
  }
  EXPECT_EQ(admitted, 5);
  ASSERT_TRUE(why);
  EXPECT_EQ(why->code, "run_tokens");
  EXPECT_EQ(ledger.spent_run().total(), 1000);
  EXPECT_NE(why->message.find("1000"), std::string::npos);
}

TEST(Budget, ConcurrentRequestsOverrunByAtMostOneRequest) {
  // 8 threads; every request is estimated and uses 300 tokens; the limit is 1000.
  BudgetLedger ledger({.tokens = 1000}, {});
  std::atomic<int> max_in_flight{0}, in_flight{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (;;) {
        if (ledger.admit("p", {150, 150, 0}))
          return;
        const int now = ++in_flight;
        int prev = max_in_flight.load();
        while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        --in_flight;
        ledger.settle("p", {150, 150, 0}, {150, 150, 0, 1});
      }
    });
  for (auto& t : threads)
    t.join();
  const int64_t used = ledger.spent_run().total();
  EXPECT_GE(used, 1000);
  EXPECT_LE(used, 1000 + 300);
  EXPECT_EQ(ledger.in_flight_run(), 0);
  EXPECT_GE(max_in_flight.load(), 2); // concurrency was allowed while estimates fit
}

TEST(Budget, ProblemScopesAreSeparateAndTheRunLimitCoversThemAll) {
  BudgetLedger ledger({.tokens_out = 250}, {.tokens_in = 100});
  EXPECT_FALSE(ledger.admit("a", {60, 50, 0}));
  ledger.settle("a", {60, 50, 0}, {60, 50, 0, 1});
  EXPECT_FALSE(ledger.admit("a", {60, 50, 0}));
  ledger.settle("a", {60, 50, 0}, {60, 50, 0, 1});
  auto a = ledger.admit("a", {60, 50, 0});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, "problem_tokens_in");
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(ledger.admit("b", {60, 100, 0}));
    ledger.settle("b", {60, 100, 0}, {60, 100, 0, 1});
  }
  auto b = ledger.admit("b", {60, 100, 0});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->code, "run_tokens_out");
  EXPECT_EQ(ledger.exhausted("c")->code, "run_tokens_out");
}

TEST(Budget, MoneyTimeAndCancellation) {
  BudgetLedger usd({.usd = 0.01}, {});
  EXPECT_FALSE(usd.admit("p", {1, 1, 0.004}));
  usd.settle("p", {1, 1, 0.004}, {1, 1, 0.011, 1});
  EXPECT_EQ(usd.admit("p", {1, 1, 0.004})->code, "run_usd");
  BudgetLedger time({.minutes = 1e-6}, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(time.admit("p", {1, 1, 0})->code, "run_minutes");
  BudgetLedger none({}, {});
  std::atomic<bool> cancel{true};
  EXPECT_EQ(none.admit("p", {1, 1, 0}, &cancel)->code, "interrupted");
}

// A provider that answers instantly with fixed usage and counts its calls.
class CountingProvider final : public llm::Provider {
public:
  explicit CountingProvider(std::atomic<int>& calls) : m_calls(calls) {
    m_cfg.name = "counting";
    m_cfg.provider = llm::ProviderKind::openai;
    m_cfg.base_url = "http://127.0.0.1:1";
    m_cfg.model_id = "counting";
    m_cfg.max_output_tokens = 100;
  }
  const llm::ModelConfig& config() const override { return m_cfg; }
  llm::ChatResponse complete(const llm::ChatRequest&) override {
    ++m_calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    llm::ChatResponse r = ok(fenced(k_kernel));
    r.tokens_in = 50;
    r.tokens_out = 100;
    r.attempts.push_back({});
    return r;
  }

private:
  llm::ModelConfig m_cfg;
  std::atomic<int>& m_calls;
};

TEST(Gateway, BudgetStopsTheStrategyAndTheJournalAnswersRepeats) {
  std::atomic<int> calls{0};
  llm::ClientOptions co;
  co.provider = std::make_unique<CountingProvider>(calls);
  co.max_in_flight = 4;
  llm::ModelConfig cfg = co.provider->config();
  llm::Client client(cfg, std::move(co));
  BudgetLedger ledger({.tokens = 1000}, {});
  MemoryCallJournal journal;
  ModelGateway gw(client, ledger, &journal);

  auto prompts = llm::PromptLibrary::load(std::string(KB_SOURCE_DIR) + "/prompts");
  Problem p;
  p.id = "l1/x";
  FakeEval eval;
  eval.verdict = [](const CandidateDraft&) { return correct(1.0); };
  SearchContext ctx;
  ctx.problem = &p;
  ctx.prompts = &prompts;
  ctx.llm = &gw;
  ctx.evaluate = eval.fn();
  ctx.scope = "l1/x|counting";
  StrategyOptions o;
  o.kind = StrategyKind::best_of_n;
  o.samples = 20;
  const SearchResult r = make_strategy(o)->run(ctx);
  EXPECT_EQ(r.stop_code, "run_tokens");
  EXPECT_EQ(r.stop, kb::search::StopKind::run_budget);
  EXPECT_NE(r.stop_message.find("1000"), std::string::npos);
  const int sent = calls.load();
  EXPECT_GE(ledger.spent_run().total(), 1000);
  EXPECT_LE(ledger.spent_run().total(), 1000 + 150 + 150); // estimates are slightly low
  EXPECT_EQ(ledger.spent_run().calls, sent);
  EXPECT_EQ(static_cast<int>(eval.drafts.size()), sent);
  EXPECT_EQ(journal.size(), static_cast<std::size_t>(sent));

  // The same requests again are answered by the journal: nothing sent, nothing charged.
  BudgetLedger fresh({.tokens = 1000}, {});
  ModelGateway gw2(client, fresh, &journal);
  ctx.llm = &gw2;
  o.samples = sent;
  const SearchResult again = make_strategy(o)->run(ctx);
  EXPECT_EQ(again.stop_code, "done");
  EXPECT_EQ(again.stop, kb::search::StopKind::done);
  EXPECT_EQ(calls.load(), sent);
  EXPECT_EQ(fresh.spent_run().total(), 0);
}

} // namespace
} // namespace kb::search
