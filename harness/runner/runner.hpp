// kbench runner: the suite loop (problems x models x strategy) with budgets, resume, a compile
// pool and one evaluation worker per GPU, recording everything in the store. Also the second
// step of the two-step workflow (evaluating stored candidates). The only public header of
// kb_runner; it never prints: progress and log lines go to the caller's hooks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "catalog.hpp"
#include "compile.hpp"
#include "core.hpp"
#include "eval.hpp"
#include "llm.hpp"
#include "search.hpp"
#include "store.hpp"

namespace kb::runner {

// ---------------------------------------------------------------------------------------------
// The evaluation back end (an interface so the runner is testable without a GPU)
// ---------------------------------------------------------------------------------------------

// Evaluates compiled candidates on one GPU. Used by one worker thread only.
class GpuEvaluator {
public:
  virtual ~GpuEvaluator() = default;
  // As kb::Evaluator::evaluate_compiled: a failing candidate is an outcome; throws kb::Error
  // only when the harness cannot run.
  virtual EvalResult evaluate_compiled(const Problem& p, const CompileResult& c) = 0;
};

class EvalBackend {
public:
  virtual ~EvalBackend() = default;
  // Compiles one candidate; thread-safe (called from --jobs threads at once).
  virtual CompileResult compile(std::string_view source) = 0;
  // The evaluator of one GPU, created on (and used by) that GPU's worker thread. `ceilings`
  // (that GPU's roofline figures, from resolve_ceilings) become its EvalOptions::ceilings: the
  // roofline % and above_roofline of every evaluation on it.
  virtual std::unique_ptr<GpuEvaluator> open_gpu(int gpu, const GpuCeilings& ceilings) = 0;
  // Facts about the machine for the run record; never throws (error says why).
  virtual DoctorReport doctor() = 0;
  // The GPUs candidates will run on, named before the first compile: compiles target their
  // architectures (GpuInfo::arch) unless the options name one. The default ignores them.
  virtual void target(const std::vector<GpuInfo>& gpus) { (void)gpus; }
  // Measures one GPU's ceilings (copy bandwidth, GEMM rates); throws kb::Error when it cannot.
  // The default cannot.
  virtual GpuCeilings calibrate(int gpu);
};

// The real back end: nvcc through kb_compile, kb::Evaluator per GPU (worker processes),
// run_doctor for the machine facts, run_calibrate for calibrations. `base.gpu` and
// `base.ceilings` are replaced per GPU.
std::unique_ptr<EvalBackend> make_eval_backend(const EvalOptions& base);

// ---------------------------------------------------------------------------------------------
// Roofline ceilings per GPU model (docs/ceilings.md)
// ---------------------------------------------------------------------------------------------

enum class CeilingsOrigin {
  file,       // the explicit calibration file
  cache,      // a calibration cached beside the results database for this GPU model
  calibrated, // measured now (and cached for the next run)
  datasheet,  // the datasheet table's entry for this GPU model
  guess,      // a GPU the table does not know: H100 SXM datasheet figures, named a guess
};

// "file", "cache", "calibrated", "datasheet", "guess".
std::string_view ceilings_origin_name(CeilingsOrigin o);

struct CeilingsChoice {
  GpuCeilings ceilings; // gpu_name is never empty
  CeilingsOrigin origin = CeilingsOrigin::guess;
  // For people: "calibration file X", "cached calibration X for <gpu>", "calibrated now (2.1 s),
  // cached at X", "datasheet for <gpu>", "H100 SXM datasheet as a guess: ...", with notes in
  // parentheses (files ignored and why, a failed calibration and why).
  std::string source;
};

// Measures one GPU by index; throws kb::Error when it cannot.
using CalibrateFn = std::function<GpuCeilings(int gpu)>;

// Lower-case slug of a device name: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3".
std::string gpu_slug(std::string_view device_name);
// The cache of one GPU model's calibration: <directory of db>/calibration-<slug>.json.
std::string calibration_cache_path(const std::string& db, std::string_view device_name);
// "4800 GB/s, FP32 67 / TF32 495 / FP16 990 / BF16 990 TFLOP/s" (one decimal at most).
std::string ceilings_figures(const GpuCeilings& c);

// The roofline ceilings of one GPU (`gpu`: its doctor entry, name and index), the first of:
//  1. `calibration_file` when not empty (throws kb::Error naming the file when it is missing or
//     holds no usable ceilings);
//  2. a calibration cached beside `db` for this GPU model (calibration_cache_path), or a legacy
//     calibration.json beside `db` or results/calibration.json made on this model (its gpu_name
//     is the device name); files made on other models are ignored;
//  3. a calibration measured now with `calibrate` (null: not allowed), cached for the next run
//     (written atomically to calibration_cache_path);
//  4. datasheet_ceilings(gpu.name);
//  5. the H100 SXM datasheet, named a guess for an unknown GPU in gpu_name and source.
// A failed calibration falls through to 4/5 and the source says why.
CeilingsChoice resolve_ceilings(const std::string& calibration_file, const std::string& db,
                                const GpuInfo& gpu, const CalibrateFn& calibrate);
// As above, calibrating with `kbench-worker calibrate` (run_calibrate; an empty worker_path:
// default_worker_path()) when `allow_calibrate`.
CeilingsChoice resolve_ceilings(const std::string& calibration_file, const std::string& db,
                                const GpuInfo& gpu, const std::string& worker_path,
                                bool allow_calibrate);

// ---------------------------------------------------------------------------------------------
// Shards: one suite split over processes, hosts or Slurm array tasks (docs/scale.md)
// ---------------------------------------------------------------------------------------------

// Shard `index` (1-based) of `count`.
struct Shard {
  int index = 1;
  int count = 1;
  std::string label() const; // "3/16"
  bool operator==(const Shard&) const = default;
};
// Parses "K/N" with 1 <= K <= N <= 100000; throws kb::InputError naming `flag`.
Shard parse_shard(std::string_view text, std::string_view flag = "--shard");

// One unit of a suite's work: the search of one problem by one model (its configured name).
struct TaskKey {
  std::string problem_id;
  std::string model;
  auto operator<=>(const TaskKey&) const = default;
};
// The shard (1-based) of each task when a suite's tasks are split `count` ways: tasks are ordered
// by the content hash of "problem\nmodel" (ties by problem, then model) and dealt round-robin, so
// shards differ by at most one task and the answer depends only on the set of tasks, never on
// their order, the catalog's order or the machine. Throws kb::Error for count < 1 or a task
// given twice.
std::vector<int> shard_assignment(const std::vector<TaskKey>& tasks, int count);
// Indices into `tasks` of the tasks of shard `s`, in the order of `tasks`.
std::vector<std::size_t> shard_tasks(const std::vector<TaskKey>& tasks, const Shard& s);

// Checks a suite id: 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-';
// throws kb::InputError naming `flag`.
void check_suite_id(std::string_view id, std::string_view flag = "--suite");
// A fresh suite id: UTC date and time and 24 random bits, "20261205-063112-3fa9c1".
std::string new_suite_id();

// A shard's share of a suite's run-wide limits: tokens and money are split evenly (rounded down,
// at least 1 token), so the shards together stay within the suite's limits; the wall-time limit
// applies to each shard as given (shards run side by side).
search::BudgetLimits shard_budget(const search::BudgetLimits& suite, int count);

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

// The correctness and timing protocol of a run (docs/evaluation.md).
enum class Mode {
  run,      // LLM calls, compiles and GPU evaluations
  generate, // LLM calls only: candidates stored without evaluation (no GPU needed)
};

struct RunOptions {
  Mode mode = Mode::run;
  std::vector<int> levels;           // empty: every level
  std::vector<std::string> problems; // globs over problem ids or file stems; empty: all
  std::vector<std::string> models{"replay"};
  std::string models_file; // empty: config/models.yaml (cwd, then the source tree), else built-ins
  search::StrategyOptions strategy;
  search::BudgetLimits run_budget;
  search::BudgetLimits problem_budget; // per (problem, model)
  std::vector<int> gpus;               // run mode: GPUs to use (empty: every GPU the doctor sees)
  int jobs = 0;                        // parallel nvcc processes; 0: hardware threads
  int concurrency = 0;                 // (problem, model) searches at once; 0: automatic
  std::string db = "results/kbench.db";
  Protocol protocol = Protocol::kbench;
  std::optional<int64_t> resume; // continue this run (its recorded configuration is used)
  std::string levels_dir;        // empty: default_levels_dir()
  std::string prompts_dir;       // empty: PromptLibrary::default_dir()
  std::string calibration_file;  // roofline ceilings for every GPU; empty: resolve_ceilings
                                 // per GPU model (cache beside the db, calibrate, datasheet)
  bool calibrate = true;         // resolve_ceilings may calibrate a GPU without a cache
  bool use_cache = true;         // answer identical requests from earlier runs' records
  std::string command;           // the command line, for the run record
  EvalOptions eval;              // protocol and gpu are set by the runner
  // This run is one shard of a suite (docs/scale.md): only its slice of the (problem, model)
  // tasks is searched, run-wide token and money limits are its share (shard_budget), and the
  // run records the suite id and the suite's fingerprint so `kbench merge` can put the shards
  // back into one run. A database that already holds this shard of this suite resumes it.
  std::optional<Shard> shard;
  std::string suite; // with a shard: the suite id; empty: derived from the suite's fingerprint
};

// The resolved options as JSON (no secrets: key variables are named, never read) and back.
// from_config_json throws kb::Error naming the field for a malformed configuration.
nlohmann::json to_config_json(const RunOptions& o);
RunOptions from_config_json(const nlohmann::json& j);

// Problems selected by levels and globs ('*', '?', '[..]' over the id "l1/softmax_4096x65536"
// or the stem "softmax_4096x65536"), in catalog order. Throws kb::Error naming the pattern when
// a glob matches nothing, or when nothing is selected.
std::vector<const Problem*> select_problems(const Catalog& c, const std::vector<int>& levels,
                                            const std::vector<std::string>& globs);

// A suite's work before anything runs: its (problem, model) tasks and its fingerprint, a hash of
// everything that decides what the suite asks and how it is judged (the tasks with each
// problem's content hash, the models' request settings, the strategy, the suite's limits, the
// protocol, the watchdog, the prompts), never of paths, GPUs or speeds. Shards of one suite must
// have one fingerprint. Loads the catalog and resolves the models as run_suite does, and throws
// as it would for bad options.
struct SuitePlan {
  std::vector<TaskKey> tasks; // catalog order, then --models order
  std::string fingerprint;    // 16 hex digits
  std::string suite_id;       // opts.suite, or "fp-<fingerprint>" when that is empty
};
SuitePlan plan_suite(const RunOptions& opts);

// The run of a database that is shard `shard` of suite `suite` (a shard's own run, never a
// merged one); nullopt when there is none. Throws kb::Error naming the runs when several are.
std::optional<int64_t> find_shard_run(store::Store& s, std::string_view suite, const Shard& shard);

// A model configuration as a run records it (every field; the key variable's name, never a key)
// and back; a resume builds its clients from the record, never from a models file.
nlohmann::json model_config_json(const llm::ModelConfig& m);
llm::ModelConfig model_config_from_json(const nlohmann::json& j);

// Content hash of the prompt templates of `dir` (every k_prompt_names file).
std::string prompts_hash(const std::string& dir);

// Model configurations by name: from the models file when it has the name, else the built-in
// defaults of a known family. Replay directories given relative are resolved against the
// working directory, else the source tree. Throws kb::Error naming the model and the file.
std::vector<llm::ModelConfig> resolve_models(const std::vector<std::string>& names,
                                             const std::string& models_file,
                                             const std::string& levels_dir);

// Parses "all" (nullopt) or "0,1,3" for --gpus; throws kb::InputError.
std::optional<std::vector<int>> parse_gpus(std::string_view text);
// Parses "1,2" for --level; throws kb::InputError.
std::vector<int> parse_levels(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Progress and results
// ---------------------------------------------------------------------------------------------

struct Progress {
  int tasks_total = 0; // (problem, model) searches
  int tasks_done = 0;
  int64_t candidates = 0; // recorded
  int64_t evaluated = 0;
  int64_t correct = 0;
  int64_t llm_calls = 0;
  search::Usage spent; // fresh tokens and money of this session
  int evals_queued = 0;
  double elapsed_s = 0.0;
  // Best speedup so far per problem (correct candidates), highest first.
  std::vector<std::pair<std::string, double>> best;
};

struct RunHooks {
  std::function<void(const std::string&)> log;   // one line per event; may be null
  std::function<void(const Progress&)> progress; // every ~250 ms and at the end; may be null
  std::function<void(int64_t run_id)> started;   // once the run row exists; may be null
  // Called with a function that ends the run `interrupted` and gives its lease up through the
  // run's own recorder (for a process about to exit at once, e.g. on a second Ctrl-C; callable
  // from any thread), once the run is set up; and with nullptr before the recorder closes.
  // May be null.
  std::function<void(std::function<void()> abandon)> abandon;
};

// Hands a recorder's abandon function to RunHooks::abandon for as long as it lives.
class AbandonHandle {
public:
  AbandonHandle() = default;
  AbandonHandle(const AbandonHandle&) = delete;
  AbandonHandle& operator=(const AbandonHandle&) = delete;
  ~AbandonHandle() { reset(); }
  void set(const RunHooks& hooks, std::function<void()> abandon) {
    if (!hooks.abandon)
      return;
    m_hook = hooks.abandon;
    m_hook(std::move(abandon));
  }
  void reset() {
    if (m_hook)
      m_hook(nullptr);
    m_hook = nullptr;
  }

private:
  std::function<void(std::function<void()>)> m_hook;
};

// How a run ended (the store's runs.status names them).
enum class RunStatus { running, completed, budget_exhausted, interrupted, failed };
// "running", "completed", "budget_exhausted", "interrupted", "failed".
std::string_view run_status_name(RunStatus s);
std::optional<RunStatus> parse_run_status(std::string_view name);

using search::StopKind;
using search::stop_kind_name;

struct TaskSummary {
  std::string problem_id;
  std::string model;
  StopKind stop = StopKind::done;
  std::string stop_code; // the precise code: "done", a budget code, "interrupted", "failed"
  std::string stop_message;
  int candidates = 0;
  int provider_failures = 0; // requests that failed at the provider after retries
  std::optional<int64_t> best_id;
  double best_speedup = 0.0;
};

struct RunSummary {
  int64_t run_id = 0;
  RunStatus status = RunStatus::running;
  std::string message;            // why, when not completed; provider failures and harness errors
  bool already_completed = false; // a resume of a completed run: nothing was done
  // What the run's record holds (every session of it): answers, unanswered provider failures
  // by class, tokens and money. Summaries print these, never in-memory counters.
  store::CallTally calls;
  // The roofline ceilings used, one line per GPU model ("ceilings: <source> (<figures>)");
  // empty in generate mode. The same lines go to the log hook when the run starts.
  std::vector<std::string> ceilings;
  std::vector<TaskSummary> tasks;
  Progress progress;
};

// Runs (or resumes) a suite. Problem-level failures are data; throws kb::Error (after marking
// the run "failed" when it was started) for bad options, unknown models or problems, an
// unreadable database, or a harness failure (evaluator cannot run). Setting `cancel` stops
// new work: LLM calls in flight finish and are recorded, queued evaluations are recorded
// without evaluation, and the run ends "interrupted". `backend` is required in run mode;
// nullptr in generate mode.
RunSummary run_suite(const RunOptions& opts, EvalBackend* backend,
                     const std::atomic<bool>* cancel = nullptr, const RunHooks& hooks = {});

struct EvaluateOptions {
  std::string db;
  int64_t run_id = 0;
  std::vector<int> gpus; // empty: every GPU the doctor sees
  int jobs = 0;
  std::string levels_dir;
  std::string calibration_file; // as RunOptions::calibration_file
  bool calibrate = true;        // as RunOptions::calibrate
  EvalOptions eval;
  // Only the candidates of slice `slice` of the run's (problem, model) pairs that have
  // candidates (shard_tasks over them): N copies of one database, each evaluated with another
  // slice, merge back into one run (docs/scale.md).
  std::optional<Shard> slice;
};

struct EvaluateSummary {
  int64_t candidates = 0; // evaluated now
  int64_t skipped = 0;    // problem no longer in the catalog (or changed), or interrupted
  std::map<std::string, int64_t> outcomes;
  std::vector<std::string> messages; // one per skipped candidate group
  std::vector<std::string> ceilings; // as RunSummary::ceilings
};

// Evaluates every stored candidate of a run that has source and no evaluation yet (the second
// step after `kbench generate`). Throws kb::Error naming the database and run when absent.
EvaluateSummary evaluate_stored(const EvaluateOptions& opts, EvalBackend& backend,
                                const std::atomic<bool>* cancel = nullptr,
                                const RunHooks& hooks = {});

} // namespace kb::runner
