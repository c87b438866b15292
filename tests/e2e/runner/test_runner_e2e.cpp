// End-to-end tests of `kbench generate`: the real binary against kbench-mock-llm on 127.0.0.1
// and a temporary database (faults, retries, budgets, resume after kill -9, key hygiene).
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

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
  pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<std::string> all{std::string(KB_BIN_DIR) + "/kbench"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
  }

  Result run(const std::vector<std::string>& args) {
    const std::string log = (dir / "out.log").string();
    fs::remove(log);
    const pid_t pid = spawn(args, log);
    int status = 0;
    waitpid(pid, &status, 0);
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream in(log);
    r.output.assign(std::istreambuf_iterator<char>(in), {});
    all_output += r.output;
    return r;
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

  std::map<std::string, kb::store::AttemptRow> att;
  for (auto& a : s.attempts({.run_ids = {runs[0].id}, .with_source = true}))
    att[a.problem_id] = a;
  ASSERT_EQ(att.size(), 6u);
  EXPECT_FALSE(att["l1/relu_4096x393216"].evaluated); // generate: stored for later evaluation
  EXPECT_NE(att["l1/relu_4096x393216"].source.find("kb_forward"), std::string::npos);
  for (const char* p : {"l1/softmax_4096x65536", "l1/sum_dim1_128x4096x4095", "l1/matmul_fp32_4096",
                        "l1/layer_norm_16x64x256x256"}) {
    ASSERT_TRUE(att[p].evaluated) << p;
    EXPECT_EQ(att[p].eval.outcome, kb::Outcome::no_code) << p;
    EXPECT_FALSE(att[p].eval.message.empty()) << p;
  }
  EXPECT_NE(att["l1/matmul_fp32_4096"].eval.message.find("after 2 retries"), std::string::npos)
      << att["l1/matmul_fp32_4096"].eval.message;
  EXPECT_EQ(att["l1/matmul_fp32_4096"].candidate_id > 0, true);

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
  EXPECT_GE(stops, 1);
  EXPECT_EQ(mock.stats()["requests"].get<int>(), 5);
  EXPECT_EQ(s.attempts({.run_ids = {run_row.id}}).size(), 5u);
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

  // An unreachable endpoint is data: every call recorded as a network failure.
  r = run(base_args("relu_4096x393216,softmax_4096x65536"));
  ASSERT_EQ(r.code, 0) << r.output;
  kb::store::Store s(db, {.read_only = true});
  const auto calls = s.llm_calls(s.runs().at(0).id);
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& c : calls)
    EXPECT_EQ(c.call.status, "network") << c.call.error_class;
  EXPECT_EQ(s.attempts({}).size(), 2u);
}

} // namespace
