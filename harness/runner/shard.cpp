// Shards of a suite: the slice of (problem, model) tasks each shard searches, suite ids and
// fingerprints, the lookup of a shard's run, and what a run records about where it ran.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <random>
#include <sched.h>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "shard.hpp"

namespace kb::runner {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr int k_max_shards = 100000;

std::optional<int> parse_count(std::string_view s) {
  if (s.empty() || s.size() > 6)
    return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}
} // namespace

std::string Shard::label() const {
  return fmt::format("{}/{}", index, count);
}

Shard parse_shard(std::string_view text, std::string_view flag) {
  const auto slash = text.find('/');
  const auto k =
      slash == std::string_view::npos ? std::nullopt : parse_count(text.substr(0, slash));
  const auto n =
      slash == std::string_view::npos ? std::nullopt : parse_count(text.substr(slash + 1));
  if (!k || !n)
    throw InputError("command line", 0, std::string(flag),
                     fmt::format("'{}' is not K/N (shard K of N, e.g. 3/16)", text));
  if (*n < 1 || *n > k_max_shards)
    throw InputError("command line", 0, std::string(flag),
                     fmt::format("'{}': the shard count must be 1..{}", text, k_max_shards));
  if (*k < 1 || *k > *n)
    throw InputError("command line", 0, std::string(flag),
                     fmt::format("'{}': the shard must be 1..{} (shards count from 1)", text, *n));
  return Shard{*k, *n};
}

std::vector<int> shard_assignment(const std::vector<TaskKey>& tasks, int count) {
  if (count < 1)
    throw Error(fmt::format("a suite cannot be split {} ways", count));
  struct Entry {
    std::string hash;
    const TaskKey* key;
    std::size_t index;
  };
  std::vector<Entry> order;
  order.reserve(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i)
    order.push_back({content_hash(tasks[i].problem_id + "\n" + tasks[i].model), &tasks[i], i});
  std::sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.hash, *a.key) < std::tie(b.hash, *b.key);
  });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (*order[i].key == *order[i - 1].key)
      throw Error(fmt::format("task ({}, {}) is given twice", order[i].key->problem_id,
                              order[i].key->model));
  std::vector<int> out(tasks.size(), 0);
  for (std::size_t pos = 0; pos < order.size(); ++pos)
    out[order[pos].index] = static_cast<int>(pos % static_cast<std::size_t>(count)) + 1;
  return out;
}

std::vector<std::size_t> shard_tasks(const std::vector<TaskKey>& tasks, const Shard& s) {
  const std::vector<int> owner = shard_assignment(tasks, s.count);
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    if (owner[i] == s.index)
      out.push_back(i);
  return out;
}

void check_suite_id(std::string_view id, std::string_view flag) {
  const bool chars_ok = std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  if (id.empty() || id.size() > 64 || !chars_ok || id.front() == '.' || id.front() == '-')
    throw InputError("command line", 0, std::string(flag),
                     fmt::format("'{}' is not a suite id (1-64 letters, digits, '.', '_', '-'; "
                                 "not starting with '.' or '-')",
                                 id));
}

std::string new_suite_id() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%d-%H%M%S", &utc);
  std::random_device rd;
  return fmt::format("{}-{:06x}", when, rd() & 0xffffffu);
}

search::BudgetLimits shard_budget(const search::BudgetLimits& suite, int count) {
  if (count <= 1)
    return suite;
  auto share = [count](int64_t v) { return v > 0 ? std::max<int64_t>(1, v / count) : v; };
  search::BudgetLimits b = suite;
  b.tokens = share(suite.tokens);
  b.tokens_in = share(suite.tokens_in);
  b.tokens_out = share(suite.tokens_out);
  if (suite.usd > 0.0)
    b.usd = suite.usd / count;
  return b; // minutes: wall time, per shard
}

SuitePlan plan_suite(const RunOptions& opts) {
  RunOptions o = opts;
  if (o.levels_dir.empty())
    o.levels_dir = default_levels_dir();
  o.levels_dir = fs::absolute(o.levels_dir).lexically_normal().string();
  if (o.prompts_dir.empty())
    o.prompts_dir = fs::absolute(llm::PromptLibrary::default_dir()).string();
  const Catalog catalog = load_catalog(o.levels_dir);
  const auto problems = select_problems(catalog, o.levels, o.problems);
  const auto models = resolve_models(o.models, o.models_file, o.levels_dir);
  SuitePlan plan;
  plan.tasks = detail::task_keys(problems, models);
  plan.fingerprint = detail::suite_fingerprint(o, problems, models, prompts_hash(o.prompts_dir));
  plan.suite_id = o.suite.empty() ? "fp-" + plan.fingerprint : o.suite;
  return plan;
}

std::optional<int64_t> find_shard_run(store::Store& s, std::string_view suite, const Shard& shard) {
  std::vector<int64_t> found;
  for (const auto& r : s.runs()) {
    const json cfg = json::parse(r.info.config_json, nullptr, false);
    if (!cfg.is_object() || !cfg.contains("shard") || !cfg.contains("suite") ||
        !cfg["shard"].is_object() || !cfg["suite"].is_object())
      continue;
    if (cfg["suite"].value("id", "") == suite && cfg["shard"].value("index", 0) == shard.index &&
        cfg["shard"].value("count", 0) == shard.count)
      found.push_back(r.id);
  }
  if (found.size() > 1)
    throw Error(fmt::format("{}: runs {} are all shard {} of suite {}; resume one of them with "
                            "--resume",
                            s.path(), fmt::join(found, ", "), shard.label(), suite));
  if (found.empty())
    return std::nullopt;
  return found.front();
}

namespace detail {

std::vector<TaskKey> task_keys(const std::vector<const Problem*>& problems,
                               const std::vector<llm::ModelConfig>& models) {
  std::vector<TaskKey> out;
  for (const Problem* p : problems)
    for (const auto& m : models)
      out.push_back({p->id, m.name});
  return out;
}

std::string suite_fingerprint(const RunOptions& o, const std::vector<const Problem*>& problems,
                              const std::vector<llm::ModelConfig>& models,
                              const std::string& prompts_hash) {
  // What the suite asks (tasks, model request settings, strategy, prompts, limits) and how it is
  // judged (protocol, watchdog). Paths, GPUs, speeds and the shard itself are left out.
  const json cfg = to_config_json(o);
  json j{{"mode", cfg.at("mode")},
         {"strategy", cfg.at("strategy")},
         {"run_budget", cfg.at("run_budget")},
         {"problem_budget", cfg.at("problem_budget")},
         {"protocol", cfg.at("protocol")},
         {"watchdog", cfg.at("watchdog")},
         {"prompts", prompts_hash}};
  json ps = json::array();
  for (const Problem* p : problems)
    ps.push_back(json::array({p->id, p->content_hash}));
  j["problems"] = ps;
  json ms = json::array();
  for (const auto& m : models)
    ms.push_back(json{{"name", m.name},
                      {"provider", llm::provider_kind_name(m.provider)},
                      {"base_url", m.base_url},
                      {"model", m.model_id},
                      {"temperature", m.temperature},
                      {"max_output_tokens", m.max_output_tokens},
                      {"extra_body", m.extra_body},
                      {"max_tokens_field", m.max_tokens_field},
                      {"send_temperature", m.send_temperature},
                      {"anthropic_version", m.anthropic_version},
                      {"max_answer_bytes", m.max_answer_bytes}});
  j["models"] = ms;
  return content_hash(j.dump());
}

json environment_record() {
  json j = json::object();
  for (const char* name :
       {"CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
        "SLURM_JOB_PARTITION", "SLURMD_NODENAME", "SLURM_CPUS_PER_TASK", "SLURM_JOB_GPUS",
        "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_RESTART_COUNT"})
    if (const char* v = std::getenv(name))
      j[name] = v;
  return j;
}

json placement_record(const std::vector<int>& gpus, const DoctorReport& doctor) {
  json list = json::array();
  for (int g : gpus) {
    json e{{"index", g}};
    for (const auto& info : doctor.gpus)
      if (info.index == g)
        e["name"] = info.name;
#ifdef KB_RUNNER_HAS_EVALUATOR
    try {
      e["device"] = worker_visible_device(g);
    } catch (const std::exception& ex) {
      e["device_error"] = ex.what();
    }
#endif
    list.push_back(e);
  }
  return json{{"gpus", list},
              {"workers_per_gpu", 1},
              {"timing", "exclusive: one candidate per GPU at a time; its compile runs on the "
                         "CPUs, its check and timing alone on its GPU"}};
}

int available_cpus() {
  int n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    n = CPU_COUNT(&set);
  if (n <= 0)
    n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* v = std::getenv("SLURM_CPUS_PER_TASK")) {
    char* end = nullptr;
    const long c = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && c > 0 && c < n)
      n = static_cast<int>(c);
  }
  return std::max(1, n);
}

} // namespace detail

} // namespace kb::runner
