// Markdown renderer: GitHub tables for job summaries and PR comments, data text made inert.
#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

std::string section(const std::string& title, const Table& t, const std::string& empty_note) {
  return "\n## " + title + "\n\n" +
         (no_rows(t) ? "_" + empty_note + "_\n" : render_markdown_table(t));
}

std::string render_markdown(const Report& r) {
  CellFn cell = [](std::string_view s) { return md_cell(s); };
  std::string out = "# kbench report\n\n";
  for (const auto& run : r.runs)
    out += "- " + md_cell(run_description(run, ", ")) + "\n";
  if (r.runs.empty())
    out += "- no runs in this database\n";
  for (const auto& n : r.notes)
    out += "\n> " + md_cell(n) + "\n";
  out += section("Leaderboard", leaderboard_table(r, cell), "No models with candidates.");
  out += "\n" + speedup_legend(r) + "\n";
  out += section("Best correct kernel per problem (speedup = reference time / kernel time)",
                 paper_table(r, cell), "No problems with candidates.");
  out += section("Search trajectories", trajectory_table(r, cell), "No searches.");
  if (!r.review.empty())
    out += section("Held for review (not ranked)", review_table(r, cell), "");
  return out;
}

class MarkdownRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_markdown(r); }
  std::string compare(const CompareResult& r) const override {
    std::string verdict = r.regressions ? "**Regression**" : "**No significant regression**";
    return fmt::format("## kbench compare: {}\n\n{}\n\nBase `{}`, head `{}`.\n\n{}", verdict,
                       compare_summary(r), md_cell(r.base_path), md_cell(r.head_path),
                       render_markdown_table(compare_table(r, md_cell)));
  }
};

} // namespace

const Renderer& markdown_renderer() {
  static const MarkdownRenderer r;
  return r;
}

} // namespace kb::report
