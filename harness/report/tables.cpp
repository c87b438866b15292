// Tables shared by the renderers (leaderboard, paper table, trajectories, review list, compare
// verdicts) and the plain-text table layouts.
#include <algorithm>

#include <fmt/format.h>

#include "tables.hpp"

namespace kb::report {

namespace {

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

} // namespace

std::string num(const std::optional<double>& v, int digits) {
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

std::string term_cell(std::string_view s, std::size_t max_width) {
  std::string out;
  for (char c : s)
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  if (out.size() > max_width)
    out = out.substr(0, max_width - 3) + "...";
  return out;
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
      out += (i ? "," : "") + (row[i] == "-" ? std::string() : csv_field(row[i])); // "-": missing
    out += "\n";
  }
  return out;
}

Table leaderboard_table(const Report& r, const CellFn& cell, TableStyle style) {
  const bool raw = style.raw;
  const std::string missing = raw ? "" : "-";
  auto rate = [&](const std::optional<double>& v) {
    return !v ? missing : raw ? fmt::format("{:.4f}", *v) : pct(*v);
  };
  auto speed = [&](const std::optional<double>& v) {
    return !v                          ? missing
           : raw                       ? fmt::format("{:.3f}", *v)
           : r.options.speedup_percent ? fmt::format("{:.0f}%", 100.0 * *v)
                                       : fmt::format("{:.3f}x", *v);
  };
  // Key columns: who, how many problems, how many solved, how fast, how often right, what it cost.
  std::vector<double> fast_cols = r.options.fast_p_thresholds;
  std::vector<int64_t> pass_cols = r.options.pass_k;
  if (style.key_only) {
    std::erase_if(fast_cols, [](double p) { return p != 1.0; });
    if (pass_cols.size() > 1)
      pass_cols.resize(1);
  }
  std::vector<std::string> h{"model", "level", "problems"};
  if (!style.key_only)
    h.insert(h.end(), {"candidates", "attempts"});
  h.insert(h.end(), {"solved", "geomean"});
  for (double p : fast_cols)
    h.push_back(fmt::format("fast_{}", p));
  if (!style.key_only)
    h.push_back("compiled");
  h.push_back("correct");
  if (!style.key_only)
    h.insert(h.end(), {"vs_eager", "vs_compile"});
  for (auto k : pass_cols)
    h.push_back(fmt::format("pass@{}", k));
  h.push_back("cost_usd");
  if (!style.key_only)
    h.insert(h.end(), {"tokens_in", "tokens_out", "wall_s"});
  h.push_back("provider_failures");
  h.push_back("review");
  Table t{h};
  for (const auto& row : r.leaderboard) {
    // A row with nothing evaluated says so once, in its first rate column, instead of 0%.
    const std::string not_evaluated = row.evaluated() ? missing : "not evaluated";
    std::vector<std::string> c{cell(row.model), row.level ? std::to_string(*row.level) : "all",
                               std::to_string(row.problems)};
    if (!style.key_only)
      c.insert(c.end(), {std::to_string(row.candidates), std::to_string(row.attempts)});
    c.push_back(row.evaluated() ? rate(row.problems_solved) : not_evaluated);
    c.push_back(speed(row.geomean_speedup));
    for (double p : fast_cols) {
      auto it = std::find_if(row.fast_p.begin(), row.fast_p.end(),
                             [p](const auto& x) { return x.first == p; });
      c.push_back(it == row.fast_p.end() ? missing : rate(it->second));
    }
    if (!style.key_only)
      c.push_back(rate(row.compile_rate));
    c.push_back(rate(row.correct_rate));
    if (!style.key_only) {
      c.push_back(speed(row.geomean_vs_eager));
      c.push_back(speed(row.geomean_vs_compile));
    }
    for (auto k : pass_cols) {
      auto it = std::find_if(row.pass_at_k.begin(), row.pass_at_k.end(),
                             [k](const auto& x) { return x.first == k; });
      c.push_back(it == row.pass_at_k.end() ? missing : rate(it->second));
    }
    c.push_back(fmt::format("{:.2f}", row.cost_usd));
    if (!style.key_only) {
      c.push_back(std::to_string(row.tokens_in));
      c.push_back(std::to_string(row.tokens_out));
      c.push_back(fmt::format("{:.1f}", row.wall_s));
    }
    c.push_back(std::to_string(row.provider_failures));
    c.push_back(std::to_string(row.flagged));
    t.push_back(std::move(c));
  }
  return t;
}

Table paper_table(const Report& r, const CellFn& cell, TableStyle style) {
  const std::string missing = style.raw ? "" : "-";
  auto speed = [&](const std::optional<double>& v) {
    return !v                          ? missing
           : style.raw                 ? fmt::format("{:.4g}", *v)
           : r.options.speedup_percent ? fmt::format("{:.0f}%", 100.0 * *v)
                                       : fmt::format("{:.3g}x", *v);
  };
  auto time = [&](const std::optional<double>& v) { return v ? ms(v) : missing; };
  Table t{{"level", "problem", "model", "outcome", "kernel_ms", "baseline_ms", "speedup",
           "vs_eager", "vs_compile", "roofline", "review", "idea"}};
  for (const auto& p : r.paper)
    t.push_back({std::to_string(p.level), cell(p.problem_id), cell(p.model), p.outcome,
                 time(p.kernel_ms), time(p.baseline_ms), speed(p.speedup),
                 speed(p.speedup_vs_eager), speed(p.speedup_vs_compile),
                 !p.roofline_pct ? missing
                 : style.raw     ? fmt::format("{:.1f}", *p.roofline_pct)
                                 : pct_opt(p.roofline_pct),
                 p.held_for_review ? fmt::format("{} held", p.held_for_review) : "", cell(p.idea)});
  return t;
}

Table trajectory_table(const Report& r, const CellFn& cell) {
  Table t{{"problem", "model", "round", "attempts", "correct", "round_best_ms", "best_ms", "idea"}};
  for (const auto& tr : r.trajectories)
    for (const auto& p : tr.points)
      t.push_back({cell(tr.problem_id), cell(tr.model), std::to_string(p.round),
                   std::to_string(p.attempts), std::to_string(p.correct), ms(p.round_best_ms),
                   ms(p.best_so_far_ms), cell(p.idea)});
  return t;
}

Table review_table(const Report& r, const CellFn& cell) {
  Table t{{"candidate", "problem", "model", "speedup", "roofline", "reasons"}};
  for (const auto& v : r.review) {
    std::string reasons;
    for (const auto& s : v.reasons)
      reasons += (reasons.empty() ? "" : ", ") + s;
    t.push_back({std::to_string(v.candidate_id), cell(v.problem_id), cell(v.model),
                 fmt::format("{:.2f}x", v.speedup), fmt::format("{:.1f}%", v.roofline_pct),
                 reasons});
  }
  return t;
}

Table compare_table(const CompareResult& r, const CellFn& cell) {
  Table t{{"problem", "model", "verdict", "base_ms", "head_ms", "change", "p_value", "n"}};
  for (const auto& row : r.rows)
    t.push_back({cell(row.problem_id), cell(row.model), std::string(verdict_name(row.verdict)),
                 ms(row.base_ms), ms(row.head_ms),
                 row.change ? fmt::format("{:+.1f}%", *row.change * 100.0) : "-",
                 row.test ? fmt::format("{:.3g}", row.test->p_value) : "-",
                 row.test ? fmt::format("{}/{}", row.base_samples, row.head_samples) : "-"});
  return t;
}

std::string run_description(const RunSummary& run, std::string_view sep) {
  std::string version = run.kbench_version.empty() ? "version unknown" : run.kbench_version;
  // Versions written by kbench already name their commit ("0.1.0 (commit abc)").
  if (!run.git_commit.empty() && version.find(run.git_commit) == std::string::npos)
    version += " (" + run.git_commit + ")";
  std::string out = fmt::format("run {}: {}{}kbench {}", run.id,
                                run.gpu_name.empty() ? "unknown GPU" : run.gpu_name, sep, version);
  out += fmt::format("{}protocol {}", sep, protocol_name(run.protocol));
  out += fmt::format("{}{}", sep, run.status.empty() ? "status unknown" : run.status);
  if (!run.origin.empty())
    out += fmt::format("{}from {}", sep, run.origin);
  return out;
}

std::string speedup_legend(const Report& r) {
  if (r.options.speedup_percent)
    return "Speedups are shown as % of the reference's speed (reference time / kernel time x "
           "100): 200% takes half the reference's time, 50% twice as long, as in the seed "
           "article's table. geomean, vs_eager, vs_compile: geometric mean over problems of the "
           "best correct kernel's speedup against cuBLAS/cuDNN, PyTorch eager and torch.compile. "
           "fast_p: share of problems whose best correct kernel has speedup > p. Kernels held for "
           "review are not ranked.";
  return "Speedup = reference time / kernel time: 2x takes half the reference's time, 0.5x "
         "twice as long. geomean, vs_eager, vs_compile: geometric mean over problems of the best "
         "correct kernel's speedup against cuBLAS/cuDNN, PyTorch eager and torch.compile. "
         "fast_p: share of problems whose best correct kernel has speedup > p. Kernels held for "
         "review are not ranked.";
}

std::string compare_summary(const CompareResult& r) {
  return fmt::format("{} regression(s), {} improvement(s), {} new failure(s), {} fixed, {} missing "
                     "(threshold {:.1f}%, alpha {})",
                     r.regressions, r.improvements, r.new_failures, r.fixed, r.missing,
                     r.options.threshold * 100.0, r.options.alpha);
}

} // namespace kb::report
