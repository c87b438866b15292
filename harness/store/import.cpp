// KernelBench's timing JSON as external baselines.
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store_impl.hpp"

namespace kb::store {

using nlohmann::json;

ImportSummary Store::import_kernelbench_timings(const std::string& json_path,
                                                std::string_view source) {
  std::string text = read_file(json_path);
  // A syntax error names its line and column.
  json doc = parse_json(text, json_path);
  if (!doc.is_object() || doc.empty())
    throw InputError(json_path, 0, "",
                     "expected KernelBench's timing format: an object of \"levelN\" objects");
  ImportSummary sum;
  sum.source = std::string(source);
  std::vector<ExternalBaseline> rows;
  for (const auto& [level_key, entries] : doc.items()) {
    int level = 0;
    if (!level_key.starts_with("level") || std::sscanf(level_key.c_str() + 5, "%d", &level) != 1 ||
        level <= 0)
      throw InputError(json_path, 0, level_key, "expected a key of the form \"levelN\"");
    if (!entries.is_object())
      throw InputError(json_path, 0, level_key, "expected an object of problem entries");
    for (const auto& [file, e] : entries.items()) {
      std::string field = level_key + "." + file;
      if (e.is_null()) {
        // KernelBench publishes null for a problem that did not run on that hardware.
        sum.unmeasured.push_back(field);
        continue;
      }
      if (!e.is_object() || !e.contains("mean") || !e["mean"].is_number())
        throw InputError(json_path, 0, field, "entry without a numeric \"mean\" (ms)");
      auto num = [&](const char* k) {
        if (!e.contains(k))
          return 0.0;
        if (!e[k].is_number())
          throw InputError(json_path, 0, field + "." + k, "expected a number");
        return e[k].get<double>();
      };
      ExternalBaseline b;
      std::string stem = file.ends_with(".py") ? file.substr(0, file.size() - 3) : file;
      b.problem_key = fmt::format("l{}/{}", level, lower(stem));
      b.source = std::string(source);
      b.hardware = e.contains("hardware") && e["hardware"].is_string()
                       ? e["hardware"].get<std::string>()
                       : std::string();
      b.time_ms = num("mean");
      if (!(b.time_ms > 0))
        throw InputError(json_path, 0, field + ".mean", "time must be positive");
      b.std_ms = num("std");
      b.min_ms = num("min");
      b.max_ms = num("max");
      b.num_trials = static_cast<int>(num("num_trials"));
      b.file = json_path;
      if (sum.hardware.empty())
        sum.hardware = b.hardware;
      rows.push_back(std::move(b));
    }
  }
  m_impl->write([&] {
    for (const auto& b : rows)
      record_external_baseline(b);
  });
  sum.imported = static_cast<int64_t>(rows.size());
  return sum;
}

} // namespace kb::store
