// `kbench run`, `kbench generate` and `kbench evaluate`: the suite runner from the command
// line, with a progress line on a terminal, plain log lines otherwise, and clean Ctrl-C.
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include "commands.hpp"
#include "core.hpp"
#include "runner.hpp"
#include "store.hpp"

namespace {

std::atomic<bool> g_cancel{false};
std::atomic<int> g_signals{0};

extern "C" void on_signal(int) {
  g_cancel = true;
  ++g_signals;
}

// First SIGINT/SIGTERM: stop starting work and finish what is in flight. Second: the run is
// marked interrupted and the process leaves at once (abandoning in-flight work).
class SignalGuard {
public:
  explicit SignalGuard(std::atomic<int64_t>& run_id) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &m_old_int);
    sigaction(SIGTERM, &sa, &m_old_term);
    m_watch = std::thread([this, &run_id] {
      bool told = false;
      while (!m_done) {
        if (g_signals >= 1 && !told) {
          told = true;
          fmt::print(stderr, "\nkbench: interrupted: finishing in-flight work (Ctrl-C again "
                             "to abandon it)\n");
        }
        if (g_signals >= 2) {
          // The run's own recorder marks it (one writer per run); before the run is set up
          // there is nothing to mark.
          bool marked = false;
          try {
            std::lock_guard lock(m_mutex);
            if (m_abandon) {
              m_abandon();
              marked = true;
            }
          } catch (...) {
          }
          if (marked)
            fmt::print(stderr, "kbench: abandoned in-flight work; run {} marked interrupted\n",
                       run_id.load());
          else
            fmt::print(stderr, "kbench: abandoned before the run was set up\n");
          std::fflush(nullptr);
          std::_Exit(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~SignalGuard() {
    m_done = true;
    m_watch.join();
    sigaction(SIGINT, &m_old_int, nullptr);
    sigaction(SIGTERM, &m_old_term, nullptr);
  }
  // For RunHooks::abandon: the runner hands its abandon function over, and takes it back.
  std::function<void(std::function<void()>)> hook() {
    return [this](std::function<void()> f) {
      std::lock_guard lock(m_mutex);
      m_abandon = std::move(f);
    };
  }

private:
  struct sigaction m_old_int {
  }, m_old_term{};
  std::atomic<bool> m_done{false};
  std::mutex m_mutex;
  std::function<void()> m_abandon;
  std::thread m_watch;
};

std::string human(int64_t n) {
  if (n >= 1000000)
    return fmt::format("{:.2f}M", static_cast<double>(n) / 1e6);
  if (n >= 10000)
    return fmt::format("{:.1f}k", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

std::string progress_line(const kb::runner::Progress& p) {
  std::string best;
  for (std::size_t i = 0; i < p.best.size() && i < 3; ++i)
    best += fmt::format("{}{} {:.2f}x", i ? ", " : " | best: ", p.best[i].first, p.best[i].second);
  return fmt::format("[{}/{} problems] {} candidates ({} evaluated, {} correct, {} queued) | "
                     "tokens {} in / {} out, ${:.2f} | {:.0f}s{}",
                     p.tasks_done, p.tasks_total, p.candidates, p.evaluated, p.correct,
                     p.evals_queued, human(p.spent.tokens_in), human(p.spent.tokens_out),
                     p.spent.cost_usd, p.elapsed_s, best);
}

// Output: one refreshing line on a terminal, plain lines otherwise.
struct Printer {
  bool tty = isatty(STDOUT_FILENO) == 1;
  std::mutex mutex;
  std::string last;

  kb::runner::RunHooks hooks(std::atomic<int64_t>& run_id) {
    kb::runner::RunHooks h;
    h.log = [this](const std::string& line) {
      std::lock_guard lock(mutex);
      if (tty) {
        // Per-candidate lines would scroll the progress line away; a terminal gets the rest.
        if (line.find(" candidate ") != std::string::npos)
          return;
        fmt::print("\r\033[K{}\n{}", line, last);
      } else {
        fmt::print("{}\n", line);
      }
      std::fflush(stdout);
    };
    h.progress = [this](const kb::runner::Progress& p) {
      if (!tty)
        return;
      std::lock_guard lock(mutex);
      last = progress_line(p);
      fmt::print("\r\033[K{}", last);
      std::fflush(stdout);
    };
    h.started = [&run_id](int64_t id) { run_id = id; };
    return h;
  }
  void end() {
    if (tty) {
      fmt::print("\n");
      std::fflush(stdout);
    }
  }
};

struct Cli {
  std::set<std::string> given; // options given on the command line ("--level", ...)
  std::string level, problems, models = "replay", models_file, strategy = "oneshot";
  std::string gpus = "all", db = "results/kbench.db", protocol = "kbench";
  std::string levels_dir, prompts_dir, calibration;
  int samples = 4, turns = 4, rounds = 3, ideas = 4, branches = 2, seeds = 2;
  std::optional<double> temperature;
  std::optional<int64_t> seed, resume;
  int64_t budget_tokens = 0, budget_in = 0, budget_out = 0;
  int64_t pbudget_tokens = 0, pbudget_in = 0, pbudget_out = 0;
  double budget_usd = 0, budget_minutes = 0, pbudget_usd = 0;
  int jobs = 0, concurrency = 0;
  bool no_bank = false, no_cache = false, no_calibrate = false;
  double timeout_s = 180.0, timeout_floor_s = 5.0, timeout_factor = 500.0;
  std::string shard, suite; // docs/scale.md
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string::npos)
      end = s.size();
    std::string item = s.substr(start, end - start);
    if (!item.empty())
      out.push_back(item);
    start = end + 1;
  }
  return out;
}

void add_suite_options(CLI::App* cmd, Cli& c, bool with_gpus) {
  cmd->add_option("--level", c.level, "Levels to run, e.g. 1 or 1,2 (default: all)");
  cmd->add_option("--problems", c.problems,
                  "Comma-separated globs over problem ids or stems, e.g. 'l1/matmul*,softmax*'");
  cmd->add_option("--models", c.models, "Comma-separated model names (config/models.yaml)")
      ->capture_default_str();
  cmd->add_option("--models-file", c.models_file, "Models file (default config/models.yaml)");
  cmd->add_option("--strategy", c.strategy, "oneshot | best-of-n | refine | ideas")
      ->capture_default_str();
  cmd->add_option("--samples", c.samples, "best-of-n: samples per problem")->capture_default_str();
  cmd->add_option("--turns", c.turns, "refine: turns per problem")->capture_default_str();
  cmd->add_option("--rounds", c.rounds, "ideas: rounds")->capture_default_str();
  cmd->add_option("--ideas", c.ideas, "ideas: ideas per round")->capture_default_str();
  cmd->add_option("--branches", c.branches, "ideas: implementations per idea")
      ->capture_default_str();
  cmd->add_option("--seeds", c.seeds, "ideas: best kernels carried into the next round")
      ->capture_default_str();
  cmd->add_flag("--no-bank", c.no_bank, "ideas: do not seed with the shipped example kernels");
  cmd->add_option("--temperature", c.temperature, "Sampling temperature (default: the model's)");
  cmd->add_option("--seed", c.seed, "Request seed (where the API takes one)");
  cmd->add_option("--budget-tokens", c.budget_tokens, "Run budget: input + output tokens");
  cmd->add_option("--budget-tokens-in", c.budget_in, "Run budget: input tokens");
  cmd->add_option("--budget-tokens-out", c.budget_out, "Run budget: output tokens");
  cmd->add_option("--budget-usd", c.budget_usd, "Run budget: USD");
  cmd->add_option("--budget-minutes", c.budget_minutes, "Run budget: wall-clock minutes");
  cmd->add_option("--problem-budget-tokens", c.pbudget_tokens,
                  "Per problem and model: input + output tokens");
  cmd->add_option("--problem-budget-tokens-in", c.pbudget_in,
                  "Per problem and model: input tokens");
  cmd->add_option("--problem-budget-tokens-out", c.pbudget_out,
                  "Per problem and model: output tokens");
  cmd->add_option("--problem-budget-usd", c.pbudget_usd, "Per problem and model: USD");
  if (with_gpus)
    cmd->add_option("--gpus", c.gpus, "GPUs to evaluate on: all or 0,1")->capture_default_str();
  cmd->add_option("--jobs", c.jobs, "Parallel nvcc processes (default: CPU threads)");
  cmd->add_option("--concurrency", c.concurrency, "Problems searched at once (default: auto)");
  cmd->add_option("--db", c.db, "SQLite database")->capture_default_str();
  cmd->add_option("--protocol", c.protocol, "kbench | kernelbench-v0.1 | kernelbench")
      ->capture_default_str();
  cmd->add_option("--resume", c.resume, "Continue this interrupted run (its configuration)");
  cmd->add_option("--levels-dir", c.levels_dir, "Root holding level1/, level2/, examples/");
  cmd->add_option("--prompts-dir", c.prompts_dir, "Prompt templates directory");
  if (with_gpus) {
    cmd->add_option("--calibration", c.calibration,
                    "Roofline ceilings JSON for every GPU (default: per GPU model, the calibration "
                    "cached beside --db, else one measured now, else the datasheet)");
    cmd->add_flag("--no-calibrate", c.no_calibrate,
                  "Never measure a GPU: without a cached calibration use its datasheet");
    cmd->add_option("--timeout", c.timeout_s,
                    "Watchdog ceiling: no candidate command waits longer, seconds")
        ->capture_default_str();
    cmd->add_option("--timeout-floor", c.timeout_floor_s,
                    "Watchdog floor: every candidate command may take this long, seconds")
        ->capture_default_str();
    cmd->add_option("--timeout-factor", c.timeout_factor,
                    "Watchdog: times the baseline's time a candidate may take before it is hung")
        ->capture_default_str();
  }
  cmd->add_flag("--no-cache", c.no_cache, "Do not answer requests from earlier runs' records");
  cmd->add_option("--shard", c.shard,
                  "Run shard K/N of the suite: a fixed slice of its (problem, model) searches, "
                  "the same on every machine; a --db holding this shard already resumes it "
                  "(docs/scale.md)");
  cmd->add_option("--suite", c.suite,
                  "With --shard: the suite id every shard shares, so `kbench merge` joins them "
                  "into one run (default: derived from the suite's configuration)");
}

// The options a resume may change: where the run is written and how fast it goes. Everything
// else is the run's recorded configuration.
const std::set<std::string> k_resume_may_change{
    "--db",          "--resume",       "--gpus",    "--jobs",          "--concurrency",
    "--calibration", "--no-calibrate", "--timeout", "--timeout-floor", "--timeout-factor"};

void check_flags(const Cli& c) {
  auto refuse = [](const char* flag, const std::string& why) {
    throw kb::InputError("command line", 0, flag, why);
  };
  auto given = [&](const char* flag) { return c.given.count(flag) > 0; };
  if (c.resume) {
    std::vector<std::string> changed;
    for (const auto& f : c.given)
      if (!k_resume_may_change.count(f))
        changed.push_back(f);
    if (!changed.empty())
      refuse("--resume",
             fmt::format("a resume continues run {} with its recorded configuration; {} would "
                         "change it (only {} may be given with --resume)",
                         *c.resume, fmt::join(changed, ", "),
                         fmt::join(k_resume_may_change, ", ")));
  }
  if (given("--level") && kb::runner::parse_levels(c.level).empty())
    refuse("--level", "selects no level; leave it out for every level");
  if (given("--problems") && split_list(c.problems).empty())
    refuse("--problems", "selects no problem; leave it out for every problem");
  if (split_list(c.models).empty())
    refuse("--models", "names no model");
  if (given("--suite") && !given("--shard"))
    refuse("--suite", "names the suite of a sharded run; give --shard K/N too");
  if (given("--gpus") && split_list(c.gpus).empty())
    refuse("--gpus", "selects no GPU; use 'all' or indices like 0,1");
  for (const auto& [flag, value] : {std::pair<const char*, const std::string*>{"--db", &c.db},
                                    {"--models-file", &c.models_file},
                                    {"--levels-dir", &c.levels_dir},
                                    {"--prompts-dir", &c.prompts_dir},
                                    {"--calibration", &c.calibration}})
    if ((given(flag) || std::string_view(flag) == "--db") && value->empty())
      refuse(flag, "is an empty path");
  for (const auto& [flag, value] :
       {std::pair<const char*, int>{"--jobs", c.jobs}, {"--concurrency", c.concurrency}})
    if (given(flag) && value <= 0)
      refuse(flag, fmt::format("must be a positive count, not {}", value));
  for (const auto& [flag, value] :
       {std::pair<const char*, double>{"--budget-tokens", static_cast<double>(c.budget_tokens)},
        {"--budget-tokens-in", static_cast<double>(c.budget_in)},
        {"--budget-tokens-out", static_cast<double>(c.budget_out)},
        {"--budget-usd", c.budget_usd},
        {"--budget-minutes", c.budget_minutes},
        {"--problem-budget-tokens", static_cast<double>(c.pbudget_tokens)},
        {"--problem-budget-tokens-in", static_cast<double>(c.pbudget_in)},
        {"--problem-budget-tokens-out", static_cast<double>(c.pbudget_out)},
        {"--problem-budget-usd", c.pbudget_usd}})
    if (given(flag) && (!std::isfinite(value) || value <= 0.0))
      refuse(flag, fmt::format("must be a positive finite number, not {} (leave the flag out for "
                               "no limit)",
                               value));
}

std::set<std::string> given_options(CLI::App* cmd) {
  std::set<std::string> out;
  for (const CLI::Option* opt : cmd->get_options())
    if (opt->count() > 0 && !opt->get_lnames().empty())
      out.insert("--" + opt->get_lnames().front());
  return out;
}

kb::runner::RunOptions to_options(const Cli& c, kb::runner::Mode mode, const std::string& cmd) {
  check_flags(c);
  kb::runner::RunOptions o;
  o.mode = mode;
  if (!c.level.empty())
    o.levels = kb::runner::parse_levels(c.level);
  o.problems = split_list(c.problems);
  o.models = split_list(c.models);
  o.models_file = c.models_file;
  auto kind = kb::search::parse_strategy(c.strategy);
  if (!kind)
    throw kb::InputError(
        "command line", 0, "--strategy",
        fmt::format("unknown strategy '{}' (oneshot, best-of-n, refine, ideas)", c.strategy));
  o.strategy.kind = *kind;
  o.strategy.samples = c.samples;
  o.strategy.turns = c.turns;
  o.strategy.rounds = c.rounds;
  o.strategy.ideas = c.ideas;
  o.strategy.branches = c.branches;
  o.strategy.seeds = c.seeds;
  o.strategy.use_bank = !c.no_bank;
  o.strategy.temperature = c.temperature;
  o.strategy.seed = c.seed;
  kb::search::validate(o.strategy);
  o.run_budget = {c.budget_tokens, c.budget_in, c.budget_out, c.budget_usd, c.budget_minutes};
  o.problem_budget = {c.pbudget_tokens, c.pbudget_in, c.pbudget_out, c.pbudget_usd, 0.0};
  if (mode == kb::runner::Mode::run)
    if (auto g = kb::runner::parse_gpus(c.gpus))
      o.gpus = *g;
  o.jobs = c.jobs;
  o.concurrency = c.concurrency;
  o.db = c.db;
  const auto protocol = kb::parse_protocol(c.protocol);
  if (!protocol)
    throw kb::InputError("command line", 0, "--protocol",
                         fmt::format("'{}' is not one of {}", c.protocol, kb::protocol_names()));
  o.protocol = *protocol;
  o.resume = c.resume;
  o.levels_dir = c.levels_dir;
  o.prompts_dir = c.prompts_dir;
  o.calibration_file = c.calibration;
  o.calibrate = !c.no_calibrate;
  o.use_cache = !c.no_cache;
  o.command = cmd;
  o.eval.protocol = *protocol;
  for (const auto& [v, flag] : {std::pair{c.timeout_s, "--timeout"},
                                {c.timeout_floor_s, "--timeout-floor"},
                                {c.timeout_factor, "--timeout-factor"}})
    if (!(v > 0.0) || !std::isfinite(v))
      throw kb::InputError("command line", 0, flag, "must be a positive number");
  o.eval.timeout_s = c.timeout_s;
  o.eval.timeout_floor_s = c.timeout_floor_s;
  o.eval.timeout_factor = c.timeout_factor;
  if (c.given.count("--shard")) {
    o.shard = kb::runner::parse_shard(c.shard);
    if (c.given.count("--suite"))
      kb::runner::check_suite_id(c.suite);
    o.suite = c.suite;
  }
  return o;
}

int print_summary(const kb::runner::RunSummary& s, const std::string& db) {
  if (s.already_completed) {
    fmt::print("run {}: {}\n", s.run_id, s.message);
    return 0;
  }
  const auto& p = s.progress;
  const auto& calls = s.calls;
  const std::string failures =
      calls.provider_failures > 0
          ? fmt::format(" with {} provider failure{}", calls.provider_failures,
                        calls.provider_failures == 1 ? "" : "s")
          : "";
  fmt::print("run {}: {}{}{}\n", s.run_id, kb::runner::run_status_name(s.status), failures,
             s.message.empty() ? "" : " (" + s.message + ")");
  for (const auto& line : s.ceilings)
    fmt::print("  {}\n", line);
  // Searches that ended early (a budget, an interruption, a failure) are not "done".
  int finished = 0;
  for (const auto& t : s.tasks)
    finished += t.stop == kb::runner::StopKind::done;
  const int stopped = static_cast<int>(s.tasks.size()) - finished;
  fmt::print("  {} of {} problem searches finished{}, {} candidates ({} evaluated, {} correct)\n",
             finished, p.tasks_total, stopped > 0 ? fmt::format(", {} stopped", stopped) : "",
             p.candidates, p.evaluated, p.correct);
  fmt::print("  recorded for the run: {} answered calls, {} tokens in, {} tokens out, ${:.4f}\n",
             calls.answered, calls.tokens_in, calls.tokens_out, calls.cost_usd);
  for (const auto& [cls, n] : calls.failures_by_class)
    fmt::print("  {} requests failed at the provider: {}\n", n, cls);
  std::map<std::string, int> stops;
  for (const auto& t : s.tasks)
    if (t.stop != kb::runner::StopKind::done)
      ++stops[t.stop_code];
  for (const auto& [code, n] : stops)
    fmt::print("  {} searches stopped: {}\n", n, code);
  for (std::size_t i = 0; i < p.best.size() && i < 10; ++i)
    fmt::print("  best {:<40} {:.3g}x\n", p.best[i].first, p.best[i].second);
  fmt::print("  results in {} (kbench report --db {})\n", db, db);
  if (s.status == kb::runner::RunStatus::interrupted)
    return 1; // docs/cli.md: an interrupted run is the command's documented failure
  // Nothing answered at all (no network, a wrong endpoint): the run measured nothing.
  if (calls.answered == 0 && calls.provider_failures > 0) {
    fmt::print(stderr, "kbench: error: no LLM call of run {} succeeded\n", s.run_id);
    return 1;
  }
  return 0;
}

int run_command(const Cli& c, kb::runner::Mode mode, const std::string& cmd) {
  kb::runner::RunOptions o = to_options(c, mode, cmd);
  std::atomic<int64_t> run_id{c.resume.value_or(0)};
  Printer printer;
  auto hooks = printer.hooks(run_id);
  std::unique_ptr<kb::runner::EvalBackend> backend;
  if (mode == kb::runner::Mode::run) {
#ifdef KB_RUNNER_HAS_EVALUATOR
    backend = kb::runner::make_eval_backend(o.eval);
#else
    throw kb::Error("this kbench was built without the evaluator; use `kbench generate`");
#endif
  }
  SignalGuard guard(run_id);
  hooks.abandon = guard.hook();
  kb::runner::RunSummary s;
  try {
    s = kb::runner::run_suite(o, backend.get(), &g_cancel, hooks);
  } catch (...) {
    printer.end();
    throw;
  }
  printer.end();
  return print_summary(s, o.db);
}

const kb::cli::CommandRegistrar k_run(200, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto cli = std::make_shared<Cli>();
  auto* cmd = app.add_subcommand(
      "run", "Ask models for kernels, compile, evaluate on the GPUs and record everything");
  add_suite_options(cmd, *cli, true);
  cmd->callback([cli, cmd, set_exit] {
    cli->given = given_options(cmd);
    set_exit(run_command(*cli, kb::runner::Mode::run, kb::cli::command_line()));
  });

  auto gen = std::make_shared<Cli>();
  auto* gcmd = app.add_subcommand(
      "generate", "Ask models for kernels and store them without evaluation (no GPU needed)");
  add_suite_options(gcmd, *gen, false);
  gcmd->callback([gen, gcmd, set_exit] {
    gen->given = given_options(gcmd);
    set_exit(run_command(*gen, kb::runner::Mode::generate, kb::cli::command_line()));
  });

  struct EvalCli {
    std::string db = "results/kbench.db", gpus = "all", levels_dir, calibration;
    int64_t run = 0;
    int jobs = 0;
    std::string protocol;
    std::string suite, shard, slice; // docs/scale.md
    bool no_calibrate = false;
    double timeout_s = 180.0, timeout_floor_s = 5.0, timeout_factor = 500.0;
  };
  auto ev = std::make_shared<EvalCli>();
  auto* ecmd =
      app.add_subcommand("evaluate", "Evaluate the stored, unevaluated candidates of a run");
  ecmd->add_option("--db", ev->db, "SQLite database")->capture_default_str();
  ecmd->add_option("--run", ev->run, "Run id (kbench generate prints it), or --suite with --shard");
  ecmd->add_option("--suite", ev->suite, "With --shard: the run of that shard of this suite");
  ecmd->add_option("--shard", ev->shard, "With --suite: the shard K/N whose run to evaluate");
  ecmd->add_option("--slice", ev->slice,
                   "Evaluate only slice K/N of the run's (problem, model) pairs (copies of one "
                   "database evaluated slice by slice merge back into one run)");
  ecmd->add_option("--gpus", ev->gpus, "GPUs to evaluate on: all or 0,1")->capture_default_str();
  ecmd->add_option("--jobs", ev->jobs, "Parallel nvcc processes (default: CPU threads)");
  ecmd->add_option("--levels-dir", ev->levels_dir, "Root holding level1/, level2/, ...");
  ecmd->add_option("--calibration", ev->calibration,
                   "Roofline ceilings JSON for every GPU (default: as `kbench run`)");
  ecmd->add_flag("--no-calibrate", ev->no_calibrate,
                 "Never measure a GPU: without a cached calibration use its datasheet");
  ecmd->add_option("--timeout", ev->timeout_s,
                   "Watchdog ceiling: no candidate command waits longer, seconds")
      ->capture_default_str();
  ecmd->add_option("--timeout-floor", ev->timeout_floor_s,
                   "Watchdog floor: every candidate command may take this long, seconds")
      ->capture_default_str();
  ecmd->add_option("--timeout-factor", ev->timeout_factor,
                   "Watchdog: times the baseline's time a candidate may take before it is hung")
      ->capture_default_str();
  ecmd->callback([ev, ecmd, set_exit] {
    if (ev->db.empty())
      throw kb::InputError("command line", 0, "--db", "is an empty path");
    if (ecmd->count("--jobs") > 0 && ev->jobs <= 0)
      throw kb::InputError("command line", 0, "--jobs",
                           fmt::format("must be a positive count, not {}", ev->jobs));
    if (ecmd->count("--levels-dir") > 0 && ev->levels_dir.empty())
      throw kb::InputError("command line", 0, "--levels-dir", "is an empty path");
    // The run: --run, or the run of one shard of a suite (what `kbench slurm` submits).
    const bool by_run = ecmd->count("--run") > 0, by_suite = ecmd->count("--suite") > 0;
    if (by_run == by_suite || by_suite != (ecmd->count("--shard") > 0))
      throw kb::InputError("command line", 0, by_run ? "--suite" : "--run",
                           "give either --run ID, or --suite ID with --shard K/N");
    std::optional<kb::runner::Shard> slice;
    if (ecmd->count("--slice") > 0)
      slice = kb::runner::parse_shard(ev->slice, "--slice");
    if (by_suite) {
      kb::runner::check_suite_id(ev->suite);
      const auto shard = kb::runner::parse_shard(ev->shard);
      kb::store::Store s(ev->db, kb::store::OpenOptions{.create = false});
      const auto id = kb::runner::find_shard_run(s, ev->suite, shard);
      if (!id)
        throw kb::Error(
            fmt::format("{}: no run is shard {} of suite {}", ev->db, shard.label(), ev->suite));
      ev->run = *id;
    }
#ifdef KB_RUNNER_HAS_EVALUATOR
    kb::runner::EvaluateOptions o;
    o.db = ev->db;
    o.run_id = ev->run;
    o.slice = slice;
    if (auto g = kb::runner::parse_gpus(ev->gpus))
      o.gpus = *g;
    o.jobs = ev->jobs;
    o.levels_dir = ev->levels_dir;
    o.calibration_file = ev->calibration;
    o.calibrate = !ev->no_calibrate;
    for (const auto& [v, flag] : {std::pair{ev->timeout_s, "--timeout"},
                                  {ev->timeout_floor_s, "--timeout-floor"},
                                  {ev->timeout_factor, "--timeout-factor"}})
      if (!(v > 0.0) || !std::isfinite(v))
        throw kb::InputError("command line", 0, flag, "must be a positive number");
    o.eval.timeout_s = ev->timeout_s;
    o.eval.timeout_floor_s = ev->timeout_floor_s;
    o.eval.timeout_factor = ev->timeout_factor;
    {
      kb::store::Store s(o.db, kb::store::OpenOptions{.create = false});
      auto r = s.run(o.run_id);
      if (!r)
        throw kb::Error(fmt::format("{}: no run {}", o.db, o.run_id));
      o.eval.protocol = r->info.protocol;
    }
    auto backend = kb::runner::make_eval_backend(o.eval);
    std::atomic<int64_t> run_id{o.run_id};
    Printer printer;
    auto hooks = printer.hooks(run_id);
    SignalGuard guard(run_id);
    hooks.abandon = guard.hook();
    const auto s = kb::runner::evaluate_stored(o, *backend, &g_cancel, hooks);
    printer.end();
    fmt::print("run {}: {} candidates evaluated, {} skipped\n", o.run_id, s.candidates, s.skipped);
    for (const auto& line : s.ceilings)
      fmt::print("  {}\n", line);
    for (const auto& [outcome, n] : s.outcomes)
      fmt::print("  {:<14} {}\n", outcome, n);
    for (const auto& m : s.messages)
      fmt::print("  {}\n", m);
    set_exit(g_cancel ? 1 : 0);
#else
    (void)slice;
    throw kb::Error("this kbench was built without the evaluator");
#endif
  });
});

} // namespace

namespace kb::cli {

kb::runner::RunOptions parse_suite_flags(kb::runner::Mode mode,
                                         const std::vector<std::string>& args) {
  CLI::App app{"suite flags"};
  Cli c;
  add_suite_options(&app, c, mode == kb::runner::Mode::run);
  std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    throw kb::InputError("command line", 0,
                         mode == kb::runner::Mode::run ? "run flags" : "generate flags", e.what());
  }
  c.given = given_options(&app);
  return to_options(c, mode, "");
}

} // namespace kb::cli
