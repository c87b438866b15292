// HTML renderer: one self-contained page (inline CSS and SVG charts, no scripts, no external
// assets) with every string from the data escaped.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

constexpr const char* k_palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string html_table(const Table& t, const std::string& cls = "") {
  std::string out = "<table" + (cls.empty() ? "" : " class=\"" + cls + "\"") + "><thead><tr>";
  for (const auto& h : t.front())
    out += "<th>" + h + "</th>";
  out += "</tr></thead><tbody>\n";
  for (std::size_t r = 1; r < t.size(); ++r) {
    out += "<tr>";
    for (const auto& c : t[r])
      out += "<td>" + c + "</td>";
    out += "</tr>\n";
  }
  return out + "</tbody></table>\n";
}

// Horizontal bars of % of reference per problem × model, with a 100% line.
std::string speedup_chart(const Report& r) {
  std::vector<const PaperRow*> rows;
  for (const auto& p : r.paper)
    if (p.pct_of_baseline)
      rows.push_back(&p);
  if (rows.empty())
    return "<p>No correct kernels to chart.</p>\n";
  double max_pct = 100.0;
  for (const auto* p : rows)
    max_pct = std::max(max_pct, *p->pct_of_baseline);
  const int label_w = 320, bar_w = 420, row_h = 20;
  int height = static_cast<int>(rows.size()) * row_h + 30;
  std::string out = fmt::format(
      "<svg class=\"chart\" id=\"speedup-chart\" xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" role=\"img\"><title>% of cuBLAS/cuDNN reference</title>\n",
      label_w + bar_w + 80, height);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto* p = rows[i];
    int y = static_cast<int>(i) * row_h + 5;
    double w = *p->pct_of_baseline / max_pct * bar_w;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 14,
                       html_escape(p->problem_id + " · " + p->model));
    out += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" "
                       "fill=\"{}\"/>",
                       label_w, y + 2, w, row_h - 4,
                       *p->pct_of_baseline >= 100.0 ? "#2ca02c" : "#d62728");
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\">{:.1f}%</text>\n", label_w + w + 4, y + 14,
                       *p->pct_of_baseline);
  }
  double x100 = label_w + 100.0 / max_pct * bar_w;
  out += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"0\" y2=\"{1}\" stroke=\"#333\" "
                     "stroke-dasharray=\"4 3\"/><text x=\"{0:.1f}\" y=\"{2}\">100%</text>\n",
                     x100, height - 12, height - 2);
  return out + "</svg>\n";
}

// Best-so-far time per round, one line per problem × model, normalised to its first point.
std::string trajectory_chart(const Report& r) {
  std::vector<const Trajectory*> ts;
  int max_round = 0;
  for (const auto& t : r.trajectories) {
    bool any = std::any_of(t.points.begin(), t.points.end(),
                           [](const auto& p) { return p.best_so_far_ms.has_value(); });
    if (any && t.points.size() > 1) {
      ts.push_back(&t);
      max_round = std::max(max_round, t.points.back().round);
    }
  }
  if (ts.empty())
    return "<p>No multi-round searches to chart.</p>\n";
  const int w = 640, h = 260, pad = 40;
  std::string out = fmt::format(
      "<svg class=\"chart\" id=\"trajectory-chart\" xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" role=\"img\"><title>Best time per round relative to the first "
      "correct kernel</title>\n",
      w + 260, h);
  out += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>"
                     "<line x1=\"{0}\" y1=\"10\" x2=\"{0}\" y2=\"{1}\" stroke=\"#333\"/>"
                     "<text x=\"{0}\" y=\"{3}\">round 0</text><text x=\"{2}\" y=\"{3}\" "
                     "text-anchor=\"end\">round {4}</text>\n",
                     pad, h - pad, w, h - pad + 16, max_round);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const auto* t = ts[i];
    std::optional<double> first;
    std::string pts;
    for (const auto& p : t->points) {
      if (!p.best_so_far_ms)
        continue;
      if (!first)
        first = p.best_so_far_ms;
      double rel = *p.best_so_far_ms / *first; // 1 at start, falls as the search improves
      double x = pad + (max_round ? static_cast<double>(p.round) / max_round : 0.0) * (w - pad);
      double y = 10 + (1.0 - rel) * (h - pad - 10) * 0.95;
      pts += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    const char* color = k_palette[i % std::size(k_palette)];
    out += fmt::format("<polyline class=\"trajectory\" fill=\"none\" stroke=\"{}\" "
                       "stroke-width=\"2\" points=\"{}\"/>",
                       color, pts);
    out += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", w + 10,
                       20 + static_cast<int>(i) * 16, color,
                       html_escape(t->problem_id + " · " + t->model));
  }
  return out + "</svg>\n";
}

// Roofline % of each best kernel against the 100% physical floor.
std::string roofline_chart(const Report& r) {
  std::vector<const PaperRow*> rows;
  for (const auto& p : r.paper)
    if (p.roofline_pct && *p.roofline_pct > 0)
      rows.push_back(&p);
  if (rows.empty())
    return "<p>No roofline figures recorded.</p>\n";
  const int label_w = 320, bar_w = 420, row_h = 20;
  int height = static_cast<int>(rows.size()) * row_h + 30;
  std::string out =
      fmt::format("<svg class=\"chart\" id=\"roofline-chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                  "width=\"{}\" height=\"{}\" role=\"img\"><title>% of roofline</title>\n",
                  label_w + bar_w + 80, height);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto* p = rows[i];
    int y = static_cast<int>(i) * row_h + 5;
    double w = std::min(*p->roofline_pct, 100.0) / 100.0 * bar_w;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 14,
                       html_escape(p->problem_id + " · " + p->model));
    out += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" "
                       "fill=\"#1f77b4\"/><text x=\"{:.1f}\" y=\"{}\">{:.1f}%</text>\n",
                       label_w, y + 2, w, row_h - 4, label_w + w + 4, y + 14, *p->roofline_pct);
  }
  out += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"0\" y2=\"{1}\" stroke=\"#333\"/>\n",
                     label_w + bar_w, height - 10);
  return out + "</svg>\n";
}

std::string render_html(const Report& r) {
  CellFn cell = [](std::string_view s) { return html_escape(s); };
  std::string out = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>kbench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.review td{background:#fff3cd}
svg.chart{font-size:11px;display:block;margin:1em 0}
.note{color:#666;font-size:12px}
</style></head><body>
<h1>kbench report</h1>
)";
  out += "<ul class=\"runs\">";
  for (const auto& run : r.runs)
    out +=
        "<li>" +
        html_escape(fmt::format("run {}: {}, kbench {} ({}), protocol {}, {}", run.id, run.gpu_name,
                                run.kbench_version, run.git_commit, run.protocol, run.status)) +
        "</li>";
  out += "</ul>\n<h2>Leaderboard</h2>\n" + html_table(leaderboard_table(r, cell, false));
  out += "<p class=\"note\">fast_p: share of problems whose best correct kernel has speedup &gt; "
         "p (strict). Kernels held for review are not ranked.</p>\n";
  out += "<h2>Speedup over the cuBLAS/cuDNN reference</h2>\n" + speedup_chart(r);
  out += "<h2>Best correct kernel per problem</h2>\n" + html_table(paper_table(r, cell), "paper");
  out += "<h2>Search trajectories</h2>\n" + trajectory_chart(r);
  out += html_table(trajectory_table(r, cell), "trajectories");
  out += "<h2>Roofline</h2>\n" + roofline_chart(r);
  out += "<h2>Held for review</h2>\n";
  if (r.review.empty())
    out += "<p>None.</p>\n";
  else {
    std::string t = html_table(review_table(r, cell), "review");
    // Highlight every review row.
    std::string marked;
    std::size_t pos = 0, at;
    while ((at = t.find("<tr><td>", pos)) != std::string::npos) {
      marked += t.substr(pos, at - pos) + "<tr class=\"review\"><td>";
      pos = at + 8;
    }
    out += marked + t.substr(pos);
  }
  return out + "</body></html>\n";
}

class HtmlRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_html(r); }
  // Comparisons have no HTML form: the terminal text.
  std::string compare(const CompareResult& r) const override {
    return terminal_renderer().compare(r);
  }
};

} // namespace

const Renderer& html_renderer() {
  static const HtmlRenderer r;
  return r;
}

} // namespace kb::report
