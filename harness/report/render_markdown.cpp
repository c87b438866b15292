// Markdown renderer: GitHub tables for job summaries and PR comments, data text made inert.
#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

std::string render_markdown(const Report& r) {
  CellFn cell = [](std::string_view s) { return md_cell(s); };
  std::string out = "# kbench report\n\n";
  for (const auto& run : r.runs)
    out += fmt::format("- run {}: {}, kbench {} ({}), protocol {}, {}\n", run.id,
                       md_cell(run.gpu_name), md_cell(run.kbench_version), md_cell(run.git_commit),
                       md_cell(run.protocol), md_cell(run.status));
  out += "\n## Leaderboard\n\n" + render_markdown_table(leaderboard_table(r, cell, false));
  out += "\n## Best correct kernel per problem\n\n" + render_markdown_table(paper_table(r, cell));
  out += "\n## Search trajectories\n\n" + render_markdown_table(trajectory_table(r, cell));
  if (!r.review.empty())
    out += "\n## Held for review (not ranked)\n\n" + render_markdown_table(review_table(r, cell));
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
