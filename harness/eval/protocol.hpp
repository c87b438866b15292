// Internal to eval: the checks an evaluation runs and the JSON-lines messages exchanged between
// the parent, the candidate worker and the reference worker (docs/evaluation.md describes them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core.hpp"
#include "eval.hpp"

namespace kb::eval {

// One correctness check: every input and parameter drawn from `seed` (tensor j uses stream id j)
// with the distribution at the same position of `dists` (inputs then params, ABI order).
struct CheckSpec {
  int index = 0;
  uint64_t seed = 0;
  std::vector<Distribution> dists;
  std::string dist_name; // "uniform(0,1)", "ill_conditioned(1000,0.1)", ...
  bool relative = false; // ill-conditioned: judged relative to the baseline's own error
};

// Tolerances a protocol applies to a problem.
Tolerance protocol_tolerance(const Problem& p, const std::string& protocol);

// The checks of an evaluation. kbench: `seeds` seeds for each distribution group (group 0 = every
// tensor's own dist, group g = each tensor's check_dists[g-1] where it has one), seeds mixed with
// `secret`. kernelbench: 5 checks with seeds 42..46 on the problems' own distributions.
std::vector<CheckSpec> make_checks(const Problem& p, const std::string& protocol, int seeds,
                                   uint64_t secret);

// splitmix64 of a and b: seeds nobody can predict without the secret.
uint64_t mix_seed(uint64_t a, uint64_t b);

std::string dist_label(const Distribution& d);

void to_json(nlohmann::json& j, const CheckSpec& c);
void from_json(const nlohmann::json& j, CheckSpec& c);
} // namespace kb::eval

namespace kb {
// JSON forms of eval.hpp's types (found by argument-dependent lookup in namespace kb).
void to_json(nlohmann::json& j, const TimingOptions& t);
void from_json(const nlohmann::json& j, TimingOptions& t);
void to_json(nlohmann::json& j, const ErrorStats& s);
void from_json(const nlohmann::json& j, ErrorStats& s);
} // namespace kb
