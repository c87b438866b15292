// Prompt templates: loading from a directory users can edit, {{placeholder}} rendering, and the
// values the templates refer to.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "llm.hpp"

#ifndef KB_LLM_SOURCE_DIR
#define KB_LLM_SOURCE_DIR "."
#endif

namespace kb::llm {

namespace {

int line_at(std::string_view text, std::size_t pos) {
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return std::string(s);
}

bool valid_name(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      return false;
  return true;
}

// Calls on_text for literal runs and on_var for each placeholder name; throws for an
// unterminated or malformed placeholder.
template <class OnText, class OnVar>
void scan(std::string_view text, const std::string& origin, OnText on_text, OnVar on_var) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      on_text(text.substr(pos));
      return;
    }
    on_text(text.substr(pos, open - pos));
    if (text.substr(open, 4) == "{{{{") {
      on_text("{{");
      pos = open + 4;
      continue;
    }
    const std::size_t close = text.find("}}", open + 2);
    const std::size_t newline = text.find('\n', open + 2);
    if (close == std::string_view::npos || (newline != std::string_view::npos && newline < close))
      throw InputError(origin, line_at(text, open), "template", "unterminated '{{'");
    const std::string name = trim(text.substr(open + 2, close - open - 2));
    if (!valid_name(name))
      throw InputError(origin, line_at(text, open), "template",
                       fmt::format("bad placeholder '{{{{{}}}}}'", name));
    on_var(name, line_at(text, open));
    pos = close + 2;
  }
}

std::string fmt_bytes(int64_t bytes) {
  if (bytes <= 0)
    return "unknown";
  if (bytes % (1 << 20) == 0)
    return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string or_none(const std::string& s) {
  return s.empty() ? "(none)" : s;
}

std::string fmt_num(double v) {
  if (v == 0.0)
    return "unknown";
  return fmt::format("{:g}", v);
}

} // namespace

std::string render_template(std::string_view text, const PromptVars& vars,
                            const std::string& origin) {
  std::string out;
  out.reserve(text.size());
  scan(
      text, origin, [&](std::string_view lit) { out += lit; },
      [&](const std::string& name, int line) {
        auto it = vars.find(name);
        if (it == vars.end())
          throw InputError(origin, line, name, "placeholder has no value");
        out += it->second;
      });
  return out;
}

std::vector<std::string> template_placeholders(std::string_view text) {
  std::vector<std::string> names;
  scan(
      text, "template", [](std::string_view) {},
      [&](const std::string& name, int) {
        if (std::find(names.begin(), names.end(), name) == names.end())
          names.push_back(name);
      });
  return names;
}

PromptLibrary PromptLibrary::load(const std::string& dir) {
  PromptLibrary lib;
  lib.m_dir = dir;
  for (std::string_view name : k_prompt_names) {
    const std::string path = (std::filesystem::path(dir) / (std::string(name) + ".md")).string();
    std::ifstream in(path, std::ios::binary);
    if (!in)
      throw Error(fmt::format("cannot read prompt template {} (prompt '{}')", path, name));
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // Reject malformed templates at load time rather than in the middle of a run.
    scan(
        text, path, [](std::string_view) {}, [](const std::string&, int) {});
    lib.m_texts.emplace(std::string(name), std::move(text));
  }
  return lib;
}

std::string PromptLibrary::default_dir() {
  if (const char* env = std::getenv("KBENCH_PROMPTS"); env && *env)
    return env;
  std::error_code ec;
  if (std::filesystem::is_regular_file("prompts/system.md", ec))
    return "prompts";
  return std::string(KB_LLM_SOURCE_DIR) + "/prompts";
}

const std::string& PromptLibrary::text(std::string_view name) const {
  auto it = m_texts.find(name);
  if (it == m_texts.end())
    throw Error(fmt::format("unknown prompt '{}'", name));
  return it->second;
}

std::string PromptLibrary::render(std::string_view name, const PromptVars& vars) const {
  return render_template(text(name), vars,
                         (std::filesystem::path(m_dir) / (std::string(name) + ".md")).string());
}

std::string trim_log(std::string_view log, int max_lines) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < log.size()) {
    std::size_t nl = log.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = log.size();
    lines.push_back(log.substr(pos, nl - pos));
    pos = nl + 1;
  }
  while (!lines.empty() && trim(lines.back()).empty())
    lines.pop_back();
  const std::size_t keep = std::min(lines.size(), static_cast<std::size_t>(std::max(0, max_lines)));
  std::string out;
  for (std::size_t i = 0; i < keep; ++i) {
    out += lines[i];
    out += '\n';
  }
  if (keep < lines.size())
    out += fmt::format("... ({} more lines)\n", lines.size() - keep);
  return out;
}

std::string format_mismatch(const MismatchInfo& m) {
  std::string s = fmt::format("output {}, check {} ({} inputs)", or_none(m.output), m.seed_index,
                              m.distribution.empty() ? "default" : m.distribution);
  if (!m.reason.empty() && m.reason != "values")
    s += fmt::format(": {}", m.reason);
  s += fmt::format(": {} elements differ; max abs error {:.3g}, max rel error {:.3g}",
                   m.mismatch_count, m.max_abs_err, m.max_rel_err);
  if (m.first_bad_index >= 0)
    s += fmt::format("; first wrong element at flat index {}", m.first_bad_index);
  if (m.nan_count > 0)
    s += fmt::format("; {} NaN where the reference has none", m.nan_count);
  if (m.inf_count > 0)
    s += fmt::format("; {} Inf where the reference has none", m.inf_count);
  return s;
}

PromptVars prompt_vars(const PromptContext& c) {
  const auto& g = c.gpu.ceilings;
  PromptVars v;
  v["problem_id"] = or_none(c.problem_id);
  v["problem"] = or_none(c.problem_pytorch);
  v["abi_header"] = or_none(c.abi_header);
  v["gpu_name"] = g.gpu_name.empty() ? "unknown GPU" : g.gpu_name;
  v["gpu_sms"] = c.gpu.sm_count > 0 ? std::to_string(c.gpu.sm_count) : "unknown";
  v["gpu_l2"] = fmt_bytes(c.gpu.l2_bytes);
  v["gpu_bandwidth"] = g.bandwidth_gbs > 0 ? fmt::format("{:g} GB/s", g.bandwidth_gbs) : "unknown";
  v["gpu_compute_capability"] =
      c.gpu.compute_capability.empty() ? "unknown" : c.gpu.compute_capability;
  const bool any_peak =
      g.fp32_tflops > 0 || g.tf32_tflops > 0 || g.fp16_tflops > 0 || g.bf16_tflops > 0;
  v["gpu_ceilings"] =
      any_peak
          ? fmt::format("FP32 {} TFLOP/s, TF32 {} TFLOP/s, FP16 {} TFLOP/s, BF16 {} TFLOP/s ({})",
                        fmt_num(g.fp32_tflops), fmt_num(g.tf32_tflops), fmt_num(g.fp16_tflops),
                        fmt_num(g.bf16_tflops), g.measured ? "measured" : "datasheet")
          : std::string("peak throughputs unknown");
  v["gpu_summary"] =
      fmt::format("{} (compute capability {}): {} SMs, {} L2 cache, {} memory bandwidth; {}",
                  v["gpu_name"], v["gpu_compute_capability"], v["gpu_sms"], v["gpu_l2"],
                  v["gpu_bandwidth"], v["gpu_ceilings"]);
  v["example_kernel"] = or_none(c.example_kernel);
  v["kernel"] = or_none(c.kernel);
  v["compile_log"] =
      c.compile_log.empty() ? "(empty log)" : trim_log(c.compile_log, c.max_log_lines);
  v["error_message"] = or_none(c.error_message);
  v["mismatch"] = c.mismatch ? format_mismatch(*c.mismatch) : "(none)";
  v["speedup"] = fmt::format("{:.3f}", c.speedup);
  v["roofline_pct"] = fmt::format("{:.1f}", c.roofline_pct);
  v["candidate_ms"] = fmt::format("{:.4f}", c.candidate_ms);
  v["baseline_ms"] = fmt::format("{:.4f}", c.baseline_ms);
  v["idea"] = or_none(c.idea);
  v["history"] = or_none(c.history);
  v["num_ideas"] = std::to_string(c.num_ideas);
  return v;
}

} // namespace kb::llm
