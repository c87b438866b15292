// nvcc compiles the naive candidates of every small problem and of the shipped problems beyond
// 32-bit sizes for the device through the harness's own compile path, without a warning, and
// symbol screening passes the object: it imports no vendor library and no forbidden runtime
// call. Objects are cached by content in the build tree, so only changed sources compile again.
// Skipped without nvcc.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>

#include "catalog.hpp"
#include "codegen.hpp"
#include "codegen_test_util.hpp"
#include "compile.hpp"

namespace {

namespace fs = std::filesystem;

// Shipped problems large enough that 32-bit indices or sizes would overflow: a value of more
// than 2^31 elements or a workspace beyond 2^31 bytes. The others generate the same kernels as
// the small problems with other constants (test_codegen checks that every one generates).
bool needs_64_bit(const kb::Problem& p) {
  constexpr int64_t k_int_max = (int64_t{1} << 31) - 1;
  for (const auto& [name, v] : p.values)
    if (kb::numel(v.shape) > k_int_max)
      return true;
  return kb::naive_candidate(p).workspace_bytes > k_int_max;
}

// Every small problem as "small:<id>", and the large shipped ones as "shipped:<id>".
std::vector<std::string> all_problems() {
  std::vector<std::string> v;
  for (const auto& id : kb::test::codegen_problem_ids())
    v.push_back("small:" + id);
  for (const auto& p : kb::load_catalog(kb::default_levels_dir()).problems)
    if (needs_64_bit(p))
      v.push_back("shipped:" + p.id);
  return v;
}

const kb::Problem& problem_of(const std::string& key) {
  static const kb::Catalog shipped = kb::load_catalog(kb::default_levels_dir());
  const std::string id = key.substr(key.find(':') + 1);
  const kb::Problem* p =
      key.starts_with("small:") ? kb::test::codegen_problems().find(id) : shipped.find(id);
  if (p == nullptr)
    throw kb::Error("unknown problem " + key);
  return *p;
}

class NaiveOnNvcc : public ::testing::TestWithParam<std::string> {};

TEST_P(NaiveOnNvcc, CompilesWithoutWarningsAndPassesScreening) {
  if (!fs::exists(KB_CODEGEN_NVCC))
    GTEST_SKIP() << "no nvcc at " << KB_CODEGEN_NVCC;
  const kb::Problem& p = problem_of(GetParam());
  const kb::NaiveCandidate cand = kb::naive_candidate(p);
  kb::CompileOptions opts;
  opts.nvcc = KB_CODEGEN_NVCC;
  opts.include_dir = (fs::path(KB_SOURCE_DIR) / "include").string();
  opts.cache_dir = (fs::path(KB_CODEGEN_CACHE_DIR) / "nvcc").string();
  opts.timeout_s = 600.0;
  const kb::CompileResult r = kb::compile_candidate(cand.source, opts);
  ASSERT_TRUE(r.ok) << p.id << ": " << r.message << "\n" << r.log;
  EXPECT_EQ(r.log.find("warning"), std::string::npos) << p.id << ":\n" << r.log;
  const kb::ScreenReport s = kb::screen_object(r.so_path, {});
  EXPECT_TRUE(s.ok) << p.id << ": " << s.reason;
  EXPECT_TRUE(s.has_forward) << p.id;
  EXPECT_TRUE(s.library_calls.empty()) << p.id;
}

INSTANTIATE_TEST_SUITE_P(Problems, NaiveOnNvcc, ::testing::ValuesIn(all_problems()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return name;
                         });

} // namespace
