// `kbench version`: prints the harness version and build commit.
#include <fmt/format.h>

#include "commands.hpp"
#include "core.hpp"

namespace {
const kb::cli::CommandRegistrar k_version(900, [](CLI::App& app,
                                                  std::function<void(int)> set_exit) {
  auto* cmd = app.add_subcommand("version", "Print the kbench version and build commit");
  cmd->callback([set_exit] {
    fmt::print("kbench {}\n", kb::version_string());
    set_exit(0);
  });
});
} // namespace
