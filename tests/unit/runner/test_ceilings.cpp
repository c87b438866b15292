// Unit tests of the roofline ceilings per GPU model: resolve_ceilings (explicit file, cache per
// model, calibration, datasheet, guess) and whole runs and `kbench evaluate` with a fake back end
// whose doctor reports chosen GPU names (no GPU, no network, no nvcc).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fake_backend.hpp"
#include "pipeline.hpp"
#include "runner.hpp"
#include "store.hpp"

namespace kb::runner {
namespace {

namespace fs = std::filesystem;
using fakes::FakeBackend;
using nlohmann::json;

GpuCeilings figures(const std::string& name, double bandwidth, bool measured = true) {
  return GpuCeilings{name, bandwidth, 50.0, 400.0, 800.0, 800.0, measured};
}

void write_json(const fs::path& p, const json& j) {
  std::ofstream(p) << j.dump(2) << "\n";
}

GpuInfo gpu_named(const std::string& name, int index = 0) {
  GpuInfo g;
  g.index = index;
  g.name = name;
  return g;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class CeilingsTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kb_ceilings_unit_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    db = (dir / "kb.db").string();
    // Tests run in the build tree: a results/calibration.json there must not leak in.
    old_cwd = fs::current_path();
    fs::current_path(dir);
  }
  void TearDown() override {
    fs::current_path(old_cwd);
    fs::remove_all(dir);
  }
  // A calibrate function that counts its calls and returns `c`.
  CalibrateFn counting(int& calls, GpuCeilings c) {
    return [&calls, c](int) {
      ++calls;
      return c;
    };
  }
  fs::path dir, old_cwd;
  std::string db;
};

TEST(CeilingsNames, SlugAndCachePath) {
  EXPECT_EQ(gpu_slug("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
  EXPECT_EQ(gpu_slug("NVIDIA A100-SXM4-40GB"), "nvidia-a100-sxm4-40gb");
  EXPECT_EQ(gpu_slug("  NVIDIA  L40S "), "nvidia-l40s");
  EXPECT_EQ(gpu_slug(""), "unknown-gpu");
  EXPECT_EQ(calibration_cache_path("results/kbench.db", "NVIDIA H200"),
            "results/calibration-nvidia-h200.json");
  EXPECT_EQ(ceilings_figures(figures("x", 4800.0)),
            "4800 GB/s, FP32 50 / TF32 400 / FP16 800 / BF16 800 TFLOP/s");
  EXPECT_EQ(ceilings_figures(GpuCeilings{"x", 4229.7, 51.0531, 403.594, 733.673, 766.189, true}),
            "4230 GB/s, FP32 51.1 / TF32 403.6 / FP16 733.7 / BF16 766.2 TFLOP/s");
}

TEST_F(CeilingsTest, DatasheetOfTheModelWithoutCacheOrCalibration) {
  const CeilingsChoice c = resolve_ceilings("", db, gpu_named("NVIDIA H200"), CalibrateFn{});
  EXPECT_EQ(c.origin, CeilingsOrigin::datasheet);
  EXPECT_DOUBLE_EQ(c.ceilings.bandwidth_gbs, 4800.0);
  EXPECT_FALSE(c.ceilings.measured);
  EXPECT_EQ(c.source, "datasheet for NVIDIA H200");
}

TEST_F(CeilingsTest, CalibratesOnceAndCachesForTheModel) {
  int calls = 0;
  const auto measure = counting(calls, figures("NVIDIA H200", 4233.0));
  const CeilingsChoice first = resolve_ceilings("", db, gpu_named("NVIDIA H200"), measure);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(first.origin, CeilingsOrigin::calibrated);
  EXPECT_DOUBLE_EQ(first.ceilings.bandwidth_gbs, 4233.0);
  EXPECT_TRUE(first.ceilings.measured);
  const std::string cache = (dir / "calibration-nvidia-h200.json").string();
  EXPECT_TRUE(contains(first.source, "calibrated now")) << first.source;
  EXPECT_TRUE(contains(first.source, "cached at " + cache)) << first.source;
  ASSERT_TRUE(fs::is_regular_file(cache));
  EXPECT_DOUBLE_EQ(json::parse(read_file(cache)).at("bandwidth_gbs").get<double>(), 4233.0);

  const CeilingsChoice again = resolve_ceilings("", db, gpu_named("NVIDIA H200", 3), measure);
  EXPECT_EQ(calls, 1) << "the cache answers the second time";
  EXPECT_EQ(again.origin, CeilingsOrigin::cache);
  EXPECT_EQ(again.source, "cached calibration " + cache + " for NVIDIA H200");
  EXPECT_DOUBLE_EQ(again.ceilings.bandwidth_gbs, 4233.0);
}

TEST_F(CeilingsTest, FailedCalibrationFallsBackToTheDatasheetAndSaysWhy) {
  const CalibrateFn broken = [](int) -> GpuCeilings { throw Error("worker exited with 1"); };
  const CeilingsChoice c = resolve_ceilings("", db, gpu_named("NVIDIA L4"), broken);
  EXPECT_EQ(c.origin, CeilingsOrigin::datasheet);
  EXPECT_DOUBLE_EQ(c.ceilings.bandwidth_gbs, 300.0);
  EXPECT_TRUE(contains(c.source, "datasheet for NVIDIA L4")) << c.source;
  EXPECT_TRUE(contains(c.source, "calibration failed: worker exited with 1")) << c.source;
  EXPECT_FALSE(fs::exists(dir / "calibration-nvidia-l4.json"));

  // A calibration of some other device (CUDA_VISIBLE_DEVICES mix-up) is neither used nor cached.
  int calls = 0;
  const CeilingsChoice other =
      resolve_ceilings("", db, gpu_named("NVIDIA L4"), counting(calls, figures("NVIDIA H200", 1)));
  EXPECT_EQ(other.origin, CeilingsOrigin::datasheet);
  EXPECT_TRUE(contains(other.source, "measured as NVIDIA H200")) << other.source;
  EXPECT_FALSE(fs::exists(dir / "calibration-nvidia-l4.json"));
}

TEST_F(CeilingsTest, ExplicitFileWinsAndMustBeUsable) {
  write_json(dir / "calibration-nvidia-h200.json", figures("NVIDIA H200", 4233.0));
  write_json(dir / "mine.json", figures("NVIDIA H200", 1234.0));
  int calls = 0;
  const auto measure = counting(calls, figures("NVIDIA H200", 9.0));
  const CeilingsChoice c =
      resolve_ceilings((dir / "mine.json").string(), db, gpu_named("NVIDIA H200"), measure);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(c.origin, CeilingsOrigin::file);
  EXPECT_DOUBLE_EQ(c.ceilings.bandwidth_gbs, 1234.0);
  EXPECT_EQ(c.source, "calibration file " + (dir / "mine.json").string());

  // Made on another model: used as asked, and said so.
  const CeilingsChoice other =
      resolve_ceilings((dir / "mine.json").string(), db, gpu_named("NVIDIA L4"), CalibrateFn{});
  EXPECT_TRUE(contains(other.source, "made on NVIDIA H200, used for NVIDIA L4")) << other.source;

  // Missing, malformed or empty files are errors naming the file.
  for (const std::string bad : {"missing.json", "garbage.json", "empty.json"}) {
    if (bad == "garbage.json")
      std::ofstream(dir / bad) << "{not json";
    if (bad == "empty.json")
      write_json(dir / bad, json::object());
    try {
      resolve_ceilings((dir / bad).string(), db, gpu_named("NVIDIA H200"), measure);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), bad)) << e.what();
    }
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(CeilingsTest, CalibrationsOfOtherModelsAreNotUsed) {
  // A legacy single file beside the database, made on an H100, and a per-model file whose
  // content is of another model.
  write_json(dir / "calibration.json", figures("NVIDIA H100 80GB HBM3", 3000.0));
  write_json(dir / "calibration-nvidia-l40s.json", figures("NVIDIA H200", 4233.0));
  const CeilingsChoice c = resolve_ceilings("", db, gpu_named("NVIDIA L40S"), CalibrateFn{});
  EXPECT_EQ(c.origin, CeilingsOrigin::datasheet);
  EXPECT_DOUBLE_EQ(c.ceilings.bandwidth_gbs, 864.0);
  EXPECT_TRUE(contains(c.source, "made on NVIDIA H100 80GB HBM3")) << c.source;
  EXPECT_TRUE(contains(c.source, "made on NVIDIA H200")) << c.source;

  // The legacy file is used on the model it was made on.
  const CeilingsChoice h100 =
      resolve_ceilings("", db, gpu_named("NVIDIA H100 80GB HBM3"), CalibrateFn{});
  EXPECT_EQ(h100.origin, CeilingsOrigin::cache);
  EXPECT_DOUBLE_EQ(h100.ceilings.bandwidth_gbs, 3000.0);
  EXPECT_TRUE(contains(h100.source, (dir / "calibration.json").string())) << h100.source;

  // results/calibration.json (relative to the working directory) likewise.
  fs::create_directories(dir / "results");
  write_json(dir / "results" / "calibration.json", figures("NVIDIA L4", 250.0));
  fs::remove(dir / "calibration.json");
  const CeilingsChoice l4 = resolve_ceilings("", db, gpu_named("NVIDIA L4"), CalibrateFn{});
  EXPECT_EQ(l4.origin, CeilingsOrigin::cache);
  EXPECT_DOUBLE_EQ(l4.ceilings.bandwidth_gbs, 250.0);
}

TEST_F(CeilingsTest, UnknownGpuGetsTheH100FiguresNamedAGuess) {
  const CeilingsChoice c = resolve_ceilings("", db, gpu_named("Fake GPU"), CalibrateFn{});
  EXPECT_EQ(c.origin, CeilingsOrigin::guess);
  EXPECT_DOUBLE_EQ(c.ceilings.bandwidth_gbs, 3350.0);
  EXPECT_TRUE(contains(c.ceilings.gpu_name, "guess")) << c.ceilings.gpu_name;
  EXPECT_TRUE(contains(c.ceilings.gpu_name, "Fake GPU")) << c.ceilings.gpu_name;
  EXPECT_TRUE(contains(c.source, "guess")) << c.source;
  const CeilingsChoice unnamed = resolve_ceilings("", db, GpuInfo{}, CalibrateFn{});
  EXPECT_EQ(unnamed.origin, CeilingsOrigin::guess);
  EXPECT_FALSE(unnamed.ceilings.gpu_name.empty());
}

TEST_F(CeilingsTest, PlanResolvesOncePerModel) {
  FakeBackend backend({"NVIDIA H200", "NVIDIA L4", "NVIDIA H200", "NVIDIA L4"});
  backend.measured = GpuCeilings{"", 100.0, 10.0, 20.0, 30.0, 30.0, true};
  std::vector<std::string> log;
  const detail::CeilingsPlan plan =
      detail::plan_ceilings({2, 1, 0, 3}, backend.doctor(), "", db, backend, true,
                            [&](const std::string& l) { log.push_back(l); });
  EXPECT_EQ(backend.calibrations.load(), 2);
  ASSERT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.groups[0].gpus, (std::vector<int>{2, 0}));
  EXPECT_EQ(plan.groups[1].gpus, (std::vector<int>{1, 3}));
  EXPECT_EQ(plan.by_gpu.at(0).gpu_name, "NVIDIA H200");
  EXPECT_EQ(plan.by_gpu.at(3).gpu_name, "NVIDIA L4");
  ASSERT_EQ(plan.lines.size(), 2u);
  EXPECT_TRUE(contains(plan.lines[0], "ceilings of GPU 2,0: calibrated now")) << plan.lines[0];
  ASSERT_EQ(log.size(), 2u);
  EXPECT_TRUE(contains(log[0], "calibrating GPU 2 (NVIDIA H200)")) << log[0];
}

// --- whole runs ---

class CeilingsRunTest : public CeilingsTest {
protected:
  void SetUp() override {
    CeilingsTest::SetUp();
    opts.db = db;
    opts.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
    opts.models_file = std::string(KB_SOURCE_DIR) + "/config/models.yaml";
    opts.levels = {1};
    opts.problems = {"relu_4096x393216"}; // has an example kernel: one evaluation
  }
  RunSummary run(FakeBackend& backend, std::vector<std::string>* lines = nullptr) {
    RunHooks hooks;
    if (lines)
      hooks.log = [lines](const std::string& l) { lines->push_back(l); };
    return run_suite(opts, &backend, nullptr, hooks);
  }
  RunOptions opts;
};

TEST_F(CeilingsRunTest, RunOnAnL40SUsesTheL40SDatasheet) {
  FakeBackend backend({"NVIDIA L40S"});
  opts.calibrate = false;
  std::vector<std::string> lines;
  const RunSummary s = run(backend, &lines);
  EXPECT_EQ(backend.calibrations.load(), 0);
  EXPECT_EQ(backend.evaluations.load(), 1);
  // Every evaluator of the run got the L40S figures.
  const auto opened = backend.opened();
  ASSERT_FALSE(opened.empty());
  for (const auto& [gpu, c] : opened) {
    EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 864.0);
    EXPECT_DOUBLE_EQ(c.fp32_tflops, 91.6);
    EXPECT_DOUBLE_EQ(c.tf32_tflops, 183.0);
    EXPECT_DOUBLE_EQ(c.fp16_tflops, 362.05);
    EXPECT_FALSE(c.measured);
    EXPECT_TRUE(contains(c.gpu_name, "L40S")) << c.gpu_name;
  }
  // The run records them (datasheet figures, not measured) and says where they came from.
  store::Store st(db, {.read_only = true});
  const auto row = st.calibration(s.run_id);
  ASSERT_TRUE(row);
  EXPECT_DOUBLE_EQ(row->bandwidth_gbs, 864.0);
  EXPECT_FALSE(row->measured);
  ASSERT_EQ(s.ceilings.size(), 1u);
  EXPECT_EQ(s.ceilings[0], "ceilings: datasheet for NVIDIA L40S (864 GB/s, FP32 91.6 / TF32 183 "
                           "/ FP16 362.1 / BF16 362.1 TFLOP/s)");
  EXPECT_NE(std::find(lines.begin(), lines.end(), s.ceilings[0]), lines.end());
  const json cfg = json::parse(st.run(s.run_id)->info.config_json);
  ASSERT_TRUE(cfg.contains("ceilings"));
  EXPECT_EQ(cfg["ceilings"][0]["source"], "datasheet for NVIDIA L40S");
  EXPECT_EQ(cfg["ceilings"][0]["origin"], "datasheet");
  EXPECT_EQ(st.run(s.run_id)->info.gpu_name, "NVIDIA L40S");
}

TEST_F(CeilingsRunTest, CachedCalibrationIsUsedOnTheNextRunWithoutCalibrating) {
  FakeBackend backend({"NVIDIA L40S"});
  backend.measured = GpuCeilings{"", 777.0, 80.0, 150.0, 300.0, 300.0, true};
  const RunSummary first = run(backend);
  EXPECT_EQ(backend.calibrations.load(), 1);
  EXPECT_TRUE(fs::is_regular_file(dir / "calibration-nvidia-l40s.json"));
  ASSERT_EQ(first.ceilings.size(), 1u);
  EXPECT_TRUE(contains(first.ceilings[0], "calibrated now")) << first.ceilings[0];

  FakeBackend next({"NVIDIA L40S"});
  next.measured = GpuCeilings{"", 1.0, 1.0, 1.0, 1.0, 1.0, true};
  const RunSummary second = run(next);
  EXPECT_EQ(next.calibrations.load(), 0);
  for (const auto& [gpu, c] : next.opened()) {
    EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 777.0);
    EXPECT_TRUE(c.measured);
  }
  ASSERT_EQ(second.ceilings.size(), 1u);
  EXPECT_TRUE(contains(second.ceilings[0], "cached calibration")) << second.ceilings[0];
  store::Store st(db, {.read_only = true});
  ASSERT_TRUE(st.calibration(second.run_id));
  EXPECT_DOUBLE_EQ(st.calibration(second.run_id)->bandwidth_gbs, 777.0);
  EXPECT_TRUE(st.calibration(second.run_id)->measured);
}

TEST_F(CeilingsRunTest, ExplicitCalibrationFileWins) {
  write_json(dir / "calibration-nvidia-l40s.json", figures("NVIDIA L40S", 777.0));
  write_json(dir / "forced.json", figures("NVIDIA L40S", 555.0));
  FakeBackend backend({"NVIDIA L40S"});
  backend.measured = figures("", 1.0);
  opts.calibration_file = (dir / "forced.json").string();
  const RunSummary s = run(backend);
  EXPECT_EQ(backend.calibrations.load(), 0);
  for (const auto& [gpu, c] : backend.opened())
    EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 555.0);
  EXPECT_TRUE(contains(s.ceilings.at(0), "calibration file")) << s.ceilings.at(0);

  // A missing explicit file stops the run before anything is recorded.
  opts.calibration_file = (dir / "nope.json").string();
  try {
    run(backend);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "nope.json")) << e.what();
  }
  store::Store st(db, {.read_only = true});
  EXPECT_EQ(st.runs().size(), 1u);
}

TEST_F(CeilingsRunTest, CalibrationOfAnotherModelIsNotUsed) {
  // What `kbench doctor --calibrate` wrote before per-model caches, on an H100.
  write_json(dir / "calibration.json", figures("NVIDIA H100 80GB HBM3", 3100.0));
  FakeBackend backend({"NVIDIA L40S"});
  opts.calibrate = false;
  const RunSummary s = run(backend);
  for (const auto& [gpu, c] : backend.opened())
    EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 864.0);
  EXPECT_TRUE(contains(s.ceilings.at(0), "datasheet for NVIDIA L40S")) << s.ceilings.at(0);
  EXPECT_TRUE(contains(s.ceilings.at(0), "made on NVIDIA H100 80GB HBM3")) << s.ceilings.at(0);
}

TEST_F(CeilingsRunTest, GenerateClaimsNoGpuAndEvaluateUsesTheGpuItRunsOn) {
  opts.mode = Mode::generate;
  const RunSummary g = run_suite(opts, nullptr, nullptr, {});
  EXPECT_TRUE(g.ceilings.empty());
  {
    store::Store st(db, {.read_only = true});
    EXPECT_FALSE(st.calibration(g.run_id));
  }
  FakeBackend backend({"NVIDIA H200"});
  EvaluateOptions eo;
  eo.db = db;
  eo.run_id = g.run_id;
  eo.levels_dir = opts.levels_dir;
  eo.calibrate = false;
  const EvaluateSummary s = evaluate_stored(eo, backend);
  EXPECT_EQ(s.candidates, 1);
  for (const auto& [gpu, c] : backend.opened())
    EXPECT_DOUBLE_EQ(c.bandwidth_gbs, 4800.0);
  ASSERT_EQ(s.ceilings.size(), 1u);
  EXPECT_TRUE(contains(s.ceilings[0], "datasheet for NVIDIA H200")) << s.ceilings[0];
  store::Store st(db, {.read_only = true});
  ASSERT_TRUE(st.calibration(g.run_id));
  EXPECT_DOUBLE_EQ(st.calibration(g.run_id)->bandwidth_gbs, 4800.0);
}

} // namespace
} // namespace kb::runner
