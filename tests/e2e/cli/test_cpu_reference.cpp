// `kbench cpu-reference` end to end: the dump it writes (manifest, raw tensors) holds the host
// draws of every input and parameter and the float64 CPU reference of the outputs, in the format
// tools/torch_crosscheck.py reads; bad problems and bad references are input errors (exit 2).
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kbench_cli.hpp"

#include "op.hpp"

namespace kb {
namespace {

namespace fs = std::filesystem;

using Result = kb::test::CliResult;

Result kbench(const std::string& args) {
  return kb::test::run_kbench(args);
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class CpuReference : public ::testing::Test {
protected:
  void SetUp() override {
    m_root = fs::path(::testing::TempDir()) /
             ("kb-cpu-ref-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(m_root);
    fs::create_directories(m_root / "level1");
  }
  void TearDown() override { fs::remove_all(m_root); }
  fs::path write_problem(const std::string& stem, const std::string& body,
                         const std::string& folder = "level1") {
    fs::create_directories(m_root / folder);
    const fs::path p = m_root / folder / (stem + ".yaml");
    std::ofstream(p) << "name: t\ndescription: d\n"
                        "provenance: {source: kbench, version: \"\", ref: \"test\"}\n"
                     << body;
    return p;
  }
  fs::path m_root;
};

// x * mask, then a cumsum, plus a half-precision parameter added: every dtype path of the dump.
const char* k_masked_problem = R"(inputs:
  - {name: x, shape: [3, 4], dtype: f32, dist: {kind: uniform, low: -1, high: 1}}
  - {name: mask, shape: [3, 4], dtype: bool, dist: {kind: randint, low: 0, high: 2}}
params:
  - {name: w, shape: [4], dtype: f32, dist: {kind: normal, mean: 0, std: 2}}
graph:
  - {out: m, op: mul, in: [x, mask]}
  - {out: c, op: cumsum, in: [m], dim: 1}
  - {out: y, op: add, in: [c, w]}
  - {out: i, op: argmax, in: [y], dim: 1}
outputs: [y, i]
)";

TEST_F(CpuReference, WritesHostDrawsAndTheFloat64Reference) {
  const fs::path yaml = write_problem("masked", k_masked_problem);
  const fs::path out = m_root / "dump";
  const Result r = kbench("cpu-reference " + yaml.string() + " --seed 7 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto manifest = nlohmann::json::parse(read_bytes(out / "manifest.json"));
  EXPECT_EQ(manifest["problem"], "l1/masked");
  EXPECT_EQ(manifest["seed"], 7);
  EXPECT_EQ(manifest["inputs"], nlohmann::json::array({"x", "mask"}));
  EXPECT_EQ(manifest["params"], nlohmann::json::array({"w"}));
  EXPECT_EQ(manifest["outputs"], nlohmann::json::array({"y", "i"}));
  const auto& tensors = manifest["tensors"];
  ASSERT_EQ(tensors.size(), 5u);
  // Inputs then parameters (stream ids 0, 1, 2 as the harness numbers them), then references.
  const std::vector<std::array<std::string, 4>> want = {
      {"x", "input", "f32", "input.x.bin"},
      {"mask", "input", "bool", "input.mask.bin"},
      {"w", "param", "f32", "param.w.bin"},
      {"y", "reference", "f64", "reference.y.bin"},
      {"i", "reference", "f64", "reference.i.bin"}};
  for (std::size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(tensors[k]["name"], want[k][0]);
    EXPECT_EQ(tensors[k]["role"], want[k][1]);
    EXPECT_EQ(tensors[k]["dtype"], want[k][2]);
    EXPECT_EQ(tensors[k]["file"], want[k][3]);
  }
  const std::vector<double> x = draw_host({DistKind::uniform, -1, 1}, DType::f32, 12, 7, 0);
  const std::vector<double> mask = draw_host({DistKind::randint, 0, 2}, DType::b8, 12, 7, 1);
  const std::vector<double> w = draw_host({DistKind::normal, 0, 2}, DType::f32, 4, 7, 2);
  const auto as_string = [](const std::vector<unsigned char>& b) {
    return std::string(b.begin(), b.end());
  };
  EXPECT_EQ(read_bytes(out / "input.x.bin"), as_string(encode_dtype(x, DType::f32)));
  EXPECT_EQ(read_bytes(out / "input.mask.bin"), as_string(encode_dtype(mask, DType::b8)));
  EXPECT_EQ(read_bytes(out / "param.w.bin"), as_string(encode_dtype(w, DType::f32)));
  // The references: run_graph_cpu on exactly those values, written as float64.
  std::vector<OpNode> graph = {{"mul", {"x", "mask"}, "m", {}, 0},
                               {"cumsum", {"m"}, "c", {{"dim", int64_t{1}}}, 0},
                               {"add", {"c", "w"}, "y", {}, 0},
                               {"argmax", {"y"}, "i", {{"dim", int64_t{1}}}, 0}};
  const auto ref = run_graph_cpu(
      graph,
      {{"x", HostTensor({3, 4}, x)}, {"mask", HostTensor({3, 4}, mask)}, {"w", HostTensor({4}, w)}},
      {"y", "i"}, {{"x", DType::f32}, {"mask", DType::b8}, {"w", DType::f32}});
  EXPECT_EQ(read_bytes(out / "reference.y.bin"), as_string(encode_dtype(ref[0].data, DType::f64)));
  EXPECT_EQ(read_bytes(out / "reference.i.bin"), as_string(encode_dtype(ref[1].data, DType::f64)));
  EXPECT_EQ(tensors[3]["shape"], nlohmann::json::array({3, 4}));
  EXPECT_EQ(tensors[4]["shape"], nlohmann::json::array({3}));
  // Another seed draws other values.
  const fs::path out2 = m_root / "dump2";
  ASSERT_EQ(kbench("cpu-reference " + yaml.string() + " --seed 8 --out " + out2.string()).code, 0);
  EXPECT_NE(read_bytes(out2 / "input.x.bin"), read_bytes(out / "input.x.bin"));
}

TEST_F(CpuReference, BadProblemsAndReferencesAreInputErrors) {
  // A problem file outside a level<N>/ folder has no id.
  const fs::path loose = write_problem("loose", k_masked_problem, "loose");
  Result r = kbench("cpu-reference " + loose.string() + " --out " + (m_root / "d").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("level<N>"), std::string::npos) << r.err;
  // A gather index the reference refuses: the message names the node and the value.
  const fs::path bad = write_problem("bad_index", R"(inputs:
  - {name: x, shape: [2, 3], dtype: f32, dist: {kind: uniform, low: -1, high: 1}}
  - {name: index, shape: [2, 3], dtype: i64, dist: {kind: randint, low: 0, high: 50}}
graph:
  - {out: y, op: gather, in: [x, index], dim: 1}
outputs: [y]
)");
  r = kbench("cpu-reference " + bad.string() + " --out " + (m_root / "d").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("gather"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is outside [0, 3)"), std::string::npos) << r.err;
  // --out is required; an unknown problem id is an error.
  EXPECT_EQ(kbench("cpu-reference " + bad.string()).code, 2);
  r = kbench("cpu-reference l1/no_such_problem --levels-dir " + m_root.string() + " --out " +
             (m_root / "d").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown problem 'l1/no_such_problem'"), std::string::npos) << r.err;
}

TEST_F(CpuReference, ResolvesIdsInALevelsFolder) {
  write_problem("masked", k_masked_problem);
  const fs::path out = m_root / "dump";
  const Result r =
      kbench("cpu-reference l1/masked --levels-dir " + m_root.string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "reference.y.bin"));
  EXPECT_EQ(fs::file_size(out / "input.x.bin"), 12u * 4);
  EXPECT_EQ(fs::file_size(out / "input.mask.bin"), 12u);
}

} // namespace
} // namespace kb
