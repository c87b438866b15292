// Entry point of the kbench CLI: parses flags, dispatches to subcommands, maps errors to exit
// codes.
#include <cstdio>
#include <exception>

#include <algorithm>

#include <fmt/format.h>

#include "commands.hpp"
#include "core.hpp"

namespace kb::cli {

std::vector<std::pair<int, Registration>>& registry() {
  static std::vector<std::pair<int, Registration>> r;
  return r;
}

namespace {
std::string& command_line_storage() {
  static std::string s;
  return s;
}
} // namespace

const std::string& command_line() {
  return command_line_storage();
}

void set_command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i)
      s += ' ';
    s += argv[i];
  }
  command_line_storage() = s;
}

CommandRegistrar::CommandRegistrar(int order, Registration reg) {
  registry().emplace_back(order, std::move(reg));
}

} // namespace kb::cli

int main(int argc, char** argv) {
  CLI::App app{"kbench: which model writes the fastest correct CUDA kernels, measured so the "
               "number can be trusted"};
  kb::cli::set_command_line(argc, argv);
  app.set_version_flag("--version", kb::version_string());
  app.require_subcommand(1);
  int exit_code = 0;
  auto set_exit = [&exit_code](int code) { exit_code = code; };
  auto& regs = kb::cli::registry();
  std::stable_sort(regs.begin(), regs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, reg] : regs)
    reg(app, set_exit);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kb::Error& e) {
    fmt::print(stderr, "kbench: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "kbench: internal error: {}\n", e.what());
    return 3;
  }
  return exit_code;
}
