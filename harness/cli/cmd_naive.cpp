// `kbench naive-candidate`: writes a problem's naive candidate, a standalone CUDA source under the
// candidate ABI with one simple kernel per op (docs/abi.md, "Naive candidates").
#include <fmt/format.h>

#include "catalog.hpp"
#include "codegen.hpp"
#include "commands.hpp"

namespace {

const kb::cli::CommandRegistrar k_naive(103, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto id = std::make_shared<std::string>();
  auto levels_dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "naive-candidate", "Write a problem's naive candidate: a standalone CUDA source under the "
                         "candidate ABI with one simple, slow kernel per op");
  cmd->add_option("problem", *id, "Problem id (l1/softmax_4096x65536) or YAML path")->required();
  cmd->add_option("-o,--output", *out, "Output file (default: stdout)");
  cmd->add_option("--levels-dir", *levels_dir, "Root holding level1/, level2/, ...");
  cmd->callback([id, levels_dir, out, set_exit] {
    const std::string dir = levels_dir->empty() ? kb::default_levels_dir() : *levels_dir;
    const kb::NaiveCandidate c = kb::naive_candidate(kb::cli::resolve_problem(*id, dir));
    if (out->empty() || *out == "-")
      fmt::print("{}", c.source);
    else
      kb::write_file_atomic(*out, c.source);
    set_exit(0);
  });
});

} // namespace
