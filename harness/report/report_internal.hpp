// Internal helpers shared by the report's builders, comparison, export and renderers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store.hpp"

namespace kb::report {

// problem key -> source -> [(hardware, time ms)]
using ExternalTimes =
    std::map<std::string, std::map<std::string, std::vector<std::pair<std::string, double>>>>;
ExternalTimes external_times(store::Store& s);
// The time recorded under any of `keys` for `source`, preferring the given GPU's hardware.
std::optional<double> find_external(const ExternalTimes& ext, const std::vector<std::string>& keys,
                                    const std::string& source, const std::string& gpu_name);

// The reasons a correct kernel is held for review (empty: it may rank): review flags, a speedup
// above `review_speedup`, a roofline % above 100.
std::vector<std::string> review_reasons(const store::AttemptRow& a, double review_speedup);

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(std::string_view s);

} // namespace kb::report
