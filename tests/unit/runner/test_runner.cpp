// Unit tests of the runner: option parsing, problem selection, and whole runs with the replay
// model and a fake evaluation back end (no GPU, no network, no nvcc).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "codegen.hpp"
#include "fake_backend.hpp"
#include "runner.hpp"
#include "store.hpp"

namespace kb::runner {
namespace {

namespace fs = std::filesystem;
using fakes::FakeBackend;

class RunnerTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kb_runner_unit_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    opts.db = (dir / "kb.db").string();
    opts.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
    opts.models_file = std::string(KB_SOURCE_DIR) + "/config/models.yaml";
    opts.levels = {1};
    opts.problems = {"relu_4096x393216", "softmax_4096x65536", "kb_gelu"};
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
  RunOptions opts;
};

TEST(Options, ParsesGpusAndLevels) {
  EXPECT_FALSE(parse_gpus("all"));
  EXPECT_EQ(*parse_gpus("0,2,2"), (std::vector<int>{0, 2}));
  EXPECT_THROW(parse_gpus("x"), InputError);
  EXPECT_EQ(parse_levels("1,2"), (std::vector<int>{1, 2}));
  EXPECT_THROW(parse_levels("0"), InputError);
}

TEST(Options, ConfigRoundTripsThroughJson) {
  RunOptions o;
  o.mode = Mode::generate;
  o.levels = {2};
  o.problems = {"a*"};
  o.models = {"x", "y"};
  o.strategy.kind = search::StrategyKind::ideas;
  o.strategy.rounds = 7;
  o.strategy.temperature = 0.3;
  o.run_budget.tokens = 123;
  o.problem_budget.usd = 1.5;
  const RunOptions back = from_config_json(to_config_json(o));
  EXPECT_EQ(back.mode, Mode::generate);
  EXPECT_EQ(back.levels, o.levels);
  EXPECT_EQ(back.models, o.models);
  EXPECT_EQ(back.strategy.kind, search::StrategyKind::ideas);
  EXPECT_EQ(back.strategy.rounds, 7);
  EXPECT_EQ(back.strategy.temperature, 0.3);
  EXPECT_EQ(back.run_budget.tokens, 123);
  EXPECT_DOUBLE_EQ(back.problem_budget.usd, 1.5);
  EXPECT_EQ(back.protocol, Protocol::kbench);
  o.protocol = Protocol::kernelbench;
  EXPECT_EQ(from_config_json(to_config_json(o)).protocol, Protocol::kernelbench);
  auto bad = to_config_json(o);
  bad["protocol"] = "pytorch";
  EXPECT_THROW(from_config_json(bad), Error);
  EXPECT_THROW(from_config_json(nlohmann::json::object()), Error);
}

// A model configuration recorded with a run comes back whole (a resume builds its clients from
// it, never from a models file).
TEST(Options, ModelConfigRoundTripsThroughJson) {
  llm::ModelConfig m;
  m.name = "mine";
  m.provider = llm::ProviderKind::anthropic;
  m.base_url = "http://127.0.0.1:1";
  m.model_id = "claude-x";
  m.api_key_env = "MY_KEY";
  m.temperature = 0.4;
  m.max_output_tokens = 1234;
  m.extra_body = {{"top_p", 0.9}};
  m.price_in_per_mtok = 3.0;
  m.max_retries = 7;
  m.max_answer_bytes = 4096;
  m.replay_dir = "/x";
  const llm::ModelConfig b = model_config_from_json(model_config_json(m));
  EXPECT_EQ(model_config_json(b), model_config_json(m));
  EXPECT_EQ(b.provider, llm::ProviderKind::anthropic);
  EXPECT_EQ(b.max_answer_bytes, 4096);
  EXPECT_THROW(model_config_from_json(nlohmann::json{{"name", "x"}, {"provider", "nope"}}), Error);
}

TEST(Options, SelectsByLevelAndGlobAndNamesUnmatchedPatterns) {
  const Catalog c = load_catalog(std::string(KB_SOURCE_DIR) + "/levels");
  const auto all1 = select_problems(c, {1}, {});
  ASSERT_FALSE(all1.empty());
  for (const Problem* p : all1)
    EXPECT_EQ(p->level, 1);
  const auto mm = select_problems(c, {}, {"l1/matmul_fp*"});
  EXPECT_EQ(mm.size(), 2u);
  try {
    select_problems(c, {1}, {"nothing_like_this*"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing_like_this*"), std::string::npos);
  }
}

TEST(Options, UnknownModelNamesTheFile) {
  try {
    resolve_models({"no-such-model"}, std::string(KB_SOURCE_DIR) + "/config/models.yaml",
                   std::string(KB_SOURCE_DIR) + "/levels");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("models.yaml"), std::string::npos);
  }
  const auto m = resolve_models({"replay"}, "", std::string(KB_SOURCE_DIR) + "/levels");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(fs::is_directory(m[0].replay_dir)) << m[0].replay_dir;
}

TEST_F(RunnerTest, ReplayRunEvaluatesExamplesAndGeneratedNaiveKernels) {
  FakeBackend backend;
  std::vector<std::string> lines;
  RunHooks hooks;
  hooks.log = [&](const std::string& l) { lines.push_back(l); };
  const RunSummary s = run_suite(opts, &backend, nullptr, hooks);
  EXPECT_EQ(s.status, RunStatus::completed);
  EXPECT_EQ(s.tasks.size(), 3u);
  // relu and softmax have example kernels; kb_gelu gets its generated naive kernel.
  EXPECT_EQ(backend.evaluations.load(), 3);
  store::Store st(opts.db, {.read_only = true});
  const auto run = st.run(s.run_id);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->status, "completed");
  EXPECT_EQ(run->info.driver_version, "13.0");
  EXPECT_FALSE(run->info.kbench_version.empty());
  EXPECT_EQ(run->info.protocol, kb::Protocol::kbench);
  std::map<std::string, store::AttemptRow> att;
  for (auto& a : st.attempts({.run_ids = {s.run_id}, .with_source = true}))
    att[a.problem_id] = a;
  ASSERT_EQ(att.size(), 3u);
  EXPECT_EQ(att["l1/relu_4096x393216"].eval.outcome, Outcome::correct);
  EXPECT_EQ(att["l1/kb_gelu"].eval.outcome, Outcome::correct);
  EXPECT_EQ(att["l1/kb_gelu"].source,
            naive_candidate(*load_catalog(opts.levels_dir).find("l1/kb_gelu")).source);
  EXPECT_EQ(att["l1/relu_4096x393216"].source.find("Naive candidate"), std::string::npos);
  int generated = 0;
  for (const auto& c : st.llm_calls(s.run_id)) {
    EXPECT_EQ(c.call.status, "ok") << c.call.problem_id;
    generated += c.call.problem_id == "l1/kb_gelu";
  }
  EXPECT_EQ(generated, 1);
  EXPECT_EQ(st.baseline_timings({s.run_id}).size(), 3u);
  EXPECT_EQ(s.progress.correct, 3);
}

// A problem the naive generator cannot express (its attention scores need more workspace than
// the ABI allows) is the replay model's no_code attempt with the reason: an answer, not a
// provider failure.
TEST_F(RunnerTest, ReplayWithoutAKernelOrAGeneratedOneRecordsNoCodeWithTheReason) {
  const fs::path levels = dir / "levels";
  fs::create_directories(levels / "level1");
  fs::create_directories(levels / "examples");
  std::ofstream(levels / "level1" / "huge_attention.yaml")
      << "name: huge attention\ndescription: scores beyond the workspace limit\n"
         "provenance: {source: kbench, version: \"\", ref: test}\ninputs:\n"
         "  - {name: q, shape: [100000, 8], dtype: f32, dist: {kind: uniform, low: 0, high: 1}}\n"
         "  - {name: k, shape: [100000, 8], dtype: f32, dist: {kind: uniform, low: 0, high: 1}}\n"
         "  - {name: v, shape: [100000, 8], dtype: f32, dist: {kind: uniform, low: 0, high: 1}}\n"
         "graph:\n  - {out: y, op: scaled_dot_product_attention, in: [q, k, v]}\noutputs: [y]\n";
  opts.levels_dir = levels.string();
  opts.problems = {"huge_attention"};
  FakeBackend backend;
  const RunSummary s = run_suite(opts, &backend, nullptr, {});
  EXPECT_EQ(s.status, RunStatus::completed);
  EXPECT_EQ(backend.evaluations.load(), 0);
  store::Store st(opts.db, {.read_only = true});
  const auto att = st.attempts({.run_ids = {s.run_id}});
  ASSERT_EQ(att.size(), 1u);
  EXPECT_EQ(att[0].eval.outcome, Outcome::no_code);
  const std::string& msg = att[0].eval.message;
  EXPECT_NE(msg.find("no code in the answer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("none could be generated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("workspace"), std::string::npos) << msg;
  const auto calls = st.llm_calls(s.run_id);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].call.status, "ok");
  EXPECT_EQ(calls[0].call.error_class, "");
}

TEST_F(RunnerTest, RefineRunChainsParentsAndResumeAddsNothing) {
  FakeBackend backend;
  opts.strategy.kind = search::StrategyKind::refine;
  opts.strategy.turns = 2;
  opts.problems = {"relu_4096x393216"};
  const RunSummary s = run_suite(opts, &backend, nullptr, {});
  store::Store st(opts.db);
  auto att = st.attempts({.run_ids = {s.run_id}});
  ASSERT_EQ(att.size(), 2u);
  EXPECT_EQ(att[1].parent_id, att[0].candidate_id);
  EXPECT_EQ(att[1].round, 1);
  const auto calls = st.llm_calls(s.run_id).size();

  // A resume of the finished run replays every step from the record.
  st.end_run(s.run_id, "interrupted");
  RunOptions r;
  r.db = opts.db;
  r.resume = s.run_id;
  r.levels_dir = opts.levels_dir;
  const int evals_before = backend.evaluations.load();
  const RunSummary again = run_suite(r, &backend, nullptr, {});
  EXPECT_EQ(again.run_id, s.run_id);
  EXPECT_EQ(again.status, RunStatus::completed);
  EXPECT_EQ(st.attempts({.run_ids = {s.run_id}}).size(), 2u);
  EXPECT_EQ(st.llm_calls(s.run_id).size(), calls);
  EXPECT_EQ(backend.evaluations.load(), evals_before);
}

TEST_F(RunnerTest, GenerateNeedsNoBackendAndRefusesVerdictStrategies) {
  opts.mode = Mode::generate;
  const RunSummary s = run_suite(opts, nullptr, nullptr, {});
  store::Store st(opts.db, {.read_only = true});
  auto att = st.attempts({.run_ids = {s.run_id}});
  ASSERT_EQ(att.size(), 3u);
  int unevaluated = 0;
  for (const auto& a : att)
    unevaluated += !a.evaluated;
  EXPECT_EQ(unevaluated, 3); // two example kernels and one generated naive kernel
  opts.strategy.kind = search::StrategyKind::refine;
  EXPECT_THROW(run_suite(opts, nullptr, nullptr, {}), Error);
}

// A harness failure in one candidate's compile stays that candidate's: it is recorded without
// evaluation and every other problem runs to its end.
TEST_F(RunnerTest, PlumbingFailureOfOneCandidateNeverStopsTheOthers) {
  FakeBackend backend;
  backend.throw_on = "relu_scalar";
  opts.problems = {"relu_4096x393216", "softmax_4096x65536"};
  opts.strategy.kind = search::StrategyKind::best_of_n;
  opts.strategy.samples = 3;
  const RunSummary s = run_suite(opts, &backend, nullptr, {});
  EXPECT_EQ(s.status, RunStatus::completed);
  EXPECT_NE(s.message.find("without evaluation"), std::string::npos) << s.message;
  store::Store st(opts.db, {.read_only = true});
  int relu_unevaluated = 0, softmax_correct = 0;
  for (const auto& a : st.attempts({.run_ids = {s.run_id}})) {
    if (a.problem_id == "l1/relu_4096x393216")
      relu_unevaluated += !a.evaluated;
    if (a.problem_id == "l1/softmax_4096x65536")
      softmax_correct += a.evaluated && a.eval.outcome == Outcome::correct;
  }
  EXPECT_EQ(relu_unevaluated, 3);
  EXPECT_EQ(softmax_correct, 3);
}

// A completed run resumed says so and does nothing; a run another live process writes is
// refused; the resume takes the recorded models even when the models file is gone.
TEST_F(RunnerTest, ResumeOfCompletedRunDoesNothingAndLiveHolderIsRefused) {
  FakeBackend backend;
  const RunSummary s = run_suite(opts, &backend, nullptr, {});
  ASSERT_EQ(s.status, RunStatus::completed);
  RunOptions r;
  r.db = opts.db;
  r.resume = s.run_id;
  r.models_file = (dir / "no-such-models.yaml").string();
  const int evals = backend.evaluations.load();
  const RunSummary again = run_suite(r, &backend, nullptr, {});
  EXPECT_TRUE(again.already_completed);
  EXPECT_NE(again.message.find("already completed"), std::string::npos);
  EXPECT_EQ(backend.evaluations.load(), evals);

  store::Store st(opts.db);
  st.end_run(s.run_id, "interrupted");
  const std::string calls_before = std::to_string(st.llm_calls(s.run_id).size());
  ASSERT_FALSE(st.acquire_run_lease(s.run_id, "a-live-process")); // this test process: alive
  try {
    run_suite(r, &backend, nullptr, {});
    FAIL() << "a second writer was let in";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("being written by process"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(std::to_string(st.llm_calls(s.run_id).size()), calls_before);
  st.release_run_lease(s.run_id, "a-live-process");
  const RunSummary resumed = run_suite(r, &backend, nullptr, {});
  EXPECT_EQ(resumed.status, RunStatus::completed);
  EXPECT_EQ(backend.evaluations.load(), evals);
  EXPECT_EQ(std::to_string(st.llm_calls(s.run_id).size()), calls_before);
}

TEST_F(RunnerTest, UsdBudgetWithUnpricedModelNamesTheModel) {
  FakeBackend backend;
  const std::string models = (dir / "models.yaml").string();
  {
    std::ofstream f(models);
    f << "models:\n  free-local: {provider: openai, base_url: http://127.0.0.1:9/v1, model: m}\n";
  }
  opts.models_file = models;
  opts.models = {"free-local"};
  opts.run_budget.usd = 5.0;
  try {
    run_suite(opts, &backend, nullptr, {});
    FAIL() << "an unpriced model ran under a USD budget";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("free-local"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(opts.db));
}

// The second step: stored candidates of a generate run are evaluated on the fake back end, each
// once, under the run's lease; the run keeps its status.
TEST_F(RunnerTest, EvaluateStoredJudgesEachGeneratedCandidateOnce) {
  opts.mode = Mode::generate;
  const RunSummary g = run_suite(opts, nullptr, nullptr, {});
  ASSERT_EQ(g.status, RunStatus::completed);
  FakeBackend backend;
  EvaluateOptions e;
  e.db = opts.db;
  e.run_id = g.run_id;
  e.levels_dir = opts.levels_dir;
  e.jobs = 2;
  std::vector<Progress> progress;
  RunHooks hooks;
  hooks.progress = [&](const Progress& p) { progress.push_back(p); };
  const EvaluateSummary s = evaluate_stored(e, backend, nullptr, hooks);
  EXPECT_EQ(s.candidates, 3);
  EXPECT_EQ(s.outcomes.at("correct"), 3);
  EXPECT_EQ(backend.evaluations.load(), 3);
  EXPECT_EQ(backend.compiles.load(), 3);
  ASSERT_EQ(s.ceilings.size(), 1u);
  store::Store st(opts.db);
  EXPECT_EQ(st.run(g.run_id)->status, "completed");
  int evaluated = 0;
  for (const auto& a : st.attempts({.run_ids = {g.run_id}}))
    evaluated += a.evaluated;
  EXPECT_EQ(evaluated, 3); // two example kernels and one generated naive kernel
  EXPECT_EQ(st.baseline_timings({g.run_id}).size(), 3u);

  // Nothing left: a second pass evaluates nothing; a live writer of the run refuses it.
  EXPECT_EQ(evaluate_stored(e, backend, nullptr, {}).candidates, 0);
  ASSERT_FALSE(st.acquire_run_lease(g.run_id, "a-live-process"));
  EXPECT_THROW(evaluate_stored(e, backend, nullptr, {}), Error);
  EXPECT_EQ(backend.evaluations.load(), 3);
}

TEST_F(RunnerTest, ReplayReadsTheExamplesOfTheLevelsDirGiven) {
  const fs::path levels = dir / "levels";
  fs::create_directories(levels / "examples");
  const auto m = resolve_models({"replay"}, std::string(KB_SOURCE_DIR) + "/config/models.yaml",
                                levels.string());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(fs::path(m[0].replay_dir), levels / "examples");
}

TEST_F(RunnerTest, CancelBeforeStartEndsInterrupted) {
  FakeBackend backend;
  std::atomic<bool> cancel{true};
  const RunSummary s = run_suite(opts, &backend, &cancel, {});
  EXPECT_EQ(s.status, RunStatus::interrupted);
  store::Store st(opts.db, {.read_only = true});
  EXPECT_EQ(st.run(s.run_id)->status, "interrupted");
}

} // namespace
} // namespace kb::runner
