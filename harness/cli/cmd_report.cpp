// `kbench report` (leaderboard, paper table, trajectories in five formats; CSV one table per file)
// and `kbench compare` (regression verdicts for CI: exit 1 on a significant regression, 0
// otherwise, 2 on bad input).
#include <charconv>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "commands.hpp"
#include "core.hpp"
#include "report.hpp"
#include "store.hpp"

namespace {

kb::store::Store open_for_report(const std::string& path) {
  {
    kb::store::Store ro(path, {.read_only = true});
    if (ro.schema_version() == kb::store::k_schema_version)
      return ro;
  }
  return kb::store::Store(path, {.create = false}); // older schema: migrate in place
}

// A check for a positive finite number that names the rule, not the double range.
CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0.0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || !(v > 0.0))
          return "must be a positive number, got '" + s + "'";
        return {};
      },
      "POSITIVE");
}

void emit(const std::string& out_path, const std::string& text) {
  if (out_path.empty() || out_path == "-")
    fmt::print("{}", text);
  else
    kb::write_file_atomic(out_path, text);
}

const kb::cli::CommandRegistrar k_report_commands(310, [](CLI::App& app,
                                                          std::function<void(int)> set_exit) {
  {
    auto* cmd = app.add_subcommand(
        "report", "Leaderboard, paper table and search trajectories from a results database");
    auto db = std::make_shared<std::string>("results/kbench.db");
    auto format = std::make_shared<std::string>("terminal");
    auto out = std::make_shared<std::string>();
    auto opts = std::make_shared<kb::report::ReportOptions>();
    auto level = std::make_shared<int>(0);
    cmd->add_option("--db", *db, "Results database")->capture_default_str();
    cmd->add_option("--format", *format, "terminal, markdown, html, csv or json")
        ->check(CLI::IsMember({"terminal", "text", "markdown", "md", "html", "csv", "json"}))
        ->capture_default_str();
    cmd->add_option("-o,--output", *out, "Output file (default: stdout)");
    cmd->add_option("--run", opts->run_ids, "Only these runs (repeatable)");
    cmd->add_option("--level", *level, "Only this level")->check(CLI::Range(1, 9));
    cmd->add_option("--review-speedup", opts->review_speedup,
                    "Hold correct kernels faster than this speedup for review")
        ->capture_default_str()
        ->check(positive_number());
    cmd->add_flag("--percent", opts->speedup_percent,
                  "Show speedups as % of the reference's speed (484% = 4.84x), as the seed "
                  "article's table does (text formats; CSV and JSON keep ratios)");
    auto table = std::make_shared<std::string>("leaderboard");
    cmd->add_option("--table", *table,
                    "CSV only: the table to write (leaderboard, paper, trajectories, review), or "
                    "'all' to write each to <DIR>/<table>.csv with -o DIR")
        ->check(CLI::IsMember({"leaderboard", "paper", "trajectories", "review", "all"}))
        ->capture_default_str();
    cmd->callback([=] {
      if (*level > 0)
        opts->level = *level;
      auto f = *kb::report::parse_format(*format);
      if (f != kb::report::Format::csv && *table != "leaderboard")
        throw kb::Error("--table applies to --format csv only");
      if (*table == "all" && (out->empty() || *out == "-"))
        throw kb::Error("--table all needs -o DIR: one CSV file per table is written there");
      auto s = open_for_report(*db);
      auto rep = kb::report::build_report(s, *opts);
      if (f != kb::report::Format::csv) {
        emit(*out, kb::report::render(rep, f));
      } else {
        // One table per CSV file.
        for (const auto& [name, csv] : kb::report::render_csv_tables(rep)) {
          if (*table == "all") {
            std::filesystem::create_directories(*out);
            kb::write_file_atomic((std::filesystem::path(*out) / (name + ".csv")).string(), csv);
          } else if (name == *table) {
            emit(*out, csv);
          }
        }
      }
      set_exit(0);
    });
  }
  {
    auto* cmd = app.add_subcommand("compare",
                                   "Regression verdicts between two results databases (exit 1 on a "
                                   "significant regression beyond the threshold, 2 on bad input)");
    auto base = std::make_shared<std::string>();
    auto head = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>("terminal");
    auto out = std::make_shared<std::string>();
    auto opts = std::make_shared<kb::report::CompareOptions>();
    cmd->add_option("base", *base, "Baseline database")->required();
    cmd->add_option("head", *head, "Database to judge")->required();
    cmd->add_option("--threshold", opts->threshold, "Relative time change that counts (0.05 = 5%)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 10.0));
    cmd->add_option("--alpha", opts->alpha, "Significance level of the Mann-Whitney U test")
        ->capture_default_str()
        ->check(CLI::Range(1e-12, 0.5));
    cmd->add_option("--base-run", opts->base_runs, "Only these runs of BASE");
    cmd->add_option("--head-run", opts->head_runs, "Only these runs of HEAD");
    cmd->add_option("--format", *format, "terminal, markdown or json")
        ->check(CLI::IsMember({"terminal", "text", "markdown", "md", "json"}))
        ->capture_default_str();
    cmd->add_option("-o,--output", *out, "Output file (default: stdout)");
    cmd->callback([=] {
      auto b = open_for_report(*base);
      auto h = open_for_report(*head);
      for (auto id : opts->base_runs)
        if (!b.run(id))
          throw kb::Error(fmt::format("{}: no run {}", *base, id));
      for (auto id : opts->head_runs)
        if (!h.run(id))
          throw kb::Error(fmt::format("{}: no run {}", *head, id));
      auto r = kb::report::compare(b, h, *opts);
      emit(*out, kb::report::render_compare(r, *kb::report::parse_format(*format)));
      set_exit(kb::report::compare_exit_code(r));
    });
  }
});

} // namespace
