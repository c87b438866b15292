// The parent side of an evaluation against a fake worker (tests/unit/eval/fake_worker.cpp) that
// speaks the real protocol without a GPU: crashes, hangs, floods, forks, garbage, forged or
// out-of-order replies, forged times and out-of-bounds writes all end as the right outcome,
// quickly; an honest fake is correct without flags.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "catalog.hpp"
#include "eval.hpp"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

const std::string k_levels = std::string(KB_SOURCE_DIR) + "/tests/data/kernels/levels";

class IsolationTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    s_opts.cache_dir = (fs::temp_directory_path() / "kbench-isolation-test-cache").string();
    s_opts.include_dir = std::string(KB_SOURCE_DIR) + "/include";
    s_object = kb::compile_candidate(
        kb::read_file(std::string(KB_SOURCE_DIR) + "/tests/data/kernels/ok/relu.cu"), s_opts);
  }
  void TearDown() override {
    ::unsetenv("KB_FAKE_BEHAVIOUR");
    ::unsetenv("KB_FAKE_REF_BEHAVIOUR");
    ::unsetenv("KB_FAKE_CAND_MS");
    ::unsetenv("KB_FAKE_BASE_MS");
    ::unsetenv("KB_FAKE_CC");
  }
  static kb::EvalOptions options() {
    kb::EvalOptions o;
    o.worker_path = KB_FAKE_WORKER;
    o.timeout_s = 2.0;
    o.timeout_floor_s = 1.0;
    o.start_timeout_s = 10.0;
    o.gpu = 5;
    o.seeds = 2;
    o.compile = s_opts;
    // Several rounds, so the parent's clock has a round undisturbed by a loaded test machine.
    o.timing.min_samples = 40;
    return o;
  }
  kb::EvalResult run(const std::string& behaviour, double* seconds = nullptr,
                     kb::EvalOptions o = options()) {
    EXPECT_TRUE(s_object.ok) << s_object.message;
    ::setenv("KB_FAKE_BEHAVIOUR", behaviour.c_str(), 1);
    const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
    kb::Evaluator ev(o);
    const auto t0 = Clock::now();
    auto r = ev.evaluate_compiled(p, s_object);
    if (seconds)
      *seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return r;
  }
  static std::string why(const kb::EvalResult& r) {
    return std::string(kb::outcome_name(r.outcome)) + ": " + r.message;
  }
  static inline kb::CompileOptions s_opts;
  static inline kb::CompileResult s_object;
};

TEST_F(IsolationTest, HonestWorkerIsCorrectWithoutFlags) {
  const auto r = run("honest");
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_EQ(r.flags, 0u) << testing::PrintToString(kb::flag_names(r.flags));
  ASSERT_TRUE(r.candidate_time && r.baseline_time);
  EXPECT_GE(r.candidate_time->samples, 20);
  EXPECT_NEAR(r.speedup, 1.0, 0.3);
}

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

TEST_F(IsolationTest, HangAtStartIsATimeout) {
  double s = 0;
  kb::EvalOptions o = options();
  o.start_timeout_s = 2.0;
  const auto r = run("hang", &s, o);
  EXPECT_EQ(r.outcome, kb::Outcome::timeout) << why(r);
  EXPECT_NE(r.message.find("process group was killed"), std::string::npos) << r.message;
  EXPECT_LT(s, 8.0);
}

TEST_F(IsolationTest, HangInATimingRoundCostsTheScaledDeadlineNotTheCeiling) {
  // Baseline 1 ms per sample: a round of 10 may take floor + factor x 10 ms. With the ceiling at
  // 100 s, the hang must still end within seconds.
  double s = 0;
  kb::EvalOptions o = options();
  o.timeout_s = 100.0;
  o.timeout_floor_s = 1.0;
  o.timeout_factor = 20.0;
  const auto r = run("hang_in_round", &s, o);
  EXPECT_EQ(r.outcome, kb::Outcome::timeout) << why(r);
  EXPECT_NE(r.message.find("during timing"), std::string::npos) << r.message;
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
  EXPECT_NE(r.message.find("did not ask for"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, WorkerReportedOutcomeIsKept) {
  const auto r = run("failure");
  EXPECT_EQ(r.outcome, kb::Outcome::load_error);
  EXPECT_EQ(r.message, "dlopen failed: fake");
}

TEST_F(IsolationTest, WorkerRunsInAPrivateDirectoryOnTheChosenGpuWithAnUnusualChannel) {
  const auto r = run("cwd");
  EXPECT_NE(r.message.find("/kbench-eval-"), std::string::npos) << r.message;
  // CUDA_VISIBLE_DEVICES=5; fd 3 is not the channel (closed); the channel's number is elsewhere.
  EXPECT_NE(r.message.find(" 5 0 "), std::string::npos) << r.message;
  const std::string fd = r.message.substr(r.message.rfind(' ') + 1);
  EXPECT_NE(fd, "3") << r.message;
  EXPECT_GE(std::atoi(fd.c_str()), 64) << r.message;
}

// --- Forgery: nothing the candidate's process says is believed on its own ---------------------

TEST_F(IsolationTest, ForgedDoneLineBeforeAnyCheckIsNotBelieved) {
  const auto r = run("forged_done");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("did not ask for"), std::string::npos) << r.message;
  EXPECT_FALSE(r.candidate_time.has_value());
  EXPECT_EQ(r.speedup, 0.0);
}

TEST_F(IsolationTest, ReplyWithTheWrongSequenceNumberIsNotBelieved) {
  const auto r = run("wrong_seq");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("sequence number or token"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, ReplyWithoutTheSessionTokenIsNotBelieved) {
  const auto r = run("wrong_token");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("sequence number or token"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, TimingResultsWhereACheckWasAskedForAreNotBelieved) {
  const auto r = run("skip_to_timing");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("'round_done' where 'check_done'"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, AReplyWhoseBodyIsMalformedIsNotBelieved) {
  const auto r = run("bad_body");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("does not add up"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, AFailureReplyCannotChooseAPassingOutcomeOrBreakTheText) {
  const auto r = run("failure_claims_correct");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_FALSE(kb::invalid_utf8_at(r.message).has_value()) << r.message;
  EXPECT_NE(r.message.find("all good"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, ALineAfterTheLastReplyVoidsTheResult) {
  const auto r = run("extra_line");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("after the last reply"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, ForgedTimeWithRealWorkIsNotCorroboratedByTheParentsClock) {
  // The fake spends 1 ms per sample and claims 0.2 ms: the rounds' wall time says otherwise.
  const auto r = run("forge_time");
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_TRUE(r.flags & kb::flag_unverified_time)
      << testing::PrintToString(kb::flag_names(r.flags));
  EXPECT_NE(r.message.find("does not corroborate"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, ClaimingMoreTimeThanTheRoundTookIsNotBelieved) {
  const auto r = run("overclaim");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("more time than it took"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, AKeptSampleReportedTwiceIsNotBelieved) {
  const auto r = run("same_sample");
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("does not add up"), std::string::npos) << r.message;
}

TEST_F(IsolationTest, WorkOffTheStreamIsFlaggedAndCountedByTheHostSpan) {
  const auto r = run("off_stream");
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_TRUE(r.flags & kb::flag_off_stream);
  ASSERT_TRUE(r.candidate_time.has_value());
  EXPECT_GT(r.candidate_time->median_ms, 0.9); // the 1 ms of hidden work, not the 5 us events
  EXPECT_LT(r.speedup, 1.2);
}

TEST_F(IsolationTest, WritesIntoTheGuardZonesAreOutOfBounds) {
  const auto r = run("out_of_bounds");
  ASSERT_EQ(r.outcome, kb::Outcome::mismatch) << why(r);
  ASSERT_TRUE(r.mismatch.has_value());
  EXPECT_EQ(r.mismatch->reason, "out_of_bounds");
}

// --- No GPU, compile errors ------------------------------------------------------------------

TEST_F(IsolationTest, NoUsableGpuIsOneClearLine) {
  ::setenv("KB_FAKE_REF_BEHAVIOUR", "no_gpu", 1);
  kb::Evaluator ev(options());
  const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
  try {
    ev.evaluate_compiled(p, s_object);
    FAIL() << "expected an error";
  } catch (const kb::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "GPU 5: no usable CUDA GPU: cudaErrorNoDevice: no CUDA-capable device is detected");
  }
}

TEST_F(IsolationTest, NoGpuDriverIsSaidBeforeAnythingIsCompiled) {
  const fs::path dev = fs::temp_directory_path() / "kbench-fake-dev";
  fs::remove_all(dev);
  fs::create_directories(dev);
  EXPECT_FALSE(kb::gpu_driver_present(dev.string()));
  { std::ofstream(dev / "nvidiactl") << ""; }
  EXPECT_TRUE(kb::gpu_driver_present(dev.string()));
  fs::remove_all(dev);
  if (kb::gpu_driver_present())
    GTEST_SKIP() << "this machine has a GPU driver";
  kb::EvalOptions o = options();
  o.compile.nvcc = "/nonexistent/nvcc"; // a compile attempt would fail differently
  kb::Evaluator ev(o);
  const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
  try {
    ev.evaluate(p, "extern \"C\" int kb_forward();");
    FAIL() << "expected an error";
  } catch (const kb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no NVIDIA GPU driver"), std::string::npos) << e.what();
  }
}

TEST_F(IsolationTest, CompileErrorsNeverReachAWorker) {
  kb::CompileResult bad;
  bad.ok = false;
  bad.message = "nvcc failed (exit status 2): candidate.cu(1): error: oops";
  const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
  kb::EvalOptions o;
  o.worker_path = "/nonexistent-worker";
  kb::Evaluator ev(o);
  const auto r = ev.evaluate_compiled(p, bad);
  EXPECT_EQ(r.outcome, kb::Outcome::compile_error);
  EXPECT_EQ(r.message, bad.message);
}

// An nvcc stand-in in `dir`: answers --version like nvcc 13.0, appends every other command line
// to dir/nvcc.log and fails the compile.
std::string fake_nvcc(const fs::path& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path script = dir / "nvcc";
  std::ofstream(script) << "#!/bin/sh\n"
                           "if [ \"$1\" = --version ]; then\n"
                           "  echo 'Cuda compilation tools, release 13.0, V13.0.0'\n"
                           "  echo 'Build cuda_13.0.stand-in'\n"
                           "  exit 0\n"
                           "fi\n"
                           "echo \"$*\" >> '" +
                               (dir / "nvcc.log").string() +
                               "'\n"
                               "exit 2\n";
  fs::permissions(script, fs::perms::owner_all);
  return script.string();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> lines;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  return lines;
}

TEST_F(IsolationTest, TheCandidateCompilesForTheGpuTheReferenceReports) {
  const fs::path dir =
      fs::temp_directory_path() / ("kbench-arch-test-" + std::to_string(::getpid()));
  kb::EvalOptions o = options();
  o.gpu_probe = false;
  o.compile.nvcc = fake_nvcc(dir);
  o.compile.use_cache = false;
  o.compile.arch.clear();
  const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
  ::setenv("KB_FAKE_CC", "8.9", 1);
  kb::Evaluator ev(o);
  // First evaluation: nvcc starts on this build's architectures while the reference starts,
  // then compiles again for the GPU it reports.
  EXPECT_EQ(ev.evaluate(p, "extern \"C\" int kb_forward();").outcome, kb::Outcome::compile_error);
  auto calls = lines_of(dir / "nvcc.log");
  ASSERT_EQ(calls.size(), kb::default_arch().empty() ? 1u : 2u);
  EXPECT_NE(calls.back().find("-gencode arch=compute_89,code=sm_89 "), std::string::npos)
      << calls.back();
  EXPECT_EQ(calls.back().find("sm_90"), std::string::npos) << calls.back();
  // Later evaluations know the GPU: one compile, for it.
  EXPECT_EQ(ev.evaluate(p, "extern \"C\" int kb_forward(); // 2").outcome,
            kb::Outcome::compile_error);
  calls = lines_of(dir / "nvcc.log");
  ASSERT_EQ(calls.size(), kb::default_arch().empty() ? 2u : 3u);
  EXPECT_NE(calls.back().find("code=sm_89 "), std::string::npos) << calls.back();
  fs::remove_all(dir);
}

TEST_F(IsolationTest, AGpuOfTheBuildsArchitectureCompilesOnce) {
  if (kb::default_arch() != "sm_90a")
    GTEST_SKIP() << "this build's architectures are " << kb::default_arch();
  const fs::path dir =
      fs::temp_directory_path() / ("kbench-arch-once-test-" + std::to_string(::getpid()));
  kb::EvalOptions o = options();
  o.gpu_probe = false;
  o.compile.nvcc = fake_nvcc(dir);
  o.compile.use_cache = false;
  o.compile.arch.clear();
  ::setenv("KB_FAKE_CC", "9.0", 1);
  kb::Evaluator ev(o);
  const kb::Problem p = kb::load_problem(k_levels + "/level1/relu_small.yaml", k_levels);
  EXPECT_EQ(ev.evaluate(p, "extern \"C\" int kb_forward();").outcome, kb::Outcome::compile_error);
  const auto calls = lines_of(dir / "nvcc.log");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls[0].find("code=sm_90a "), std::string::npos) << calls[0];
  fs::remove_all(dir);
}

} // namespace
