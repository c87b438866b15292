// Helpers of the naive candidate tests: the small problems they check (tests/data/ops-torch, one
// per op, and this folder's problems/, fused graphs and f16/bf16 variants), loaded through the
// catalog from a staged level folder.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "catalog.hpp"

namespace kb::test {

inline std::filesystem::path codegen_problem_dirs(int which) {
  return which == 0 ? std::filesystem::path(KB_SOURCE_DIR) / "tests" / "data" / "ops-torch"
                    : std::filesystem::path(KB_CODEGEN_TEST_DIR) / "problems";
}

// Every small problem, staged once per process into <tmp>/level1 and loaded by the catalog.
// Load errors are kept in the catalog for a test to report.
inline const Catalog& codegen_problems() {
  static const Catalog catalog = [] {
    namespace fs = std::filesystem;
    const fs::path root =
        fs::temp_directory_path() / ("kb-codegen-problems-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "level1");
    for (int which = 0; which < 2; ++which)
      for (const auto& e : fs::directory_iterator(codegen_problem_dirs(which)))
        if (e.path().extension() == ".yaml")
          fs::copy_file(e.path(), root / "level1" / e.path().filename(),
                        fs::copy_options::overwrite_existing);
    Catalog c = load_catalog(root.string());
    std::error_code ec;
    fs::remove_all(root, ec);
    return c;
  }();
  return catalog;
}

// Ids of the small problems, for parameterised tests.
inline std::vector<std::string> codegen_problem_ids() {
  std::vector<std::string> ids;
  for (const auto& p : codegen_problems().problems)
    ids.push_back(p.id);
  return ids;
}

// "l1/conv2d" -> "conv2d" (a test name).
inline std::string problem_test_name(const std::string& id) {
  std::string s = id.substr(id.find('/') + 1);
  for (char& c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      c = '_';
  return s;
}

} // namespace kb::test
