// kbench-baseline dump: runs the real binary on a small problem and checks the manifest, the raw
// tensor files and that the fp32 baseline agrees with the float64 reference it wrote.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "gpu_test.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<char> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

class BaselineDumpTest : public kb::test::GpuTest {};

TEST_F(BaselineDumpTest, WritesManifestTensorsAndAgreeingResults) {
  const fs::path out = fs::temp_directory_path() / "kb_baseline_dump_test";
  fs::remove_all(out);
  const std::string cmd = std::string(KB_BIN_DIR) + "/kbench-baseline dump --problem " +
                          KB_SOURCE_DIR + "/tests/gpu/ops/data/dump_problem.json --seed 11 --out " +
                          out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto manifest = nlohmann::json::parse(std::ifstream(out / "manifest.json"));
  EXPECT_EQ(manifest.at("problem"), "test/linear_gelu_argmax");
  EXPECT_EQ(manifest.at("seed"), 11);
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& t : manifest.at("tensors"))
    by_key[t.at("role").get<std::string>() + "/" + t.at("name").get<std::string>()] = t;
  ASSERT_EQ(by_key.size(), 7u); // x, w, b, baseline y/k, reference y/k
  const std::map<std::string, std::size_t> sizes = {
      {"input/x", 8 * 64 * 4},    {"param/w", 32 * 64 * 4},    {"param/b", 32 * 4},
      {"baseline/y", 8 * 32 * 4}, {"reference/y", 8 * 32 * 8}, {"baseline/k", 8 * 8},
      {"reference/k", 8 * 8}};
  for (const auto& [key, bytes] : sizes) {
    ASSERT_TRUE(by_key.contains(key)) << key;
    EXPECT_EQ(read_bytes(out / by_key[key].at("file").get<std::string>()).size(), bytes) << key;
  }
  EXPECT_EQ(by_key["reference/y"].at("dtype"), "f64");
  EXPECT_EQ(by_key["baseline/k"].at("dtype"), "i64");
  const auto yb = read_bytes(out / by_key["baseline/y"].at("file").get<std::string>());
  const auto yr = read_bytes(out / by_key["reference/y"].at("file").get<std::string>());
  const auto* fb = reinterpret_cast<const float*>(yb.data());
  const auto* dr = reinterpret_cast<const double*>(yr.data());
  double worst = 0.0, spread = 0.0;
  for (int i = 0; i < 8 * 32; ++i) {
    worst = std::max(worst, std::abs(fb[i] - dr[i]));
    spread = std::max(spread, std::abs(dr[i]));
  }
  EXPECT_LT(worst, 1e-4);
  EXPECT_GT(spread, 0.5); // layer_norm output is not degenerate
  // The reference's argmax (f64 values written as f64) equals the baseline's i64 indices.
  const auto kb_ = read_bytes(out / by_key["baseline/k"].at("file").get<std::string>());
  const auto kr = read_bytes(out / by_key["reference/k"].at("file").get<std::string>());
  const auto* ib = reinterpret_cast<const int64_t*>(kb_.data());
  const auto* ir = reinterpret_cast<const double*>(kr.data());
  for (int i = 0; i < 8; ++i) {
    EXPECT_GE(ib[i], 0);
    EXPECT_LT(ib[i], 32);
    EXPECT_EQ(static_cast<double>(ib[i]), ir[i]) << i;
  }
  fs::remove_all(out);
}

} // namespace
