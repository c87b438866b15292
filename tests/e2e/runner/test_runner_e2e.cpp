// End-to-end tests of `kbench generate`: the real binary against kbench-mock-llm on 127.0.0.1
// and a temporary database (faults, retries, budgets, resume after kill -9, key hygiene).
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mock_process.hpp"
#include "store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string k_key = "sk-e2e-7f3a9c2b1d4e5f60SECRET";
const std::string k_problems =
    "relu_4096x393216,softmax_4096x65536,sum_dim1_128x4096x4095,matmul_fp32_4096,"
    "layer_norm_16x64x256x256,matmul_fp16_4096";

struct Result {
  int code = -1;
  std::string output;
};

class RunnerE2E : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kb_runner_e2e_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    db = (dir / "kb.db").string();
    ::setenv("KB_E2E_RUNNER_KEY", k_key.c_str(), 1);
  }
  void TearDown() override { fs::remove_all(dir); }

  void write_models(const std::string& url, const std::string& extra = "") {
    std::ofstream(dir / "models.yaml")
        << "models:\n  mock:\n    provider: openai\n    base_url: " << url
        << "/v1\n    model: mock-model\n    api_key_env: KB_E2E_RUNNER_KEY\n"
        << "    max_output_tokens: 100\n    max_retries: 2\n    retry_base_delay_s: 0.01\n"
        << "    retry_max_delay_s: 0.05\n    max_retry_after_s: 1\n    concurrency: 4\n"
        << "    read_timeout_s: 5\n    connect_timeout_s: 2\n"
        << extra;
  }

  std::vector<std::string> base_args(const std::string& problems = k_problems) {
    return {"generate", "--models", "mock",       "--models-file", (dir / "models.yaml").string(),
            "--db",     db,         "--problems", problems};
  }

  // Runs kbench with stdout+stderr into a file; returns the child's pid (not waited for).
  pid_t spawn(const std::vector<std::string>& args, const std::string& log,
              const std::string& cwd = "") {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (!cwd.empty())
      posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<std::string> all{std::string(KB_BIN_DIR) + "/kbench"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
      ADD_FAILURE() << "cannot start " << argv[0];
      pid = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    return pid;
  }

  Result run(const std::vector<std::string>& args, const std::string& cwd = "") {
    const std::string log = (dir / "out.log").string();
    fs::remove(log);
    return finish(spawn(args, log, cwd), log);
  }
  Result finish(pid_t pid, const std::string& log) {
    Result r;
    if (pid <= 0) // never waitpid(-1): that would wait for the mock server
      return r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream in(log);
    r.output.assign(std::istreambuf_iterator<char>(in), {});
    all_output += r.output;
    return r;
  }
  // Starts `args` and kills it with SIGKILL once `n` attempts are recorded; returns the run id.
  int64_t start_and_kill(const std::vector<std::string>& args, int64_t n) {
    const pid_t pid = spawn(args, (dir / "killed.log").string());
    if (pid <= 0) // never kill(-1)
      return 0;
    wait_for_attempts(n);
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    kb::store::Store s(db, {.read_only = true});
    return s.runs().at(0).id;
  }
  int64_t wait_for_attempts(int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int64_t seen = 0;
    while (std::chrono::steady_clock::now() < deadline && seen < n) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      try {
        kb::store::Store s(db, {.read_only = true});
        seen = static_cast<int64_t>(s.attempts({}).size());
      } catch (const std::exception&) {
      }
    }
    return seen;
  }
  // No request hash answered twice in the run.
  void expect_no_duplicate_answers(int64_t run_id) {
    kb::store::Store s(db, {.read_only = true});
    std::set<std::string> hashes;
    for (const auto& c : s.llm_calls(run_id))
      if (c.call.status == "ok")
        EXPECT_TRUE(hashes.insert(c.call.request_hash).second)
            << "request " << c.call.request_hash << " answered twice";
  }

  fs::path dir;
  std::string db;
  std::string all_output;
};

std::map<std::string, kb::store::LlmCall> calls_by_problem(kb::store::Store& s, int64_t run) {
  std::map<std::string, kb::store::LlmCall> out;
  for (const auto& c : s.llm_calls(run))
    if (!c.call.request_hash.empty())
      out[c.call.problem_id] = c.call;
  return out;
}

TEST_F(RunnerE2E, EachFaultClassIsRecordedAndRetriesAreCounted) {
  const json script{
      {"answers",
       json::array({
           {{"match", "relu_4096x393216"}, {"repeat", -1}},
           {{"match", "softmax_4096x65536"}, {"fault", "no_code"}, {"repeat", -1}},
           {{"match", "sum_dim1_128x4096x4095"},
            {"fault", "http_error"},
            {"status", 400},
            {"repeat", -1}},
           {{"match", "matmul_fp32_4096"}, {"fault", "rate_limit"}, {"repeat", -1}},
           {{"match", "layer_norm_16x64x256x256"}, {"fault", "malformed"}, {"repeat", -1}},
           {{"match", "matmul_fp16_4096"}, {"fault", "server_error"}, {"repeat", 1}},
       })},
      {"fallback", json::object()},
      {"require_key", k_key}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  const Result r = run(base_args());
  ASSERT_EQ(r.code, 0) << r.output;

  kb::store::Store s(db, {.read_only = true});
  const auto runs = s.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, "completed");
  const auto calls = calls_by_problem(s, runs[0].id);
  EXPECT_EQ(calls.at("l1/relu_4096x393216").status, "ok");
  EXPECT_EQ(calls.at("l1/softmax_4096x65536").status, "ok");
  EXPECT_EQ(calls.at("l1/sum_dim1_128x4096x4095").status, "http_error");
  EXPECT_EQ(calls.at("l1/matmul_fp32_4096").status, "rate_limited");
  EXPECT_EQ(calls.at("l1/layer_norm_16x64x256x256").status, "malformed");
  EXPECT_EQ(calls.at("l1/matmul_fp16_4096").status, "ok"); // one 500, then retried

  // An answer without code is the model's attempt; a call that failed after retries (400, 429,
  // malformed) is a provider failure: no candidate, its own count.
  std::map<std::string, kb::store::AttemptRow> att;
  for (auto& a : s.attempts({.run_ids = {runs[0].id}, .with_source = true}))
    att[a.problem_id] = a;
  ASSERT_EQ(att.size(), 3u);
  EXPECT_FALSE(att["l1/relu_4096x393216"].evaluated); // generate: stored for later evaluation
  EXPECT_NE(att["l1/relu_4096x393216"].source.find("kb_forward"), std::string::npos);
  ASSERT_TRUE(att["l1/softmax_4096x65536"].evaluated);
  EXPECT_EQ(att["l1/softmax_4096x65536"].eval.outcome, kb::Outcome::no_code);
  EXPECT_TRUE(att.count("l1/matmul_fp16_4096"));
  const auto tally = s.call_tally(runs[0].id);
  EXPECT_EQ(tally.provider_failures, 3);
  EXPECT_EQ(tally.failures_by_class.at("http_error"), 1);
  EXPECT_EQ(tally.failures_by_class.at("rate_limited"), 1);
  EXPECT_EQ(tally.failures_by_class.at("malformed"), 1);
  EXPECT_NE(r.output.find("completed with 3 provider failures"), std::string::npos) << r.output;

  // Attempts on the wire: one each, 3 for the rate-limited one (2 retries), 2 for the one 500
  // then success; malformed bodies and 400 are not retried.
  const json st = mock.stats();
  EXPECT_EQ(st["requests"].get<int>(), 1 + 1 + 1 + 3 + 1 + 2);
  EXPECT_EQ(st["auth_ok"].get<int>(), st["requests"].get<int>());
  EXPECT_NE(r.output.find("retrying"), std::string::npos);
}

TEST_F(RunnerE2E, RunBudgetIsHitExactlyAndRecorded) {
  const json script{{"fallback", {{"tokens_in", 100}, {"tokens_out", 100}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3", "--budget-tokens", "1000"})
    args.push_back(a);
  const Result r = run(args);
  ASSERT_EQ(r.code, 0) << r.output;
  kb::store::Store s(db, {.read_only = true});
  const auto run_row = s.runs().at(0);
  EXPECT_EQ(run_row.status, "budget_exhausted");
  int64_t tokens = 0;
  int ok = 0, stops = 0;
  for (const auto& c : s.llm_calls(run_row.id)) {
    tokens += c.call.tokens_in + c.call.tokens_out;
    ok += c.call.status == "ok";
    if (c.call.status == "budget") {
      ++stops;
      EXPECT_EQ(c.call.error_class, "run_tokens");
    }
  }
  EXPECT_EQ(tokens, 1000);
  EXPECT_EQ(ok, 5);
  // What the summary says is what the database holds.
  int64_t tin = 0, tout = 0;
  for (const auto& c : s.llm_calls(run_row.id)) {
    tin += c.call.tokens_in;
    tout += c.call.tokens_out;
  }
  EXPECT_NE(r.output.find(fmt::format("recorded for the run: {} answered calls, {} tokens in, {} "
                                      "tokens out",
                                      ok, tin, tout)),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(fmt::format("the run recorded {} tokens in, {} tokens out", tin, tout)),
            std::string::npos)
      << r.output;
  EXPECT_GE(stops, 1);
  EXPECT_EQ(mock.stats()["requests"].get<int>(), 5);
  EXPECT_EQ(s.attempts({.run_ids = {run_row.id}}).size(), 5u);
  // Searches the budget ended are counted as stopped, not as done; generated work was never
  // judged, so no search says it found no correct candidate.
  EXPECT_NE(r.output.find("problem searches finished"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" stopped, "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("no correct candidate"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not evaluated"), std::string::npos) << r.output;
}

// One Ctrl-C: in-flight work finishes, the run is recorded as interrupted, the summary counts
// the searches it cut short as stopped (never "6 of 6 done"), and the command exits 1 as
// docs/cli.md says.
TEST_F(RunnerE2E, InterruptedRunCountsStoppedSearchesAndExitsOne) {
  const json script{{"fallback", {{"delay_ms", 300}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3", "--concurrency", "1"})
    args.push_back(a);
  const std::string log = (dir / "interrupted.log").string();
  const pid_t pid = spawn(args, log);
  ASSERT_GT(pid, 0);
  EXPECT_GE(wait_for_attempts(2), 2);
  ::kill(pid, SIGINT);
  const Result r = finish(pid, log);
  EXPECT_EQ(r.code, 1) << r.output;
  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.runs().at(0).status, "interrupted");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m, std::regex("([0-9]+) of 6 problem searches finished, ([0-9]+) stopped")))
      << r.output;
  EXPECT_LT(std::stoi(m[1].str()), 6) << r.output;
  EXPECT_EQ(std::stoi(m[1].str()) + std::stoi(m[2].str()), 6) << r.output;
  EXPECT_NE(r.output.find("searches stopped: interrupted"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("no correct candidate"), std::string::npos) << r.output;
}

TEST_F(RunnerE2E, ResumeAfterKillNineMakesNoDuplicateCallsOrRows) {
  const json script{{"fallback", {{"delay_ms", 250}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3"})
    args.push_back(a);
  const std::string log = (dir / "killed.log").string();
  const pid_t pid = spawn(args, log);
  // Kill -9 once a few candidates are in.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int64_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    try {
      kb::store::Store s(db, {.read_only = true});
      seen = static_cast<int64_t>(s.attempts({}).size());
    } catch (const std::exception&) {
      continue;
    }
    if (seen >= 5)
      break;
  }
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_GE(seen, 5);
  int64_t run_id = 0;
  int64_t before = 0;
  {
    kb::store::Store s(db, {.read_only = true});
    ASSERT_EQ(s.runs().size(), 1u);
    EXPECT_EQ(s.runs()[0].status, "running");
    run_id = s.runs()[0].id;
    before = static_cast<int64_t>(s.attempts({}).size());
    ASSERT_LT(before, 18) << "the run finished before it could be killed";
  }
  const int sent_before = mock.stats()["requests"].get<int>();
  const Result r = run({"generate", "--db", db, "--resume", std::to_string(run_id)});
  ASSERT_EQ(r.code, 0) << r.output;

  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.runs().size(), 1u);
  EXPECT_EQ(s.runs()[0].status, "completed");
  const auto attempts = s.attempts({.run_ids = {run_id}});
  EXPECT_EQ(attempts.size(), 18u); // 6 problems x 3 samples, no duplicate rows
  std::set<std::string> hashes;
  int ok_calls = 0;
  for (const auto& c : s.llm_calls(run_id))
    if (c.call.status == "ok") {
      ++ok_calls;
      EXPECT_TRUE(hashes.insert(c.call.request_hash).second) << "duplicate call recorded";
    }
  EXPECT_EQ(ok_calls, 18);
  // Only requests without a recorded answer were sent again: at most those in flight (4).
  const int sent_total = mock.stats()["requests"].get<int>();
  EXPECT_LE(sent_total, 18 + 4);
  EXPECT_LE(sent_total - sent_before, 18 - before);
}

TEST_F(RunnerE2E, TheKeyIsInNoByteOfTheDatabaseOrTheLogs) {
  // The mock echoes nothing secret; the key must not leak through config, command or errors.
  const json script{
      {"answers",
       json::array(
           {{{"match", "softmax"}, {"fault", "http_error"}, {"status", 401}, {"repeat", -1}}})},
      {"fallback", json::object()},
      {"require_key", k_key}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  const Result r = run(base_args());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(mock.stats()["auth_ok"].get<int>(), 0);
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(bytes.find(k_key), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find("7f3a9c2b1d4e5f60"), std::string::npos) << e.path();
  }
  EXPECT_EQ(all_output.find(k_key), std::string::npos);
  kb::store::Store s(db, {.read_only = true});
  const std::string cfg = s.runs().at(0).info.config_json;
  EXPECT_NE(cfg.find("KB_E2E_RUNNER_KEY"), std::string::npos); // the variable's name only
}

TEST_F(RunnerE2E, BadInputNamesWhatAndWhereAndLosesNothing) {
  write_models("http://127.0.0.1:1");
  Result r = run({"generate", "--models", "nosuchmodel", "--models-file",
                  (dir / "models.yaml").string(), "--db", db});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("unknown model 'nosuchmodel'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("models.yaml"), std::string::npos) << r.output;
  r = run({"generate", "--models", "mock", "--models-file", (dir / "models.yaml").string(), "--db",
           db, "--problems", "no_such_problem*"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("no_such_problem*"), std::string::npos) << r.output;
  r = run({"generate", "--strategy", "sideways", "--db", db});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("sideways"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(db)) << "nothing should be written for bad options";

  // An unreachable endpoint: every call recorded as a network failure, no candidate, and the
  // run that measured nothing exits non-zero.
  r = run(base_args("relu_4096x393216,softmax_4096x65536"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("completed with 2 provider failures"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no LLM call of run 1 succeeded"), std::string::npos) << r.output;
  kb::store::Store s(db, {.read_only = true});
  const auto calls = s.llm_calls(s.runs().at(0).id);
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& c : calls)
    EXPECT_EQ(c.call.status, "network") << c.call.error_class;
  EXPECT_EQ(s.attempts({}).size(), 0u);
}

// Two resumes at once after a kill -9: one takes the run over, the other is refused (exit 2)
// while it lives; no request is paid twice.
TEST_F(RunnerE2E, TwoConcurrentResumesOneIsRefusedAndNoCallIsDuplicated) {
  const json script{{"fallback", {{"delay_ms", 200}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3"})
    args.push_back(a);
  const int64_t run_id = start_and_kill(args, 3);
  const std::vector<std::string> resume{"generate", "--db", db, "--resume", std::to_string(run_id)};
  const std::string log_a = (dir / "a.log").string(), log_b = (dir / "b.log").string();
  const pid_t a = spawn(resume, log_a);
  const pid_t b = spawn(resume, log_b);
  const Result ra = finish(a, log_a), rb = finish(b, log_b);
  const Result& refused = ra.code == 2 ? ra : rb;
  const Result& ran = ra.code == 2 ? rb : ra;
  EXPECT_EQ(refused.code, 2) << ra.output << "\n---\n" << rb.output;
  EXPECT_NE(refused.output.find("is being written by process"), std::string::npos)
      << refused.output;
  EXPECT_EQ(ran.code, 0) << ran.output;
  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.runs().at(0).status, "completed");
  EXPECT_EQ(s.attempts({.run_ids = {run_id}}).size(), 18u);
  expect_no_duplicate_answers(run_id);
}

// A resume while the first process still runs is refused; after that process dies (kill -9) a
// resume takes over at once and finishes without paying twice.
TEST_F(RunnerE2E, ResumeWhileTheOwnerLivesIsRefusedAndTakesOverAfterKillNine) {
  const json script{{"fallback", {{"delay_ms", 300}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3", "--concurrency", "1"})
    args.push_back(a);
  const pid_t owner = spawn(args, (dir / "owner.log").string());
  ASSERT_GE(wait_for_attempts(2), 2);
  const Result refused = run({"generate", "--db", db, "--resume", "1"});
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("is being written by process " + std::to_string(owner)),
            std::string::npos)
      << refused.output;
  ASSERT_GT(owner, 0);
  ::kill(owner, SIGKILL);
  int status = 0;
  waitpid(owner, &status, 0);
  const Result r = run({"generate", "--db", db, "--resume", "1"});
  ASSERT_EQ(r.code, 0) << r.output;
  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.attempts({.run_ids = {1}}).size(), 18u);
  expect_no_duplicate_answers(1);
}

// A resume reads the run's record, never the current directory: from a directory without a
// models file, and from one whose models.yaml points elsewhere, nothing changes; a completed run
// resumed says so and does nothing; flags that would change the run are refused by name.
TEST_F(RunnerE2E, ResumeFromAnotherDirectoryAndOfACompletedRunUsesTheRecord) {
  const json script{{"fallback", {{"delay_ms", 150}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  kb::test::MockLlmServer other(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args();
  for (std::string a : {"--strategy", "best-of-n", "--samples", "3"})
    args.push_back(a);
  const int64_t run_id = start_and_kill(args, 3);
  const fs::path elsewhere = dir / "elsewhere";
  fs::create_directories(elsewhere / "config");
  std::ofstream(elsewhere / "config" / "models.yaml")
      << "models:\n  mock:\n    provider: openai\n    base_url: " << other.url()
      << "/v1\n    model: other-model\n";
  const std::string abs_db = fs::absolute(db).string();
  Result r = run({"generate", "--db", abs_db, "--resume", std::to_string(run_id), "--models",
                  "gpt-4o", "--samples", "5"},
                 elsewhere.string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--models"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--samples"), std::string::npos) << r.output;
  r = run({"generate", "--db", abs_db, "--resume", std::to_string(run_id)}, elsewhere.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(other.stats()["requests"].get<int>(), 0);
  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.runs().at(0).status, "completed");
  EXPECT_EQ(s.attempts({.run_ids = {run_id}}).size(), 18u);
  EXPECT_EQ(s.models().size(), 1u);
  const auto calls = s.llm_calls(run_id).size();
  const int sent = mock.stats()["requests"].get<int>();

  r = run({"generate", "--db", abs_db, "--resume", std::to_string(run_id)}, elsewhere.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("already completed"), std::string::npos) << r.output;
  EXPECT_EQ(s.llm_calls(run_id).size(), calls);
  EXPECT_EQ(s.attempts({.run_ids = {run_id}}).size(), 18u);
  EXPECT_EQ(s.models().size(), 1u);
  EXPECT_EQ(mock.stats()["requests"].get<int>(), sent);
  EXPECT_EQ(other.stats()["requests"].get<int>(), 0);
}

// 429 until the retries are spent, 503, a malformed body, a timeout: provider failures, in no
// score and no candidate; a resume asks exactly those again and they become candidates.
TEST_F(RunnerE2E, ProviderFailuresAreExcludedAndRetriedOnResume) {
  // Each fault lasts the 3 attempts of one call (max_retries 2), then the mock answers.
  const json script{
      {"answers",
       json::array({
           {{"match", "matmul_fp32_4096"}, {"fault", "rate_limit"}, {"repeat", 3}},
           {{"match", "sum_dim1_128x4096x4095"},
            {"fault", "server_error"},
            {"status", 503},
            {"repeat", 3}},
           {{"match", "layer_norm_16x64x256x256"}, {"fault", "malformed"}, {"repeat", 1}},
           {{"match", "matmul_fp16_4096"}, {"delay_ms", 3000}, {"repeat", 3}},
       })},
      {"fallback", json::object()}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url(), "    total_timeout_s: 1\n");
  Result r = run(base_args());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("completed with 4 provider failures"), std::string::npos) << r.output;
  int64_t run_id = 0;
  {
    kb::store::Store s(db, {.read_only = true});
    run_id = s.runs().at(0).id;
    const auto tally = s.call_tally(run_id);
    EXPECT_EQ(tally.provider_failures, 4);
    EXPECT_EQ(tally.failures_by_class.at("rate_limited"), 1);
    EXPECT_EQ(tally.failures_by_class.at("http_error"), 1);
    EXPECT_EQ(tally.failures_by_class.at("malformed"), 1);
    EXPECT_EQ(tally.failures_by_class.at("timeout"), 1);
    std::set<std::string> problems;
    for (const auto& a : s.attempts({.run_ids = {run_id}}))
      problems.insert(a.problem_id);
    EXPECT_EQ(problems, (std::set<std::string>{"l1/relu_4096x393216", "l1/softmax_4096x65536"}));
  }
  const Result show = run({"show", "1", "--db", db});
  EXPECT_NE(show.output.find("provider_failures=4"), std::string::npos) << show.output;

  // The run ended completed, and its unanswered requests are what a resume still has to do.
  const int sent = mock.stats()["requests"].get<int>();
  r = run({"generate", "--db", db, "--resume", std::to_string(run_id)});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(mock.stats()["requests"].get<int>() - sent, 4); // only the failed requests
  kb::store::Store s(db, {.read_only = true});
  EXPECT_EQ(s.call_tally(run_id).provider_failures, 0);
  EXPECT_EQ(s.attempts({.run_ids = {run_id}}).size(), 6u);
  expect_no_duplicate_answers(run_id);
}

// best-of-n samples at the documented temperature (0.8) with one seed per sample, sent on the
// wire and recorded with each call.
TEST_F(RunnerE2E, BestOfNSamplesAtTemperatureWithRecordedSeeds) {
  const json script{{"fallback", json::object()}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url());
  auto args = base_args("relu_4096x393216");
  for (std::string a : {"--strategy", "best-of-n", "--samples", "4"})
    args.push_back(a);
  const Result r = run(args);
  ASSERT_EQ(r.code, 0) << r.output;
  std::set<int64_t> sent;
  for (const auto& q : mock.requests()) {
    EXPECT_DOUBLE_EQ(q["body"]["temperature"].get<double>(), 0.8);
    sent.insert(q["body"]["seed"].get<int64_t>());
  }
  EXPECT_EQ(sent, (std::set<int64_t>{0, 1, 2, 3}));
  kb::store::Store s(db, {.read_only = true});
  std::set<int64_t> recorded;
  for (const auto& c : s.llm_calls(s.runs().at(0).id)) {
    ASSERT_TRUE(c.call.seed);
    recorded.insert(*c.call.seed);
  }
  EXPECT_EQ(recorded, sent);
}

// A 30 MB answer is cut to the model's max_answer_bytes; the size as received is recorded.
TEST_F(RunnerE2E, HugeAnswerIsCappedAndItsSizeRecorded) {
  const std::string huge = "```cuda\n#include <kbench/kb_abi.h>\nextern \"C\" int kb_forward() "
                           "{ return 0; }\n```\n" +
                           std::string(30u << 20, 'x');
  const json script{{"fallback", {{"text", huge}}}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  write_models(mock.url(), "    max_answer_bytes: 65536\n    total_timeout_s: 60\n");
  const Result r = run(base_args("relu_4096x393216"));
  ASSERT_EQ(r.code, 0) << r.output;
  kb::store::Store s(db, {.read_only = true});
  const auto calls = s.llm_calls(s.runs().at(0).id);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].call.status, "ok");
  EXPECT_GE(calls[0].call.response_bytes, int64_t{30} << 20);
  const auto text = s.find_cached_response(calls[0].call.request_hash);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->response_text.size(), 65536u);
  EXPECT_LT(fs::file_size(db) + fs::file_size(db + "-wal"), 8u << 20);
}

// Selections that select nothing, empty paths, non-positive counts and budgets are refused
// (exit 2) before anything is written.
TEST_F(RunnerE2E, EmptySelectionsAndNonPositiveCountsAreRefused) {
  write_models("http://127.0.0.1:1");
  const std::vector<std::vector<std::string>> bad{
      {"--problems", ""},      {"--problems", ","},          {"--level", ""},
      {"--jobs", "0"},         {"--concurrency", "-1"},      {"--budget-tokens", "0"},
      {"--budget-usd", "nan"}, {"--budget-minutes", "inf"},  {"--levels-dir", ""},
      {"--prompts-dir", ""},   {"--problem-budget-usd", "0"}};
  for (const auto& extra : bad) {
    std::vector<std::string> args{
        "generate", "--models", "mock", "--models-file", (dir / "models.yaml").string(),
        "--db",     db};
    args.insert(args.end(), extra.begin(), extra.end());
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << extra[0] << " '" << extra[1] << "': " << r.output;
    EXPECT_NE(r.output.find(extra[0]), std::string::npos) << r.output;
  }
  const Result r = run({"generate", "--db", "", "--models", "mock", "--models-file",
                        (dir / "models.yaml").string()});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--db"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(db));
}

} // namespace