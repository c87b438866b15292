// HTML renderer: one self-contained page (inline CSS and SVG charts, no scripts, no external
// assets) with every string from the data escaped. The page fits a laptop screen: wide tables
// scroll inside their own box, the leaderboard shows its key columns and folds the rest, and the
// charts scale down with the window.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

constexpr const char* k_palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// Data text shown in a chart: cut to `n` code points, escaped.
std::string chart_text(std::string_view s, std::size_t n = 40) {
  std::string out;
  std::size_t points = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++points > n) {
      out += "...";
      break;
    }
    out += s[i];
  }
  return html_escape(out);
}

std::string svg_open(const char* id, int w, int h, std::string_view title) {
  return fmt::format(
      "<svg class=\"chart\" id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>\n",
      id, w, h, w, h, html_escape(title));
}

std::string html_table(const Table& t, const std::string& cls = "") {
  std::string out = "<div class=\"scroll\"><table" + (cls.empty() ? "" : " class=\"" + cls + "\"") +
                    "><thead><tr>";
  for (const auto& h : t.front())
    out += "<th>" + html_escape(h) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (std::size_t r = 1; r < t.size(); ++r) {
    out += cls == "review" ? "<tr class=\"review\">" : "<tr>";
    for (const auto& c : t[r])
      out += "<td>" + c + "</td>";
    out += "</tr>\n";
  }
  return out + "</tbody></table></div>\n";
}

// The leaderboard rows the charts plot: one per model (all levels, or the one level chosen).
std::vector<const LeaderboardRow*> chart_rows(const Report& r) {
  std::vector<const LeaderboardRow*> rows;
  for (const auto& row : r.leaderboard)
    if (!row.level || r.options.level)
      rows.push_back(&row);
  return rows;
}

// A colour per model label, in leaderboard order.
std::map<std::string, const char*> model_colours(const Report& r) {
  std::map<std::string, const char*> out;
  for (const auto& row : r.leaderboard)
    if (!out.count(row.model))
      out[row.model] = k_palette[out.size() % std::size(k_palette)];
  return out;
}

std::string legend(const std::vector<std::string>& models,
                   const std::map<std::string, const char*>& colours, int x, int y) {
  std::string out;
  for (std::size_t i = 0; i < models.size(); ++i) {
    int yy = y + static_cast<int>(i) * 16;
    out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text "
                       "class=\"legend\" x=\"{}\" y=\"{}\">{}</text>\n",
                       x, yy - 9, colours.at(models[i]), x + 14, yy, chart_text(models[i], 32));
  }
  return out;
}

// KernelBench's plot: fast_p (share of problems whose best correct kernel has speedup > p)
// against p, one step curve per model.
std::string fast_p_chart(const Report& r) {
  auto rows = chart_rows(r);
  std::erase_if(rows, [](const auto* row) { return !row->evaluated(); });
  if (rows.empty())
    return "<p class=\"note\">No evaluated attempts: no fast_p curve.</p>\n";
  double max_s = 0.0;
  for (const auto* row : rows)
    for (const auto& s : row->best_speedups)
      if (s)
        max_s = std::max(max_s, *s);
  const double p_max = std::clamp(std::ceil(max_s * 1.1 * 2.0) / 2.0, 2.0, 10.0);
  const int x0 = 50, y0 = 20, pw = 560, ph = 260, w = 900, h = ph + 70;
  auto X = [&](double p) { return x0 + std::min(p, p_max) / p_max * pw; };
  auto Y = [&](double f) { return y0 + (1.0 - f) * ph; };
  auto colours = model_colours(r);
  std::string out = svg_open("fastp-chart", w, h, "fast_p against p per model");
  // Axes, grid and ticks.
  for (int i = 0; i <= 4; ++i) {
    double f = i / 4.0;
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                       "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>\n",
                       x0, x0 + pw, Y(f), Y(f), x0 - 4, Y(f) + 4, f * 100.0);
  }
  for (double p = 0.0; p <= p_max + 1e-9; p += p_max > 4 ? 1.0 : 0.5)
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", X(p),
                       y0 + ph + 16, p);
  out += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#333\" "
                     "stroke-dasharray=\"4 3\"/>",
                     X(1.0), y0, y0 + ph);
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">p (speedup threshold)</text>"
                     "<text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" "
                     "text-anchor=\"middle\">fast_p</text>\n",
                     x0 + pw / 2, y0 + ph + 34, y0 + ph / 2, y0 + ph / 2);
  std::vector<std::string> models;
  for (const auto* row : rows) {
    std::vector<double> s;
    for (const auto& v : row->best_speedups)
      if (v)
        s.push_back(*v);
    std::sort(s.begin(), s.end());
    const double n = static_cast<double>(row->best_speedups.size());
    // fast_p(p) = (#s > p) / n: a step down at each speedup.
    std::size_t above = s.size();
    std::string pts = fmt::format("{:.1f},{:.1f} ", X(0.0), Y(static_cast<double>(above) / n));
    for (std::size_t i = 0; i < s.size() && s[i] < p_max; ++i) {
      pts += fmt::format("{:.1f},{:.1f} ", X(s[i]), Y(static_cast<double>(above) / n));
      --above;
      pts += fmt::format("{:.1f},{:.1f} ", X(s[i]), Y(static_cast<double>(above) / n));
    }
    pts += fmt::format("{:.1f},{:.1f}", X(p_max), Y(static_cast<double>(above) / n));
    out += fmt::format("<polyline class=\"fastp\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
                       "points=\"{}\"><title>{}</title></polyline>\n",
                       colours.at(row->model), pts, html_escape(row->model));
    models.push_back(row->model);
  }
  out += legend(models, colours, x0 + pw + 20, y0 + 10);
  return out + "</svg>\n";
}

// Score (fast_1, else problems solved) against what the model cost: dollars, or tokens when no
// call had a price.
std::string cost_chart(const Report& r) {
  auto rows = chart_rows(r);
  std::erase_if(rows, [](const auto* row) { return !row->evaluated(); });
  if (rows.empty())
    return "<p class=\"note\">No evaluated attempts: no score-against-cost chart.</p>\n";
  bool dollars =
      std::any_of(rows.begin(), rows.end(), [](const auto* x) { return x->cost_usd > 0; });
  auto spent = [&](const LeaderboardRow* x) {
    return dollars ? x->cost_usd : static_cast<double>(x->tokens_in + x->tokens_out);
  };
  auto score = [&](const LeaderboardRow* x) {
    for (const auto& [p, v] : x->fast_p)
      if (p == 1.0)
        return v;
    return x->problems_solved.value_or(0.0);
  };
  bool has_fast1 =
      std::any_of(r.options.fast_p_thresholds.begin(), r.options.fast_p_thresholds.end(),
                  [](double p) { return p == 1.0; });
  double max_x = 0.0;
  for (const auto* x : rows)
    max_x = std::max(max_x, spent(x));
  if (max_x <= 0.0)
    max_x = 1.0;
  max_x *= 1.1;
  const int x0 = 60, y0 = 20, pw = 560, ph = 240, w = 900, h = ph + 70;
  auto X = [&](double v) { return x0 + v / max_x * pw; };
  auto Y = [&](double f) { return y0 + (1.0 - f) * ph; };
  auto colours = model_colours(r);
  std::string ylabel = has_fast1 ? "fast_1" : "problems solved";
  std::string xlabel = dollars ? "cost (USD)" : "tokens (in + out)";
  std::string out = svg_open("cost-chart", w, h, ylabel + " against " + xlabel + " per model");
  for (int i = 0; i <= 4; ++i) {
    double f = i / 4.0;
    out += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>"
        "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        x0, x0 + pw, Y(f), Y(f), x0 - 4, Y(f) + 4, f * 100.0, X(max_x * f), y0 + ph + 16,
        dollars ? fmt::format("${:.3g}", max_x * f) : fmt::format("{:.3g}", max_x * f));
  }
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>"
                     "<text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" "
                     "text-anchor=\"middle\">{}</text>\n",
                     x0 + pw / 2, y0 + ph + 34, xlabel, y0 + ph / 2, y0 + ph / 2, ylabel);
  std::vector<std::string> models;
  for (const auto* row : rows) {
    out += fmt::format("<circle class=\"cost-point\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"6\" "
                       "fill=\"{}\"><title>{}: {} {:.1f}%, {} {}</title></circle>\n",
                       X(spent(row)), Y(score(row)), colours.at(row->model),
                       html_escape(row->model), ylabel, score(row) * 100.0,
                       dollars ? fmt::format("${:.4g}", row->cost_usd)
                               : fmt::format("{} tokens", row->tokens_in + row->tokens_out),
                       dollars ? "" : "");
    models.push_back(row->model);
  }
  out += legend(models, colours, x0 + pw + 20, y0 + 10);
  return out + "</svg>\n";
}

// Best correct speedup per problem, one bar per model, with the 1x line (the reference's time).
std::string speedup_chart(const Report& r) {
  std::vector<const PaperRow*> rows;
  for (const auto& p : r.paper)
    if (p.speedup)
      rows.push_back(&p);
  if (rows.empty())
    return "<p class=\"note\">No correct kernels: no speedup chart.</p>\n";
  double max_s = 2.0;
  for (const auto* p : rows)
    max_s = std::max(max_s, *p->speedup);
  max_s = std::min(max_s, 20.0); // longer bars are cut and labelled with their value
  auto colours = model_colours(r);
  const int label_w = 300, bar_w = 480, row_h = 18, w = 900;
  int height = static_cast<int>(rows.size()) * row_h + 40;
  std::string out = svg_open("speedup-chart", w, height,
                             "Speedup per problem over the cuBLAS/cuDNN reference (reference time "
                             "/ kernel time)");
  std::string last_problem;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto* p = rows[i];
    int y = static_cast<int>(i) * row_h + 5;
    double bw = std::min(*p->speedup, max_s) / max_s * bar_w;
    std::string label = p->problem_id == last_problem ? "" : chart_text(p->problem_id, 40);
    last_problem = p->problem_id;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 13,
                       label);
    out += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" "
                       "fill=\"{}\"><title>{} · {}: {:.3g}x</title></rect>",
                       label_w, y + 2, bw, row_h - 4, colours.at(p->model),
                       html_escape(p->problem_id), html_escape(p->model), *p->speedup);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\">{:.3g}x</text>\n", label_w + bw + 4, y + 13,
                       *p->speedup);
  }
  double x1 = label_w + 1.0 / max_s * bar_w;
  out += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"0\" y2=\"{1}\" stroke=\"#333\" "
                     "stroke-dasharray=\"4 3\"/><text x=\"{0:.1f}\" y=\"{2}\" "
                     "text-anchor=\"middle\">1x (reference)</text>\n",
                     x1, height - 22, height - 8);
  std::vector<std::string> models;
  for (const auto& [m, c] : colours)
    models.push_back(m);
  out += legend(models, colours, label_w + bar_w + 50, 20);
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
  std::string out = svg_open("trajectory-chart", w + 260, h,
                             "Best time per round relative to the first correct kernel");
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
                       chart_text(t->problem_id + " · " + t->model, 36));
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
  std::string out = svg_open("roofline-chart", label_w + bar_w + 80, height, "% of roofline");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto* p = rows[i];
    int y = static_cast<int>(i) * row_h + 5;
    double w = std::min(*p->roofline_pct, 100.0) / 100.0 * bar_w;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 14,
                       chart_text(p->problem_id + " · " + p->model, 44));
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
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kbench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em auto;padding:0 1em;max-width:1280px;color:#222}
.scroll{overflow-x:auto;max-width:100%;margin:1em 0}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;max-width:32em;overflow-wrap:anywhere}
td:first-child,th:first-child{text-align:left}
th{background:#f4f4f4;position:sticky;top:0}
tr.review td{background:#fff3cd}
svg.chart{font-size:11px;display:block;margin:1em 0;max-width:100%;height:auto}
.note{color:#555;font-size:13px}
ul.runs li,blockquote{overflow-wrap:anywhere}
details summary{cursor:pointer;margin:.5em 0}
</style></head><body>
<h1>kbench report</h1>
)";
  out += "<ul class=\"runs\">";
  for (const auto& run : r.runs)
    out += "<li>" + html_escape(run_description(run, ", ")) + "</li>";
  if (r.runs.empty())
    out += "<li>no runs in this database</li>";
  out += "</ul>\n";
  for (const auto& n : r.notes)
    out += "<blockquote class=\"note\">" + html_escape(n) + "</blockquote>\n";
  out += "<h2>Leaderboard</h2>\n";
  auto key = leaderboard_table(r, cell, {.key_only = true});
  if (no_rows(key))
    out += "<p class=\"note\">No models with candidates.</p>\n";
  else
    out += html_table(key, "leaderboard") +
           "<details><summary>All leaderboard columns</summary>\n" +
           html_table(leaderboard_table(r, cell), "leaderboard-full") + "</details>\n";
  out += "<p class=\"note\">" + html_escape(speedup_legend(r)) + "</p>\n";
  out += "<h2>fast_p per model</h2>\n" + fast_p_chart(r);
  out += "<h2>Score against cost</h2>\n" + cost_chart(r);
  out += "<h2>Speedup per problem</h2>\n" + speedup_chart(r);
  out += "<h2>Best correct kernel per problem</h2>\n";
  auto paper = paper_table(r, cell);
  out += no_rows(paper) ? "<p class=\"note\">No problems with candidates.</p>\n"
                        : html_table(paper, "paper");
  out += "<h2>Search trajectories</h2>\n" + trajectory_chart(r);
  auto traj = trajectory_table(r, cell);
  if (!no_rows(traj))
    out += "<details><summary>Trajectory table</summary>\n" + html_table(traj, "trajectories") +
           "</details>\n";
  out += "<h2>Roofline</h2>\n" + roofline_chart(r);
  out += "<h2>Held for review</h2>\n";
  out += r.review.empty() ? "<p>None.</p>\n" : html_table(review_table(r, cell), "review");
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
