// Helpers shared by the report's builders, comparison, export and renderers: external baseline
// lookup, review rules and text escaping.
#include <fmt/format.h>

#include "report_internal.hpp"

namespace kb::report {

using store::AttemptRow;

namespace {

constexpr uint32_t k_review_flags = flag_above_roofline | flag_speedup_threshold | flag_off_stream |
                                    flag_nondeterministic | flag_unverified_time;

} // namespace

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

} // namespace kb::report
