// Entry point of the kbench CLI: parses flags, dispatches to subcommands, maps errors to exit
// codes.
#include <cstdio>
#include <exception>

#include <algorithm>
#include <string_view>
#include <vector>

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

namespace {

// The closest of `names` to `word` when it is close enough to be a typo.
std::string closest(std::string_view word, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 4) + 1;
  for (const auto& n : names) {
    const std::size_t d = kb::edit_distance(word, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const auto* sub :
       app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); }))
    out.push_back(sub->get_name());
  return out;
}

std::vector<std::string> long_flags(const CLI::App& app) {
  std::vector<std::string> out;
  for (const auto* o : app.get_options())
    for (const auto& l : o->get_lnames())
      out.push_back("--" + l);
  return out;
}

// A CLI parse error as one message with a hint, for exit status 2.
std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e, int argc,
                                 char** argv) {
  // The subcommand the user named, if any.
  const CLI::App* sub = nullptr;
  std::string first;
  int first_at = argc;
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') {
      first = argv[i];
      first_at = i;
      break;
    }
  const auto names = subcommand_names(app);
  if (!first.empty()) {
    try {
      sub = app.get_subcommand(first);
    } catch (const CLI::OptionNotFound&) {
      sub = nullptr;
    }
  }
  if (!first.empty() && !sub) {
    std::string msg = fmt::format("unknown command '{}'", first);
    if (auto c = closest(first, names); !c.empty())
      msg += fmt::format(" (did you mean '{}'?)", c);
    return msg + fmt::format("; commands: {} (kbench --help)", fmt::join(names, ", "));
  }
  if (!sub)
    return fmt::format("a command is required: {} (kbench --help)", fmt::join(names, ", "));
  // A nested command ("slurm merge") is named in full.
  std::string name = sub->get_name();
  for (int i = first_at + 1; i < argc; ++i) {
    if (argv[i][0] == '-')
      continue;
    const auto nested = sub->get_subcommands(
        [&](const CLI::App* a) { return !a->get_group().empty() && a->get_name() == argv[i]; });
    if (nested.empty())
      break;
    sub = nested.front();
    name += " " + sub->get_name();
  }
  std::string msg = fmt::format("{}: {}", name, e.what());
  // Unknown flags: suggest the closest flag of that command.
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0)
      continue;
    a = a.substr(0, a.find('='));
    const auto flags = long_flags(*sub);
    if (std::find(flags.begin(), flags.end(), a) != flags.end())
      continue;
    if (auto c = closest(a, flags); !c.empty())
      msg += fmt::format(" (did you mean {}?)", c);
  }
  return msg + fmt::format(" (kbench {} --help)", name);
}

} // namespace

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
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One contract for every command: bad input is exit status 2 (docs/cli.md).
    fmt::print(stderr, "kbench: error: {}\n", describe_parse_error(app, e, argc, argv));
    return 2;
  } catch (const kb::Error& e) {
    fmt::print(stderr, "kbench: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "kbench: internal error: {}\n", e.what());
    return 3;
  }
  return exit_code;
}
