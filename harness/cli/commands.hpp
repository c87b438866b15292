// Subcommand registry of the kbench CLI: each cmd_*.cpp registers its subcommands at start-up.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core.hpp"

namespace kb::runner {
struct RunOptions;
enum class Mode;
} // namespace kb::runner

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

// Resolves a problem by id ("l1/softmax_4096x65536") in `levels_dir`, or by path to its YAML file
// (which must lie in a level<N>/ folder). Load errors of other files do not matter here; the
// problem's own error is thrown with its place (kb::InputError), an unknown id as kb::Error.
kb::Problem resolve_problem(const std::string& id_or_path, const std::string& levels_dir);

// The flags of `kbench run` (mode run) or `kbench generate` (mode generate), without the command
// name, checked as those commands check them (`kbench slurm` takes a suite's flags this way).
// Throws kb::InputError naming the flag.
kb::runner::RunOptions parse_suite_flags(kb::runner::Mode mode,
                                         const std::vector<std::string>& args);

} // namespace kb::cli
