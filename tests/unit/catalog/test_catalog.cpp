// Unit tests of the problem catalog: schema errors with their places, defaults, derived costs,
// floors, the PyTorch rendering, output screening and the shipped levels.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "catalog.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string k_fixtures = std::string(KB_SOURCE_DIR) + "/tests/data/catalog";
const std::string k_levels = std::string(KB_SOURCE_DIR) + "/levels";

std::string fixture(const std::string& stem, int level = 1) {
  return k_fixtures + "/level" + std::to_string(level) + "/" + stem + ".yaml";
}

// Loads a fixture that must fail and returns the error.
kb::InputError load_error(const std::string& stem) {
  try {
    kb::load_problem(fixture(stem), k_fixtures);
  } catch (const kb::InputError& e) {
    return e;
  }
  ADD_FAILURE() << stem << " loaded without error";
  return kb::InputError("", 0, "", "");
}

struct BadCase {
  std::string stem;
  int line;
  std::string field;
  std::string message_part;
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << c.stem;
}

class SchemaError : public ::testing::TestWithParam<BadCase> {};

TEST_P(SchemaError, NamesFileLineFieldAndReason) {
  const BadCase& c = GetParam();
  const kb::InputError e = load_error(c.stem);
  EXPECT_EQ(e.file(), fixture(c.stem));
  EXPECT_EQ(e.line(), c.line) << e.what();
  EXPECT_EQ(e.field(), c.field) << e.what();
  EXPECT_THAT(e.message(), HasSubstr(c.message_part)) << e.what();
  // The full text is "file:line: field: message".
  EXPECT_THAT(std::string(e.what()),
              HasSubstr(fixture(c.stem) + ":" + std::to_string(c.line) + ": " + c.field + ": "));
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, SchemaError,
    ::testing::Values(
        BadCase{"bad_malformed", 8, "(yaml)", "malformed YAML"},
        BadCase{"bad_unknown_top_key", 10, "tolerence", "unknown key 'tolerence'"},
        BadCase{"bad_unknown_nested_key", 6, "inputs[0].shpe", "unknown key 'shpe'"},
        BadCase{"bad_missing_field", 2, "outputs", "missing required field"},
        BadCase{"bad_unknown_op", 8, "graph[0].op", "unknown op 'softmaxx'"},
        BadCase{"bad_arity", 9, "graph[0].in", "relu takes 1 input(s), got 2"},
        BadCase{"bad_unknown_attr", 8, "graph[0].axis", "unknown attribute 'axis' for softmax"},
        BadCase{"bad_missing_attr", 8, "graph[0].dim", "requires attribute 'dim'"},
        BadCase{"bad_shape_mismatch", 10, "graph[1]", "matmul"},
        BadCase{"bad_dtype", 6, "inputs[0].dtype", "unknown dtype 'f8'"},
        BadCase{"bad_dist_kind", 6, "inputs[0].dist.kind", "unknown distribution 'gamma'"},
        BadCase{"bad_dist_std", 7, "inputs[0].check_dists[0].std", "std must be positive"},
        BadCase{"bad_constant_param", 8, "params[0].dist", "must not be constant"},
        BadCase{"bad_duplicate_name", 7, "inputs[1].name", "duplicate name 'x'"},
        BadCase{"bad_reassigned_value", 8, "graph[0].out", "'x' is already defined at inputs[0]"},
        BadCase{"bad_undefined_value", 8, "graph[0].in[1]", "'z' is not defined before this node"},
        BadCase{"bad_output_not_produced", 9, "outputs[1]", "output 'w' is not produced"},
        BadCase{"bad_unused_input", 7, "inputs[1]", "'z' is never used"},
        BadCase{"bad_tolerance_reason", 10, "tolerance.reason", "say why"},
        BadCase{"bad_shape_value", 6, "inputs[0].shape[1]", "dimension must be >= 1"}),
    [](const auto& info) { return info.param.stem; });

TEST(LoadProblem, IdAndLevelComeFromThePath) {
  const kb::Problem p = kb::load_problem(fixture("good_level2", 2), k_fixtures);
  EXPECT_EQ(p.id, "l2/good_level2");
  EXPECT_EQ(p.level, 2);
  EXPECT_EQ(p.source_path, fixture("good_level2", 2));
  EXPECT_EQ(p.content_hash, kb::content_hash(kb::read_file(fixture("good_level2", 2))));
  EXPECT_EQ(p.content_hash.size(), 16u);
}

TEST(LoadProblem, FileOutsideALevelFolderIsRejected) {
  const fs::path dir = fs::temp_directory_path() / "kb_catalog_test_nolevel";
  fs::create_directories(dir);
  fs::copy_file(fixture("good_relu"), dir / "p.yaml", fs::copy_options::overwrite_existing);
  EXPECT_THROW(kb::load_problem((dir / "p.yaml").string(), dir.string()), kb::InputError);
  fs::remove_all(dir);
}

TEST(LoadProblem, FillsValuesTolerancePrecisionAndParams) {
  const kb::Problem p = kb::load_problem(fixture("good_chain"), k_fixtures);
  ASSERT_EQ(p.inputs.size(), 2u);
  ASSERT_EQ(p.params.size(), 1u);
  ASSERT_EQ(p.graph.size(), 3u);
  EXPECT_EQ(p.graph[1].op, "add");
  EXPECT_EQ(p.graph[1].inputs, (std::vector<std::string>{"r", "b"}));
  EXPECT_EQ(p.graph[1].line, 12);
  for (const char* v : {"x", "z", "b", "r", "s", "y"})
    EXPECT_TRUE(p.values.contains(v)) << v;
  EXPECT_EQ(p.values.at("s"), (kb::ValueSpec{{8, 16}, kb::DType::f32}));
  EXPECT_EQ(p.values.at("b"), (kb::ValueSpec{{16}, kb::DType::f32}));
  EXPECT_DOUBLE_EQ(p.tolerance.atol, 1e-3);
  EXPECT_EQ(p.tolerance.reason, "fixture with a looser bound");
  EXPECT_TRUE(p.precision.allow_tf32);
  EXPECT_FALSE(p.precision.allow_reduced);
  EXPECT_EQ(p.provenance.source, "kbench");
  EXPECT_EQ(p.params[0].dist, (kb::Distribution{kb::DistKind::normal, 0.0, 0.5}));
  // Parameters never get default check distributions; explicit [] stays empty.
  EXPECT_TRUE(p.params[0].check_dists.empty());
  EXPECT_TRUE(p.inputs[1].check_dists.empty());
}

TEST(LoadProblem, DefaultCheckDistributions) {
  // Uniform main distribution, no cancellation-sensitive op: normal(0, 1) only.
  const kb::Problem relu = kb::load_problem(fixture("good_relu"), k_fixtures);
  EXPECT_EQ(relu.inputs[0].check_dists,
            (std::vector<kb::Distribution>{{kb::DistKind::normal, 0.0, 1.0}}));
  EXPECT_EQ(relu.tolerance.atol, 1e-4); // f32 default
  EXPECT_TRUE(relu.tolerance.reason.empty());
  // Normal main distribution: uniform(0, 1) is added instead.
  const kb::Problem chain = kb::load_problem(fixture("good_chain"), k_fixtures);
  EXPECT_EQ(chain.inputs[0].check_dists,
            (std::vector<kb::Distribution>{{kb::DistKind::uniform, 0.0, 1.0}}));
  // Softmax is cancellation-sensitive: ill_conditioned(1000, 0.1) is added.
  const kb::Problem sm = kb::load_problem(fixture("good_softmax"), k_fixtures);
  EXPECT_EQ(sm.inputs[0].check_dists,
            (std::vector<kb::Distribution>{{kb::DistKind::normal, 0.0, 1.0},
                                           {kb::DistKind::ill_conditioned, 1000.0, 0.1}}));
}

TEST(LoadProblem, FlopsAndBytesByHand) {
  // c[64,16] = a[64,32] @ b[32,16], all f16: 2*64*16*32 flops, 2 bytes per element.
  const kb::Problem mm = kb::load_problem(fixture("good_matmul"), k_fixtures);
  EXPECT_DOUBLE_EQ(mm.flops, 2.0 * 64 * 16 * 32);
  EXPECT_DOUBLE_EQ(mm.min_bytes, (64 * 32 + 32 * 16 + 64 * 16) * 2.0);
  // relu, add, mul on 8x16: one flop per output element each; bytes: x, z, b in, y out.
  const kb::Problem chain = kb::load_problem(fixture("good_chain"), k_fixtures);
  EXPECT_DOUBLE_EQ(chain.flops, 3.0 * 128);
  EXPECT_DOUBLE_EQ(chain.min_bytes, (128 + 128 + 16 + 128) * 4.0);
  // Shipped problem: 4096^3 fp32 matmul.
  const kb::Problem big = kb::load_problem(k_levels + "/level1/matmul_fp32_4096.yaml", k_levels);
  EXPECT_DOUBLE_EQ(big.flops, 2.0 * 4096.0 * 4096.0 * 4096.0);
  EXPECT_DOUBLE_EQ(big.min_bytes, 3.0 * 4096 * 4096 * 4);
}

TEST(Roofline, DatasheetCeilings) {
  const kb::GpuCeilings c = kb::datasheet_ceilings_h100();
  EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 3350.0);
  EXPECT_DOUBLE_EQ(c.fp32_tflops, 67.0);
  EXPECT_DOUBLE_EQ(c.fp16_tflops, 990.0);
  EXPECT_DOUBLE_EQ(c.bf16_tflops, 990.0);
  EXPECT_GT(c.tf32_tflops, c.fp32_tflops);
  EXPECT_FALSE(c.measured);
}

TEST(Roofline, DatasheetByDeviceNameTellsSxmFromPcie) {
  const auto sxm = kb::datasheet_ceilings("NVIDIA H100 80GB HBM3");
  const auto pcie = kb::datasheet_ceilings("NVIDIA H100 PCIe");
  const auto nvl = kb::datasheet_ceilings("NVIDIA H100 NVL");
  ASSERT_TRUE(sxm && pcie && nvl);
  EXPECT_DOUBLE_EQ(sxm->bandwidth_gbs, 3350.0);
  EXPECT_DOUBLE_EQ(pcie->bandwidth_gbs, 2000.0);
  EXPECT_DOUBLE_EQ(pcie->fp16_tflops, 756.0);
  EXPECT_DOUBLE_EQ(nvl->bandwidth_gbs, 3900.0);
  // The H100 SXM entry has the figures of the documented default.
  const kb::GpuCeilings h100 = kb::datasheet_ceilings_h100();
  EXPECT_DOUBLE_EQ(sxm->bandwidth_gbs, h100.bandwidth_gbs);
  EXPECT_DOUBLE_EQ(sxm->tf32_tflops, h100.tf32_tflops);
  // H200: the SXM board and the NVL card share the bandwidth, not the clocks.
  const auto h200 = kb::datasheet_ceilings("NVIDIA H200");
  const auto h200_nvl = kb::datasheet_ceilings("NVIDIA H200 NVL");
  ASSERT_TRUE(h200 && h200_nvl);
  EXPECT_DOUBLE_EQ(h200->bandwidth_gbs, 4800.0);
  EXPECT_DOUBLE_EQ(h200->bf16_tflops, 990.0);
  EXPECT_DOUBLE_EQ(h200_nvl->bandwidth_gbs, 4800.0);
  EXPECT_DOUBLE_EQ(h200_nvl->fp32_tflops, 60.0);
  // Every datasheet entry says so in its name and is not measured.
  for (const auto* c : {&*sxm, &*pcie, &*h200}) {
    EXPECT_NE(c->gpu_name.find("datasheet"), std::string::npos) << c->gpu_name;
    EXPECT_FALSE(c->measured);
  }
  EXPECT_NE(h200->gpu_name.find("H200"), std::string::npos);
  EXPECT_NE(pcie->gpu_name.find("PCIe"), std::string::npos);
}

TEST(Roofline, DatasheetByDeviceNameTellsA100MemorySizes) {
  const auto sxm40 = kb::datasheet_ceilings("NVIDIA A100-SXM4-40GB");
  const auto sxm80 = kb::datasheet_ceilings("NVIDIA A100-SXM4-80GB");
  const auto pcie40 = kb::datasheet_ceilings("NVIDIA A100-PCIE-40GB");
  const auto pcie80 = kb::datasheet_ceilings("NVIDIA A100 80GB PCIe");
  ASSERT_TRUE(sxm40 && sxm80 && pcie40 && pcie80);
  EXPECT_DOUBLE_EQ(sxm40->bandwidth_gbs, 1555.0);
  EXPECT_DOUBLE_EQ(sxm80->bandwidth_gbs, 2039.0);
  EXPECT_DOUBLE_EQ(pcie40->bandwidth_gbs, 1555.0);
  EXPECT_DOUBLE_EQ(pcie80->bandwidth_gbs, 1935.0);
  for (const auto* c : {&*sxm40, &*sxm80, &*pcie40, &*pcie80}) {
    EXPECT_DOUBLE_EQ(c->fp32_tflops, 19.5);
    EXPECT_DOUBLE_EQ(c->tf32_tflops, 156.0); // dense, not the 312 with sparsity
    EXPECT_DOUBLE_EQ(c->fp16_tflops, 312.0);
  }
  EXPECT_NE(sxm80->gpu_name.find("80GB"), std::string::npos);
  EXPECT_NE(pcie40->gpu_name.find("PCIe 40GB"), std::string::npos);
}

TEST(Roofline, DatasheetByDeviceNameAdaAndBlackwell) {
  const auto l40s = kb::datasheet_ceilings("NVIDIA L40S");
  const auto l40 = kb::datasheet_ceilings("NVIDIA L40");
  const auto l4 = kb::datasheet_ceilings("NVIDIA L4");
  const auto rtx = kb::datasheet_ceilings("NVIDIA GeForce RTX 4090");
  const auto b200 = kb::datasheet_ceilings("NVIDIA B200");
  ASSERT_TRUE(l40s && l40 && l4 && rtx && b200);
  EXPECT_DOUBLE_EQ(l40s->bandwidth_gbs, 864.0);
  EXPECT_DOUBLE_EQ(l40s->fp32_tflops, 91.6);
  EXPECT_DOUBLE_EQ(l40s->tf32_tflops, 183.0);
  EXPECT_DOUBLE_EQ(l40s->bf16_tflops, 362.05);
  EXPECT_DOUBLE_EQ(l40->tf32_tflops, 90.5); // not the L40S
  EXPECT_DOUBLE_EQ(l4->bandwidth_gbs, 300.0);
  EXPECT_DOUBLE_EQ(l4->fp16_tflops, 121.0);
  EXPECT_DOUBLE_EQ(rtx->bandwidth_gbs, 1008.0);
  EXPECT_DOUBLE_EQ(rtx->fp32_tflops, 82.6);
  EXPECT_DOUBLE_EQ(b200->bandwidth_gbs, 8000.0);
  EXPECT_DOUBLE_EQ(b200->bf16_tflops, 2250.0);
  EXPECT_NE(l40s->gpu_name.find("L40S"), std::string::npos);
  EXPECT_EQ(l4->gpu_name.find("L40"), std::string::npos);
}

TEST(Roofline, DatasheetUnknownOrAmbiguousNamesGiveNothing) {
  EXPECT_FALSE(kb::datasheet_ceilings(""));
  EXPECT_FALSE(kb::datasheet_ceilings("Fake GPU"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA GeForce RTX 3090"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA GH200 480GB"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA GB200"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA GeForce RTX 4090 D"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA GeForce RTX 4090 Laptop GPU"));
  // Not enough to tell the boards apart.
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA H100"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA A100-SXM4"));
  EXPECT_FALSE(kb::datasheet_ceilings("NVIDIA A100 80GB"));
}

TEST(Roofline, FloorTimes) {
  const kb::GpuCeilings c = kb::datasheet_ceilings_h100();
  // Compute-bound: 2*4096^3 / 67 TFLOP/s = 2.051 ms (anchors: >= 2.05 ms).
  kb::Problem mm = kb::load_problem(k_levels + "/level1/matmul_fp32_4096.yaml", k_levels);
  EXPECT_NEAR(kb::floor_time_ms(mm, c), 2.0 * std::pow(4096.0, 3) / 67e12 * 1e3, 1e-9);
  EXPECT_NEAR(kb::floor_time_ms(mm, c), 2.051, 1e-3);
  // TF32 allowed: the floor drops to the TF32 peak.
  mm.precision.allow_tf32 = true;
  EXPECT_NEAR(kb::floor_time_ms(mm, c), 2.0 * std::pow(4096.0, 3) / 495e12 * 1e3, 1e-9);
  // Memory-bound: softmax 4096 x 393216 fp32 reads and writes 12.9 GB: 3.85 ms.
  const kb::Problem sm = kb::load_problem(k_levels + "/level1/kb_softmax.yaml", k_levels);
  EXPECT_NEAR(kb::floor_time_ms(sm, c), 4096.0 * 393216 * 8 / 3350e9 * 1e3, 1e-9);
  EXPECT_NEAR(kb::floor_time_ms(sm, c), 3.85, 0.01);
  // FP16 problem uses the FP16 peak.
  const kb::Problem h = kb::load_problem(k_levels + "/level1/matmul_fp16_4096.yaml", k_levels);
  EXPECT_NEAR(kb::floor_time_ms(h, c), 2.0 * std::pow(4096.0, 3) / 990e12 * 1e3, 1e-9);
  // Calibrated ceilings are used as given.
  kb::GpuCeilings slow = c;
  slow.bandwidth_gbs = 1000.0;
  EXPECT_NEAR(kb::floor_time_ms(sm, slow), 4096.0 * 393216 * 8 / 1000e9 * 1e3, 1e-9);
  slow.bandwidth_gbs = 0.0;
  EXPECT_THROW(kb::floor_time_ms(sm, slow), kb::Error);
}

TEST(Render, KernelBenchLayoutWithBuffersAndLoader) {
  const kb::Problem p = kb::load_problem(k_levels + "/level1/conv2d_alexnet1_b100.yaml", k_levels);
  const std::string s = kb::render_pytorch(p);
  EXPECT_THAT(s, HasSubstr("import torch\n"));
  EXPECT_THAT(s, HasSubstr("class Model(nn.Module):\n    def __init__(self):\n"));
  EXPECT_THAT(s, HasSubstr("    def forward(self, x):\n"));
  EXPECT_THAT(s, HasSubstr("self.register_buffer(\"w\", torch.empty((96, 3, 11, 11), "
                           "dtype=torch.float32, device=\"cpu\").normal_(0.0, 0.05, "
                           "generator=gen))"));
  EXPECT_THAT(s, HasSubstr("self.register_buffer(\"b\", torch.empty((96,), "));
  EXPECT_THAT(s, HasSubstr("        y = "));
  EXPECT_THAT(s, HasSubstr("(x, self.w, self.b"));
  EXPECT_THAT(s, HasSubstr("        return y\n"));
  EXPECT_THAT(s, HasSubstr("def get_inputs():\n    x = torch.rand((100, 3, 224, 224), "
                           "dtype=torch.float32, device=\"cuda\")"));
  EXPECT_THAT(s, HasSubstr("    return [x]\n"));
  EXPECT_THAT(s, HasSubstr("def get_init_inputs():\n    return []\n"));
  EXPECT_THAT(s, HasSubstr("def load_params(model, tensors):\n"));
  EXPECT_THAT(s, HasSubstr("    expected = {\"w\", \"b\"}\n"));
  EXPECT_THAT(s, HasSubstr("# Provenance: crfm-2025-05-28"));
}

TEST(Render, IntegerInputsAndNoParams) {
  const kb::Problem p = kb::load_problem(k_levels + "/level1/kb_cross_entropy.yaml", k_levels);
  const std::string s = kb::render_pytorch(p);
  EXPECT_THAT(s, HasSubstr("def forward(self, predictions, targets):"));
  EXPECT_THAT(s, HasSubstr("targets = torch.randint(0, 4096, (32768,), dtype=torch.int64, "
                           "device=\"cuda\")"));
  EXPECT_THAT(s, HasSubstr("    expected = set()\n"));
  EXPECT_THAT(s, ::testing::Not(HasSubstr("register_buffer")));
}

// ----- screening -----

kb::Problem tiny_problem() {
  kb::Problem p = kb::load_problem(fixture("good_relu"), k_fixtures); // x[8,16] -> y[8,16]
  return p;
}

TEST(Screen, HealthyOutputsPass) {
  const kb::Problem p = tiny_problem();
  std::vector<std::vector<std::vector<double>>> outs(2), ins(2);
  for (int s = 0; s < 2; ++s) {
    std::vector<double> x(128), y(128);
    for (int i = 0; i < 128; ++i) {
      x[i] = (s + 1) * (i % 7 - 3) * 0.25;
      y[i] = std::max(x[i], 0.0) + 0.5;
    }
    ins[s] = {x};
    outs[s] = {y};
  }
  EXPECT_EQ(kb::screen_outputs(p, outs, ins), "");
}

TEST(Screen, NearConstantAcrossSeeds) {
  const kb::Problem p = tiny_problem();
  std::vector<double> y(128, 3.0);
  std::vector<double> y2 = y;
  y2[5] += 1e-6; // within tolerance
  std::vector<std::vector<std::vector<double>>> outs = {{y}, {y2}};
  std::vector<std::vector<std::vector<double>>> ins = {{std::vector<double>(128, 0.1)},
                                                       {std::vector<double>(128, 0.2)}};
  EXPECT_THAT(kb::screen_outputs(p, outs, ins), HasSubstr("near-constant across seeds"));
  y2[5] = 4.0; // one element that varies clears it
  outs = {{y}, {y2}};
  EXPECT_EQ(kb::screen_outputs(p, outs, ins), "");
}

TEST(Screen, MostlyZero) {
  const kb::Problem p = tiny_problem();
  std::vector<double> y(128, 5e-5), x(128, 2.0), y2(128, 7e-5);
  for (int i = 0; i < 10; ++i) // 10 of 128 large: 92% near zero
    y[i] = y2[i] = 1.0 + i;
  y2[0] = 50.0;
  std::vector<std::vector<std::vector<double>>> outs = {{y}, {y2}}, ins = {{x}, {x}};
  EXPECT_THAT(kb::screen_outputs(p, outs, ins), HasSubstr("mostly within tolerance of zero"));
  for (int i = 0; i < 10; ++i) // 20 of 128 large: 84% near zero, below the 90% bar
    y[10 + i] = y2[10 + i] = 1.0;
  outs = {{y}, {y2}};
  EXPECT_EQ(kb::screen_outputs(p, outs, ins), "");
}

TEST(Screen, IdentityOnInput) {
  const kb::Problem p = tiny_problem();
  std::vector<std::vector<std::vector<double>>> outs(2), ins(2);
  for (int s = 0; s < 2; ++s) {
    std::vector<double> x(128);
    for (int i = 0; i < 128; ++i)
      x[i] = 0.1 + (i + s * 3) % 11; // U[0,1)-like positive data: relu(x) == x
    ins[s] = {x};
    outs[s] = {x};
  }
  EXPECT_THAT(kb::screen_outputs(p, outs, ins), HasSubstr("identity on input x"));
  outs[1][0][3] = -1.0;
  EXPECT_EQ(kb::screen_outputs(p, outs, ins), "");
}

// ----- whole catalogs -----

TEST(LoadCatalog, BadFilesNeverStopTheOthers) {
  const kb::Catalog c = kb::load_catalog(k_fixtures);
  std::set<std::string> loaded, failed;
  for (const auto& p : c.problems)
    loaded.insert(p.id);
  for (const auto& e : c.errors) {
    failed.insert(fs::path(e.file).stem().string());
    EXPECT_GT(e.line, 0) << e.str();
    EXPECT_FALSE(e.field.empty()) << e.str();
    EXPECT_EQ(e.str(), e.file + ":" + std::to_string(e.line) + ": " + e.field + ": " + e.message);
  }
  EXPECT_EQ(loaded, (std::set<std::string>{"l1/good_chain", "l1/good_matmul", "l1/good_relu",
                                           "l1/good_softmax", "l2/good_level2"}));
  std::set<std::string> bad;
  for (const auto& f : fs::directory_iterator(k_fixtures + "/level1"))
    if (f.path().stem().string().starts_with("bad_"))
      bad.insert(f.path().stem().string());
  EXPECT_EQ(failed, bad);
  // Sorted by level, then id.
  ASSERT_GE(c.problems.size(), 2u);
  EXPECT_EQ(c.problems.front().id, "l1/good_chain");
  EXPECT_EQ(c.problems.back().id, "l2/good_level2");
  EXPECT_NE(c.find("l1/good_relu"), nullptr);
  EXPECT_EQ(c.find("l1/bad_arity"), nullptr);
}

TEST(LoadCatalog, MissingDirectoryThrows) {
  EXPECT_THROW(kb::load_catalog(k_fixtures + "/no_such_dir"), kb::Error);
}

TEST(LoadCatalog, DefaultLevelsDirFollowsEnvironment) {
  ::setenv("KB_LEVELS_DIR", "/tmp/some_levels", 1);
  EXPECT_EQ(kb::default_levels_dir(), "/tmp/some_levels");
  ::unsetenv("KB_LEVELS_DIR");
  EXPECT_TRUE(fs::is_directory(kb::default_levels_dir())) << kb::default_levels_dir();
}

TEST(ShippedCatalog, LoadsCleanlyWithTheRequiredProblems) {
  const kb::Catalog c = kb::load_catalog(k_levels);
  for (const auto& e : c.errors)
    ADD_FAILURE() << e.str();
  EXPECT_TRUE(c.errors.empty());
  std::map<int, int> per_level;
  for (const auto& p : c.problems) {
    ++per_level[p.level];
    EXPECT_FALSE(p.provenance.source.empty()) << p.id;
    EXPECT_FALSE(p.provenance.ref.empty()) << p.id;
    EXPECT_GT(p.min_bytes, 0.0) << p.id;
    for (const auto& t : p.params)
      EXPECT_NE(t.dist.kind, kb::DistKind::constant) << p.id << " " << t.name;
    for (const auto& t : p.inputs) {
      if (kb::is_floating(t.dtype)) {
        EXPECT_FALSE(t.check_dists.empty()) << p.id << " " << t.name;
      }
    }
    // Every problem renders (each op has a PyTorch form).
    EXPECT_THAT(kb::render_pytorch(p), HasSubstr("def load_params(model, tensors):")) << p.id;
  }
  EXPECT_GE(per_level[1], 30);
  EXPECT_GE(per_level[2], 10);
  EXPECT_GE(per_level[3], 4);
  for (const char* id : {"l1/matmul_fp32_4096",
                         "l1/matmul_fp16_4096",
                         "l1/softmax_4096x65536",
                         "l1/layer_norm_16x64x256x256",
                         "l1/conv2d_alexnet1_b100",
                         "l1/relu_4096x393216",
                         "l1/sum_dim1_128x4096x4095",
                         "l1/sdpa_fp16",
                         "l1/kb_matmul_square",
                         "l1/kb_softmax",
                         "l1/kb_layernorm",
                         "l1/kb_conv2d_alexnet_b256",
                         "l1/kb_conv2d_3x3_16x16x1024",
                         "l1/kb_sdpa",
                         "l2/alexnet_block1_b100",
                         "l2/kb_conv2d_relu_biasadd",
                         "l2/kb_conv2d_sub_hardswish_maxpool_mish",
                         "l2/kb_conv2d_tanh_scale_biasadd_max",
                         "l2/kb_conv2d_groupnorm_scale_maxpool_clamp",
                         "l3/kb_mlp",
                         "l3/kb_lenet5",
                         "l3/resnet_basic_block",
                         "l3/kb_mingpt_causal_attention"})
    EXPECT_NE(c.find(id), nullptr) << id;
}

TEST(ShippedCatalog, ShapesOfKeyProblems) {
  const kb::Catalog c = kb::load_catalog(k_levels);
  const kb::Problem* alex = c.find("l2/alexnet_block1_b100");
  ASSERT_NE(alex, nullptr);
  // conv k11 s4 p2 on 224: 55; max-pool k3 s2: 27.
  EXPECT_EQ(alex->output_spec("z").shape, (kb::Shape{100, 96, 27, 27}));
  const kb::Problem* gpt = c.find("l3/kb_mingpt_causal_attention");
  ASSERT_NE(gpt, nullptr);
  EXPECT_EQ(gpt->values.at("att").shape, (kb::Shape{128, 8, 512, 512}));
  EXPECT_EQ(gpt->output_spec("y").shape, (kb::Shape{128, 512, 768}));
  const kb::Problem* sum = c.find("l1/sum_dim1_128x4096x4095");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(sum->output_spec("y").shape, (kb::Shape{128, 1, 4095}));
  const kb::Problem* lenet = c.find("l3/kb_lenet5");
  ASSERT_NE(lenet, nullptr);
  EXPECT_EQ(lenet->values.at("flat").shape, (kb::Shape{4096, 400}));
  EXPECT_EQ(lenet->output_spec("y").shape, (kb::Shape{4096, 20}));
  const kb::Problem* am = c.find("l1/kb_argmax");
  ASSERT_NE(am, nullptr);
  EXPECT_EQ(am->output_spec("y").dtype, kb::DType::i64);
  EXPECT_EQ(am->tolerance.atol, 0.0);
}

} // namespace
