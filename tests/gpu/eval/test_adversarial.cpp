// The evaluator against adversarial kernels (tests/data/kernels/adversarial), one test each, on
// small test problems (tests/data/kernels/levels). Correct kernels must pass without flags.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "catalog.hpp"
#include "eval.hpp"
#include "gpu_test.hpp"

namespace {

const std::string k_data = std::string(KB_SOURCE_DIR) + "/tests/data/kernels";

class EvalGpuTest : public kb::test::GpuTest {
protected:
  static kb::EvalOptions options() {
    kb::EvalOptions o;
    o.worker_path = std::string(KB_BIN_DIR) + "/kbench-worker";
    o.compile.include_dir = std::string(KB_SOURCE_DIR) + "/include";
    o.compile.cache_dir = "/tmp/kbench-gpu-test-cache";
    o.seeds = 2;
    o.timeout_s = 60.0;
    o.timing.time_cap_s = 1.0;
    o.timing.min_samples = 10;
    return o;
  }
  static kb::Problem problem(const std::string& stem) {
    return kb::load_problem(k_data + "/levels/level1/" + stem + ".yaml", k_data + "/levels");
  }
  static kb::EvalResult eval(const std::string& stem, const std::string& kernel,
                             const kb::EvalOptions& o = options()) {
    kb::Evaluator ev(o);
    return ev.evaluate(problem(stem), kb::read_file(k_data + "/" + kernel));
  }
  static std::string why(const kb::EvalResult& r) {
    return std::string(kb::outcome_name(r.outcome)) + ": " + r.message;
  }
  static void expect_mismatch(const kb::EvalResult& r, const std::string& reason) {
    ASSERT_EQ(r.outcome, kb::Outcome::mismatch) << why(r);
    ASSERT_TRUE(r.mismatch.has_value());
    EXPECT_EQ(r.mismatch->reason, reason) << r.message;
  }
};

TEST_F(EvalGpuTest, CorrectReluPassesWithoutFlags) {
  const auto r = eval("relu_small", "ok/relu.cu");
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_EQ(r.flags & ~kb::flag_noisy, 0u) << testing::PrintToString(kb::flag_names(r.flags));
  ASSERT_TRUE(r.candidate_time && r.baseline_time);
  EXPECT_GE(r.candidate_time->samples, 10);
  EXPECT_GT(r.candidate_time->median_ms, 0.0);
  EXPECT_GT(r.speedup, 0.0);
  EXPECT_GT(r.roofline_pct, 0.0);
  EXPECT_LT(r.roofline_pct, 100.0);
  EXPECT_GT(r.start_s, 0.0);
  EXPECT_GT(r.check_s, 0.0);
  EXPECT_GT(r.time_s, 0.0);
}

TEST_F(EvalGpuTest, StableLayerNormPassesOnIllConditionedInputs) {
  const auto r = eval("layernorm_rows", "ok/layernorm_two_pass.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::correct) << why(r);
}

TEST_F(EvalGpuTest, OnePassLayerNormFailsOnIllConditionedInputs) {
  const auto r = eval("layernorm_rows", "adversarial/layernorm_one_pass.cu");
  expect_mismatch(r, "values_vs_baseline");
  EXPECT_NE(r.mismatch->distribution.find("ill_conditioned"), std::string::npos);
}

TEST_F(EvalGpuTest, ReadingLeftoverOutputMemoryFails) {
  expect_mismatch(eval("relu_small", "adversarial/read_leftover.cu"), "nan_parity");
}

TEST_F(EvalGpuTest, PartialOutputFails) {
  const auto r = eval("relu_small", "adversarial/partial_output.cu");
  expect_mismatch(r, "nan_parity");
  EXPECT_EQ(r.mismatch->first_bad_index, 1024 * 1024 / 2);
}

TEST_F(EvalGpuTest, ZeroOutputWithinToleranceIsConstantOutput) {
  expect_mismatch(eval("softmax_wide", "adversarial/zero_output.cu"), "constant_output");
}

TEST_F(EvalGpuTest, ConstantOutputFails) {
  expect_mismatch(eval("softmax_wide", "adversarial/constant_output.cu"), "constant_output");
}

TEST_F(EvalGpuTest, MutatingInputsFails) {
  expect_mismatch(eval("relu_small", "adversarial/mutate_input.cu"), "input_mutated");
}

TEST_F(EvalGpuTest, CreatingAStreamIsRejected) {
  const auto r = eval("relu_small", "adversarial/other_stream_created.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::rejected) << why(r);
  EXPECT_NE(r.message.find("cudaStreamCreate"), std::string::npos);
}

TEST_F(EvalGpuTest, WorkOnTheLegacyStreamIsTimedAndFlagged) {
  const auto r = eval("relu_small", "adversarial/other_stream_default.cu");
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_TRUE(r.flags & kb::flag_off_stream);
  ASSERT_TRUE(r.candidate_time);
  EXPECT_GT(r.candidate_time->median_ms, 0.1); // the hidden work is in the time
}

// --- Forgery: nothing the candidate's process says is believed on its own ---------------------

TEST_F(EvalGpuTest, ForgedVerdictOnTheChannelIsNotBelieved) {
  const auto r = eval("softmax_wide", "adversarial/forge_channel.cu");
  EXPECT_NE(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_FALSE(r.candidate_time.has_value()) << why(r);
  EXPECT_EQ(r.speedup, 0.0);
}

TEST_F(EvalGpuTest, ForgedTimeWithCorrectOutputsIsNotBelieved) {
  const auto r = eval("softmax_wide", "adversarial/forge_time.cu");
  EXPECT_NE(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_EQ(r.speedup, 0.0);
}

TEST_F(EvalGpuTest, ComputingOnlyTheSamplesItGuessesAreJudgedFails) {
  const auto r = eval("softmax_wide", "adversarial/judged_only.cu");
  ASSERT_EQ(r.outcome, kb::Outcome::mismatch) << why(r);
  EXPECT_NE(r.message.find("timed sample"), std::string::npos) << r.message;
}

// --- Work off the given stream: inside the time or flagged, never a free speedup -------------

class StreamEscapeTest : public EvalGpuTest {
protected:
  static kb::EvalResult eval_mode(kb::Evaluator& ev, const std::string& stem,
                                  const std::string& kernel, int mode) {
    const std::string src =
        "#define STREAM_MODE " + std::to_string(mode) + "\n" + kb::read_file(k_data + "/" + kernel);
    return ev.evaluate(problem(stem), src);
  }
  static void expect_no_free_speedup(const std::string& stem, const std::string& kernel, int mode,
                                     bool flagged, bool hold_launch = false) {
    auto o = options();
    o.timing.hold_launch = hold_launch;
    o.timing.time_cap_s = 2.0;
    o.timing.min_samples = 30;
    kb::Evaluator ev(o);
    const auto honest = eval_mode(ev, stem, kernel, 0);
    ASSERT_EQ(honest.outcome, kb::Outcome::correct) << why(honest);
    EXPECT_FALSE(honest.flags & kb::flag_off_stream) << "honest kernel flagged";
    const auto escaped = eval_mode(ev, stem, kernel, mode);
    ASSERT_EQ(escaped.outcome, kb::Outcome::correct) << why(escaped);
    if (flagged)
      EXPECT_TRUE(escaped.flags & kb::flag_off_stream)
          << testing::PrintToString(kb::flag_names(escaped.flags));
    EXPECT_FALSE(escaped.flags & kb::flag_above_roofline);
    // Never a speedup the honest kernel does not get (5% for run-to-run noise).
    EXPECT_LE(escaped.speedup, honest.speedup * 1.05)
        << "honest " << honest.candidate_time->median_ms << " ms, escaped "
        << escaped.candidate_time->median_ms << " ms";
  }
};

TEST_F(StreamEscapeTest, AllWorkOnThePerThreadStream) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 1, true);
}

TEST_F(StreamEscapeTest, AllWorkOnTheLegacyDefaultStream) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 2, true);
}

TEST_F(StreamEscapeTest, HalfTheWorkElsewhere) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 3, false);
}

TEST_F(StreamEscapeTest, ComputeBoundMatmulOnThePerThreadStream) {
  expect_no_free_speedup("matmul_2048", "adversarial/stream_escape_matmul.cu", 1, true);
}

// The launch hold must not open a window in which work on another stream runs unseen.
TEST_F(StreamEscapeTest, HeldLaunchPerThreadStream) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 1, true, true);
}

TEST_F(StreamEscapeTest, HeldLaunchLegacyDefaultStream) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 2, true, true);
}

TEST_F(StreamEscapeTest, HeldLaunchHalfTheWorkElsewhere) {
  expect_no_free_speedup("softmax_wide", "adversarial/stream_escape.cu", 3, false, true);
}

TEST_F(EvalGpuTest, HeldLaunchTimesTheKernelNotTheHostsLaunchPath) {
  // The same ~10 us kernel with and without the hold: held samples drop the host's launch path,
  // so they are never slower, and both are correct.
  auto plain = options();
  auto held = options();
  held.timing.hold_launch = true;
  kb::Evaluator a(plain), b(held);
  const auto src = kb::read_file(k_data + "/ok/relu.cu");
  const auto ra = a.evaluate(problem("relu_small"), src);
  const auto rb = b.evaluate(problem("relu_small"), src);
  ASSERT_EQ(ra.outcome, kb::Outcome::correct) << why(ra);
  ASSERT_EQ(rb.outcome, kb::Outcome::correct) << why(rb);
  EXPECT_LE(rb.candidate_time->median_ms, ra.candidate_time->median_ms * 1.02);
  EXPECT_FALSE(rb.flags & kb::flag_off_stream);
  EXPECT_FALSE(rb.flags & kb::flag_unverified_time);
}

// --- What the ABI promises ---------------------------------------------------------------------

TEST_F(EvalGpuTest, WritingPastTheOutputIsOutOfBounds) {
  expect_mismatch(eval("relu_small", "adversarial/write_past_end.cu"), "out_of_bounds");
}

TEST_F(EvalGpuTest, WritingPastTheWorkspaceIsOutOfBounds) {
  expect_mismatch(eval("relu_small", "adversarial/write_past_workspace.cu"), "out_of_bounds");
}

TEST_F(EvalGpuTest, TheWorkspaceIsGarbageAtEveryCall) {
  const auto r = eval("relu_small", "adversarial/workspace_memory.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::correct) << why(r);
}

TEST_F(EvalGpuTest, HostThreadIsRejected) {
  EXPECT_EQ(eval("relu_small", "adversarial/host_thread.cu").outcome, kb::Outcome::rejected);
}

TEST_F(EvalGpuTest, CachingByPointerFails) {
  const auto r = eval("relu_small", "adversarial/cache_by_pointer.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::mismatch) << why(r);
}

TEST_F(EvalGpuTest, WorkOnlyInTheFirstCallFails) {
  const auto r = eval("relu_small", "adversarial/first_call_only.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::mismatch) << why(r);
}

TEST_F(EvalGpuTest, CachingByContentNeverPaysUnderFreshInputs) {
  const auto fresh = eval("matmul_small", "adversarial/cache_by_content.cu");
  ASSERT_EQ(fresh.outcome, kb::Outcome::correct) << why(fresh);
  auto o = options();
  o.protocol = kb::Protocol::kernelbench;
  const auto fixed = eval("matmul_small", "adversarial/cache_by_content.cu", o);
  ASSERT_EQ(fixed.outcome, kb::Outcome::correct) << why(fixed);
  // KernelBench's fixed input set lets the cache replay; kbench's fresh inputs do not.
  EXPECT_LT(fixed.candidate_time->mean_ms, fresh.candidate_time->median_ms / 3.0);
}

TEST_F(EvalGpuTest, InfiniteLoopTimesOutQuicklyAndTheGpuRecovers) {
  auto o = options();
  o.timeout_s = 180.0; // the ceiling; the deadline follows the 10 us baseline: the floor, 5 s
  kb::Evaluator ev(o);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r =
      ev.evaluate(problem("relu_small"), kb::read_file(k_data + "/adversarial/infinite_loop.cu"));
  EXPECT_EQ(r.outcome, kb::Outcome::timeout) << why(r);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  const auto next = ev.evaluate(problem("relu_small"), kb::read_file(k_data + "/ok/relu.cu"));
  EXPECT_EQ(next.outcome, kb::Outcome::correct) << why(next);
}

TEST_F(EvalGpuTest, IllegalAddressIsARuntimeErrorNamingIt) {
  kb::Evaluator ev(options());
  const auto r =
      ev.evaluate(problem("relu_small"), kb::read_file(k_data + "/adversarial/illegal_address.cu"));
  ASSERT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("cudaErrorIllegalAddress"), std::string::npos) << r.message;
  // Attributed to the candidate, without the harness's sources.
  EXPECT_NE(r.message.find("after kb_forward"), std::string::npos) << r.message;
  EXPECT_EQ(r.message.find(".cu:"), std::string::npos) << r.message;
  EXPECT_EQ(r.message.find(".cpp:"), std::string::npos) << r.message;
  const auto next = ev.evaluate(problem("relu_small"), kb::read_file(k_data + "/ok/relu.cu"));
  EXPECT_EQ(next.outcome, kb::Outcome::correct) << why(next);
}

TEST_F(EvalGpuTest, AbortIsRejectedAndCaughtAtRunTime) {
  EXPECT_EQ(eval("relu_small", "adversarial/host_abort.cu").outcome, kb::Outcome::rejected);
  auto o = options();
  o.screen = false;
  const auto r = eval("relu_small", "adversarial/host_abort.cu", o);
  ASSERT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("signal 6"), std::string::npos) << r.message;
}

TEST_F(EvalGpuTest, ExitZeroIsARuntimeError) {
  const auto r = eval("relu_small", "adversarial/host_exit.cu");
  ASSERT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_NE(r.message.find("without a result"), std::string::npos) << r.message;
}

TEST_F(EvalGpuTest, ForkIsRejectedAndCannotHoldTheRunOpen) {
  EXPECT_EQ(eval("relu_small", "adversarial/host_fork.cu").outcome, kb::Outcome::rejected);
  auto o = options();
  o.screen = false;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = eval("relu_small", "adversarial/host_fork.cu", o);
  EXPECT_EQ(r.outcome, kb::Outcome::runtime_error) << why(r);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST_F(EvalGpuTest, PrintingAGigabyteNeitherBlocksNorFails) {
  const auto r = eval("relu_small", "adversarial/print_flood.cu");
  EXPECT_EQ(r.outcome, kb::Outcome::correct) << why(r);
}

TEST_F(EvalGpuTest, NeverEndingCompileIsACompileError) {
  auto o = options();
  o.compile.timeout_s = 5.0;
  o.compile.use_cache = false;
  const auto r = eval("relu_small", "adversarial/compile_forever.cu", o);
  EXPECT_EQ(r.outcome, kb::Outcome::compile_error) << why(r);
  EXPECT_NE(r.message.find("timed out"), std::string::npos);
}

TEST_F(EvalGpuTest, Fp16ArithmeticOnAnFp32ProblemFails) {
  expect_mismatch(eval("relu_small", "adversarial/fp16_arithmetic.cu"), "values");
}

TEST_F(EvalGpuTest, KernelBenchProtocolTimesOneSetWithAHundredTrials) {
  auto o = options();
  o.protocol = kb::Protocol::kernelbench;
  const auto r = eval("relu_small", "ok/relu.cu", o);
  ASSERT_EQ(r.outcome, kb::Outcome::correct) << why(r);
  EXPECT_EQ(r.candidate_time->samples, 100);
  EXPECT_EQ(r.candidate_time->stop_reason, "fixed");
  EXPECT_EQ(r.protocol, kb::Protocol::kernelbench);
}

} // namespace
