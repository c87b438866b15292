// Symbol screening of real nvcc output: the adversarial kernels under tests/data/kernels are
// compiled here and judged by the allow-list; the ELF reader is checked on bad input.
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <unistd.h>

#include "compile.hpp"

namespace fs = std::filesystem;

namespace {

std::string kernel(const std::string& rel) {
  return kb::read_file(std::string(KB_SOURCE_DIR) + "/tests/data/kernels/" + rel);
}

// Compiles every kernel once for the whole suite (nvcc is the slow part).
class ScreenTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // One cache shared by the suite's processes (CTest runs each test alone); keys are content
    // hashes, so sharing is safe.
    s_dir = (fs::temp_directory_path() / "kbench-screen-test-cache").string();
    s_opts.cache_dir = s_dir;
    s_opts.include_dir = std::string(KB_SOURCE_DIR) + "/include";
    const std::vector<std::string> names = {"ok/relu.cu",
                                            "ok/layernorm_two_pass.cu",
                                            "adversarial/other_stream_created.cu",
                                            "adversarial/host_thread.cu",
                                            "adversarial/host_abort.cu",
                                            "adversarial/host_exit.cu",
                                            "adversarial/static_constructor.cu",
                                            "adversarial/clock_patch.cu",
                                            "adversarial/host_fork.cu",
                                            "adversarial/dynamic_load.cu",
                                            "adversarial/device_reset.cu",
                                            "adversarial/event_timer.cu",
                                            "adversarial/cache_by_pointer.cu",
                                            "adversarial/print_flood.cu",
                                            "adversarial/other_stream_default.cu",
                                            "adversarial/infinite_loop.cu"};
    std::vector<std::string> sources;
    for (const auto& n : names)
      sources.push_back(kernel(n));
    const auto results = kb::compile_many(sources, s_opts, 2);
    for (std::size_t i = 0; i < names.size(); ++i)
      s_objects[names[i]] = results[i];
    kb::CompileOptions lib = s_opts;
    lib.allow_library_calls = true;
    s_objects["library"] = kb::compile_candidate(kernel("adversarial/library_call.cu"), lib);
  }

  static kb::ScreenReport screen(const std::string& name, bool allow_lib = false) {
    const auto& c = s_objects.at(name);
    EXPECT_TRUE(c.ok) << name << ": " << c.message << "\n" << c.log;
    return kb::screen_object(c.so_path, {allow_lib});
  }
  static void expect_rejected(const std::string& name, const std::string& symbol) {
    const auto rep = screen(name);
    EXPECT_FALSE(rep.ok) << name;
    bool found = false;
    for (const auto& v : rep.violations)
      found = found || v.find(symbol) != std::string::npos;
    EXPECT_TRUE(found) << name << ": no violation naming " << symbol << "; got: " << rep.reason;
  }

  static inline std::string s_dir;
  static inline kb::CompileOptions s_opts;
  static inline std::map<std::string, kb::CompileResult> s_objects;
};

TEST_F(ScreenTest, PlainKernelsPass) {
  for (const char* n : {"ok/relu.cu", "ok/layernorm_two_pass.cu", "adversarial/cache_by_pointer.cu",
                        "adversarial/print_flood.cu", "adversarial/other_stream_default.cu",
                        "adversarial/infinite_loop.cu"}) {
    const auto rep = screen(n);
    EXPECT_TRUE(rep.ok) << n << ": " << rep.reason;
    EXPECT_TRUE(rep.has_forward) << n;
    EXPECT_TRUE(rep.library_calls.empty());
    EXPECT_LE(rep.elf.init_array_entries, kb::k_max_init_array_entries);
  }
}

TEST_F(ScreenTest, NvccEmitsExactlyTheExpectedConstructors) {
  // If a new nvcc changes this, the allow-list constant must follow (and this test says so).
  EXPECT_EQ(screen("ok/relu.cu").elf.init_array_entries, kb::k_max_init_array_entries);
}

TEST_F(ScreenTest, ObjectImportsTheSharedRuntime) {
  const auto rep = screen("ok/relu.cu");
  bool cudart = false;
  for (const auto& n : rep.elf.needed)
    cudart = cudart || n.starts_with("libcudart.so");
  EXPECT_TRUE(cudart);
}

TEST_F(ScreenTest, RefusesStreamCreation) {
  expect_rejected("adversarial/other_stream_created.cu", "cudaStreamCreate");
}
TEST_F(ScreenTest, RefusesHostThreads) {
  expect_rejected("adversarial/host_thread.cu", "_ZNSt6thread");
}
TEST_F(ScreenTest, RefusesAbort) {
  expect_rejected("adversarial/host_abort.cu", "abort");
}
TEST_F(ScreenTest, ExitPassesBecauseNvccStubsCallIt) {
  // nvcc's host stub of every __device__ function calls exit(), so exit cannot be refused; the
  // evaluator catches a candidate's exit(0) at run time instead (tests/gpu/eval).
  EXPECT_TRUE(screen("adversarial/host_exit.cu").ok);
  bool stub_exit = false;
  for (const auto& s : screen("ok/layernorm_two_pass.cu").elf.undefined)
    stub_exit = stub_exit || s == "exit";
  EXPECT_TRUE(stub_exit) << "nvcc no longer emits exit in device-function stubs; refuse exit";
}
TEST_F(ScreenTest, RefusesStaticConstructors) {
  expect_rejected("adversarial/static_constructor.cu", "static constructors");
}
TEST_F(ScreenTest, RefusesClocks) {
  expect_rejected("adversarial/clock_patch.cu", "clock_gettime");
}
TEST_F(ScreenTest, RefusesFork) {
  expect_rejected("adversarial/host_fork.cu", "fork");
}
TEST_F(ScreenTest, RefusesDynamicLoading) {
  expect_rejected("adversarial/dynamic_load.cu", "dlopen");
}
TEST_F(ScreenTest, RefusesDeviceReset) {
  expect_rejected("adversarial/device_reset.cu", "cudaDeviceReset");
}
TEST_F(ScreenTest, RefusesEvents) {
  expect_rejected("adversarial/event_timer.cu", "cudaEvent");
}

TEST_F(ScreenTest, LibraryCallsAreRecordedAndNeedPermission) {
  const auto refused = screen("library", false);
  EXPECT_FALSE(refused.ok);
  ASSERT_FALSE(refused.library_calls.empty());
  EXPECT_EQ(refused.library_calls.front().rfind("cublas", 0), 0u);
  const auto allowed = screen("library", true);
  EXPECT_TRUE(allowed.ok) << allowed.reason;
  EXPECT_EQ(allowed.library_calls, refused.library_calls);
}

TEST(Classify, AllowListDecisions) {
  const kb::ScreenPolicy p;
  bool lib = false;
  EXPECT_EQ(kb::classify_symbol("cudaLaunchKernel", p, &lib), "");
  EXPECT_EQ(kb::classify_symbol("__cudaRegisterFatBinary", p, &lib), "");
  EXPECT_EQ(kb::classify_symbol("memcpy", p, &lib), "");
  EXPECT_EQ(kb::classify_symbol("expf", p, &lib), "");
  EXPECT_EQ(kb::classify_symbol("__expf_finite", p, &lib), "");
  EXPECT_EQ(kb::classify_symbol("_Znwm", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("cudaMalloc", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("cudaDeviceSynchronize", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("cudaLaunchHostFunc", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("cuLaunchKernel", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("syscall", p, &lib), "");
  EXPECT_NE(
      kb::classify_symbol(
          "_ZNSt6thread15_M_start_threadESt10unique_ptrINS_6_StateESt14default_deleteIS1_EEPFvvE",
          p, &lib),
      "");
  EXPECT_NE(kb::classify_symbol("some_unknown_function", p, &lib), "");
  EXPECT_NE(kb::classify_symbol("cublasSgemm_v2", p, &lib), "");
  EXPECT_TRUE(lib);
  EXPECT_EQ(kb::classify_symbol("cublasSgemm_v2", {true}, &lib), "");
}

TEST(ReadElf, RejectsWhatIsNotASharedObject) {
  char tmpl[] = "/tmp/kbench-elf-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(tmpl) << "not an ELF file at all";
  EXPECT_THROW(kb::read_elf(tmpl), kb::Error);
  std::ofstream(tmpl, std::ios::binary) << std::string("\x7f"
                                                       "ELF\x02\x01\x01",
                                                       7);
  EXPECT_THROW(kb::read_elf(tmpl), kb::Error); // truncated header
  const auto rep = kb::screen_object(tmpl, {});
  EXPECT_FALSE(rep.ok);
  EXPECT_FALSE(rep.reason.empty());
  fs::remove(tmpl);
  EXPECT_THROW(kb::read_elf("/nonexistent.so"), kb::Error);
}

} // namespace
