// Unit tests of the shipped example kernels: each compiles to a shared object and exports exactly
// the candidate ABI symbols it is meant to, importing no forbidden CUDA runtime calls.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Example {
  std::string stem;
  std::string kind;                // plain or tuned
  std::set<std::string> exports;   // kb_* symbols the object must export, and no others
  std::set<std::string> cuda_uses; // public CUDA runtime functions it may import
};

const std::set<std::string> k_launch_only = {"cudaGetLastError"};

std::vector<Example> examples() {
  const std::set<std::string> fwd = {"kb_forward"};
  const std::set<std::string> fwd_ws = {"kb_forward", "kb_workspace_bytes"};
  const std::set<std::string> fwd_setup = {"kb_forward", "kb_setup"};
  const std::set<std::string> attr = {"cudaGetLastError", "cudaFuncSetAttribute"};
  return {
      {"matmul_fp32_4096", "plain", fwd, k_launch_only},
      {"matmul_fp32_4096", "tuned", fwd, k_launch_only},
      {"matmul_fp16_4096", "plain", fwd, k_launch_only},
      {"matmul_fp16_4096", "tuned", fwd_setup, attr},
      {"softmax_4096x65536", "plain", fwd, k_launch_only},
      {"softmax_4096x65536", "tuned", fwd, k_launch_only},
      {"layer_norm_16x64x256x256", "plain", fwd, k_launch_only},
      {"layer_norm_16x64x256x256", "tuned", fwd_ws, k_launch_only},
      {"conv2d_alexnet1_b100", "plain", fwd, k_launch_only},
      {"conv2d_alexnet1_b100", "tuned", fwd_ws, k_launch_only},
      {"relu_4096x393216", "plain", fwd, k_launch_only},
      {"relu_4096x393216", "tuned", fwd, k_launch_only},
      {"sum_dim1_128x4096x4095", "plain", fwd, k_launch_only},
      {"sum_dim1_128x4096x4095", "tuned", fwd, k_launch_only},
      {"kb_conv2d_relu_biasadd", "plain", fwd, k_launch_only},
      {"kb_conv2d_relu_biasadd", "tuned", fwd_ws, k_launch_only},
  };
}

// Readable parameter names in test logs.
void PrintTo(const Example& e, std::ostream* os) {
  *os << e.stem << "/" << e.kind;
}

fs::path examples_dir() {
  return fs::path(KB_SOURCE_DIR) / "levels" / "examples";
}

struct CommandResult {
  int status = -1;
  std::string output;
};

// Runs a shell command, capturing stdout and stderr together.
CommandResult run(const std::string& cmd) {
  CommandResult r;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.output.append(buf.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

std::string quote(const fs::path& p) {
  return "'" + p.string() + "'";
}

// Dynamic symbols of a shared object: defined ones (exports) and undefined ones (imports).
struct Symbols {
  std::set<std::string> defined;
  std::set<std::string> undefined;
};

Symbols dynamic_symbols(const fs::path& so) {
  Symbols s;
  const CommandResult r = run("nm -D " + quote(so));
  EXPECT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::vector<std::string> cols;
    for (std::string c; f >> c;)
      cols.push_back(c);
    if (cols.size() == 2 && cols[0] == "U")
      s.undefined.insert(cols[1].substr(0, cols[1].find('@')));
    else if (cols.size() == 3 && cols[1] != "w" && cols[1] != "v")
      s.defined.insert(cols[2].substr(0, cols[2].find('@')));
  }
  return s;
}

class ExampleKernel : public ::testing::TestWithParam<Example> {
protected:
  static void SetUpTestSuite() {
    s_out_dir = fs::temp_directory_path() / ("kb_examples_" + std::to_string(getpid()));
    fs::create_directories(s_out_dir);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(s_out_dir, ec);
  }
  static fs::path s_out_dir;
};

fs::path ExampleKernel::s_out_dir;

TEST_P(ExampleKernel, CompilesAndExportsTheAbi) {
  const Example& e = GetParam();
  const fs::path src = examples_dir() / e.stem / (e.kind + ".cu");
  ASSERT_TRUE(fs::exists(src)) << src;

  // The file opens with its one-line technique comment.
  std::ifstream in(src);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first.rfind("// ", 0), 0u) << src << " starts with: " << first;

  // A shared CUDA runtime makes every runtime call the kernel makes visible as an import.
  const fs::path so = s_out_dir / (e.stem + "_" + e.kind + ".so");
  const std::string cmd = std::string(KB_EXAMPLES_NVCC) +
                          " -shared -Xcompiler -fPIC -arch=sm_90a -O2 -cudart shared -I" +
                          quote(fs::path(KB_SOURCE_DIR) / "include") + " -o " + quote(so) + " " +
                          quote(src);
  const CommandResult r = run(cmd);
  ASSERT_EQ(r.status, 0) << cmd << "\n" << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;

  const Symbols syms = dynamic_symbols(so);
  std::set<std::string> kb_exports;
  for (const std::string& s : syms.defined) {
    if (s == "_init" || s == "_fini")
      continue;
    EXPECT_EQ(s.rfind("kb_", 0), 0u) << "unexpected export " << s;
    kb_exports.insert(s);
  }
  EXPECT_EQ(kb_exports, e.exports);

  for (const std::string& s : syms.undefined) {
    EXPECT_EQ(s.find("cublas"), std::string::npos) << s;
    EXPECT_EQ(s.find("cudnn"), std::string::npos) << s;
    if (s.rfind("cuda", 0) == 0) {
      EXPECT_TRUE(e.cuda_uses.count(s) == 1) << "forbidden or unexpected runtime call " << s;
    }
  }
  EXPECT_EQ(syms.undefined.count("cudaGetLastError"), 1u) << "launches must be checked";
}

TEST(ExamplesTree, EveryFolderHasPlainTunedAndReadme) {
  std::set<std::string> listed;
  for (const Example& e : examples())
    listed.insert(e.stem);
  std::set<std::string> found;
  for (const auto& entry : fs::directory_iterator(examples_dir()))
    if (entry.is_directory())
      found.insert(entry.path().filename().string());
  EXPECT_EQ(found, listed);
  for (const std::string& stem : listed) {
    EXPECT_TRUE(fs::exists(examples_dir() / stem / "plain.cu")) << stem;
    EXPECT_TRUE(fs::exists(examples_dir() / stem / "tuned.cu")) << stem;
    EXPECT_TRUE(fs::exists(examples_dir() / stem / "README.md")) << stem;
  }
}

std::string example_name(const ::testing::TestParamInfo<Example>& info) {
  return info.param.stem + "_" + info.param.kind;
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleKernel, ::testing::ValuesIn(examples()), example_name);

} // namespace
