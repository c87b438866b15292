// The suite loop: problems x models through a strategy, with budgets, resume, the evaluation
// pipeline and the store; and the evaluation of stored candidates (kbench evaluate).
#include <algorithm>
#include <deque>
#include <filesystem>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "codegen.hpp"
#include "pipeline.hpp"
#include "shard.hpp"

namespace kb::runner {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "";
  return buf;
}

// What the replay model answers for a problem without kernel files: its naive candidate
// (docs/abi.md, "Naive candidates"), or why there is none.
llm::GeneratedKernel naive_kernel(const Catalog& catalog, const std::string& problem_id) {
  llm::GeneratedKernel g;
  g.label = "generated naive kernel";
  const Problem* p = catalog.find(problem_id);
  if (p == nullptr) {
    g.reason = fmt::format("problem '{}' is not in the catalog", problem_id);
    return g;
  }
  try {
    g.source = naive_candidate(*p).source;
  } catch (const Error& e) {
    g.reason = e.what();
  }
  return g;
}

std::string stem_of(const std::string& id) {
  const auto slash = id.find('/');
  return slash == std::string::npos ? id : id.substr(slash + 1);
}

std::string version_text(int v, int major_div, int minor_div) {
  if (v <= 0)
    return "";
  return fmt::format("{}.{}", v / major_div, (v % major_div) / minor_div);
}

std::vector<fs::path> kernels_of(const fs::path& examples, const std::string& stem) {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path dir = examples / stem;
  if (!fs::is_directory(dir, ec))
    return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".cu")
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A worked example for the prompt, never of the problem itself.
std::string example_kernel_for(const fs::path& examples, const std::string& stem) {
  std::error_code ec;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(examples, ec))
    if (e.is_directory(ec) && e.path().filename() != stem)
      dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    if (fs::is_regular_file(d / "plain.cu", ec))
      return read_file((d / "plain.cu").string());
    auto ks = kernels_of(examples, d.filename().string());
    if (!ks.empty())
      return read_file(ks.front().string());
  }
  return "";
}

std::string abi_header_text(const std::string& levels_dir) {
  std::error_code ec;
  for (const fs::path& p : {fs::path(resolve_include_dir(CompileOptions{})) / "kbench/kb_abi.h",
                            fs::path(levels_dir).parent_path() / "include/kbench/kb_abi.h"})
    if (fs::is_regular_file(p, ec))
      return read_file(p.string());
  throw Error("cannot find include/kbench/kb_abi.h (set KB_INCLUDE_DIR)");
}

json model_settings(const llm::ModelConfig& m, const search::StrategyOptions& s) {
  json j{{"name", m.name},
         {"base_url", m.base_url},
         {"temperature", s.temperature.value_or(m.temperature)},
         {"max_output_tokens", m.max_output_tokens}};
  if (!m.extra_body.empty())
    j["extra_body"] = m.extra_body;
  if (m.provider == llm::ProviderKind::replay)
    j["replay_dir"] = m.replay_dir;
  return j;
}

json model_record(const llm::ModelConfig& m) {
  // The key variable's name is recorded, never its value.
  return json{{"name", m.name},
              {"provider", llm::provider_kind_name(m.provider)},
              {"base_url", m.base_url},
              {"model", m.model_id},
              {"api_key_env", m.api_key_env},
              {"temperature", m.temperature},
              {"max_output_tokens", m.max_output_tokens},
              {"price_in", m.price_in_per_mtok},
              {"price_out", m.price_out_per_mtok},
              {"concurrency", m.concurrency},
              {"max_retries", m.max_retries},
              {"source", m.source}};
}

// The ceilings of a run for its configuration record: per GPU model, the GPUs, the figures and
// where they came from.
json ceilings_record(const detail::CeilingsPlan& plan) {
  json out = json::array();
  for (const auto& g : plan.groups)
    out.push_back(json{{"gpus", g.gpus},
                       {"source", g.choice.source},
                       {"origin", ceilings_origin_name(g.choice.origin)},
                       {"ceilings", g.choice.ceilings}});
  return out;
}

// Resume matching key of a candidate: what the strategy deterministically reproduces.
using ResumeKey =
    std::tuple<std::string, int64_t, std::string, int, int64_t, std::string, std::string>;

ResumeKey resume_key(const std::string& problem, int64_t model, const std::string& strategy,
                     int round, std::optional<int64_t> parent, const std::string& idea,
                     const std::string& source_hash) {
  return {problem, model, strategy, round, parent.value_or(-1), idea, source_hash};
}

class Suite {
public:
  Suite(RunOptions o, EvalBackend* backend, const std::atomic<bool>* cancel, const RunHooks& h)
      : m_o(std::move(o)), m_backend(backend), m_cancel(cancel), m_hooks(h) {}

  RunSummary run();

private:
  bool prepare(RunSummary& summary);
  void run_tasks(RunSummary& summary);
  void log(const std::string& line) {
    if (!m_hooks.log)
      return;
    std::lock_guard lock(m_log_mutex);
    m_hooks.log(line);
  }
  Progress progress() const;
  void acquire_lease();
  int64_t record_job(detail::EvalJob& job, const EvalResult* r);
  std::future<search::Verdict> submit(const Problem& p, int64_t model_row,
                                      search::CandidateDraft d);
  store::Candidate candidate_of(const search::CandidateDraft& d, int64_t model_row) const;
  TaskSummary run_task(const Problem& p, std::size_t model_index);
  void record_stop(const Problem& p, std::size_t model_index, const std::string& code,
                   const std::string& message);

  RunOptions m_o;
  EvalBackend* m_backend;
  const std::atomic<bool>* m_cancel;
  RunHooks m_hooks;
  std::mutex m_log_mutex;
  std::atomic<bool> m_stop{false};
  std::chrono::steady_clock::time_point m_t0 = std::chrono::steady_clock::now();

  Catalog m_catalog;
  std::vector<const Problem*> m_problems;
  std::vector<llm::ModelConfig> m_models;
  std::vector<int64_t> m_model_rows;
  std::optional<llm::PromptLibrary> m_prompts;
  llm::TargetGpu m_gpu;
  std::string m_abi;
  fs::path m_examples;

  // The one writer of the run's rows (and holder of its lease).
  std::unique_ptr<detail::RunRecorder> m_recorder;
  AbandonHandle m_abandon; // destroyed before the recorder: the hook never sees it dangling
  int64_t m_run_id = 0;
  std::vector<llm::ModelConfig> m_recorded_models; // resume: the run's own models
  json m_suite_record;                              // a new shard's suite: id, fingerprint
  std::string m_recorded_prompts_hash;

  std::vector<std::unique_ptr<llm::Client>> m_clients;
  std::unique_ptr<detail::StoreJournal> m_journal;
  std::unique_ptr<search::BudgetLedger> m_ledger;
  std::vector<std::unique_ptr<search::ModelGateway>> m_gateways;
  detail::PipelineStats m_pstats;
  std::unique_ptr<detail::EvalPipeline> m_pipeline;

  std::mutex m_state_mutex;
  std::multimap<ResumeKey, store::AttemptRow> m_resume;
  std::set<std::string> m_baselines_recorded;
  std::map<std::string, double> m_best;
  std::atomic<int64_t> m_candidates{0};
  std::atomic<int> m_tasks_done{0};
  int m_tasks_total = 0;
};

void Suite::acquire_lease() {
  m_recorder->acquire_lease(m_run_id);
}

int64_t Suite::record_job(detail::EvalJob& job, const EvalResult* r) {
  return m_recorder->with([&](store::Store& s) {
    int64_t id = 0;
    if (job.existing_id && r) {
      s.record_evaluation(*job.existing_id, *r);
      id = *job.existing_id;
    } else if (job.existing_id) {
      id = *job.existing_id;
    } else {
      std::optional<EvalResult> e;
      if (r)
        e = *r;
      id = s.record_attempt(store::Attempt{std::nullopt, job.candidate, e}).candidate_id;
    }
    // kbench's own baseline, once per problem of the run.
    if (r && r->baseline_time && m_baselines_recorded.insert(job.problem->id).second)
      s.record_baseline_timing(m_run_id, job.problem->id, *r->baseline_time);
    return id;
  });
}

Progress Suite::progress() const {
  Progress p;
  p.tasks_total = m_tasks_total;
  p.tasks_done = m_tasks_done;
  p.candidates = m_candidates;
  p.evaluated = m_pstats.evaluated;
  p.correct = m_pstats.correct;
  p.evals_queued = m_pstats.queued;
  p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_t0).count();
  for (const auto& g : m_gateways) {
    const auto u = g->fresh_usage();
    p.spent.tokens_in += u.tokens_in;
    p.spent.tokens_out += u.tokens_out;
    p.spent.cost_usd += u.cost_usd;
    p.spent.calls += u.calls;
  }
  for (const auto& c : m_clients)
    p.llm_calls += c->stats().calls;
  {
    std::lock_guard lock(const_cast<std::mutex&>(m_state_mutex));
    p.best.assign(m_best.begin(), m_best.end());
  }
  std::sort(p.best.begin(), p.best.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  return p;
}

store::Candidate Suite::candidate_of(const search::CandidateDraft& d, int64_t model_row) const {
  store::Candidate c;
  c.run_id = m_run_id;
  c.problem_id = d.problem_id;
  c.model_id = model_row;
  c.strategy = d.strategy;
  c.round = d.round;
  c.parent_id = d.parent_id;
  c.idea = d.idea;
  c.source = d.source;
  if (d.answer)
    c.llm_call_id = d.answer->call_id;
  return c;
}

std::future<search::Verdict> Suite::submit(const Problem& p, int64_t model_row,
                                           search::CandidateDraft d) {
  ++m_candidates;
  std::optional<int64_t> existing;
  {
    std::lock_guard lock(m_state_mutex);
    auto it = m_resume.find(resume_key(d.problem_id, model_row, d.strategy, d.round, d.parent_id,
                                       d.idea, content_hash(d.source)));
    if (it != m_resume.end()) {
      store::AttemptRow row = it->second;
      m_resume.erase(it);
      if (row.evaluated || d.source.empty() || m_o.mode == Mode::generate) {
        std::promise<search::Verdict> pr;
        pr.set_value(search::Verdict{
            row.candidate_id, row.evaluated ? std::optional<EvalResult>(row.eval) : std::nullopt});
        return pr.get_future();
      }
      existing = row.candidate_id;
    }
  }
  store::Candidate c = candidate_of(d, model_row);
  if (d.source.empty() || m_o.mode == Mode::generate) {
    std::optional<EvalResult> r;
    if (d.source.empty())
      r = detail::no_code_result(d.no_code_reason, m_o.protocol);
    const int64_t id = m_recorder->with([&](store::Store& s) {
      return s.record_attempt(store::Attempt{std::nullopt, c, r}).candidate_id;
    });
    std::promise<search::Verdict> pr;
    pr.set_value(search::Verdict{id, r});
    return pr.get_future();
  }
  detail::EvalJob job;
  job.problem = &p;
  job.candidate = std::move(c);
  job.existing_id = existing;
  return m_pipeline->submit(std::move(job));
}

void Suite::record_stop(const Problem& p, std::size_t mi, const std::string& code,
                        const std::string& message) {
  // The problem's stop reason, as a call that was never sent (status "budget", no hash).
  store::LlmCall c;
  c.run_id = m_run_id;
  c.model_id = m_model_rows[mi];
  c.problem_id = p.id;
  c.status = "budget";
  c.error_class = code;
  c.response_text = message;
  m_recorder->with([&](store::Store& s) { s.record_llm_call(c); });
}

TaskSummary Suite::run_task(const Problem& p, std::size_t mi) {
  TaskSummary t;
  t.problem_id = p.id;
  t.model = m_models[mi].name;
  const std::string scope = p.id + "|" + m_models[mi].name;
  if (m_stop) {
    t.stop = StopKind::interrupted;
    t.stop_code = "interrupted";
    return t;
  }
  if (auto r = m_ledger->exhausted(scope)) {
    t.stop = r->kind;
    t.stop_code = r->code;
    t.stop_message = r->message;
    record_stop(p, mi, r->code, r->message);
    return t;
  }
  const std::string stem = stem_of(p.id);
  search::SearchContext ctx;
  ctx.problem = &p;
  ctx.prompts = &*m_prompts;
  ctx.prompt.problem_id = p.id;
  ctx.prompt.problem_pytorch = render_pytorch(p);
  ctx.prompt.abi_header = m_abi;
  ctx.prompt.gpu = m_gpu;
  ctx.prompt.example_kernel = example_kernel_for(m_examples, stem);
  ctx.llm = m_gateways[mi].get();
  ctx.scope = scope;
  ctx.cancel = &m_stop;
  if (m_o.strategy.kind == search::StrategyKind::ideas && m_o.strategy.use_bank)
    for (const auto& k : kernels_of(m_examples, stem))
      ctx.bank.emplace_back(k.filename().string(), read_file(k.string()));
  const int64_t model_row = m_model_rows[mi];
  ctx.evaluate = [this, &p, model_row](search::CandidateDraft d) {
    return submit(p, model_row, std::move(d));
  };
  ctx.on_event = [this](const search::SearchEvent& e) {
    std::string what = e.outcome ? std::string(outcome_name(*e.outcome)) : "recorded";
    if (e.outcome == Outcome::correct) {
      what += fmt::format(" {:.3g}x", e.speedup);
      std::lock_guard lock(m_state_mutex);
      double& b = m_best[e.problem_id];
      b = std::max(b, e.speedup);
    }
    log(fmt::format("{} {} {} round {}: candidate {} {}", e.problem_id, e.model, e.strategy,
                    e.round, e.candidate_id, what));
  };
  auto strategy = search::make_strategy(m_o.strategy);
  const search::SearchResult r = strategy->run(ctx);
  t.stop = r.stop;
  t.stop_code = r.stop_code;
  t.stop_message = r.stop_message;
  t.candidates = static_cast<int>(r.steps.size());
  t.provider_failures = r.provider_failures;
  t.best_id = r.best_id;
  t.best_speedup = r.best_speedup;
  if (t.stop == StopKind::run_budget || t.stop == StopKind::problem_budget)
    record_stop(p, mi, r.stop_code, r.stop_message);
  return t;
}

RunSummary Suite::run() {
  RunSummary summary;
  if (prepare(summary))
    run_tasks(summary);
  return summary;
}

// Setup: the run's configuration (recorded one on resume), catalog, models, clients, GPUs and
// ceilings, the run row and its lease, the journal, budgets, gateways and the evaluation
// pipeline. False when there is nothing to do (a resume of a completed run).
bool Suite::prepare(RunSummary& summary) {
  if (m_o.resume) {
    // A resumed run takes its recorded configuration; only where and how fast may change.
    store::Store s(m_o.db, store::OpenOptions{.create = false});
    auto row = s.run(*m_o.resume);
    if (!row)
      throw Error(fmt::format("{}: no run {} to resume", m_o.db, *m_o.resume));
    // Completed with every request answered: nothing is left to do. Requests that failed at
    // the provider are what a resume of a completed run still asks.
    if (parse_run_status(row->status) == RunStatus::completed &&
        s.call_tally(row->id).provider_failures == 0) {
      summary.run_id = *m_o.resume;
      summary.status = RunStatus::completed;
      summary.already_completed = true;
      summary.message = fmt::format("run {} is already completed; nothing to resume", row->id);
      summary.calls = s.call_tally(row->id);
      return false;
    }
    const json cfg = json::parse(row->info.config_json);
    RunOptions rec = from_config_json(cfg);
    // The run's own models: never a models file of the current directory.
    if (cfg.contains("models_config"))
      for (const auto& m : cfg.at("models_config"))
        m_recorded_models.push_back(model_config_from_json(m));
    m_recorded_prompts_hash = cfg.value("prompts_hash", "");
    rec.db = m_o.db;
    rec.gpus = m_o.gpus;
    rec.jobs = m_o.jobs ? m_o.jobs : rec.jobs;
    rec.concurrency = m_o.concurrency ? m_o.concurrency : rec.concurrency;
    rec.resume = m_o.resume;
    rec.command = m_o.command;
    rec.eval = m_o.eval;
    rec.calibration_file = m_o.calibration_file;
    rec.calibrate = m_o.calibrate;
    if (!m_o.levels_dir.empty())
      rec.levels_dir = m_o.levels_dir;
    m_o = std::move(rec);
  }
  search::validate(m_o.strategy);
  if (m_o.mode == Mode::generate && search::needs_verdicts(m_o.strategy.kind))
    throw Error(fmt::format("strategy '{}' needs verdicts of earlier candidates; use `kbench "
                            "run` (or oneshot/best-of-n with `kbench generate`)",
                            search::strategy_name(m_o.strategy.kind)));
  if (m_o.mode == Mode::run && !m_backend)
    throw Error("internal: run mode needs an evaluation back end");
  if (m_o.levels_dir.empty())
    m_o.levels_dir = default_levels_dir();
  m_o.levels_dir = fs::absolute(m_o.levels_dir).lexically_normal().string();
  m_examples = fs::path(m_o.levels_dir) / "examples";

  m_catalog = load_catalog(m_o.levels_dir);
  for (const auto& e : m_catalog.errors)
    log(fmt::format("warning: problem file skipped: {}", e.str()));
  m_problems = select_problems(m_catalog, m_o.levels, m_o.problems);
  m_models = m_recorded_models.empty() ? resolve_models(m_o.models, m_o.models_file, m_o.levels_dir)
                                       : m_recorded_models;
  if (m_o.prompts_dir.empty())
    m_o.prompts_dir = fs::absolute(llm::PromptLibrary::default_dir()).string();
  m_prompts = llm::PromptLibrary::load(m_o.prompts_dir);
  const std::string prompts_now = prompts_hash(m_o.prompts_dir);
  if (!m_recorded_prompts_hash.empty() && m_recorded_prompts_hash != prompts_now)
    throw Error(fmt::format("the prompt templates in {} changed since run {} was recorded; a "
                            "resume would send different requests (start a new run instead)",
                            m_o.prompts_dir, *m_o.resume));
  // A new shard: its suite's id and fingerprint, and its share of the suite's run-wide limits
  // (a resumed shard has them recorded).
  if (m_o.shard && !m_o.resume) {
    const std::string fp = detail::suite_fingerprint(m_o, m_problems, m_models, prompts_now);
    if (m_o.suite.empty())
      m_o.suite = "fp-" + fp;
    m_suite_record = json{{"id", m_o.suite},
                          {"fingerprint", fp},
                          {"run_budget", to_config_json(m_o).at("run_budget")}};
    m_o.run_budget = shard_budget(m_o.run_budget, m_o.shard->count);
  }
  // A run asks within its budgets only what they can pay for: money limits need prices.
  if (m_o.run_budget.usd > 0.0 || m_o.problem_budget.usd > 0.0)
    for (const auto& m : m_models)
      if (m.provider != llm::ProviderKind::replay && m.price_in_per_mtok <= 0.0 &&
          m.price_out_per_mtok <= 0.0)
        throw Error(fmt::format("a USD budget needs prices, and model '{}' has none (set "
                                "price_in/price_out in the models file, or use a token budget)",
                                m.name));
  m_abi = abi_header_text(m_o.levels_dir);

  // Clients are made before the run row exists, so a missing key fails before anything is
  // written.
  for (const auto& m : m_models) {
    llm::ClientOptions co;
    co.log = [this](const std::string& line) { log(line); };
    if (m.provider == llm::ProviderKind::replay)
      co.replay_generator = [this](const std::string& id) { return naive_kernel(m_catalog, id); };
    m_clients.push_back(std::make_unique<llm::Client>(m, std::move(co)));
  }

  DoctorReport doctor;
  if (m_backend)
    doctor = m_backend->doctor();
  if (m_o.mode == Mode::run) {
    m_o.gpus = detail::gpus_to_use(m_o.gpus, doctor,
                                   "; `kbench generate` stores candidates without a GPU, `kbench "
                                   "evaluate` judges them later");
    detail::target_gpus(*m_backend, m_o.gpus, doctor);
  }
  // Roofline ceilings of every GPU used (one resolution per GPU model), and the target GPU of
  // the prompts: the first GPU used. Generate mode has no GPU: the prompts say "unknown".
  detail::CeilingsPlan ceilings;
  if (m_o.mode == Mode::run) {
    ceilings = detail::plan_ceilings(m_o.gpus, doctor, m_o.calibration_file, m_o.db, *m_backend,
                                     m_o.calibrate, [this](const std::string& l) { log(l); });
    for (const auto& line : ceilings.lines)
      log(line);
    summary.ceilings = ceilings.lines;
    m_gpu.ceilings = ceilings.by_gpu.at(m_o.gpus.front());
    for (const auto& g : doctor.gpus)
      if (g.index == m_o.gpus.front()) {
        m_gpu.ceilings.gpu_name = g.name;
        m_gpu.sm_count = g.sm_count;
        m_gpu.l2_bytes = static_cast<int64_t>(g.l2_bytes);
        m_gpu.compute_capability = fmt::format("{}.{}", g.cc_major, g.cc_minor);
      }
  }

  {
    std::error_code ec;
    const fs::path dir = fs::path(m_o.db).parent_path();
    if (!dir.empty())
      fs::create_directories(dir, ec);
  }
  m_recorder = std::make_unique<detail::RunRecorder>(m_o.db);
  // Setup runs on this thread alone (the heartbeat starts after it): the connection directly.
  store::Store& setup = m_recorder->with([](store::Store& s) -> store::Store& { return s; });
  if (m_o.resume) {
    // The lease first: a second process resuming this run writes nothing at all.
    m_run_id = *m_o.resume;
    acquire_lease();
  }
  for (const Problem* p : m_problems)
    setup.upsert_problem(*p);
  for (const auto& m : m_models)
    m_model_rows.push_back(setup.upsert_model(llm::provider_kind_name(m.provider),
                                              m.model_id.empty() ? m.name : m.model_id,
                                              model_settings(m, m_o.strategy).dump()));
  if (m_o.resume) {
    setup.resume_run(m_run_id);
  } else {
    store::RunInfo info;
    info.command = llm::redact_patterns(m_o.command);
    json cfg = to_config_json(m_o);
    cfg["models_resolved"] = json::array();
    cfg["models_config"] = json::array();
    for (const auto& m : m_models) {
      cfg["models_resolved"].push_back(model_record(m));
      cfg["models_config"].push_back(model_config_json(m));
    }
    cfg["prompts_hash"] = prompts_now;
    if (!ceilings.groups.empty())
      cfg["ceilings"] = ceilings_record(ceilings);
    if (m_o.shard)
      cfg["suite"] = m_suite_record;
    if (m_o.mode == Mode::run)
      cfg["placement"] = detail::placement_record(m_o.gpus, doctor);
    cfg["environment"] = detail::environment_record();
    info.config_json = cfg.dump();
    info.kbench_version = version_string();
    info.git_commit = git_commit();
    if (!doctor.gpus.empty()) {
      const int g0 = m_o.gpus.empty() ? doctor.gpus.front().index : m_o.gpus.front();
      for (const auto& g : doctor.gpus)
        if (g.index == g0)
          info.gpu_name = g.name;
    }
    info.driver_version = version_text(doctor.driver_version, 1000, 10);
    info.cuda_version = version_text(doctor.runtime_version, 1000, 10);
    if (doctor.cublas_version > 0)
      info.cublas_version =
          fmt::format("{}.{}.{}", doctor.cublas_version / 10000,
                      (doctor.cublas_version / 100) % 100, doctor.cublas_version % 100);
    if (doctor.cudnn_version > 0)
      info.cudnn_version =
          fmt::format("{}.{}.{}", doctor.cudnn_version / 10000, (doctor.cudnn_version / 100) % 100,
                      doctor.cudnn_version % 100);
    info.nvcc_version = doctor.nvcc_release;
    info.host = host_name();
    if (m_o.shard)
      info.shard = m_o.shard->label();
    info.protocol = m_o.protocol;
    m_run_id = setup.begin_run(info);
    acquire_lease();
  }
  if (!ceilings.groups.empty())
    detail::record_ceilings(setup, m_run_id, ceilings, [this](const std::string& l) { log(l); });
  summary.run_id = m_run_id;
  if (m_hooks.started)
    m_hooks.started(m_run_id);

  // Journal, budgets (charged with what this run spent before a resume), gateways.
  std::map<std::string, int64_t> rows;
  std::map<std::string, const llm::Client*> clients;
  std::map<int64_t, std::string> name_of_row;
  for (std::size_t i = 0; i < m_models.size(); ++i) {
    rows[m_models[i].name] = m_model_rows[i];
    clients[m_models[i].name] = m_clients[i].get();
    name_of_row[m_model_rows[i]] = m_models[i].name;
  }
  m_journal =
      std::make_unique<detail::StoreJournal>(*m_recorder, m_run_id, rows, clients, m_o.use_cache);
  m_ledger = std::make_unique<search::BudgetLedger>(m_o.run_budget, m_o.problem_budget);
  if (m_o.resume) {
    for (const auto& [key, usage] : m_journal->load_run_calls()) {
      auto it = name_of_row.find(key.second);
      const std::string model = it == name_of_row.end() ? "?" : it->second;
      m_ledger->add_spent(key.first + "|" + model, usage);
    }
    for (auto& a : setup.attempts(store::AttemptFilter{.run_ids = {m_run_id}}))
      m_resume.emplace(resume_key(a.problem_id, a.model_id, a.strategy, a.round, a.parent_id,
                                  a.idea, a.source_hash),
                       a);
    log(fmt::format("resuming run {}: {} candidates and {} calls recorded before", m_run_id,
                    m_resume.size(), m_ledger->spent_run().calls));
  }
  m_recorder->start_heartbeat([this] {
    m_stop = true;
    log(fmt::format("run {}: another process took the run over; stopping", m_run_id));
  });
  m_abandon.set(m_hooks, [rec = m_recorder.get()] { rec->abandon("interrupted"); });
  for (auto& c : m_clients)
    m_gateways.push_back(
        std::make_unique<search::ModelGateway>(*c, *m_ledger, m_journal.get(), &m_stop));

  if (m_o.mode == Mode::run) {
    const int jobs = detail::default_jobs(m_o.jobs);
    m_pipeline = std::make_unique<detail::EvalPipeline>(
        *m_backend, m_o.gpus, ceilings.by_gpu, jobs, m_o.protocol,
        m_stop, [this](detail::EvalJob& job, const EvalResult* r) { return record_job(job, r); },
        m_pstats);
  }

  return true;
}

// The suite loop: every (problem, model) search, a pool at once, then the run's end.
void Suite::run_tasks(RunSummary& summary) {
  // Tasks: every (problem, model), a pool of searches at once.
  struct Task {
    const Problem* p;
    std::size_t model;
  };
  std::vector<Task> tasks;
  for (const Problem* p : m_problems)
    for (std::size_t mi = 0; mi < m_models.size(); ++mi)
      tasks.push_back({p, mi});
  if (m_o.shard) {
    // This shard's slice of the suite (the same on every machine: shard_assignment).
    const std::size_t all = tasks.size();
    std::vector<Task> mine;
    for (std::size_t i : shard_tasks(detail::task_keys(m_problems, m_models), *m_o.shard))
      mine.push_back(tasks[i]);
    tasks = std::move(mine);
    log(fmt::format("run {}: shard {} of suite {}: {} of the suite's {} (problem, model) searches",
                    m_run_id, m_o.shard->label(), m_o.suite, tasks.size(), all));
  }
  m_tasks_total = static_cast<int>(tasks.size());
  int conc = m_o.concurrency;
  if (conc <= 0)
    conc = m_o.mode == Mode::run ? std::max(4, 4 * static_cast<int>(m_o.gpus.size())) : 8;
  conc = std::clamp(conc, 1, std::max(1, m_tasks_total));
  log(fmt::format("run {}: {} problems x {} models, strategy {}, {}", m_run_id, m_problems.size(),
                  m_models.size(), search::strategy_name(m_o.strategy.kind),
                  m_o.mode == Mode::run ? fmt::format("GPUs {}", fmt::join(m_o.gpus, ","))
                                        : std::string("generate only")));

  std::vector<TaskSummary> results(tasks.size());
  std::atomic<std::size_t> next{0};
  std::mutex fatal_mutex;
  std::string fatal;
  detail::ProgressTicker ticker(
      m_cancel, m_stop, [this] { return progress(); }, m_hooks.progress);
  std::vector<std::thread> workers;
  for (int w = 0; w < conc; ++w)
    workers.emplace_back([&] {
      for (;;) {
        const std::size_t i = next++;
        if (i >= tasks.size())
          return;
        try {
          results[i] = run_task(*tasks[i].p, tasks[i].model);
        } catch (const std::exception& e) {
          results[i].problem_id = tasks[i].p->id;
          results[i].model = m_models[tasks[i].model].name;
          results[i].stop = StopKind::failed;
          results[i].stop_code = "failed";
          results[i].stop_message = e.what();
          std::lock_guard lock(fatal_mutex);
          if (fatal.empty())
            fatal =
                fmt::format("{} ({}): {}", tasks[i].p->id, m_models[tasks[i].model].name, e.what());
          m_stop = true;
        }
        ++m_tasks_done;
        const auto& t = results[i];
        // Generated work was never judged: say so, not that nothing was correct.
        log(fmt::format("{} {}: {} candidates, {}{}", t.problem_id, t.model, t.candidates,
                        t.best_id                    ? fmt::format("best {:.3g}x", t.best_speedup)
                        : m_o.mode == Mode::generate ? std::string("not evaluated")
                                                     : std::string("no correct candidate"),
                        t.stop == StopKind::done ? ""
                                                 : fmt::format(" (stopped: {})", t.stop_code)));
      }
    });
  for (auto& w : workers)
    w.join();
  std::vector<std::string> plumbing;
  if (m_pipeline) {
    m_pipeline->drain(); // queued work is evaluated, or recorded unevaluated when stopping
    plumbing = m_pipeline->plumbing_errors();
    m_pipeline.reset();
  }
  for (const auto& e : plumbing)
    log(fmt::format("warning: a candidate was recorded without evaluation: {}", e));
  ticker.stop();
  summary.tasks = std::move(results);
  summary.progress = progress();
  m_gateways.clear();
  m_clients.clear();
  if (m_hooks.progress)
    m_hooks.progress(summary.progress);
  if (m_recorder->lease_lost() && fatal.empty())
    fatal = "another process took the run over (the lease was lost)";
  if (!fatal.empty()) {
    summary.status = RunStatus::failed;
    summary.message = fatal;
  } else if (m_cancel && m_cancel->load()) {
    summary.status = RunStatus::interrupted;
    summary.message = "interrupted; continue with --resume " + std::to_string(m_run_id);
  } else {
    summary.status = RunStatus::completed;
    for (const auto& t : summary.tasks)
      if (t.stop == StopKind::run_budget) {
        summary.status = RunStatus::budget_exhausted;
        summary.message = t.stop_message;
        break;
      }
  }
  if (!plumbing.empty() && summary.status != RunStatus::failed)
    summary.message += fmt::format(
        "{}{} candidates recorded without evaluation after a harness error (first: {}); `kbench "
        "evaluate --run {}` finishes them",
        summary.message.empty() ? "" : "; ", plumbing.size(), plumbing.front(), m_run_id);
  m_abandon.reset(); // the run ends here with its own status
  m_recorder->with([&](store::Store& s) {
    summary.calls = s.call_tally(m_run_id);
    if (!m_recorder->lease_lost())
      s.end_run(m_run_id, run_status_name(summary.status));
  });
  if (summary.status == RunStatus::budget_exhausted)
    // The refusal's figures are those when the limit was reached; the calls in flight then were
    // recorded after it. The message ends with what the run's record holds.
    summary.message +=
        fmt::format("; the run recorded {} tokens in, {} tokens out, ${:.4f}",
                    summary.calls.tokens_in, summary.calls.tokens_out, summary.calls.cost_usd);
  if (summary.calls.provider_failures > 0 && summary.status != RunStatus::failed) {
    std::string classes;
    for (const auto& [cls, n] : summary.calls.failures_by_class)
      classes += fmt::format("{}{} {}", classes.empty() ? "" : ", ", n, cls);
    summary.message += fmt::format(
        "{}{} requests failed at the provider after retries ({}); they count in no "
        "score, and `--resume {}` asks them again",
        summary.message.empty() ? "" : "; ", summary.calls.provider_failures, classes, m_run_id);
  }
  if (summary.status == RunStatus::failed)
    throw Error(fmt::format("run {} failed: {}", m_run_id, fatal));
}

} // namespace

std::string_view run_status_name(RunStatus s) {
  switch (s) {
  case RunStatus::running:
    return "running";
  case RunStatus::completed:
    return "completed";
  case RunStatus::budget_exhausted:
    return "budget_exhausted";
  case RunStatus::interrupted:
    return "interrupted";
  case RunStatus::failed:
    return "failed";
  }
  return "?";
}

std::optional<RunStatus> parse_run_status(std::string_view name) {
  for (RunStatus s : {RunStatus::running, RunStatus::completed, RunStatus::budget_exhausted,
                      RunStatus::interrupted, RunStatus::failed})
    if (run_status_name(s) == name)
      return s;
  return std::nullopt;
}

RunSummary run_suite(const RunOptions& opts, EvalBackend* backend, const std::atomic<bool>* cancel,
                     const RunHooks& hooks) {
  RunOptions o = opts;
  if (o.shard && !o.resume && fs::exists(o.db)) {
    // A database that holds this shard of this suite already (a resubmitted or requeued Slurm
    // task, a second try on the same host) continues that run: nothing paid for is asked again.
    const SuitePlan plan = plan_suite(o);
    o.suite = plan.suite_id;
    store::Store s(o.db, store::OpenOptions{.create = false});
    if (auto id = find_shard_run(s, o.suite, *o.shard)) {
      const auto row = s.run(*id);
      const json cfg = json::parse(row->info.config_json);
      const std::string recorded = cfg.at("suite").value("fingerprint", "");
      if (recorded != plan.fingerprint)
        throw Error(fmt::format("{}: run {} is shard {} of suite {} with another configuration "
                                "(fingerprint {}, now {}): give the shard another --db, or the "
                                "suite another --suite",
                                o.db, *id, o.shard->label(), o.suite, recorded,
                                plan.fingerprint));
      if (hooks.log)
        hooks.log(fmt::format("{} holds shard {} of suite {} as run {}: resuming it", o.db,
                              o.shard->label(), o.suite, *id));
      o.resume = *id;
    }
  }
  Suite s(o, backend, cancel, hooks);
  return s.run();
}

namespace detail {

namespace {
bool same_figures(const GpuCeilings& a, const GpuCeilings& b) {
  return a.gpu_name == b.gpu_name && a.bandwidth_gbs == b.bandwidth_gbs &&
         a.fp32_tflops == b.fp32_tflops && a.tf32_tflops == b.tf32_tflops &&
         a.fp16_tflops == b.fp16_tflops && a.bf16_tflops == b.bf16_tflops &&
         a.measured == b.measured;
}
} // namespace

// The run's calibrations row (one per run: the first GPU's ceilings, measured or not). A run
// that has one already (resume, a second `kbench evaluate`) keeps it; a different figure now is
// logged.
void record_ceilings(store::Store& s, int64_t run_id, const detail::CeilingsPlan& plan,
                     const std::function<void(const std::string&)>& log) {
  const GpuCeilings& now = plan.groups.front().choice.ceilings;
  if (auto before = s.calibration(run_id)) {
    if (!same_figures(*before, now) && log)
      log(fmt::format("warning: run {} was recorded with the ceilings of {} ({}); this session's "
                      "evaluations use {} ({})",
                      run_id, before->gpu_name, ceilings_figures(*before), now.gpu_name,
                      ceilings_figures(now)));
    return;
  }
  s.record_calibration(run_id, now);
}

std::vector<int> gpus_to_use(const std::vector<int>& asked, const DoctorReport& doctor,
                             const std::string& hint) {
  std::vector<int> seen;
  for (const auto& g : doctor.gpus)
    seen.push_back(g.index);
  // Checked before anything is compiled or recorded, also for GPUs named with --gpus: without
  // this, a machine without a GPU would compile and record a run whose every evaluation fails.
  if (seen.empty())
    throw Error(fmt::format("no GPU to evaluate on{}{}",
                            doctor.error.empty() ? "" : ": " + doctor.error, hint));
  if (asked.empty())
    return seen;
  for (int g : asked)
    if (std::find(seen.begin(), seen.end(), g) == seen.end())
      throw Error(fmt::format("GPU {} is not one of the GPUs kbench sees ({}; `kbench doctor` "
                              "lists them)",
                              g, fmt::join(seen, ", ")));
  return asked;
}

void target_gpus(EvalBackend& backend, const std::vector<int>& gpus, const DoctorReport& doctor) {
  std::vector<GpuInfo> used;
  for (int index : gpus)
    for (const auto& g : doctor.gpus)
      if (g.index == index)
        used.push_back(g);
  backend.target(used);
}

int default_jobs(int jobs) {
  return jobs > 0 ? jobs : available_cpus();
}

} // namespace detail

} // namespace kb::runner
