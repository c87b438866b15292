// GPU end-to-end tests of `kbench run`: the README's main job (replay over the example
// problems) and the idea search against kbench-mock-llm. Skipped without a CUDA device.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "gpu_test.hpp"
#include "mock_process.hpp"
#include "store.hpp"

namespace {

namespace fs = std::filesystem;

class RunnerGpu : public kb::test::GpuTest {
protected:
  void SetUp() override {
    kb::test::GpuTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    dir = fs::temp_directory_path() / ("kb_runner_gpu_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    db = (dir / "kb.db").string();
  }
  void TearDown() override { fs::remove_all(dir); }
  int kbench(const std::string& args) {
    const std::string cmd =
        std::string(KB_BIN_DIR) + "/kbench " + args + " > " + (dir / "out.log").string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(dir / "out.log");
    output.assign(std::istreambuf_iterator<char>(in), {});
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  fs::path dir;
  std::string db, output;
};

TEST_F(RunnerGpu, ReplayOverTheExampleProblemsEvaluatesEveryKernel) {
  const std::string problems = "relu_4096x393216,softmax_4096x65536,sum_dim1_128x4096x4095,"
                               "layer_norm_16x64x256x256,matmul_fp32_4096,kb_gelu";
  ASSERT_EQ(kbench("run --level 1 --models replay --db " + db + " --problems " + problems), 0)
      << output;
  kb::store::Store s(db, {.read_only = true});
  const auto run = s.runs().at(0);
  EXPECT_EQ(run.status, "completed");
  EXPECT_FALSE(run.info.gpu_name.empty());
  EXPECT_FALSE(run.info.driver_version.empty());
  std::map<std::string, kb::store::AttemptRow> att;
  for (auto& a : s.attempts({.run_ids = {run.id}}))
    att[a.problem_id] = a;
  ASSERT_EQ(att.size(), 6u);
  for (const auto& [id, a] : att)
    EXPECT_TRUE(a.evaluated) << id;
  // kb_gelu has no example kernel: the replay model answers with its generated naive kernel.
  EXPECT_EQ(att["l1/kb_gelu"].eval.outcome, kb::Outcome::correct) << att["l1/kb_gelu"].eval.message;
  EXPECT_EQ(att["l1/relu_4096x393216"].eval.outcome, kb::Outcome::correct)
      << att["l1/relu_4096x393216"].eval.message;
  EXPECT_GT(att["l1/relu_4096x393216"].eval.speedup, 0.0);
  EXPECT_GE(s.baseline_timings({run.id}).size(), 1u);
}

TEST_F(RunnerGpu, IdeaSearchWithTheMockServerSeedsFromTheBank) {
  const nlohmann::json script{{"fallback", nlohmann::json::object()}};
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", script);
  std::ofstream(dir / "models.yaml")
      << "models:\n  mock:\n    provider: openai\n    base_url: " << mock.url()
      << "/v1\n    model: mock-model\n";
  ASSERT_EQ(kbench("run --models mock --models-file " + (dir / "models.yaml").string() + " --db " +
                   db +
                   " --problems relu_4096x393216,softmax_4096x65536,sum_dim1_128x4096x4095"
                   " --strategy ideas --rounds 2 --ideas 2 --branches 1"),
            0)
      << output;
  kb::store::Store s(db, {.read_only = true});
  const auto run = s.runs().at(0);
  EXPECT_EQ(run.status, "completed");
  int bank = 0, ideas = 0, relu_correct = 0;
  for (const auto& a : s.attempts({.run_ids = {run.id}})) {
    bank += a.strategy == "bank";
    if (a.strategy == "ideas") {
      ++ideas;
      EXPECT_GE(a.round, 1);
      EXPECT_FALSE(a.idea.empty());
      if (a.problem_id == "l1/relu_4096x393216" && a.evaluated &&
          a.eval.outcome == kb::Outcome::correct)
        ++relu_correct;
    }
  }
  EXPECT_EQ(bank, 6); // plain.cu and tuned.cu of three problems
  EXPECT_GE(ideas, 6);
  EXPECT_GE(relu_correct, 1); // the mock's answer is a ReLU kernel
}

} // namespace
