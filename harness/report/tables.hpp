// Presentation-neutral tables shared by the renderers, cell formatting per target, and the
// renderer interface every output format implements.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "report.hpp"
#include "report_internal.hpp"

namespace kb::report {

using Table = std::vector<std::vector<std::string>>; // first row: header
// Escapes data text for the target format.
using CellFn = std::function<std::string(std::string_view)>;

std::string num(const std::optional<double>& v, int digits = 3);
std::string pct(double v);
std::string pct_opt(const std::optional<double>& v);
std::string ms(const std::optional<double>& v);

// Markdown cell: no line breaks, pipes escaped, HTML inert.
std::string md_cell(std::string_view s);
// Terminal cell: control characters shown as spaces so model text cannot move the cursor.
std::string term_cell(std::string_view s, std::size_t max_width = 60);

std::string render_terminal_table(const Table& t);
std::string render_markdown_table(const Table& t);
std::string render_csv_table(const Table& t);

struct TableStyle {
  bool raw = false;      // plain numbers (no %, no x suffix), missing values as empty cells
  bool key_only = false; // only the key columns (leaderboard)
};

Table leaderboard_table(const Report& r, const CellFn& cell, TableStyle style = {});
Table paper_table(const Report& r, const CellFn& cell, TableStyle style = {});
Table trajectory_table(const Report& r, const CellFn& cell);
Table review_table(const Report& r, const CellFn& cell);
Table compare_table(const CompareResult& r, const CellFn& cell);
std::string compare_summary(const CompareResult& r);
// "run 1: <GPU><sep>kbench <version><sep>protocol <p><sep><status>", with unknown parts named.
std::string run_description(const RunSummary& run, std::string_view sep);
// What speedup, geomean and fast_p mean, one paragraph.
std::string speedup_legend(const Report& r);
// True when a table has no data rows.
inline bool no_rows(const Table& t) {
  return t.size() < 2;
}

// One output format: a report and a comparison rendered to text.
class Renderer {
public:
  virtual ~Renderer() = default;
  virtual std::string report(const Report& r) const = 0;
  virtual std::string compare(const CompareResult& r) const = 0;
};

const Renderer& terminal_renderer();
const Renderer& markdown_renderer();
const Renderer& html_renderer();
const Renderer& csv_renderer();
const Renderer& json_renderer();

} // namespace kb::report
