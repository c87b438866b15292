// CSV renderer: one table per CSV text (leaderboard, paper table, trajectories, review list), one
// header row each, formula cells neutralised.
#include "tables.hpp"

namespace kb::report {

namespace {} // namespace

std::vector<std::pair<std::string, std::string>> render_csv_tables(const Report& r) {
  CellFn cell = [](std::string_view s) { return std::string(s); };
  return {{"leaderboard", render_csv_table(leaderboard_table(r, cell, {.raw = true}))},
          {"paper", render_csv_table(paper_table(r, cell, {.raw = true}))},
          {"trajectories", render_csv_table(trajectory_table(r, cell))},
          {"review", render_csv_table(review_table(r, cell))}};
}

namespace {

class CsvRenderer final : public Renderer {
public:
  // One table per CSV text: the leaderboard (render_csv_tables has the others).
  std::string report(const Report& r) const override { return render_csv_tables(r).front().second; }
  // Comparisons have no CSV form: the terminal text.
  std::string compare(const CompareResult& r) const override {
    return terminal_renderer().compare(r);
  }
};

} // namespace

const Renderer& csv_renderer() {
  static const CsvRenderer r;
  return r;
}

} // namespace kb::report
