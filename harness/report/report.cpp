// Builds report tables from the store, compares two databases, and exports results.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report_internal.hpp"

namespace kb::report {

using nlohmann::json;
using store::AttemptRow;

namespace {

constexpr uint32_t k_review_flags = flag_above_roofline | flag_speedup_threshold | flag_off_stream |
                                    flag_nondeterministic | flag_unverified_time;

bool compiled(Outcome o) {
  return o != Outcome::no_code && o != Outcome::compile_error;
}

// The reasons a correct kernel is held for review (empty: it may rank).
std::vector<std::string> review_reasons(const AttemptRow& a, double review_speedup) {
  std::vector<std::string> out;
  if (!a.evaluated || a.eval.outcome != Outcome::correct)
    return out;
  for (const auto& f : flag_names(a.eval.flags & k_review_flags))
    out.push_back(f);
  if (a.eval.speedup > review_speedup)
    out.push_back("speedup_above_review");
  if (a.eval.roofline_pct > 100.0 && !(a.eval.flags & flag_above_roofline))
    out.push_back("above_roofline");
  return out;
}

double median_ms(const AttemptRow& a) {
  return a.eval.candidate_time ? a.eval.candidate_time->median_ms : 0.0;
}

// Rank of outcomes for "how far did it get" when nothing was correct.
int outcome_rank(Outcome o) {
  switch (o) {
  case Outcome::no_code:
    return 0;
  case Outcome::compile_error:
    return 1;
  case Outcome::rejected:
    return 2;
  case Outcome::load_error:
    return 3;
  case Outcome::timeout:
    return 4;
  case Outcome::runtime_error:
    return 5;
  case Outcome::mismatch:
    return 6;
  case Outcome::correct:
    return 7;
  }
  return 0;
}

struct Group {
  std::vector<const AttemptRow*> rows;
};

} // namespace

ExternalTimes external_times(store::Store& s) {
  ExternalTimes out;
  for (const auto& r : s.external_baselines())
    out[r.baseline.problem_key][r.baseline.source].push_back(
        {r.baseline.hardware, r.baseline.time_ms});
  return out;
}

std::optional<double> find_external(const ExternalTimes& ext, const std::vector<std::string>& keys,
                                    const std::string& source, const std::string& gpu_name) {
  for (const auto& k : keys) {
    auto it = ext.find(k);
    if (it == ext.end())
      continue;
    auto jt = it->second.find(source);
    if (jt == it->second.end() || jt->second.empty())
      continue;
    for (const auto& [hw, ms] : jt->second)
      if (hw == gpu_name)
        return ms;
    return jt->second.front().second;
  }
  return std::nullopt;
}

Report build_report(store::Store& s, const ReportOptions& o) {
  Report rep;
  rep.options = o;
  auto all_runs = s.runs();
  std::map<int64_t, store::RunRow> run_by_id;
  for (auto& r : all_runs)
    run_by_id[r.id] = r;
  for (int64_t id : o.run_ids)
    if (!run_by_id.count(id))
      throw Error(fmt::format("{}: no run {}", s.path(), id));
  std::vector<int64_t> runs = o.run_ids;
  if (runs.empty())
    for (auto& r : all_runs)
      runs.push_back(r.id);
  std::string gpu_name;
  for (int64_t id : runs) {
    const auto& r = run_by_id[id];
    rep.runs.push_back({r.id, r.info.gpu_name, r.info.kbench_version, r.info.git_commit,
                        r.info.protocol, r.status, r.origin});
    if (gpu_name.empty())
      gpu_name = r.info.gpu_name;
  }

  std::map<int64_t, std::string> model_label;
  for (const auto& m : s.models())
    model_label[m.id] = m.label;
  std::map<std::string, store::ProblemRow> problem_rows;
  for (auto& p : s.problems())
    problem_rows[p.id] = p;
  auto ext = external_times(s);

  auto attempts = s.attempts({.run_ids = runs});
  // Known good kernels the idea search measures as seeds (strategy "bank") are not the model's
  // work: they never count towards its leaderboard row or its paper-table entries.
  std::erase_if(attempts, [&](const AttemptRow& a) {
    return a.strategy == "bank" || (o.level && a.level != *o.level);
  });

  // (model label, level, problem) -> attempts; labels sort the tables.
  std::map<std::string, std::map<std::pair<int, std::string>, Group>> by_model;
  for (const auto& a : attempts)
    by_model[model_label[a.model_id]][{a.level, a.problem_id}].rows.push_back(&a);

  // Tokens, cost and LLM latency come from every call (also calls that produced no candidate).
  struct Spend {
    int64_t tin = 0, tout = 0;
    double cost = 0, latency = 0;
  };
  std::map<std::pair<std::string, int>, Spend> spend; // (model, level 0 = all)
  for (int64_t run : runs)
    for (const auto& c : s.llm_calls(run)) {
      int level = 0;
      if (auto it = problem_rows.find(c.call.problem_id); it != problem_rows.end())
        level = it->second.level;
      if (o.level && level != *o.level)
        continue;
      for (int l : {0, level}) {
        auto& sp = spend[{model_label[c.call.model_id], l}];
        sp.tin += c.call.tokens_in;
        sp.tout += c.call.tokens_out;
        sp.cost += c.call.cost_usd;
        sp.latency += c.call.latency_s;
        if (level == 0)
          break;
      }
    }

  auto keys_of = [&](const std::string& problem_id) {
    auto it = problem_rows.find(problem_id);
    return it == problem_rows.end() ? std::vector<std::string>{problem_id}
                                    : it->second.baseline_keys();
  };

  for (const auto& [model, problems] : by_model) {
    std::set<int> levels;
    for (const auto& [key, g] : problems)
      levels.insert(key.first);
    std::vector<std::optional<int>> scopes{std::nullopt};
    if (levels.size() > 1 || o.level)
      for (int l : levels)
        scopes.emplace_back(l);
    if (o.level)
      scopes.erase(scopes.begin());
    for (const auto& scope : scopes) {
      LeaderboardRow row;
      row.model = model;
      row.level = scope;
      std::vector<std::optional<double>> best;
      std::vector<double> speedups, vs_eager, vs_compile;
      std::map<int64_t, std::vector<double>> pass_values;
      int64_t compiled_n = 0, correct_n = 0, solved = 0;
      double eval_s = 0.0;
      for (const auto& [key, g] : problems) {
        if (scope && key.first != *scope)
          continue;
        ++row.problems;
        int64_t n = 0, c = 0;
        const AttemptRow* top = nullptr;
        for (const auto* a : g.rows) {
          if (!a->evaluated)
            continue;
          ++n;
          eval_s += a->eval.compile_s + a->eval.start_s + a->eval.check_s + a->eval.time_s;
          compiled_n += compiled(a->eval.outcome);
          if (a->eval.outcome != Outcome::correct)
            continue;
          ++c;
          if (!review_reasons(*a, o.review_speedup).empty()) {
            ++row.flagged;
            continue;
          }
          if (!top || a->eval.speedup > top->eval.speedup)
            top = a;
        }
        row.attempts += n;
        correct_n += c;
        solved += c > 0;
        for (int64_t k : o.pass_k)
          if (n >= k)
            pass_values[k].push_back(pass_at_k(n, c, k));
        if (top && top->eval.speedup > 0) {
          best.push_back(top->eval.speedup);
          speedups.push_back(top->eval.speedup);
          double ms = median_ms(*top);
          if (ms > 0) {
            if (auto e = find_external(ext, keys_of(key.second), "pytorch-eager", gpu_name))
              vs_eager.push_back(*e / ms);
            if (auto e = find_external(ext, keys_of(key.second), "torch-compile", gpu_name))
              vs_compile.push_back(*e / ms);
          }
        } else {
          best.push_back(std::nullopt);
        }
      }
      if (row.attempts > 0) {
        row.compile_rate = static_cast<double>(compiled_n) / static_cast<double>(row.attempts);
        row.correct_rate = static_cast<double>(correct_n) / static_cast<double>(row.attempts);
      }
      if (row.problems > 0)
        row.problems_solved = static_cast<double>(solved) / static_cast<double>(row.problems);
      for (double p : o.fast_p_thresholds)
        row.fast_p.emplace_back(p, fast_p(best, p));
      row.geomean_speedup = geometric_mean(speedups);
      row.geomean_vs_eager = geometric_mean(vs_eager);
      row.geomean_vs_compile = geometric_mean(vs_compile);
      row.problems_vs_eager = static_cast<int64_t>(vs_eager.size());
      row.problems_vs_compile = static_cast<int64_t>(vs_compile.size());
      for (int64_t k : o.pass_k)
        if (!pass_values[k].empty()) {
          double sum = 0;
          for (double v : pass_values[k])
            sum += v;
          row.pass_at_k.emplace_back(k, sum / static_cast<double>(pass_values[k].size()));
        }
      const auto& sp = spend[{model, scope.value_or(0)}];
      row.tokens_in = sp.tin;
      row.tokens_out = sp.tout;
      row.cost_usd = sp.cost;
      row.wall_s = sp.latency + eval_s;
      rep.leaderboard.push_back(std::move(row));
    }
  }
  // Overall rows first (by model), then per-level rows.
  std::stable_sort(
      rep.leaderboard.begin(), rep.leaderboard.end(),
      [](const auto& a, const auto& b) { return a.level.value_or(0) < b.level.value_or(0); });

  // Paper table, trajectories and review list, ordered by level, problem, model.
  std::map<std::pair<int, std::string>, std::map<std::string, const Group*>> by_problem;
  for (const auto& [model, problems] : by_model)
    for (const auto& [key, g] : problems)
      by_problem[key][model] = &g;
  for (const auto& [key, models] : by_problem) {
    for (const auto& [model, g] : models) {
      PaperRow pr;
      pr.problem_id = key.second;
      pr.level = key.first;
      pr.model = model;
      const AttemptRow* top = nullptr;
      int best_rank = -1;
      std::map<int, TrajectoryPoint> rounds;
      for (const auto* a : g->rows) {
        auto& tp = rounds[a->round];
        tp.round = a->round;
        ++tp.attempts;
        if (!a->evaluated)
          continue;
        best_rank = std::max(best_rank, outcome_rank(a->eval.outcome));
        if (a->eval.outcome != Outcome::correct)
          continue;
        ++tp.correct;
        auto reasons = review_reasons(*a, o.review_speedup);
        if (!reasons.empty()) {
          rep.review.push_back({a->candidate_id, a->problem_id, model, a->eval.speedup,
                                a->eval.roofline_pct, reasons});
          continue;
        }
        double ms = median_ms(*a);
        if (ms > 0 && (!tp.round_best_ms || ms < *tp.round_best_ms)) {
          tp.round_best_ms = ms;
          tp.candidate_id = a->candidate_id;
          tp.idea = a->idea;
        }
        if (!top || a->eval.speedup > top->eval.speedup)
          top = a;
      }
      for (const auto* a : g->rows)
        if (top && a->evaluated && a->eval.outcome == Outcome::correct &&
            a->eval.speedup > top->eval.speedup && !review_reasons(*a, o.review_speedup).empty())
          ++pr.held_for_review;
      if (top) {
        pr.candidate_id = top->candidate_id;
        pr.kernel_ms = median_ms(*top);
        if (top->eval.baseline_time)
          pr.baseline_ms = top->eval.baseline_time->median_ms;
        pr.pct_of_baseline = top->eval.speedup * 100.0;
        auto keys = keys_of(key.second);
        pr.eager_ms = find_external(ext, keys, "pytorch-eager", gpu_name);
        pr.compile_ms = find_external(ext, keys, "torch-compile", gpu_name);
        if (pr.eager_ms && *pr.kernel_ms > 0)
          pr.pct_of_eager = *pr.eager_ms / *pr.kernel_ms * 100.0;
        if (pr.compile_ms && *pr.kernel_ms > 0)
          pr.pct_of_compile = *pr.compile_ms / *pr.kernel_ms * 100.0;
        pr.roofline_pct = top->eval.roofline_pct;
        pr.idea = top->idea;
        pr.outcome = "correct";
      } else {
        static constexpr Outcome k_by_rank[] = {
            Outcome::no_code, Outcome::compile_error, Outcome::rejected, Outcome::load_error,
            Outcome::timeout, Outcome::runtime_error, Outcome::mismatch, Outcome::correct};
        pr.outcome =
            best_rank < 0 ? "not_evaluated" : std::string(outcome_name(k_by_rank[best_rank]));
        if (best_rank == 7)
          pr.outcome = "held_for_review";
      }
      rep.paper.push_back(std::move(pr));

      Trajectory t{key.second, model, {}};
      std::optional<double> so_far;
      for (auto& [round, tp] : rounds) {
        if (tp.round_best_ms && (!so_far || *tp.round_best_ms < *so_far))
          so_far = tp.round_best_ms;
        tp.best_so_far_ms = so_far;
        t.points.push_back(tp);
      }
      rep.trajectories.push_back(std::move(t));
    }
  }
  return rep;
}

// ---------------------------------------------------------------------------------------------
// Compare
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
  std::map<int64_t, std::string> label;
  for (const auto& m : s.models())
    label[m.id] = m.label;
  std::map<std::pair<std::string, std::string>, Best> out;
  for (auto& a : s.attempts({.run_ids = runs, .with_samples = true})) {
    auto& b = out[{a.problem_id, label[a.model_id]}];
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

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

std::optional<ExportFormat> parse_export_format(std::string_view name) {
  if (name == "csv")
    return ExportFormat::csv;
  if (name == "json")
    return ExportFormat::json;
  if (name == "gbench" || name == "google-benchmark")
    return ExportFormat::gbench;
  return std::nullopt;
}

namespace {

json timing_json(const std::optional<TimingStats>& t) {
  if (!t)
    return nullptr;
  return json{{"median_ms", t->median_ms}, {"mean_ms", t->mean_ms},
              {"stderr_ms", t->stderr_ms}, {"min_ms", t->min_ms},
              {"samples", t->samples},     {"stop_reason", t->stop_reason}};
}

json gbench_entry(const std::string& name, const std::string& run_type, int64_t reps, int64_t index,
                  double ms, int64_t iterations, const std::string& aggregate = "") {
  json j{{"name", aggregate.empty() ? name : name + "_" + aggregate},
         {"family_index", 0},
         {"per_family_instance_index", 0},
         {"run_name", name},
         {"run_type", run_type},
         {"repetitions", reps},
         {"repetition_index", index},
         {"threads", 1},
         {"iterations", iterations},
         {"real_time", ms},
         {"cpu_time", ms},
         {"time_unit", "ms"}};
  if (!aggregate.empty()) {
    j.erase("repetition_index");
    j["aggregate_name"] = aggregate;
    j["aggregate_unit"] = "time";
  }
  return j;
}

void add_gbench_family(json& benchmarks, const std::string& name, const TimingStats& t,
                       int64_t family) {
  std::vector<double> s = t.samples_ms;
  if (s.empty())
    s.push_back(t.median_ms);
  auto n = static_cast<int64_t>(s.size());
  std::vector<json> entries;
  for (int64_t i = 0; i < n; ++i)
    entries.push_back(gbench_entry(name, "iteration", n, i, s[static_cast<std::size_t>(i)], 1));
  double mean = 0;
  for (double v : s)
    mean += v;
  mean /= static_cast<double>(n);
  double var = 0;
  for (double v : s)
    var += (v - mean) * (v - mean);
  double sd = n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
  std::vector<double> sorted = s;
  std::sort(sorted.begin(), sorted.end());
  double med = n % 2 ? sorted[static_cast<std::size_t>(n / 2)]
                     : (sorted[static_cast<std::size_t>(n / 2 - 1)] +
                        sorted[static_cast<std::size_t>(n / 2)]) /
                           2.0;
  entries.push_back(gbench_entry(name, "aggregate", n, 0, mean, n, "mean"));
  entries.push_back(gbench_entry(name, "aggregate", n, 0, med, n, "median"));
  entries.push_back(gbench_entry(name, "aggregate", n, 0, sd, n, "stddev"));
  for (auto& e : entries) {
    e["family_index"] = family;
    benchmarks.push_back(std::move(e));
  }
}

} // namespace

std::string export_results(store::Store& s, ExportFormat f, const std::vector<int64_t>& run_ids) {
  for (int64_t id : run_ids)
    if (!s.run(id))
      throw Error(fmt::format("{}: no run {}", s.path(), id));
  std::map<int64_t, std::string> label;
  for (const auto& m : s.models())
    label[m.id] = m.label;
  auto rows = s.attempts({.run_ids = run_ids, .with_samples = f == ExportFormat::gbench});

  if (f == ExportFormat::gbench) {
    auto runs = s.runs();
    json ctx{{"date", runs.empty() ? "" : runs.front().started_at},
             {"host_name", runs.empty() ? "" : runs.front().info.host},
             {"executable", "kbench"},
             {"num_cpus", 1},
             {"mhz_per_cpu", 0},
             {"cpu_scaling_enabled", false},
             {"caches", json::array()},
             {"library_build_type", "release"},
             {"gpu_name", runs.empty() ? "" : runs.front().info.gpu_name},
             {"kbench_version", runs.empty() ? "" : runs.front().info.kbench_version}};
    std::map<std::pair<std::string, std::string>, const AttemptRow*> best;
    std::map<std::string, const AttemptRow*> baseline;
    for (const auto& a : rows) {
      if (!a.evaluated || a.eval.outcome != Outcome::correct || !a.eval.candidate_time ||
          !review_reasons(a, 10.0).empty())
        continue;
      auto& b = best[{a.problem_id, label[a.model_id]}];
      if (!b || a.eval.candidate_time->median_ms < b->eval.candidate_time->median_ms)
        b = &a;
      if (a.eval.baseline_time && !baseline[a.problem_id])
        baseline[a.problem_id] = &a;
    }
    json benchmarks = json::array();
    int64_t family = 0;
    for (const auto& [key, a] : best)
      add_gbench_family(benchmarks, key.first + "/" + key.second, *a->eval.candidate_time,
                        family++);
    for (const auto& [problem, a] : baseline)
      add_gbench_family(benchmarks, problem + "/cublas_cudnn", *a->eval.baseline_time, family++);
    return json{{"context", ctx}, {"benchmarks", benchmarks}}.dump(2) + "\n";
  }

  if (f == ExportFormat::json) {
    json out = json::array();
    for (const auto& a : rows) {
      json j{{"run_id", a.run_id},
             {"candidate_id", a.candidate_id},
             {"problem_id", a.problem_id},
             {"level", a.level},
             {"model", label[a.model_id]},
             {"strategy", a.strategy},
             {"round", a.round},
             {"parent_id", a.parent_id ? json(*a.parent_id) : json(nullptr)},
             {"idea", a.idea},
             {"source_hash", a.source_hash},
             {"tokens_in", a.tokens_in},
             {"tokens_out", a.tokens_out},
             {"cost_usd", a.cost_usd}};
      if (a.evaluated) {
        j["outcome"] = outcome_name(a.eval.outcome);
        j["message"] = a.eval.message;
        j["flags"] = flag_names(a.eval.flags);
        j["speedup"] = a.eval.speedup;
        j["roofline_pct"] = a.eval.roofline_pct;
        j["candidate_time"] = timing_json(a.eval.candidate_time);
        j["baseline_time"] = timing_json(a.eval.baseline_time);
      } else {
        j["outcome"] = nullptr;
      }
      out.push_back(std::move(j));
    }
    return out.dump(2) + "\n";
  }

  std::string csv = "run_id,candidate_id,problem_id,level,model,strategy,round,outcome,flags,"
                    "speedup,roofline_pct,candidate_median_ms,baseline_median_ms,tokens_in,"
                    "tokens_out,cost_usd,idea\n";
  for (const auto& a : rows) {
    std::string flags;
    for (const auto& n : flag_names(a.eval.flags))
      flags += (flags.empty() ? "" : "|") + n;
    csv += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", a.run_id, a.candidate_id,
        csv_field(a.problem_id), a.level, csv_field(label[a.model_id]), csv_field(a.strategy),
        a.round, a.evaluated ? outcome_name(a.eval.outcome) : "", flags,
        a.evaluated ? fmt::format("{:.6g}", a.eval.speedup) : "",
        a.evaluated ? fmt::format("{:.6g}", a.eval.roofline_pct) : "",
        a.eval.candidate_time ? fmt::format("{:.6g}", a.eval.candidate_time->median_ms) : "",
        a.eval.baseline_time ? fmt::format("{:.6g}", a.eval.baseline_time->median_ms) : "",
        a.tokens_in, a.tokens_out, fmt::format("{:.6g}", a.cost_usd), csv_field(a.idea));
  }
  return csv;
}

} // namespace kb::report
