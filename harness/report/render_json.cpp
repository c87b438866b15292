// JSON renderer: every table with full-precision numbers, missing values as null.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tables.hpp"

namespace kb::report {

namespace {

using nlohmann::json;

json opt_json(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string render_json(const Report& r) {
  json j;
  j["notes"] = r.notes;
  j["speedup_definition"] = "reference time / kernel time (> 1: the kernel is faster)";
  j["runs"] = json::array();
  for (const auto& run : r.runs)
    j["runs"].push_back({{"id", run.id},
                         {"gpu_name", run.gpu_name},
                         {"kbench_version", run.kbench_version},
                         {"git_commit", run.git_commit},
                         {"protocol", protocol_name(run.protocol)},
                         {"status", run.status},
                         {"origin", run.origin}});
  j["leaderboard"] = json::array();
  for (const auto& row : r.leaderboard) {
    json fp = json::object(), pk = json::object();
    for (const auto& [p, v] : row.fast_p)
      fp[fmt::format("{}", p)] = v;
    json best = json::array();
    for (const auto& v : row.best_speedups)
      best.push_back(opt_json(v));
    for (const auto& [k, v] : row.pass_at_k)
      pk[std::to_string(k)] = v;
    j["leaderboard"].push_back({{"model", row.model},
                                {"protocol", protocol_name(row.protocol)},
                                {"level", row.level ? json(*row.level) : json("all")},
                                {"problems", row.problems},
                                {"candidates", row.candidates},
                                {"attempts", row.attempts},
                                {"evaluated", row.evaluated()},
                                {"compile_rate", opt_json(row.compile_rate)},
                                {"correct_rate", opt_json(row.correct_rate)},
                                {"problems_solved", opt_json(row.problems_solved)},
                                {"fast_p", row.evaluated() ? fp : json(nullptr)},
                                {"best_speedups", best},
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
                                {"provider_failures", row.provider_failures},
                                {"held_for_review", row.flagged}});
  }
  j["paper"] = json::array();
  for (const auto& p : r.paper)
    j["paper"].push_back({{"problem_id", p.problem_id},
                          {"level", p.level},
                          {"model", p.model},
                          {"protocol", protocol_name(p.protocol)},
                          {"outcome", p.outcome},
                          {"candidate_id", p.candidate_id ? json(*p.candidate_id) : json(nullptr)},
                          {"kernel_ms", opt_json(p.kernel_ms)},
                          {"baseline_ms", opt_json(p.baseline_ms)},
                          {"speedup", opt_json(p.speedup)},
                          {"eager_ms", opt_json(p.eager_ms)},
                          {"speedup_vs_eager", opt_json(p.speedup_vs_eager)},
                          {"compile_ms", opt_json(p.compile_ms)},
                          {"speedup_vs_compile", opt_json(p.speedup_vs_compile)},
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
  return dump_json(j, 2) + "\n";
}

class JsonRenderer final : public Renderer {
public:
  std::string report(const Report& r) const override { return render_json(r); }
  std::string compare(const CompareResult& r) const override {
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
    return dump_json(j, 2) + "\n";
  }
};

} // namespace

const Renderer& json_renderer() {
  static const JsonRenderer r;
  return r;
}

} // namespace kb::report
