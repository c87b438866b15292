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
// Options
// ---------------------------------------------------------------------------------------------

// The correctness and timing protocol of a run (docs/evaluation.md).
enum class Protocol { kbench, kernelbench };
std::string_view protocol_name(Protocol p); // "kbench", "kernelbench"
std::optional<Protocol> parse_protocol(std::string_view name);

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
};

// How a run ended (the store's runs.status names them).
enum class RunStatus { running, completed, budget_exhausted, interrupted, failed };
// "running", "completed", "budget_exhausted", "interrupted", "failed".
std::string_view run_status_name(RunStatus s);
std::optional<RunStatus> parse_run_status(std::string_view name);

// Why one (problem, model) search stopped.
enum class StopKind {
  done,           // the strategy ran to its end
  run_budget,     // a run-wide limit ("run_tokens", "run_usd", "run_minutes", ...)
  problem_budget, // a per-problem limit ("problem_tokens_out", ...)
  interrupted,
  provider_failure, // refine/ideas stopped at a request the provider did not answer
  failed,           // a harness error
};
std::string_view stop_kind_name(StopKind k);
// The kind of a stop code: "done", "interrupted", "provider_failure", "failed", "problem_*"; any
// other code is a run-wide limit's ("run_tokens", "run_usd", ...).
StopKind classify_stop(std::string_view code);

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
