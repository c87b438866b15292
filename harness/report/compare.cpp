// Regression verdicts between two databases: the best correct kernel per problem × model, a
// Mann-Whitney U test on the raw samples, threshold and significance level.
#include <map>
#include <set>

#include <fmt/format.h>

#include "report.hpp"
#include "report_internal.hpp"

namespace kb::report {

using store::AttemptRow;

// ---------------------------------------------------------------------------------------------

std::string_view verdict_name(Verdict v) {
  switch (v) {
  case Verdict::unchanged:
    return "unchanged";
  case Verdict::regression:
    return "regression";
  case Verdict::improvement:
    return "improvement";
  case Verdict::new_failure:
    return "new_failure";
  case Verdict::fixed:
    return "fixed";
  case Verdict::still_failing:
    return "still_failing";
  case Verdict::missing:
    return "missing";
  case Verdict::added:
    return "added";
  case Verdict::no_samples:
    return "no_samples";
  }
  return "?";
}

namespace {

struct Best {
  bool any = false;
  std::optional<AttemptRow> correct; // fastest correct kernel not held for review
};

std::map<std::pair<std::string, std::string>, Best>
best_kernels(store::Store& s, const std::vector<int64_t>& runs, double review_speedup) {
  auto label = model_labels(s);
  std::map<std::pair<std::string, std::string>, Best> out;
  for (auto& a : s.attempts({.run_ids = runs, .with_samples = true})) {
    // Times under different protocols are not comparable (KernelBench's mean over one input
    // set, kbench's median over rotating inputs): a KernelBench protocol is part of the key,
    // so such a pair shows as missing and added, never as a verdict.
    std::string model = label[a.model_id];
    if (a.evaluated && a.eval.protocol != Protocol::kbench)
      model += fmt::format(" [{}]", protocol_name(a.eval.protocol));
    auto& b = out[{a.problem_id, model}];
    b.any = true;
    if (!a.evaluated || a.eval.outcome != Outcome::correct || !a.eval.candidate_time ||
        !review_reasons(a, review_speedup).empty())
      continue;
    if (!b.correct || a.eval.candidate_time->median_ms < b.correct->eval.candidate_time->median_ms)
      b.correct = std::move(a);
  }
  return out;
}

} // namespace

CompareResult compare(store::Store& base, store::Store& head, const CompareOptions& o) {
  CompareResult r;
  r.base_path = base.path();
  r.head_path = head.path();
  r.options = o;
  constexpr double k_review = 10.0;
  auto b = best_kernels(base, o.base_runs, k_review);
  auto h = best_kernels(head, o.head_runs, k_review);
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& [k, v] : b)
    keys.insert(k);
  for (const auto& [k, v] : h)
    keys.insert(k);
  for (const auto& key : keys) {
    CompareRow row;
    row.problem_id = key.first;
    row.model = key.second;
    auto bi = b.find(key);
    auto hi = h.find(key);
    const AttemptRow* bc = bi != b.end() && bi->second.correct ? &*bi->second.correct : nullptr;
    const AttemptRow* hc = hi != h.end() && hi->second.correct ? &*hi->second.correct : nullptr;
    if (bc)
      row.base_ms = bc->eval.candidate_time->median_ms;
    if (hc)
      row.head_ms = hc->eval.candidate_time->median_ms;
    if (bi == b.end())
      row.verdict = Verdict::added;
    else if (hi == h.end())
      row.verdict = Verdict::missing;
    else if (bc && !hc)
      row.verdict = Verdict::new_failure;
    else if (!bc && hc)
      row.verdict = Verdict::fixed;
    else if (!bc && !hc)
      row.verdict = Verdict::still_failing;
    else {
      const auto& bs = bc->eval.candidate_time->samples_ms;
      const auto& hs = hc->eval.candidate_time->samples_ms;
      row.base_samples = static_cast<int64_t>(bs.size());
      row.head_samples = static_cast<int64_t>(hs.size());
      row.change = *row.head_ms / *row.base_ms - 1.0;
      if (bs.empty() || hs.empty()) {
        row.verdict = Verdict::no_samples;
      } else {
        row.test = mann_whitney_u(hs, bs);
        bool significant = row.test->p_value < o.alpha;
        if (significant && *row.change > o.threshold)
          row.verdict = Verdict::regression;
        else if (significant && *row.change < -o.threshold)
          row.verdict = Verdict::improvement;
        else
          row.verdict = Verdict::unchanged;
      }
    }
    switch (row.verdict) {
    case Verdict::regression:
      ++r.regressions;
      break;
    case Verdict::improvement:
      ++r.improvements;
      break;
    case Verdict::new_failure:
      ++r.new_failures;
      break;
    case Verdict::fixed:
      ++r.fixed;
      break;
    case Verdict::missing:
      ++r.missing;
      break;
    default:
      break;
    }
    r.rows.push_back(std::move(row));
  }
  return r;
}

int compare_exit_code(const CompareResult& r) {
  return r.regressions > 0 ? 1 : 0;
}
} // namespace kb::report
