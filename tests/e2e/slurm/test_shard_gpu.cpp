// GPU check of shards: the problems with shipped example kernels (levels 1 and 2) and two without,
// with the replay model, run whole and as shards 1/2 and 2/2 merged, give the same candidates
// with the same verdicts, one baseline per problem, and a placement record naming every GPU used.
// Skipped without a CUDA device (KB_REQUIRE_GPU=1 fails instead):
//   KB_REQUIRE_GPU=1 ctest --test-dir build -R ShardGpu --output-on-failure
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gpu_test.hpp"
#include "store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ShardGpu : public kb::test::GpuTest {
protected:
  void SetUp() override {
    kb::test::GpuTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
      return;
    dir = fs::temp_directory_path() / ("kb_shard_gpu_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  int kbench(const std::string& args) {
    const fs::path log = dir / "out.log";
    const std::string cmd =
        std::string(KB_BIN_DIR) + "/kbench " + args + " > " + log.string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(log);
    output.assign(std::istreambuf_iterator<char>(in), {});
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string db(const std::string& name) const { return (dir / name).string(); }
  fs::path dir;
  std::string output;
};

// Each candidate (problem, model, source) with its verdict; times differ between runs, verdicts
// must not.
using Verdicts = std::multiset<std::tuple<std::string, std::string, std::string, std::string>>;

Verdicts verdicts_of(const std::string& path, int64_t* unevaluated) {
  kb::store::Store s(path, {.read_only = true});
  std::map<int64_t, std::string> label;
  for (const auto& m : s.models())
    label[m.id] = m.label;
  Verdicts out;
  for (const auto& a : s.attempts({})) {
    *unevaluated += !a.evaluated;
    out.emplace(a.problem_id, label[a.model_id], a.source_hash,
                a.evaluated ? std::string(kb::outcome_name(a.eval.outcome)) : "not_evaluated");
  }
  return out;
}

TEST_F(ShardGpu, ShardsOneAndTwoMergedJudgeTheExamplesAsTheWholeRunDoes) {
  const std::string common =
      "--level 1,2 --models replay --gpus all --problems "
      "relu_4096x393216,softmax_4096x65536,sum_dim1_128x4096x4095,layer_norm_16x64x256x256,"
      "matmul_fp32_4096,matmul_fp16_4096,conv2d_alexnet1_b100,kb_conv2d_relu_biasadd,kb_gelu,"
      "kb012_gemm_multiply_leakyrelu";
  ASSERT_EQ(kbench("run " + common + " --db " + db("whole.db")), 0) << output;
  for (int k = 1; k <= 2; ++k)
    ASSERT_EQ(kbench("run " + common + " --shard " + std::to_string(k) + "/2 --suite gpu-check" +
                     " --db " + db("shard" + std::to_string(k) + ".db")),
              0)
        << output;
  ASSERT_EQ(kbench("merge " + db("shard1.db") + " " + db("shard2.db") + " -o " + db("merged.db")),
            0)
      << output;
  EXPECT_NE(output.find("holds 2 of 2 shards"), std::string::npos) << output;

  int64_t whole_open = 0, merged_open = 0;
  const Verdicts whole = verdicts_of(db("whole.db"), &whole_open);
  const Verdicts merged = verdicts_of(db("merged.db"), &merged_open);
  EXPECT_EQ(whole_open, 0);
  EXPECT_EQ(merged_open, 0);
  EXPECT_EQ(merged, whole);
  int correct = 0;
  for (const auto& v : whole)
    correct += std::get<3>(v) == "correct";
  EXPECT_GE(correct, 5) << "the shipped example kernels should be correct";

  kb::store::Store w(db("whole.db"), {.read_only = true});
  kb::store::Store m(db("merged.db"), {.read_only = true});
  ASSERT_EQ(m.runs().size(), 1u);
  const auto run = m.runs()[0];
  EXPECT_EQ(run.status, "completed");
  EXPECT_EQ(run.info.shard, "");
  EXPECT_EQ(m.baseline_timings({run.id}).size(), w.baseline_timings({w.runs()[0].id}).size());
  // Every GPU of the machine had one evaluation worker, recorded with the shard.
  int devices = 0;
  ASSERT_EQ(cudaGetDeviceCount(&devices), cudaSuccess);
  const json cfg = json::parse(run.info.config_json);
  for (const auto& sh : cfg["suite"]["shards"]) {
    ASSERT_TRUE(sh.contains("placement")) << sh.dump();
    EXPECT_EQ(sh["placement"]["gpus"].size(), static_cast<std::size_t>(devices));
    EXPECT_EQ(sh["placement"]["workers_per_gpu"], 1);
  }
}

} // namespace
