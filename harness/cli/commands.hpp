// Subcommand registry of the kbench CLI: each cmd_*.cpp registers its subcommands at start-up.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace kb::cli {

// Called with the top-level app; adds a subcommand and its callback. The callback returns the
// process exit code.
using Registration = std::function<void(CLI::App& app, std::function<void(int)> set_exit)>;

struct CommandRegistrar {
  CommandRegistrar(int order, Registration reg);
};

// The process's command line, joined with spaces (recorded with runs). Set by main().
const std::string& command_line();
void set_command_line(int argc, char** argv);

// Registered commands, sorted by order.
std::vector<std::pair<int, Registration>>& registry();

} // namespace kb::cli
