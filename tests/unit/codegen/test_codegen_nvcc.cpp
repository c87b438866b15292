// nvcc compiles every naive candidate (the small problems' and every shipped problem's) for the
// device through the harness's own compile path, without a warning, and symbol screening passes
// the object: it imports no vendor library and no forbidden runtime call. Objects are cached by
// content in the build tree, so only changed sources compile again. Skipped without nvcc.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>

#include "catalog.hpp"
#include "codegen.hpp"
#include "codegen_test_util.hpp"
#include "compile.hpp"

namespace {

namespace fs = std::filesystem;

// Small problems as "small:<id>", shipped ones as "shipped:<id>".
std::vector<std::string> all_problems() {
  std::vector<std::string> v;
  for (const auto& id : kb::test::codegen_problem_ids())
    v.push_back("small:" + id);
  for (const auto& p : kb::load_catalog(kb::default_levels_dir()).problems)
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
