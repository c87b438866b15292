// Checks of an evaluation (seeds, distributions, tolerances) and JSON forms of the messages.
#include "protocol.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace kb::eval {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string dist_label(const Distribution& d) {
  return fmt::format("{}({:g},{:g})", dist_kind_name(d.kind), d.a, d.b);
}

Tolerance protocol_tolerance(const Problem& p, const std::string& protocol) {
  if (protocol != "kernelbench")
    return p.tolerance;
  // KernelBench v0/v0.1 used atol = rtol = 1e-2 everywhere; its newest version uses the dtype
  // defaults (1e-4 fp32, 1e-2 fp16/bf16).
  const std::string& v = p.provenance.version;
  if (v == "v0" || v == "v0.1")
    return {1e-2, 1e-2, "KernelBench " + v};
  Tolerance t{0.0, 0.0, "KernelBench newest"};
  for (const auto& o : p.outputs) {
    const Tolerance d = default_tolerance(p.output_spec(o).dtype);
    t.atol = std::max(t.atol, d.atol);
    t.rtol = std::max(t.rtol, d.rtol);
  }
  return t;
}

std::vector<CheckSpec> make_checks(const Problem& p, const std::string& protocol, int seeds,
                                   uint64_t secret) {
  std::vector<const TensorSpec*> tensors;
  for (const auto& t : p.inputs)
    tensors.push_back(&t);
  for (const auto& t : p.params)
    tensors.push_back(&t);
  std::vector<CheckSpec> checks;
  if (protocol == "kernelbench") {
    for (int i = 0; i < 5; ++i) {
      CheckSpec c;
      c.index = i;
      c.seed = 42 + static_cast<uint64_t>(i);
      for (const auto* t : tensors)
        c.dists.push_back(t->dist);
      c.dist_name = "problem";
      checks.push_back(std::move(c));
    }
    return checks;
  }
  std::size_t groups = 1;
  for (const auto* t : tensors)
    groups = std::max(groups, 1 + t->check_dists.size());
  const uint64_t problem_salt = std::hash<std::string>{}(p.id + p.content_hash);
  for (std::size_t g = 0; g < groups; ++g) {
    std::vector<Distribution> dists;
    bool relative = false;
    std::string name;
    for (const auto* t : tensors) {
      const Distribution& d = g == 0 || g > t->check_dists.size() ? t->dist : t->check_dists[g - 1];
      dists.push_back(d);
      relative = relative || d.kind == DistKind::ill_conditioned;
      if (g > 0 && g <= t->check_dists.size())
        name += (name.empty() ? "" : ",") + t->name + "~" + dist_label(d);
    }
    if (g == 0)
      name = "problem";
    for (int s = 0; s < seeds; ++s) {
      CheckSpec c;
      c.index = static_cast<int>(checks.size());
      c.seed = mix_seed(mix_seed(secret, problem_salt), c.index);
      c.dists = dists;
      c.dist_name = name;
      c.relative = relative;
      checks.push_back(std::move(c));
    }
  }
  return checks;
}

void to_json(nlohmann::json& j, const CheckSpec& c) {
  j = {{"index", c.index},
       {"seed", c.seed},
       {"dists", c.dists},
       {"dist_name", c.dist_name},
       {"relative", c.relative}};
}
void from_json(const nlohmann::json& j, CheckSpec& c) {
  c.index = j.at("index").get<int>();
  c.seed = j.at("seed").get<uint64_t>();
  c.dists = j.at("dists").get<std::vector<Distribution>>();
  c.dist_name = j.value("dist_name", "");
  c.relative = j.value("relative", false);
}

} // namespace kb::eval

namespace kb {

void to_json(nlohmann::json& j, const TimingOptions& t) {
  j = {{"warmup", t.warmup},           {"target_rse", t.target_rse},
       {"min_samples", t.min_samples}, {"max_samples", t.max_samples},
       {"time_cap_s", t.time_cap_s},   {"memory_fraction", t.memory_fraction},
       {"max_sets", t.max_sets},       {"judged_sets", t.judged_sets}};
}
void from_json(const nlohmann::json& j, TimingOptions& t) {
  t.warmup = j.at("warmup").get<int>();
  t.target_rse = j.at("target_rse").get<double>();
  t.min_samples = j.at("min_samples").get<int>();
  t.max_samples = j.at("max_samples").get<int>();
  t.time_cap_s = j.at("time_cap_s").get<double>();
  t.memory_fraction = j.at("memory_fraction").get<double>();
  t.max_sets = j.at("max_sets").get<int>();
  t.judged_sets = j.at("judged_sets").get<int>();
}

void to_json(nlohmann::json& j, const ErrorStats& s) {
  j = {{"numel", s.numel},
       {"mismatch_count", s.mismatch_count},
       {"first_bad_index", s.first_bad_index},
       {"max_abs_err", s.max_abs_err},
       {"max_rel_err", s.max_rel_err},
       {"sum_sq_err", s.sum_sq_err},
       {"finite_count", s.finite_count},
       {"nan_count", s.nan_count},
       {"inf_count", s.inf_count},
       {"missed_special", s.missed_special},
       {"cand_min", s.cand_min},
       {"cand_max", s.cand_max},
       {"ref_min", s.ref_min},
       {"ref_max", s.ref_max}};
}
void from_json(const nlohmann::json& j, ErrorStats& s) {
  s.numel = j.at("numel").get<int64_t>();
  s.mismatch_count = j.at("mismatch_count").get<int64_t>();
  s.first_bad_index = j.at("first_bad_index").get<int64_t>();
  s.max_abs_err = j.at("max_abs_err").get<double>();
  s.max_rel_err = j.at("max_rel_err").get<double>();
  s.sum_sq_err = j.at("sum_sq_err").get<double>();
  s.finite_count = j.at("finite_count").get<int64_t>();
  s.nan_count = j.at("nan_count").get<int64_t>();
  s.inf_count = j.at("inf_count").get<int64_t>();
  s.missed_special = j.at("missed_special").get<int64_t>();
  s.cand_min = j.at("cand_min").get<double>();
  s.cand_max = j.at("cand_max").get<double>();
  s.ref_min = j.at("ref_min").get<double>();
  s.ref_max = j.at("ref_max").get<double>();
}

} // namespace kb
