// Worker isolation through the Evaluator with a fake worker (a shell script): exit 0 without a
// result, crashes, hangs, floods, forks that hold the pipes and garbage on the result channel
// all end as the right outcome, quickly, without a GPU.
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "catalog.hpp"
#include "eval.hpp"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

class IsolationTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    s_opts.cache_dir = (fs::temp_directory_path() / "kbench-isolation-test-cache").string();
    s_opts.include_dir = std::string(KB_SOURCE_DIR) + "/include";
    s_object = kb::compile_candidate(
        kb::read_file(std::string(KB_SOURCE_DIR) + "/tests/data/kernels/ok/relu.cu"), s_opts);
  }
  kb::EvalResult run(const std::string& behaviour, double* seconds = nullptr) {
    EXPECT_TRUE(s_object.ok) << s_object.message;
    ::setenv("KB_FAKE_BEHAVIOUR", behaviour.c_str(), 1);
    const std::string levels = std::string(KB_SOURCE_DIR) + "/tests/data/kernels/levels";
    const kb::Problem p = kb::load_problem(levels + "/level1/relu_small.yaml", levels);
    kb::EvalOptions o;
    o.worker_path = std::string(KB_SOURCE_DIR) + "/tests/unit/eval/fake_worker.sh";
    o.timeout_s = 2.0;
    o.start_timeout_s = 10.0;
    o.gpu = 5;
    o.compile = s_opts;
    kb::Evaluator ev(o);
    const auto t0 = Clock::now();
    auto r = ev.evaluate_compiled(p, s_object);
    if (seconds)
      *seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return r;
  }
  static inline kb::CompileOptions s_opts;
  static inline kb::CompileResult s_object;
};

TEST_F(IsolationTest, ExitZeroWithoutResultIsARuntimeError) {
  const auto r = run("exit0");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error);
  EXPECT_NE(r.message.find("without a result"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("exit status 0"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, CrashNamesTheSignalAndKeepsStderr) {
  const auto r = run("crash");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error);
  EXPECT_NE(r.message.find("signal 11"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("about to crash"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, HangIsATimeout) {
  double s = 0;
  const auto r = run("hang", &s);
  EXPECT_EQ(r.outcome, kb::Outcome::timeout);
  EXPECT_NE(r.message.find("process group was killed"), std::string::npos) << r.message;
  EXPECT_LT(s, 8.0);
}

TEST_F(IsolationTest, OutputFloodNeitherBlocksNorExhaustsMemory) {
  double s = 0;
  const auto r = run("flood", &s);
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error);
  EXPECT_LT(s, 30.0);
}

TEST_F(IsolationTest, ForkHoldingTheChannelDoesNotStallTheVerdict) {
  double s = 0;
  const auto r = run("fork", &s);
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error);
  EXPECT_LT(s, 5.0);
}

TEST_F(IsolationTest, GarbageOnTheChannelIsARuntimeError) {
  const auto r = run("garbage");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error);
  EXPECT_NE(r.message.find("malformed"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, WorkerReportedOutcomeIsKept) {
  const auto r = run("failure");
  EXPECT_EQ(r.outcome, kb::Outcome::load_error);
  EXPECT_EQ(r.message, "dlopen failed: fake");
}

TEST_F(IsolationTest, WorkerRunsInAPrivateDirectoryOnTheChosenGpuWithoutCores) {
  const auto r = run("cwd");
  EXPECT_NE(r.message.find("/kbench-eval-"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find(" 5 0"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, CompileErrorsNeverReachAWorker) {
  kb::CompileResult bad;
  bad.ok = false;
  bad.message = "nvcc failed (exit status 2): candidate.cu(1): error: oops";
  const std::string levels = std::string(KB_SOURCE_DIR) + "/tests/data/kernels/levels";
  const kb::Problem p = kb::load_problem(levels + "/level1/relu_small.yaml", levels);
  kb::EvalOptions o;
  o.worker_path = "/nonexistent-worker";
  kb::Evaluator ev(o);
  const auto r = ev.evaluate_compiled(p, bad);
  EXPECT_EQ(r.outcome, kb::Outcome::compile_error);
  EXPECT_EQ(r.message, bad.message);
}

} // namespace
