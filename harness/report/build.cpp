// Builds the report's tables (leaderboard, paper table, trajectories, review list) from the
// store.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "report.hpp"
#include "report_internal.hpp"

namespace kb::report {

using store::AttemptRow;

namespace {

bool compiled(Outcome o) {
  return o != Outcome::no_code && o != Outcome::compile_error;
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

  auto model_label = model_labels(s);
  std::map<std::string, store::ProblemRow> problem_rows;
  for (auto& p : s.problems())
    problem_rows[p.id] = p;
  auto ext = external_times(s);

  auto attempts = s.attempts({.run_ids = runs});
  // Known good kernels the idea search measures as seeds (strategy "bank") are not the model's
  // work: they never count towards its leaderboard row or its paper-table entries.
  std::erase_if(attempts, [](const AttemptRow& a) { return a.strategy == "bank"; });
  // Databases written before schema v3 recorded a request the provider never answered as a
  // candidate without code; such a request is a provider failure (counted from the calls below),
  // never an attempt of the model.
  std::erase_if(attempts, [](const AttemptRow& a) {
    return a.evaluated && a.eval.outcome == Outcome::no_code &&
           a.eval.message.starts_with("no answer from model");
  });
  std::set<int> levels_present;
  for (const auto& a : attempts)
    levels_present.insert(a.level);
  if (o.level)
    std::erase_if(attempts, [&](const AttemptRow& a) { return a.level != *o.level; });
  if (attempts.empty()) {
    std::string present;
    for (int l : levels_present)
      present += (present.empty() ? "" : ", ") + std::to_string(l);
    if (o.level && !levels_present.empty())
      rep.notes.push_back(fmt::format("No candidates at level {} in the selected runs (levels "
                                      "with candidates: {}).",
                                      *o.level, present));
    else
      rep.notes.push_back(
          o.level ? fmt::format("No candidates at level {} in the selected runs.", *o.level)
                  : std::string("No candidates in the selected runs."));
  } else {
    auto unevaluated = std::count_if(attempts.begin(), attempts.end(),
                                     [](const AttemptRow& a) { return !a.evaluated; });
    if (unevaluated == static_cast<std::ptrdiff_t>(attempts.size()))
      rep.notes.push_back(fmt::format("Nothing evaluated yet: {} candidate(s) generated and not "
                                      "evaluated (kbench evaluate measures them).",
                                      unevaluated));
    else if (unevaluated > 0)
      rep.notes.push_back(fmt::format("{} of {} candidates not evaluated; rates count evaluated "
                                      "attempts only.",
                                      unevaluated, attempts.size()));
  }

  // Numbers measured under different protocols (kbench's median over rotating inputs, or
  // KernelBench's mean over one input set at its tolerance) are never combined: when the selected
  // runs used several, every row is a (model, protocol) and its label names the protocol.
  auto protocol_of = [&](const AttemptRow& a) {
    return a.evaluated ? a.eval.protocol : run_by_id[a.run_id].info.protocol;
  };
  std::set<Protocol> protocols;
  for (const auto& a : attempts)
    protocols.insert(protocol_of(a));
  for (int64_t id : runs)
    protocols.insert(run_by_id[id].info.protocol);
  const bool mixed = protocols.size() > 1;
  if (mixed) {
    std::string names;
    for (Protocol p : protocols)
      names += (names.empty() ? "" : ", ") + std::string(protocol_name(p));
    rep.notes.push_back(fmt::format("The selected runs used {} protocols ({}): each row is one "
                                    "model under one protocol, and no figure combines them.",
                                    protocols.size(), names));
  }
  std::map<std::string, Protocol> protocol_of_label;
  auto label_of = [&](int64_t model_id, Protocol p) {
    std::string l = model_label[model_id];
    if (mixed)
      l += fmt::format(" [{}]", protocol_name(p));
    protocol_of_label.emplace(l, p);
    return l;
  };

  // (model label, level, problem) -> attempts; labels sort the tables.
  std::map<std::string, std::map<std::pair<int, std::string>, Group>> by_model;
  for (const auto& a : attempts)
    by_model[label_of(a.model_id, protocol_of(a))][{a.level, a.problem_id}].rows.push_back(&a);

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
        auto& sp = spend[{label_of(c.call.model_id, run_by_id[run].info.protocol), l}];
        sp.tin += c.call.tokens_in;
        sp.tout += c.call.tokens_out;
        sp.cost += c.call.cost_usd;
        sp.latency += c.call.latency_s;
        if (level == 0)
          break;
      }
    }

  // Provider failures per (model, level 0 = all), by the store's one rule.
  std::map<std::pair<std::string, int>, int64_t> failures;
  for (int64_t run : runs)
    for (const auto& u : s.unanswered_requests(run)) {
      int level = 0;
      if (auto it = problem_rows.find(u.problem_id); it != problem_rows.end())
        level = it->second.level;
      if (o.level && level != *o.level)
        continue;
      const std::string model = label_of(u.model_id, run_by_id[run].info.protocol);
      ++failures[{model, 0}];
      if (level != 0)
        ++failures[{model, level}];
      by_model.try_emplace(model); // a model whose every request failed still gets its row
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
    for (const auto& [key, n] : failures)
      if (key.first == model && key.second != 0)
        levels.insert(key.second);
    std::vector<std::optional<int>> scopes{std::nullopt};
    if (levels.size() > 1 || o.level)
      for (int l : levels)
        scopes.emplace_back(l);
    if (o.level)
      scopes.erase(scopes.begin());
    for (const auto& scope : scopes) {
      LeaderboardRow row;
      row.model = model;
      row.protocol = protocol_of_label[model];
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
        row.candidates += static_cast<int64_t>(g.rows.size());
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
      if (row.attempts > 0 && row.problems > 0) {
        row.problems_solved = static_cast<double>(solved) / static_cast<double>(row.problems);
        for (double p : o.fast_p_thresholds)
          row.fast_p.emplace_back(p, fast_p(best, p));
        row.best_speedups = best;
      }
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
      if (auto it = failures.find({model, scope.value_or(0)}); it != failures.end())
        row.provider_failures = it->second;
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
      pr.protocol = protocol_of_label[model];
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
        pr.speedup = top->eval.speedup;
        auto keys = keys_of(key.second);
        pr.eager_ms = find_external(ext, keys, "pytorch-eager", gpu_name);
        pr.compile_ms = find_external(ext, keys, "torch-compile", gpu_name);
        if (pr.eager_ms && *pr.kernel_ms > 0)
          pr.speedup_vs_eager = *pr.eager_ms / *pr.kernel_ms;
        if (pr.compile_ms && *pr.kernel_ms > 0)
          pr.speedup_vs_compile = *pr.compile_ms / *pr.kernel_ms;
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

} // namespace kb::report
