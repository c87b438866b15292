// Helpers shared by the report's builders, comparison, export and renderers: external baseline
// lookup, review rules and text escaping.
#include <charconv>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report.hpp"

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

namespace {

// A plain decimal number such as "-0.5" or "1e-3": a spreadsheet reads it as a number, not a
// formula, so it needs no neutralising.
bool plain_number(std::string_view s) {
  if (s.empty())
    return false;
  double v = 0.0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size();
}

} // namespace

std::string csv_field(std::string_view s) {
  std::string text(s);
  if (!text.empty() && std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos &&
      !plain_number(text))
    text.insert(text.begin(), '\'');
  if (text.find_first_of(",\"\r\n") == std::string::npos)
    return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

std::map<int64_t, std::string> model_labels(store::Store& s) {
  auto rows = s.models();
  std::map<std::string, std::vector<const store::ModelRow*>> same;
  for (const auto& m : rows)
    same[m.info.provider + "/" + m.info.model_id].push_back(&m);
  std::map<int64_t, std::string> out;
  for (const auto& [base, group] : same) {
    if (group.size() == 1) {
      out[group.front()->id] = base;
      continue;
    }
    // The top-level settings whose values differ within the group, in key order, "name" first.
    std::vector<nlohmann::json> settings;
    for (const auto* m : group) {
      auto j = nlohmann::json::parse(m->info.settings_json, nullptr, false);
      settings.push_back(j.is_object() ? j : nlohmann::json::object());
    }
    std::set<std::string> keys;
    for (const auto& j : settings)
      for (const auto& [k, v] : j.items())
        keys.insert(k);
    std::vector<std::string> differing;
    for (const auto& k : keys) {
      bool differs = false;
      for (const auto& j : settings)
        differs =
            differs || j.value(k, nlohmann::json()) != settings.front().value(k, nlohmann::json());
      if (differs)
        differing.insert(k == "name" ? differing.begin() : differing.end(), k);
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
      std::string detail;
      for (const auto& k : differing) {
        auto v = settings[i].value(k, nlohmann::json());
        std::string text = v.is_string() ? v.get<std::string>()
                           : v.is_null()
                               ? "unset"
                               : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (text.size() > 48)
          text = text.substr(0, 45) + "...";
        detail += (detail.empty() ? "" : ", ") + k + "=" + text;
      }
      // Rows always differ in some setting; an unreadable settings text falls back to the row id.
      out[group[i]->id] =
          base + " (" + (detail.empty() ? fmt::format("model row {}", group[i]->id) : detail) + ")";
    }
  }
  return out;
}

std::vector<std::string> unmatched_external_baselines(store::Store& s, std::string_view source) {
  std::set<std::string> known;
  for (const auto& p : s.problems())
    for (auto& k : p.baseline_keys())
      known.insert(std::move(k));
  std::set<std::string> out;
  for (const auto& r : s.external_baselines())
    if (r.baseline.source == source && !known.count(r.baseline.problem_key))
      out.insert(r.baseline.problem_key);
  return {out.begin(), out.end()};
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
