// Terminal renderer: aligned plain-text tables, control characters removed from data text.
#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

// A section: its title, then the table, or the reason it is empty.
std::string section(const std::string& title, const Table& t, const std::string& empty_note) {
  return "\n" + title + "\n" + (no_rows(t) ? "  (" + empty_note + ")\n" : render_terminal_table(t));
}

std::string render_terminal(const Report& r) {
  CellFn cell = [](std::string_view s) { return term_cell(s); };
  std::string out;
  for (const auto& run : r.runs)
    out += term_cell(run_description(run, " | "), 400) + "\n";
  if (r.runs.empty())
    out += "no runs in this database\n";
  for (const auto& n : r.notes)
    out += "note: " + term_cell(n, 400) + "\n";
  out += section("Leaderboard", leaderboard_table(r, cell), "no models with candidates");
  out += section("Best correct kernel per problem (speedup = reference time / kernel time)",
                 paper_table(r, cell), "no problems with candidates");
  if (!r.review.empty())
    out += section("Held for review (not ranked)", review_table(r, cell), "");
  out += "\n" + speedup_legend(r) + "\n";
  return out;
}

class TerminalRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_terminal(r); }
  std::string compare(const CompareResult& r) const override {
    return fmt::format(
        "base {}\nhead {}\n{}\n\n{}", r.base_path, r.head_path, compare_summary(r),
        render_terminal_table(compare_table(r, [](std::string_view s) { return term_cell(s); })));
  }
};

} // namespace

const Renderer& terminal_renderer() {
  static const TerminalRenderer r;
  return r;
}

} // namespace kb::report
