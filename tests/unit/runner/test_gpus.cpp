// Unit tests of the GPUs a run uses: GPUs named with --gpus must be ones the doctor sees (else
// one line before anything is compiled), and candidates compile for the architectures of the
// GPUs used (no GPU, no network; nvcc is a stand-in script that records its command lines).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "fake_backend.hpp"
#include "pipeline.hpp"
#include "runner.hpp"

namespace kb::runner {
namespace {

namespace fs = std::filesystem;
using fakes::FakeBackend;

GpuInfo gpu(int index, const std::string& name, int cc_major, int cc_minor) {
  GpuInfo g;
  g.index = index;
  g.name = name;
  g.cc_major = cc_major;
  g.cc_minor = cc_minor;
  return g;
}

DoctorReport doctor_of(std::vector<GpuInfo> gpus) {
  DoctorReport d;
  d.worker_ran = true;
  d.gpus = std::move(gpus);
  return d;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class GpusTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("kb_gpus_unit_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // An nvcc stand-in: answers --version like nvcc 13.0, appends every other command line to
  // nvcc.log and fails the compile.
  std::string fake_nvcc() {
    const fs::path script = dir / "nvcc";
    std::ofstream(script) << "#!/bin/sh\n"
                             "if [ \"$1\" = --version ]; then\n"
                             "  echo 'Cuda compilation tools, release 13.0, V13.0.0'\n"
                             "  echo 'Build cuda_13.0.stand-in." +
                                 dir.filename().string() +
                                 "'\n"
                                 "  exit 0\n"
                                 "fi\n"
                                 "echo \"$*\" >> '" +
                                 (dir / "nvcc.log").string() +
                                 "'\n"
                                 "exit 2\n";
    ::chmod(script.c_str(), 0755);
    return script.string();
  }
  std::vector<std::string> nvcc_calls() const {
    std::vector<std::string> lines;
    std::ifstream in(dir / "nvcc.log");
    for (std::string l; std::getline(in, l);)
      lines.push_back(l);
    return lines;
  }
  fs::path dir;
};

TEST_F(GpusTest, EveryGpuTheDoctorSeesUnlessSomeAreNamed) {
  const auto d = doctor_of({gpu(0, "NVIDIA L40S", 8, 9), gpu(1, "NVIDIA L40S", 8, 9)});
  EXPECT_EQ(detail::gpus_to_use({}, d, ""), (std::vector<int>{0, 1}));
  EXPECT_EQ(detail::gpus_to_use({1}, d, ""), (std::vector<int>{1}));
}

TEST_F(GpusTest, ANamedGpuTheDoctorDoesNotSeeIsRefused) {
  const auto d = doctor_of({gpu(0, "NVIDIA L40S", 8, 9), gpu(1, "NVIDIA L40S", 8, 9)});
  EXPECT_EQ(message_of([&] {
              detail::gpus_to_use({0, 3}, d, "");
            }),
            "GPU 3 is not one of the GPUs kbench sees (0, 1; `kbench doctor` lists them)");
}

TEST_F(GpusTest, NoGpuIsOneLineAlsoWhenGpusAreNamed) {
  DoctorReport d;
  d.error = "no usable CUDA device: cudaErrorNoDevice: no CUDA-capable device is detected";
  for (const std::vector<int>& asked : {std::vector<int>{}, std::vector<int>{0}})
    EXPECT_EQ(message_of([&] { detail::gpus_to_use(asked, d, "; hint"); }),
              "no GPU to evaluate on: no usable CUDA device: cudaErrorNoDevice: no CUDA-capable "
              "device is detected; hint");
}

TEST_F(GpusTest, ARunOnAGpuTheMachineLacksCompilesNothing) {
  FakeBackend backend({"NVIDIA L40S"});
  RunOptions o;
  o.db = (dir / "kb.db").string();
  o.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
  o.models_file = std::string(KB_SOURCE_DIR) + "/config/models.yaml";
  o.levels = {1};
  o.problems = {"relu_4096x393216"};
  o.gpus = {2};
  o.calibrate = false;
  const std::string msg = message_of([&] { run_suite(o, &backend, nullptr, RunHooks{}); });
  EXPECT_NE(msg.find("GPU 2 is not one of the GPUs kbench sees (0;"), std::string::npos) << msg;
  EXPECT_EQ(backend.compiles.load(), 0);
  EXPECT_EQ(backend.evaluations.load(), 0);
  EXPECT_TRUE(backend.targets().empty());
}

TEST_F(GpusTest, ARunTargetsTheGpusItUses) {
  FakeBackend backend({"NVIDIA L40S", "NVIDIA L40S", "NVIDIA L40S"});
  RunOptions o;
  o.db = (dir / "kb.db").string();
  o.levels_dir = std::string(KB_SOURCE_DIR) + "/levels";
  o.models_file = std::string(KB_SOURCE_DIR) + "/config/models.yaml";
  o.levels = {1};
  o.problems = {"relu_4096x393216"};
  o.gpus = {2, 0};
  o.calibrate = false;
  run_suite(o, &backend, nullptr, RunHooks{});
  EXPECT_EQ(backend.targets(), (std::vector<std::vector<int>>{{2, 0}}));
  EXPECT_GE(backend.compiles.load(), 1);
}

TEST_F(GpusTest, CandidatesCompileForTheArchitecturesOfTheGpusUsed) {
  EvalOptions o;
  o.compile.nvcc = fake_nvcc();
  o.compile.include_dir = std::string(KB_SOURCE_DIR) + "/include";
  o.compile.use_cache = false;
  auto backend = make_eval_backend(o);
  backend->target(
      {gpu(0, "NVIDIA L40S", 8, 9), gpu(1, "NVIDIA H200", 9, 0), gpu(2, "NVIDIA L40S", 8, 9)});
  EXPECT_FALSE(backend->compile("extern \"C\" int kb_forward();").ok);
  const auto calls = nvcc_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls[0].find("-gencode arch=compute_89,code=sm_89 -gencode "
                          "arch=compute_90a,code=sm_90a "),
            std::string::npos)
      << calls[0];
}

TEST_F(GpusTest, AnArchitectureTheOptionsNameIsKept) {
  EvalOptions o;
  o.compile.nvcc = fake_nvcc();
  o.compile.include_dir = std::string(KB_SOURCE_DIR) + "/include";
  o.compile.use_cache = false;
  o.compile.arch = "sm_80";
  auto backend = make_eval_backend(o);
  backend->target({gpu(0, "NVIDIA L40S", 8, 9)});
  EXPECT_FALSE(backend->compile("extern \"C\" int kb_forward();").ok);
  const auto calls = nvcc_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls[0].find("arch=compute_80,code=sm_80"), std::string::npos) << calls[0];
  EXPECT_EQ(calls[0].find("sm_89"), std::string::npos) << calls[0];
}

} // namespace
} // namespace kb::runner
