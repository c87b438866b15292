// JSON (de)serialisation of the shared types; used between the parent and its workers and in
// the store.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core.hpp"

namespace kb {

using nlohmann::json;

std::string dump_json(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json parse_json(std::string_view text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte counts from 1 and points just past the offending character.
    const std::size_t at = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    const std::string_view before = text.substr(0, at);
    const auto line = 1 + std::count(before.begin(), before.end(), '\n');
    const std::size_t nl = before.rfind('\n');
    const std::size_t column = nl == std::string_view::npos ? at + 1 : at - nl;
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..."
    if (auto colon = what.find(": "); colon != std::string::npos)
      what = what.substr(colon + 2);
    throw InputError(
        origin, static_cast<int>(line), "(json)",
        fmt::format("not valid JSON at line {}, column {}: {}", line, column, sanitize_utf8(what)));
  }
}

void to_json(json& j, const Distribution& d) {
  j = json{{"kind", dist_kind_name(d.kind)}, {"a", d.a}, {"b", d.b}};
}
void from_json(const json& j, Distribution& d) {
  auto k = parse_dist_kind(j.at("kind").get<std::string>());
  if (!k)
    throw Error("unknown distribution kind " + j.at("kind").dump());
  d.kind = *k;
  d.a = j.at("a").get<double>();
  d.b = j.at("b").get<double>();
}

namespace {
DType dtype_from(const json& j) {
  auto t = parse_dtype(j.get<std::string>());
  if (!t)
    throw Error("unknown dtype " + j.dump());
  return *t;
}
json attr_json(const AttrValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}
AttrValue attr_from(const json& j) {
  if (j.is_boolean())
    return j.get<bool>();
  if (j.is_number_integer())
    return j.get<int64_t>();
  if (j.is_number_float())
    return j.get<double>();
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_array()) {
    bool all_int = true;
    for (const auto& e : j)
      all_int = all_int && e.is_number_integer();
    if (all_int)
      return j.get<std::vector<int64_t>>();
    return j.get<std::vector<double>>();
  }
  throw Error("attribute value of unsupported type: " + j.dump());
}
} // namespace

void to_json(json& j, const TensorSpec& t) {
  j = json{{"name", t.name},
           {"shape", t.shape},
           {"dtype", dtype_name(t.dtype)},
           {"dist", t.dist},
           {"check_dists", t.check_dists}};
}
void from_json(const json& j, TensorSpec& t) {
  t.name = j.at("name").get<std::string>();
  t.shape = j.at("shape").get<Shape>();
  t.dtype = dtype_from(j.at("dtype"));
  t.dist = j.at("dist").get<Distribution>();
  t.check_dists = j.value("check_dists", std::vector<Distribution>{});
}
void to_json(json& j, const ValueSpec& v) {
  j = json{{"shape", v.shape}, {"dtype", dtype_name(v.dtype)}};
}
void from_json(const json& j, ValueSpec& v) {
  v.shape = j.at("shape").get<Shape>();
  v.dtype = dtype_from(j.at("dtype"));
}
void to_json(json& j, const OpNode& n) {
  json attrs = json::object();
  for (const auto& [k, v] : n.attrs)
    attrs[k] = attr_json(v);
  j = json{{"op", n.op}, {"in", n.inputs}, {"out", n.output}, {"attrs", attrs}, {"line", n.line}};
}
void from_json(const json& j, OpNode& n) {
  n.op = j.at("op").get<std::string>();
  n.inputs = j.at("in").get<std::vector<std::string>>();
  n.output = j.at("out").get<std::string>();
  n.attrs.clear();
  for (const auto& [k, v] : j.at("attrs").items())
    n.attrs[k] = attr_from(v);
  n.line = j.value("line", 0);
}
void to_json(json& j, const Problem& p) {
  json values = json::object();
  for (const auto& [k, v] : p.values)
    values[k] = v;
  j = json{
      {"id", p.id},
      {"level", p.level},
      {"name", p.name},
      {"description", p.description},
      {"inputs", p.inputs},
      {"params", p.params},
      {"graph", p.graph},
      {"outputs", p.outputs},
      {"values", values},
      {"tolerance",
       {{"atol", p.tolerance.atol}, {"rtol", p.tolerance.rtol}, {"reason", p.tolerance.reason}}},
      {"precision",
       {{"allow_tf32", p.precision.allow_tf32}, {"allow_reduced", p.precision.allow_reduced}}},
      {"provenance",
       {{"source", p.provenance.source},
        {"version", p.provenance.version},
        {"ref", p.provenance.ref}}},
      {"flops", p.flops},
      {"min_bytes", p.min_bytes},
      {"source_path", p.source_path},
      {"content_hash", p.content_hash}};
}
void from_json(const json& j, Problem& p) {
  p.id = j.at("id").get<std::string>();
  p.level = j.at("level").get<int>();
  p.name = j.value("name", "");
  p.description = j.value("description", "");
  p.inputs = j.at("inputs").get<std::vector<TensorSpec>>();
  p.params = j.at("params").get<std::vector<TensorSpec>>();
  p.graph = j.at("graph").get<std::vector<OpNode>>();
  p.outputs = j.at("outputs").get<std::vector<std::string>>();
  p.values.clear();
  for (const auto& [k, v] : j.at("values").items())
    p.values[k] = v.get<ValueSpec>();
  const auto& tol = j.at("tolerance");
  p.tolerance = {tol.at("atol").get<double>(), tol.at("rtol").get<double>(),
                 tol.value("reason", "")};
  const auto& prec = j.at("precision");
  p.precision = {prec.value("allow_tf32", false), prec.value("allow_reduced", false)};
  const auto& prov = j.at("provenance");
  p.provenance = {prov.value("source", ""), prov.value("version", ""), prov.value("ref", "")};
  p.flops = j.value("flops", 0.0);
  p.min_bytes = j.value("min_bytes", 0.0);
  p.source_path = j.value("source_path", "");
  p.content_hash = j.value("content_hash", "");
}

} // namespace kb

namespace kb {

void to_json(json& j, const GpuCeilings& c) {
  j = json{{"gpu_name", c.gpu_name},       {"bandwidth_gbs", c.bandwidth_gbs},
           {"fp32_tflops", c.fp32_tflops}, {"tf32_tflops", c.tf32_tflops},
           {"fp16_tflops", c.fp16_tflops}, {"bf16_tflops", c.bf16_tflops},
           {"measured", c.measured}};
}
void from_json(const json& j, GpuCeilings& c) {
  c.gpu_name = j.value("gpu_name", "");
  c.bandwidth_gbs = j.value("bandwidth_gbs", 0.0);
  c.fp32_tflops = j.value("fp32_tflops", 0.0);
  c.tf32_tflops = j.value("tf32_tflops", 0.0);
  c.fp16_tflops = j.value("fp16_tflops", 0.0);
  c.bf16_tflops = j.value("bf16_tflops", 0.0);
  c.measured = j.value("measured", false);
}
void to_json(json& j, const TimingStats& t) {
  j = json{{"median_ms", t.median_ms},  {"mean_ms", t.mean_ms},
           {"stderr_ms", t.stderr_ms},  {"median_stderr_ms", t.median_stderr_ms},
           {"min_ms", t.min_ms},        {"host_median_ms", t.host_median_ms},
           {"samples", t.samples},      {"stop_reason", t.stop_reason},
           {"samples_ms", t.samples_ms}};
}
void from_json(const json& j, TimingStats& t) {
  t.median_ms = j.value("median_ms", 0.0);
  t.mean_ms = j.value("mean_ms", 0.0);
  t.stderr_ms = j.value("stderr_ms", 0.0);
  t.median_stderr_ms = j.value("median_stderr_ms", 0.0);
  t.min_ms = j.value("min_ms", 0.0);
  t.host_median_ms = j.value("host_median_ms", 0.0);
  t.samples = j.value("samples", 0);
  t.stop_reason = j.value("stop_reason", "");
  t.samples_ms = j.value("samples_ms", std::vector<double>{});
}
void to_json(json& j, const MismatchInfo& m) {
  j = json{{"output", m.output},
           {"seed_index", m.seed_index},
           {"distribution", m.distribution},
           {"max_abs_err", m.max_abs_err},
           {"max_rel_err", m.max_rel_err},
           {"mismatch_count", m.mismatch_count},
           {"first_bad_index", m.first_bad_index},
           {"nan_count", m.nan_count},
           {"inf_count", m.inf_count},
           {"reason", m.reason}};
}
void from_json(const json& j, MismatchInfo& m) {
  m.output = j.value("output", "");
  m.seed_index = j.value("seed_index", 0);
  m.distribution = j.value("distribution", "");
  m.max_abs_err = j.value("max_abs_err", 0.0);
  m.max_rel_err = j.value("max_rel_err", 0.0);
  m.mismatch_count = j.value("mismatch_count", int64_t{0});
  m.first_bad_index = j.value("first_bad_index", int64_t{-1});
  m.nan_count = j.value("nan_count", int64_t{0});
  m.inf_count = j.value("inf_count", int64_t{0});
  m.reason = j.value("reason", "");
}
void to_json(json& j, Protocol p) {
  j = protocol_name(p);
}
void from_json(const json& j, Protocol& p) {
  const auto name = j.get<std::string>();
  // Results written before protocols had versions may carry an empty name: kbench's own.
  if (name.empty()) {
    p = Protocol::kbench;
    return;
  }
  auto parsed = parse_protocol(name);
  if (!parsed)
    throw Error(fmt::format("unknown protocol '{}' ({})", name, protocol_names()));
  p = *parsed;
}
void to_json(json& j, const EvalResult& r) {
  j = json{{"outcome", outcome_name(r.outcome)},
           {"message", r.message},
           {"flags", flag_names(r.flags)},
           {"flag_bits", r.flags},
           {"protocol", protocol_name(r.protocol)},
           {"speedup", r.speedup},
           {"roofline_pct", r.roofline_pct},
           {"compile_log", r.compile_log},
           {"library_calls", r.library_calls},
           {"compile_s", r.compile_s},
           {"start_s", r.start_s},
           {"check_s", r.check_s},
           {"time_s", r.time_s},
           {"compile_cached", r.compile_cached}};
  j["mismatch"] = r.mismatch ? json(*r.mismatch) : json(nullptr);
  j["candidate_time"] = r.candidate_time ? json(*r.candidate_time) : json(nullptr);
  j["baseline_time"] = r.baseline_time ? json(*r.baseline_time) : json(nullptr);
}
void from_json(const json& j, EvalResult& r) {
  auto o = parse_outcome(j.at("outcome").get<std::string>());
  if (!o)
    throw Error("unknown outcome " + j.at("outcome").dump());
  r.outcome = *o;
  r.message = j.value("message", "");
  r.flags = j.value("flag_bits", 0u);
  r.protocol = j.contains("protocol") ? j.at("protocol").get<Protocol>() : Protocol::kbench;
  r.speedup = j.value("speedup", 0.0);
  r.roofline_pct = j.value("roofline_pct", 0.0);
  r.compile_log = j.value("compile_log", "");
  r.library_calls = j.value("library_calls", std::vector<std::string>{});
  r.compile_s = j.value("compile_s", 0.0);
  r.start_s = j.value("start_s", 0.0);
  r.check_s = j.value("check_s", 0.0);
  r.time_s = j.value("time_s", 0.0);
  r.compile_cached = j.value("compile_cached", false);
  r.mismatch.reset();
  r.candidate_time.reset();
  r.baseline_time.reset();
  if (j.contains("mismatch") && !j["mismatch"].is_null())
    r.mismatch = j["mismatch"].get<MismatchInfo>();
  if (j.contains("candidate_time") && !j["candidate_time"].is_null())
    r.candidate_time = j["candidate_time"].get<TimingStats>();
  if (j.contains("baseline_time") && !j["baseline_time"].is_null())
    r.baseline_time = j["baseline_time"].get<TimingStats>();
}

} // namespace kb
