// Exports of every evaluated attempt (CSV, JSON) and Google Benchmark JSON of the best kernels.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report.hpp"
#include "report_internal.hpp"

namespace kb::report {

using nlohmann::json;
using store::AttemptRow;

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
  auto label = model_labels(s);
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
    return dump_json(json{{"context", ctx}, {"benchmarks", benchmarks}}, 2) + "\n";
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
    return dump_json(out, 2) + "\n";
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
        a.round, a.evaluated ? outcome_name(a.eval.outcome) : "not_evaluated", flags,
        a.evaluated ? fmt::format("{:.6g}", a.eval.speedup) : "",
        a.evaluated ? fmt::format("{:.6g}", a.eval.roofline_pct) : "",
        a.eval.candidate_time ? fmt::format("{:.6g}", a.eval.candidate_time->median_ms) : "",
        a.eval.baseline_time ? fmt::format("{:.6g}", a.eval.baseline_time->median_ms) : "",
        a.tokens_in, a.tokens_out, fmt::format("{:.6g}", a.cost_usd), csv_field(a.idea));
  }
  return csv;
}

} // namespace kb::report
