// Runner options: problem selection, model resolution, --gpus/--level parsing and the
// resolved configuration as JSON (what a run records and a resume reads back).
#include <algorithm>
#include <filesystem>
#include <fnmatch.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runner.hpp"

namespace kb::runner {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t end = s.find(sep, start);
    if (end == std::string_view::npos)
      end = s.size();
    std::string item(s.substr(start, end - start));
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty())
      out.push_back(item);
    start = end + 1;
  }
  return out;
}

int parse_int(const std::string& s, const char* field) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(s, &used);
    if (used == s.size())
      return v;
  } catch (const std::exception&) {
  }
  throw InputError("command line", 0, field, fmt::format("'{}' is not an integer", s));
}

std::string stem_of(const Problem& p) {
  const auto slash = p.id.find('/');
  return slash == std::string::npos ? p.id : p.id.substr(slash + 1);
}

} // namespace

std::optional<std::vector<int>> parse_gpus(std::string_view text) {
  if (text.empty() || text == "all")
    return std::nullopt;
  std::vector<int> out;
  for (const auto& s : split(text, ',')) {
    const int g = parse_int(s, "--gpus");
    if (g < 0)
      throw InputError("command line", 0, "--gpus", fmt::format("GPU index {} is negative", g));
    if (std::find(out.begin(), out.end(), g) == out.end())
      out.push_back(g);
  }
  if (out.empty())
    throw InputError("command line", 0, "--gpus", "expected 'all' or indices like 0,1");
  return out;
}

std::vector<int> parse_levels(std::string_view text) {
  std::vector<int> out;
  for (const auto& s : split(text, ',')) {
    const int l = parse_int(s, "--level");
    if (l < 1 || l > 9)
      throw InputError("command line", 0, "--level", fmt::format("level {} is not in 1..9", l));
    out.push_back(l);
  }
  return out;
}

std::vector<const Problem*> select_problems(const Catalog& c, const std::vector<int>& levels,
                                            const std::vector<std::string>& globs) {
  std::vector<const Problem*> out;
  std::vector<int> hits(globs.size(), 0);
  for (const auto& p : c.problems) {
    if (!levels.empty() && std::find(levels.begin(), levels.end(), p.level) == levels.end())
      continue;
    bool take = globs.empty();
    const std::string stem = stem_of(p);
    for (std::size_t i = 0; i < globs.size(); ++i) {
      if (fnmatch(globs[i].c_str(), p.id.c_str(), 0) == 0 ||
          fnmatch(globs[i].c_str(), stem.c_str(), 0) == 0) {
        take = true;
        ++hits[i];
      }
    }
    if (take)
      out.push_back(&p);
  }
  const std::string level_text =
      levels.empty() ? "any level" : fmt::format("level {}", fmt::join(levels, ","));
  for (std::size_t i = 0; i < globs.size(); ++i)
    if (hits[i] == 0)
      throw Error(fmt::format("--problems '{}' matches no problem of {} ({} problems in the "
                              "catalog; see `kbench list`)",
                              globs[i], level_text, c.problems.size()));
  if (out.empty())
    throw Error(fmt::format("no problem selected: the catalog has no problem of {}", level_text));
  return out;
}

std::vector<llm::ModelConfig> resolve_models(const std::vector<std::string>& names,
                                             const std::string& models_file,
                                             const std::string& levels_dir) {
  if (names.empty())
    throw Error("no model given (--models)");
  const fs::path root = fs::path(levels_dir).parent_path();
  std::string file = models_file;
  std::error_code ec;
  if (file.empty()) {
    if (fs::is_regular_file("config/models.yaml", ec))
      file = "config/models.yaml";
    else if (fs::is_regular_file(root / "config/models.yaml", ec))
      file = (root / "config/models.yaml").string();
  } else if (!fs::is_regular_file(file, ec)) {
    throw Error(fmt::format("models file {} does not exist", file));
  }
  std::vector<llm::ModelConfig> from_file;
  if (!file.empty())
    from_file = llm::load_models(file);
  std::vector<llm::ModelConfig> out;
  for (const auto& name : names) {
    auto it = std::find_if(from_file.begin(), from_file.end(),
                           [&](const llm::ModelConfig& m) { return m.name == name; });
    std::optional<llm::ModelConfig> m;
    if (it != from_file.end())
      m = *it;
    else
      m = llm::known_model_defaults(name);
    if (!m) {
      std::vector<std::string> known;
      for (const auto& f : from_file)
        known.push_back(f.name);
      throw Error(
          fmt::format("unknown model '{}': not in {} ({}) and not a known model family", name,
                      file.empty() ? "(no models file)" : file,
                      known.empty() ? "no models" : fmt::format("{}", fmt::join(known, ", "))));
    }
    if (m->provider == llm::ProviderKind::replay) {
      if (m->replay_dir.empty() || m->replay_dir == "levels/examples")
        m->replay_dir = (fs::path(levels_dir) / "examples").string();
      const fs::path d(m->replay_dir);
      if (d.is_relative() && !fs::is_directory(d, ec) && fs::is_directory(root / d, ec))
        m->replay_dir = (root / d).string();
    }
    if (std::any_of(out.begin(), out.end(),
                    [&](const llm::ModelConfig& o) { return o.name == m->name; }))
      throw Error(fmt::format("model '{}' given twice in --models", name));
    out.push_back(*m);
  }
  return out;
}

json model_config_json(const llm::ModelConfig& m) {
  return json{{"name", m.name},
              {"provider", llm::provider_kind_name(m.provider)},
              {"base_url", m.base_url},
              {"model", m.model_id},
              {"api_key_env", m.api_key_env},
              {"temperature", m.temperature},
              {"max_output_tokens", m.max_output_tokens},
              {"extra_body", m.extra_body},
              {"max_tokens_field", m.max_tokens_field},
              {"send_temperature", m.send_temperature},
              {"anthropic_version", m.anthropic_version},
              {"price_in", m.price_in_per_mtok},
              {"price_out", m.price_out_per_mtok},
              {"requests_per_minute", m.requests_per_minute},
              {"tokens_per_minute", m.tokens_per_minute},
              {"concurrency", m.concurrency},
              {"connect_timeout_s", m.connect_timeout_s},
              {"read_timeout_s", m.read_timeout_s},
              {"total_timeout_s", m.total_timeout_s},
              {"max_retries", m.max_retries},
              {"retry_base_delay_s", m.retry_base_delay_s},
              {"retry_max_delay_s", m.retry_max_delay_s},
              {"max_retry_after_s", m.max_retry_after_s},
              {"replay_dir", m.replay_dir},
              {"max_answer_bytes", m.max_answer_bytes},
              {"source", m.source}};
}

llm::ModelConfig model_config_from_json(const json& j) {
  try {
    llm::ModelConfig m;
    m.name = j.at("name").get<std::string>();
    auto kind = llm::parse_provider_kind(j.at("provider").get<std::string>());
    if (!kind)
      throw Error(fmt::format("model {}: unknown provider {}", m.name, j.at("provider").dump()));
    m.provider = *kind;
    m.base_url = j.value("base_url", m.base_url);
    m.model_id = j.value("model", m.model_id);
    m.api_key_env = j.value("api_key_env", m.api_key_env);
    m.temperature = j.value("temperature", m.temperature);
    m.max_output_tokens = j.value("max_output_tokens", m.max_output_tokens);
    m.extra_body = j.value("extra_body", m.extra_body);
    m.max_tokens_field = j.value("max_tokens_field", m.max_tokens_field);
    m.send_temperature = j.value("send_temperature", m.send_temperature);
    m.anthropic_version = j.value("anthropic_version", m.anthropic_version);
    m.price_in_per_mtok = j.value("price_in", m.price_in_per_mtok);
    m.price_out_per_mtok = j.value("price_out", m.price_out_per_mtok);
    m.requests_per_minute = j.value("requests_per_minute", m.requests_per_minute);
    m.tokens_per_minute = j.value("tokens_per_minute", m.tokens_per_minute);
    m.concurrency = j.value("concurrency", m.concurrency);
    m.connect_timeout_s = j.value("connect_timeout_s", m.connect_timeout_s);
    m.read_timeout_s = j.value("read_timeout_s", m.read_timeout_s);
    m.total_timeout_s = j.value("total_timeout_s", m.total_timeout_s);
    m.max_retries = j.value("max_retries", m.max_retries);
    m.retry_base_delay_s = j.value("retry_base_delay_s", m.retry_base_delay_s);
    m.retry_max_delay_s = j.value("retry_max_delay_s", m.retry_max_delay_s);
    m.max_retry_after_s = j.value("max_retry_after_s", m.max_retry_after_s);
    m.replay_dir = j.value("replay_dir", m.replay_dir);
    m.max_answer_bytes = j.value("max_answer_bytes", m.max_answer_bytes);
    m.source = j.value("source", m.source);
    return m;
  } catch (const json::exception& e) {
    throw Error(fmt::format("recorded model configuration: {}", e.what()));
  }
}

std::string prompts_hash(const std::string& dir) {
  const llm::PromptLibrary lib = llm::PromptLibrary::load(dir);
  std::string all;
  for (std::string_view name : llm::k_prompt_names) {
    all += name;
    all += '\0';
    all += lib.text(name);
    all += '\0';
  }
  return content_hash(all);
}

namespace {
json limits_json(const search::BudgetLimits& l) {
  return json{{"tokens", l.tokens},
              {"tokens_in", l.tokens_in},
              {"tokens_out", l.tokens_out},
              {"usd", l.usd},
              {"minutes", l.minutes}};
}
search::BudgetLimits limits_from(const json& j) {
  search::BudgetLimits l;
  l.tokens = j.value("tokens", int64_t{0});
  l.tokens_in = j.value("tokens_in", int64_t{0});
  l.tokens_out = j.value("tokens_out", int64_t{0});
  l.usd = j.value("usd", 0.0);
  l.minutes = j.value("minutes", 0.0);
  return l;
}
} // namespace

json to_config_json(const RunOptions& o) {
  const auto& s = o.strategy;
  json st{{"name", search::strategy_name(s.kind)},
          {"samples", s.samples},
          {"turns", s.turns},
          {"rounds", s.rounds},
          {"ideas", s.ideas},
          {"branches", s.branches},
          {"seeds", s.seeds},
          {"summary_chars", s.summary_chars},
          {"context_tokens", s.context_tokens},
          {"use_bank", s.use_bank}};
  st["temperature"] = s.temperature ? json(*s.temperature) : json(nullptr);
  st["seed"] = s.seed ? json(*s.seed) : json(nullptr);
  json out{{"mode", o.mode == Mode::run ? "run" : "generate"},
              {"levels", o.levels},
              {"problems", o.problems},
              {"models", o.models},
              {"models_file", o.models_file},
              {"strategy", st},
              {"run_budget", limits_json(o.run_budget)},
              {"problem_budget", limits_json(o.problem_budget)},
              {"gpus", o.gpus},
              {"jobs", o.jobs},
              {"concurrency", o.concurrency},
              {"db", o.db},
              {"protocol", protocol_name(o.protocol)},
              {"levels_dir", o.levels_dir},
              {"prompts_dir", o.prompts_dir},
              {"use_cache", o.use_cache},
              {"watchdog",
               {{"ceiling_s", o.eval.timeout_s},
                {"floor_s", o.eval.timeout_floor_s},
                {"factor", o.eval.timeout_factor}}}};
  if (o.shard) {
    out["shard"] = json{{"index", o.shard->index}, {"count", o.shard->count}};
    out["suite"] = json{{"id", o.suite}};
  }
  return out;
}

RunOptions from_config_json(const json& j) {
  try {
    RunOptions o;
    o.mode = j.at("mode").get<std::string>() == "generate" ? Mode::generate : Mode::run;
    o.levels = j.at("levels").get<std::vector<int>>();
    o.problems = j.at("problems").get<std::vector<std::string>>();
    o.models = j.at("models").get<std::vector<std::string>>();
    o.models_file = j.value("models_file", "");
    const json& st = j.at("strategy");
    auto kind = search::parse_strategy(st.at("name").get<std::string>());
    if (!kind)
      throw Error(fmt::format("strategy.name: unknown strategy '{}'", st.at("name").dump()));
    o.strategy.kind = *kind;
    o.strategy.samples = st.value("samples", o.strategy.samples);
    o.strategy.turns = st.value("turns", o.strategy.turns);
    o.strategy.rounds = st.value("rounds", o.strategy.rounds);
    o.strategy.ideas = st.value("ideas", o.strategy.ideas);
    o.strategy.branches = st.value("branches", o.strategy.branches);
    o.strategy.seeds = st.value("seeds", o.strategy.seeds);
    o.strategy.summary_chars = st.value("summary_chars", o.strategy.summary_chars);
    o.strategy.context_tokens = st.value("context_tokens", o.strategy.context_tokens);
    o.strategy.use_bank = st.value("use_bank", o.strategy.use_bank);
    if (st.contains("temperature") && !st["temperature"].is_null())
      o.strategy.temperature = st["temperature"].get<double>();
    if (st.contains("seed") && !st["seed"].is_null())
      o.strategy.seed = st["seed"].get<int64_t>();
    o.run_budget = limits_from(j.at("run_budget"));
    o.problem_budget = limits_from(j.at("problem_budget"));
    o.gpus = j.value("gpus", std::vector<int>{});
    o.jobs = j.value("jobs", 0);
    o.concurrency = j.value("concurrency", 0);
    o.db = j.value("db", o.db);
    const std::string protocol = j.value("protocol", "kbench");
    auto p = parse_protocol(protocol);
    if (!p)
      throw Error(fmt::format("protocol: unknown protocol '{}'", protocol));
    o.protocol = *p;
    o.levels_dir = j.value("levels_dir", "");
    o.prompts_dir = j.value("prompts_dir", "");
    o.use_cache = j.value("use_cache", true);
    if (j.contains("watchdog")) {
      const json& w = j.at("watchdog");
      o.eval.timeout_s = w.value("ceiling_s", o.eval.timeout_s);
      o.eval.timeout_floor_s = w.value("floor_s", o.eval.timeout_floor_s);
      o.eval.timeout_factor = w.value("factor", o.eval.timeout_factor);
    }
    if (j.contains("shard")) {
      const json& sh = j.at("shard");
      o.shard = Shard{sh.at("index").get<int>(), sh.at("count").get<int>()};
      if (o.shard->count < 1 || o.shard->index < 1 || o.shard->index > o.shard->count)
        throw Error(fmt::format("shard: {} is not shard K of N", sh.dump()));
      o.suite = j.at("suite").at("id").get<std::string>();
    }
    return o;
  } catch (const json::exception& e) {
    throw Error(fmt::format("run configuration: {}", e.what()));
  }
}

} // namespace kb::runner
