// The naive candidates on the GPU: every small problem's (tests/data/ops-torch, one or more per
// op, and the fused, fp16 and bf16 problems of tests/unit/codegen/problems) is judged `correct`
// by the evaluator under the kbench protocol, every check distribution included, with short
// timing. The problems are split into shards, one test case each, to keep each case short.
//   KB_REQUIRE_GPU=1 ctest --test-dir build -R NaiveOnGpu --output-on-failure
#include <gtest/gtest.h>

#include "codegen.hpp"
#include "codegen_test_util.hpp"
#include "eval.hpp"
#include "gpu_test.hpp"

namespace {

constexpr int k_shards = 8;

class NaiveOnGpu : public kb::test::GpuTest, public ::testing::WithParamInterface<int> {};

TEST_P(NaiveOnGpu, EverySmallProblemIsCorrect) {
  kb::EvalOptions o;
  o.worker_path = std::string(KB_BIN_DIR) + "/kbench-worker";
  o.compile.include_dir = std::string(KB_SOURCE_DIR) + "/include";
  o.compile.cache_dir = "/tmp/kbench-gpu-test-cache";
  o.seeds = 1;
  o.timeout_s = 60.0;
  o.timing.warmup = 1;
  o.timing.time_cap_s = 0.05;
  o.timing.min_samples = 2;
  o.timing.judged_samples = 1;
  o.timing.empty_calls = 4;
  o.timing.max_sets = 2;
  kb::Evaluator ev(o);
  const std::vector<std::string> ids = kb::test::codegen_problem_ids();
  ASSERT_FALSE(ids.empty());
  for (std::size_t i = static_cast<std::size_t>(GetParam()); i < ids.size(); i += k_shards) {
    const kb::Problem& p = *kb::test::codegen_problems().find(ids[i]);
    const kb::EvalResult r = ev.evaluate(p, kb::naive_candidate(p).source);
    EXPECT_EQ(r.outcome, kb::Outcome::correct)
        << p.id << ": " << kb::outcome_name(r.outcome) << ": " << r.message << "\n"
        << r.compile_log;
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, NaiveOnGpu, ::testing::Range(0, k_shards));

} // namespace
