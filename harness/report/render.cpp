// Renders reports and comparisons: terminal tables, Markdown, self-contained HTML, CSV, JSON.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report.hpp"
#include "report_internal.hpp"

namespace kb::report {

using nlohmann::json;

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos)
    return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    case '\'':
      out += "&#39;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::optional<Format> parse_format(std::string_view name) {
  if (name == "terminal" || name == "text")
    return Format::terminal;
  if (name == "markdown" || name == "md")
    return Format::markdown;
  if (name == "html")
    return Format::html;
  if (name == "csv")
    return Format::csv;
  if (name == "json")
    return Format::json;
  return std::nullopt;
}

namespace {

using Table = std::vector<std::vector<std::string>>; // first row: header

std::string num(const std::optional<double>& v, int digits = 3) {
  return v ? fmt::format("{:.{}f}", *v, digits) : "-";
}
std::string pct(double v) {
  return fmt::format("{:.1f}%", v * 100.0);
}
std::string pct_opt(const std::optional<double>& v) {
  return v ? fmt::format("{:.1f}%", *v) : "-";
}
std::string ms(const std::optional<double>& v) {
  return v ? fmt::format("{:.4g}", *v) : "-";
}

// Markdown cell: no line breaks, pipes escaped, HTML inert.
std::string md_cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '|':
      out += "\\|";
      break;
    case '\n':
    case '\r':
      out += ' ';
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '&':
      out += "&amp;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

// Terminal cell: control characters shown as spaces so model text cannot move the cursor.
std::string term_cell(std::string_view s) {
  std::string out;
  for (char c : s)
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  if (out.size() > 60)
    out = out.substr(0, 57) + "...";
  return out;
}

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80; // count UTF-8 code points, not bytes
  return n;
}

bool numeric_cell(std::string_view s) {
  if (s.empty() || s == "-")
    return true;
  return s.find_first_not_of("0123456789.+-%e/x ") == std::string_view::npos ||
         s.ends_with(" held");
}

// Columns whose every data cell is a number (or "-") are right-aligned.
std::vector<bool> numeric_columns(const Table& t) {
  std::vector<bool> num(t.front().size(), true);
  for (std::size_t r = 1; r < t.size(); ++r)
    for (std::size_t i = 0; i < t[r].size(); ++i)
      num[i] = num[i] && numeric_cell(t[r][i]);
  return num;
}

std::string render_terminal_table(const Table& t) {
  auto right = numeric_columns(t);
  std::vector<std::size_t> w(t.front().size(), 0);
  for (const auto& row : t)
    for (std::size_t i = 0; i < row.size(); ++i)
      w[i] = std::max(w[i], display_width(row[i]));
  std::string out;
  for (std::size_t r = 0; r < t.size(); ++r) {
    std::string line;
    for (std::size_t i = 0; i < t[r].size(); ++i) {
      std::string pad(w[i] - display_width(t[r][i]), ' ');
      line += (i ? "  " : "") + (right[i] ? pad + t[r][i] : t[r][i] + pad);
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
    if (r == 0) {
      std::size_t total = 0;
      for (auto x : w)
        total += x;
      out += std::string(total + 2 * (w.size() - 1), '-') + "\n";
    }
  }
  return out;
}

std::string render_markdown_table(const Table& t) {
  auto right = numeric_columns(t);
  std::string out;
  for (std::size_t r = 0; r < t.size(); ++r) {
    out += "|";
    for (const auto& c : t[r])
      out += " " + c + " |";
    out += "\n";
    if (r == 0) {
      out += "|";
      for (std::size_t i = 0; i < t[r].size(); ++i)
        out += right[i] ? "---:|" : "---|";
      out += "\n";
    }
  }
  return out;
}

std::string render_csv_table(const Table& t) {
  std::string out;
  for (const auto& row : t) {
    for (std::size_t i = 0; i < row.size(); ++i)
      out += (i ? "," : "") + csv_field(row[i]);
    out += "\n";
  }
  return out;
}

// Tables with cell text escaped for the target format by `cell`.
template <class Cell> Table leaderboard_table(const Report& r, Cell cell, bool raw_numbers) {
  Table t;
  std::vector<std::string> h{"model",    "level",   "problems", "attempts",
                             "compiled", "correct", "solved"};
  for (const auto& p : r.options.fast_p_thresholds)
    h.push_back(fmt::format("fast_{}", p));
  h.insert(h.end(), {"geomean", "vs_eager", "vs_compile"});
  for (auto k : r.options.pass_k)
    h.push_back(fmt::format("pass@{}", k));
  h.insert(h.end(), {"tokens_in", "tokens_out", "cost_usd", "wall_s", "review"});
  t.push_back(h);
  for (const auto& row : r.leaderboard) {
    auto rate = [&](double v) { return raw_numbers ? fmt::format("{:.4f}", v) : pct(v); };
    std::vector<std::string> c{cell(row.model),
                               row.level ? std::to_string(*row.level) : "all",
                               std::to_string(row.problems),
                               std::to_string(row.attempts),
                               rate(row.compile_rate),
                               rate(row.correct_rate),
                               rate(row.problems_solved)};
    for (const auto& [p, v] : row.fast_p)
      c.push_back(rate(v));
    c.push_back(num(row.geomean_speedup));
    c.push_back(num(row.geomean_vs_eager));
    c.push_back(num(row.geomean_vs_compile));
    for (auto k : r.options.pass_k) {
      auto it = std::find_if(row.pass_at_k.begin(), row.pass_at_k.end(),
                             [k](const auto& x) { return x.first == k; });
      c.push_back(it == row.pass_at_k.end() ? "-" : rate(it->second));
    }
    c.push_back(std::to_string(row.tokens_in));
    c.push_back(std::to_string(row.tokens_out));
    c.push_back(fmt::format("{:.2f}", row.cost_usd));
    c.push_back(fmt::format("{:.1f}", row.wall_s));
    c.push_back(std::to_string(row.flagged));
    t.push_back(std::move(c));
  }
  return t;
}

template <class Cell> Table paper_table(const Report& r, Cell cell) {
  Table t{{"level", "problem", "model", "outcome", "kernel_ms", "baseline_ms", "% of cuBLAS/cuDNN",
           "% of eager", "% of compile", "roofline", "review", "idea"}};
  for (const auto& p : r.paper)
    t.push_back({std::to_string(p.level), cell(p.problem_id), cell(p.model), p.outcome,
                 ms(p.kernel_ms), ms(p.baseline_ms), pct_opt(p.pct_of_baseline),
                 pct_opt(p.pct_of_eager), pct_opt(p.pct_of_compile), pct_opt(p.roofline_pct),
                 p.held_for_review ? fmt::format("{} held", p.held_for_review) : "", cell(p.idea)});
  return t;
}

template <class Cell> Table trajectory_table(const Report& r, Cell cell) {
  Table t{{"problem", "model", "round", "attempts", "correct", "round_best_ms", "best_ms", "idea"}};
  for (const auto& tr : r.trajectories)
    for (const auto& p : tr.points)
      t.push_back({cell(tr.problem_id), cell(tr.model), std::to_string(p.round),
                   std::to_string(p.attempts), std::to_string(p.correct), ms(p.round_best_ms),
                   ms(p.best_so_far_ms), cell(p.idea)});
  return t;
}

template <class Cell> Table review_table(const Report& r, Cell cell) {
  Table t{{"candidate", "problem", "model", "speedup", "roofline", "reasons"}};
  for (const auto& v : r.review) {
    std::string reasons;
    for (const auto& s : v.reasons)
      reasons += (reasons.empty() ? "" : ", ") + s;
    t.push_back({std::to_string(v.candidate_id), cell(v.problem_id), cell(v.model),
                 fmt::format("{:.2f}", v.speedup), fmt::format("{:.1f}%", v.roofline_pct),
                 reasons});
  }
  return t;
}

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
  auto cell = [](std::string_view s) { return term_cell(s); };
  std::string out = runs_line(r);
  out += "\nLeaderboard\n" + render_terminal_table(leaderboard_table(r, cell, false));
  out += "\nBest correct kernel per problem (% of reference time)\n" +
         render_terminal_table(paper_table(r, cell));
  if (!r.review.empty())
    out += "\nHeld for review (not ranked)\n" + render_terminal_table(review_table(r, cell));
  return out;
}

std::string render_markdown(const Report& r) {
  auto cell = [](std::string_view s) { return md_cell(s); };
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

std::string render_csv(const Report& r) {
  auto cell = [](std::string_view s) { return std::string(s); };
  return render_csv_table(leaderboard_table(r, cell, true)) + "\n" +
         render_csv_table(paper_table(r, cell));
}

json opt_json(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string render_json(const Report& r) {
  json j;
  j["runs"] = json::array();
  for (const auto& run : r.runs)
    j["runs"].push_back({{"id", run.id},
                         {"gpu_name", run.gpu_name},
                         {"kbench_version", run.kbench_version},
                         {"git_commit", run.git_commit},
                         {"protocol", run.protocol},
                         {"status", run.status},
                         {"origin", run.origin}});
  j["leaderboard"] = json::array();
  for (const auto& row : r.leaderboard) {
    json fp = json::object(), pk = json::object();
    for (const auto& [p, v] : row.fast_p)
      fp[fmt::format("{}", p)] = v;
    for (const auto& [k, v] : row.pass_at_k)
      pk[std::to_string(k)] = v;
    j["leaderboard"].push_back({{"model", row.model},
                                {"level", row.level ? json(*row.level) : json("all")},
                                {"problems", row.problems},
                                {"attempts", row.attempts},
                                {"compile_rate", row.compile_rate},
                                {"correct_rate", row.correct_rate},
                                {"problems_solved", row.problems_solved},
                                {"fast_p", fp},
                                {"geomean_speedup", opt_json(row.geomean_speedup)},
                                {"geomean_vs_eager", opt_json(row.geomean_vs_eager)},
                                {"geomean_vs_compile", opt_json(row.geomean_vs_compile)},
                                {"problems_vs_eager", row.problems_vs_eager},
                                {"problems_vs_compile", row.problems_vs_compile},
                                {"pass_at_k", pk},
                                {"tokens_in", row.tokens_in},
                                {"tokens_out", row.tokens_out},
                                {"cost_usd", row.cost_usd},
                                {"wall_s", row.wall_s},
                                {"held_for_review", row.flagged}});
  }
  j["paper"] = json::array();
  for (const auto& p : r.paper)
    j["paper"].push_back({{"problem_id", p.problem_id},
                          {"level", p.level},
                          {"model", p.model},
                          {"outcome", p.outcome},
                          {"candidate_id", p.candidate_id ? json(*p.candidate_id) : json(nullptr)},
                          {"kernel_ms", opt_json(p.kernel_ms)},
                          {"baseline_ms", opt_json(p.baseline_ms)},
                          {"pct_of_baseline", opt_json(p.pct_of_baseline)},
                          {"eager_ms", opt_json(p.eager_ms)},
                          {"pct_of_eager", opt_json(p.pct_of_eager)},
                          {"compile_ms", opt_json(p.compile_ms)},
                          {"pct_of_compile", opt_json(p.pct_of_compile)},
                          {"roofline_pct", opt_json(p.roofline_pct)},
                          {"held_for_review", p.held_for_review},
                          {"idea", p.idea}});
  j["trajectories"] = json::array();
  for (const auto& t : r.trajectories) {
    json pts = json::array();
    for (const auto& p : t.points)
      pts.push_back({{"round", p.round},
                     {"attempts", p.attempts},
                     {"correct", p.correct},
                     {"round_best_ms", opt_json(p.round_best_ms)},
                     {"best_so_far_ms", opt_json(p.best_so_far_ms)},
                     {"candidate_id", p.candidate_id ? json(*p.candidate_id) : json(nullptr)},
                     {"idea", p.idea}});
    j["trajectories"].push_back(
        {{"problem_id", t.problem_id}, {"model", t.model}, {"points", pts}});
  }
  j["review"] = json::array();
  for (const auto& v : r.review)
    j["review"].push_back({{"candidate_id", v.candidate_id},
                           {"problem_id", v.problem_id},
                           {"model", v.model},
                           {"speedup", v.speedup},
                           {"roofline_pct", v.roofline_pct},
                           {"reasons", v.reasons}});
  return j.dump(2) + "\n";
}

// --- HTML ---

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
  auto cell = [](std::string_view s) { return html_escape(s); };
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

} // namespace

std::string render(const Report& r, Format f) {
  switch (f) {
  case Format::terminal:
    return render_terminal(r);
  case Format::markdown:
    return render_markdown(r);
  case Format::html:
    return render_html(r);
  case Format::csv:
    return render_csv(r);
  case Format::json:
    return render_json(r);
  }
  return {};
}

// --- compare ---

std::string render_compare(const CompareResult& r, Format f) {
  if (f == Format::json) {
    json rows = json::array();
    for (const auto& row : r.rows) {
      json j{{"problem_id", row.problem_id},         {"model", row.model},
             {"verdict", verdict_name(row.verdict)}, {"base_ms", opt_json(row.base_ms)},
             {"head_ms", opt_json(row.head_ms)},     {"change", opt_json(row.change)},
             {"base_samples", row.base_samples},     {"head_samples", row.head_samples}};
      if (row.test)
        j["test"] = {{"u", row.test->u},
                     {"z", row.test->z},
                     {"p_value", row.test->p_value},
                     {"exact", row.test->exact}};
      rows.push_back(std::move(j));
    }
    json j{{"base", r.base_path},
           {"head", r.head_path},
           {"threshold", r.options.threshold},
           {"alpha", r.options.alpha},
           {"regressions", r.regressions},
           {"improvements", r.improvements},
           {"new_failures", r.new_failures},
           {"fixed", r.fixed},
           {"missing", r.missing},
           {"exit_code", compare_exit_code(r)},
           {"rows", rows}};
    return j.dump(2) + "\n";
  }
  bool md = f == Format::markdown;
  auto cell = [md](std::string_view s) { return md ? md_cell(s) : term_cell(s); };
  Table t{{"problem", "model", "verdict", "base_ms", "head_ms", "change", "p_value", "n"}};
  for (const auto& row : r.rows)
    t.push_back({cell(row.problem_id), cell(row.model), std::string(verdict_name(row.verdict)),
                 ms(row.base_ms), ms(row.head_ms),
                 row.change ? fmt::format("{:+.1f}%", *row.change * 100.0) : "-",
                 row.test ? fmt::format("{:.3g}", row.test->p_value) : "-",
                 row.test ? fmt::format("{}/{}", row.base_samples, row.head_samples) : "-"});
  std::string summary =
      fmt::format("{} regression(s), {} improvement(s), {} new failure(s), {} fixed, {} missing "
                  "(threshold {:.1f}%, alpha {})",
                  r.regressions, r.improvements, r.new_failures, r.fixed, r.missing,
                  r.options.threshold * 100.0, r.options.alpha);
  if (md) {
    std::string verdict = r.regressions ? "**Regression**" : "**No significant regression**";
    return fmt::format("## kbench compare: {}\n\n{}\n\nBase `{}`, head `{}`.\n\n{}", verdict,
                       summary, md_cell(r.base_path), md_cell(r.head_path),
                       render_markdown_table(t));
  }
  return fmt::format("base {}\nhead {}\n{}\n\n{}", r.base_path, r.head_path, summary,
                     render_terminal_table(t));
}

} // namespace kb::report
