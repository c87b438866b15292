// CSV renderer: the leaderboard then the paper table.
#include "tables.hpp"

namespace kb::report {

namespace {

std::string render_csv(const Report& r) {
  CellFn cell = [](std::string_view s) { return std::string(s); };
  return render_csv_table(leaderboard_table(r, cell, true)) + "\n" +
         render_csv_table(paper_table(r, cell));
}

class CsvRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_csv(r); }
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
