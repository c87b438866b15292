// Terminal renderer: aligned plain-text tables, control characters removed from data text.
#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

std::string runs_line(const Report& r) {
  std::string out;
  for (const auto& run : r.runs)
    out += fmt::format("run {}: {} | kbench {} ({}) | protocol {} | {}{}\n", run.id,
                       run.gpu_name.empty() ? "unknown GPU" : run.gpu_name, run.kbench_version,
                       run.git_commit, run.protocol, run.status,
                       run.origin.empty() ? "" : " | from " + run.origin);
  return out;
}

std::string render_terminal(const Report& r) {
  CellFn cell = [](std::string_view s) { return term_cell(s); };
  std::string out = runs_line(r);
  out += "\nLeaderboard\n" + render_terminal_table(leaderboard_table(r, cell, false));
  out += "\nBest correct kernel per problem (% of reference time)\n" +
         render_terminal_table(paper_table(r, cell));
  if (!r.review.empty())
    out += "\nHeld for review (not ranked)\n" + render_terminal_table(review_table(r, cell));
  return out;
}

class TerminalRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_terminal(r); }
  std::string compare(const CompareResult& r) const override {
    return fmt::format("base {}\nhead {}\n{}\n\n{}", r.base_path, r.head_path, compare_summary(r),
                       render_terminal_table(compare_table(r, term_cell)));
  }
};

} // namespace

const Renderer& terminal_renderer() {
  static const TerminalRenderer r;
  return r;
}

} // namespace kb::report
