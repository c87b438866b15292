// nvcc compilation (runs here: nvcc needs no GPU): cache hits, keys, failures, timeouts, logs.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.hpp"

namespace fs = std::filesystem;

namespace {

const char* k_relu = R"(
#include "kbench/kb_abi.h"
__global__ void k(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  int64_t n = kb_numel(&in[0]);
  k<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const float*)in[0].data, (float*)out[0].data, n);
  return 0;
}
)";

class CompileTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kbench-cc-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_opts.cache_dir = m_dir + "/cache";
    m_opts.include_dir = std::string(KB_SOURCE_DIR) + "/include";
  }
  void TearDown() override { fs::remove_all(m_dir); }
  // A stand-in nvcc: answers --version like nvcc, otherwise runs `body`.
  std::string fake_nvcc(const std::string& body) {
    const std::string path = m_dir + "/fake-nvcc";
    std::ofstream(path) << "#!/bin/sh\n"
                        << "if [ \"$1\" = --version ]; then echo 'Cuda compilation tools, "
                           "release 99.1, V99.1.0'; echo 'Build fake'; exit 0; fi\n"
                        << body << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }
  std::string m_dir;
  kb::CompileOptions m_opts;
};

TEST_F(CompileTest, CompilesThenHitsTheCache) {
  const auto first = kb::compile_candidate(k_relu, m_opts);
  ASSERT_TRUE(first.ok) << first.message << "\n" << first.log;
  EXPECT_FALSE(first.cached);
  EXPECT_TRUE(fs::exists(first.so_path));
  EXPECT_EQ(first.key.size(), 16u);
  const auto second = kb::compile_candidate(k_relu, m_opts);
  ASSERT_TRUE(second.ok);
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(second.so_path, first.so_path);
  EXPECT_LT(second.seconds, first.seconds);
  // No temporary directories are left behind in the cache.
  for (const auto& e : fs::directory_iterator(m_opts.cache_dir))
    EXPECT_FALSE(e.path().filename().string().starts_with("tmp-")) << e.path();
}

TEST_F(CompileTest, KeyDependsOnSourceFlagsAndArch) {
  kb::CompileOptions a = m_opts, b = m_opts, c = m_opts;
  b.arch = "sm_80";
  c.extra_flags = {"-lineinfo"};
  const auto ra = kb::compile_candidate(k_relu, a);
  const auto rb = kb::compile_candidate(k_relu, b);
  const auto rc = kb::compile_candidate(k_relu, c);
  const auto rd = kb::compile_candidate(std::string(k_relu) + "\n// changed\n", a);
  ASSERT_TRUE(ra.ok && rb.ok && rc.ok && rd.ok);
  EXPECT_NE(ra.key, rb.key);
  EXPECT_NE(ra.key, rc.key);
  EXPECT_NE(ra.key, rd.key);
}

TEST_F(CompileTest, SyntaxErrorIsACompileErrorWithItsLog) {
  const auto r = kb::compile_candidate("this is not C++;\n", m_opts);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.message.find("nvcc failed"), std::string::npos) << r.message;
  EXPECT_NE(r.log.find("candidate.cu"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("error"), std::string::npos);
  const auto again = kb::compile_candidate("this is not C++;\n", m_opts);
  EXPECT_FALSE(again.ok);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.message, r.message);
}

TEST_F(CompileTest, NeverEndingCompileTimesOut) {
  const std::string src = kb::read_file(std::string(KB_SOURCE_DIR) +
                                        "/tests/data/kernels/adversarial/compile_forever.cu");
  m_opts.timeout_s = 3.0;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = kb::compile_candidate(src, m_opts);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.timed_out);
  EXPECT_NE(r.message.find("timed out"), std::string::npos);
  EXPECT_LT(s, 10.0);
  // A timeout is not cached: a faster machine may finish next time.
  EXPECT_FALSE(kb::compile_candidate(src, m_opts).cached);
}

TEST_F(CompileTest, TimeoutKillsNvccsWholeProcessGroup) {
  const std::string pidfile = m_dir + "/child.pid";
  m_opts.nvcc = fake_nvcc("sleep 100 & echo $! > " + pidfile + "; wait");
  m_opts.timeout_s = 0.5;
  const auto r = kb::compile_candidate(k_relu, m_opts);
  EXPECT_TRUE(r.timed_out);
  const pid_t child = std::stoi(kb::read_file(pidfile));
  usleep(100000);
  std::string stat;
  try {
    stat = kb::read_file("/proc/" + std::to_string(child) + "/stat");
  } catch (const kb::Error&) {
  }
  // Gone, or a zombie waiting for a PID 1 that does not reap.
  EXPECT_TRUE(stat.empty() || stat.find(") Z") != std::string::npos)
      << "nvcc's child survived the timeout: " << stat;
}

TEST_F(CompileTest, CompileLogIsBounded) {
  m_opts.nvcc = fake_nvcc("head -c 5000000 /dev/zero | tr '\\0' e >&2; exit 1");
  m_opts.log_limit_bytes = 16 * 1024;
  const auto r = kb::compile_candidate(k_relu, m_opts);
  EXPECT_FALSE(r.ok);
  EXPECT_LE(r.log.size(), 16u * 1024);
  EXPECT_NE(r.log.find("bytes dropped"), std::string::npos);
}

TEST_F(CompileTest, ParallelCompilesKeepOrder) {
  std::vector<std::string> sources;
  for (int i = 0; i < 3; ++i)
    sources.push_back(std::string(k_relu) + "// variant " + std::to_string(i) + "\n");
  sources.push_back("broken(\n");
  const auto rs = kb::compile_many(sources, m_opts, 2);
  ASSERT_EQ(rs.size(), 4u);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(rs[i].ok) << rs[i].message;
  EXPECT_FALSE(rs[3].ok);
  EXPECT_NE(rs[0].key, rs[1].key);
}

TEST_F(CompileTest, FlagsUseTheSharedRuntime) {
  const auto f = kb::nvcc_flags(m_opts);
  const std::string all = [&] {
    std::string s;
    for (const auto& x : f)
      s += x + " ";
    return s;
  }();
  EXPECT_NE(all.find("-cudart shared"), std::string::npos);
  EXPECT_NE(all.find("-shared"), std::string::npos);
}

TEST_F(CompileTest, ArchitecturesAreTheBuildsUnlessNamedOneGencodeEach) {
  auto joined = [](const std::vector<std::string>& f) {
    std::string s;
    for (const auto& x : f)
      s += x + " ";
    return s;
  };
  // Unnamed: the architectures of this build's own kernels (KB_CUDA_ARCHITECTURES).
  const std::string build = kb::default_arch();
  ASSERT_FALSE(build.empty());
  const std::string first = build.substr(0, build.find(','));
  m_opts.arch.clear();
  EXPECT_NE(joined(kb::nvcc_flags(m_opts))
                .find("-gencode arch=compute_" + first.substr(3) + ",code=" + first + " "),
            std::string::npos);
  m_opts.arch = "sm_89";
  EXPECT_NE(joined(kb::nvcc_flags(m_opts)).find("-O3 -gencode arch=compute_89,code=sm_89 -cudart"),
            std::string::npos);
  m_opts.arch = "sm_80,sm_90a";
  EXPECT_NE(joined(kb::nvcc_flags(m_opts))
                .find("-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a "
                      "-cudart"),
            std::string::npos);
  m_opts.arch = ",";
  EXPECT_THROW(kb::nvcc_flags(m_opts), kb::Error);
}

TEST_F(CompileTest, MissingNvccIsAHarnessError) {
  m_opts.nvcc = m_dir + "/no-nvcc-here";
  EXPECT_THROW(kb::compile_candidate(k_relu, m_opts), kb::Error);
}

} // namespace

// Identical sources in flight at once (a model at temperature 0, best-of-n): every thread gets
// the object, nvcc runs once, and no writer trips over another's temporary files.
TEST_F(CompileTest, SameSourceFromSixteenThreadsCompilesOnceAndAllSucceed) {
  const std::string calls = m_dir + "/calls";
  m_opts.nvcc = fake_nvcc("echo x >> " + calls + "; sleep 0.3; echo object > candidate.so");
  std::vector<std::string> sources(16, k_relu);
  const auto results = kb::compile_many(sources, m_opts, 16);
  ASSERT_EQ(results.size(), 16u);
  int fresh = 0;
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.so_path, results.front().so_path);
    fresh += r.cached ? 0 : 1;
  }
  EXPECT_EQ(fresh, 1);
  std::ifstream in(calls);
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    ++n;
  EXPECT_EQ(n, 1);
  for (const auto& e : fs::directory_iterator(m_opts.cache_dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(CompileTest, SameFailingSourceFromSixteenThreadsIsOneVerdict) {
  m_opts.nvcc = fake_nvcc("sleep 0.2; echo 'candidate.cu(3): error: nope' >&2; exit 2");
  std::vector<std::string> sources(16, "bad source");
  const auto results = kb::compile_many(sources, m_opts, 16);
  for (const auto& r : results) {
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.message, results.front().message);
    EXPECT_NE(r.message.find("error: nope"), std::string::npos) << r.message;
  }
}

// An entry another process completed first (here: written between our lookup and our rename)
// is a hit, and the object stays the first writer's.
TEST_F(CompileTest, EntryCompletedByAnotherWriterFirstIsAHit) {
  const auto probe = kb::compile_candidate(k_relu, [&] {
    auto o = m_opts;
    o.use_cache = false;
    o.nvcc = fake_nvcc("echo object > candidate.so");
    return o;
  }());
  ASSERT_TRUE(probe.ok);
  const std::string so = m_opts.cache_dir + "/" + probe.key + ".so";
  m_opts.nvcc = fake_nvcc("echo first > " + so + "; echo second > candidate.so");
  const auto r = kb::compile_candidate(k_relu, m_opts);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.cached);
  EXPECT_EQ(r.so_path, so);
  std::ifstream in(so);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "first");
}

TEST(WriteFileAtomic, SixteenThreadsWritingOnePathNeverFail) {
  char tmpl[] = "/tmp/kbench-wfa-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/entry.log";
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        try {
          kb::write_file_atomic(path, std::string(1000 + t, static_cast<char>('a' + t)));
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  const std::string text = kb::read_file(path);
  ASSERT_GE(text.size(), 1000u);
  EXPECT_EQ(text, std::string(text.size(), text.front())); // one whole version
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1); // no temporary left behind
  fs::remove_all(dir);
}
