// Internal to kb_runner: the evaluation pipeline (compile pool feeding one worker per GPU) and
// the store-backed call journal.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "recorder.hpp"
#include "runner.hpp"
#include "store.hpp"

namespace kb::runner::detail {

// A candidate waiting for its verdict.
struct EvalJob {
  const Problem* problem = nullptr;
  store::Candidate candidate;         // as it will be recorded (run, model, llm call set)
  std::optional<int64_t> existing_id; // already recorded without evaluation (resume, evaluate)
  std::promise<search::Verdict> promise;
  CompileResult compiled;
};

// Shared state the pipeline reports to.
struct PipelineStats {
  std::atomic<int64_t> evaluated{0};
  std::atomic<int64_t> correct{0};
  std::atomic<int> queued{0};
};

// --jobs compile threads feed a queue that one worker thread per GPU drains. Every job ends
// recorded: evaluated, or (when stopping or when the harness fails) recorded without
// evaluation so a later `kbench evaluate` can finish it. A compile that fails in the harness
// (twice) leaves its candidate unevaluated and the others go on; an evaluator that fails twice
// (the second time freshly opened) reaches the promise as the exception and sets `stop`.
class EvalPipeline {
public:
  // Writes a job's row and returns its candidate id: with its verdict (`r` set) or without one
  // (`r` null: recorded unevaluated). A job with existing_id is that row already.
  using Record = std::function<int64_t(EvalJob& job, const EvalResult* r)>;
  // The pipeline returns verdicts and knows no database: every row goes through `record`.
  // Each GPU's evaluator gets its entry of `ceilings` (an empty GpuCeilings when it has none).
  EvalPipeline(EvalBackend& backend, const std::vector<int>& gpus,
               std::map<int, GpuCeilings> ceilings, int jobs, Protocol protocol,
               std::atomic<bool>& stop, Record record, PipelineStats& stats);
  ~EvalPipeline(); // finishes queued jobs (recording unevaluated ones when stopping), joins
  std::future<search::Verdict> submit(EvalJob job);
  // Finishes queued jobs and joins the threads (once; the destructor calls it too).
  void drain();
  // The first harness failure ("" when none).
  std::string failure() const;
  // Compile plumbing failures (after a retry) of candidates recorded without evaluation.
  std::vector<std::string> plumbing_errors() const;

private:
  void compile_loop();
  void gpu_loop(int gpu);
  void finish_unevaluated(EvalJob& job);
  void fail(EvalJob& job, std::exception_ptr e, const std::string& what);

  EvalBackend& m_backend;
  std::map<int, GpuCeilings> m_ceilings;
  Protocol m_protocol = Protocol::kbench;
  std::atomic<bool>& m_stop;
  Record m_record;
  PipelineStats& m_stats;
  mutable std::mutex m_mutex;
  std::condition_variable m_compile_cv, m_gpu_cv;
  std::deque<EvalJob> m_compile_q, m_gpu_q;
  bool m_closing = false;
  int m_compiling = 0;
  std::string m_failure;
  std::vector<std::string> m_plumbing_errors;
  std::vector<std::thread> m_compile_threads, m_gpu_threads;
};

// The call journal of one run, written through the run's recorder.
class StoreJournal final : public search::CallJournal {
public:
  StoreJournal(RunRecorder& recorder, int64_t run_id, std::map<std::string, int64_t> model_rows,
               std::map<std::string, const llm::Client*> clients, bool use_cache);
  // Loads this run's recorded calls (resume) and returns the usage per (problem, model row).
  std::map<std::pair<std::string, int64_t>, search::Usage> load_run_calls();
  std::optional<search::Answer> lookup(const std::string& model, const std::string& problem_id,
                                       const std::string& request_hash) override;
  int64_t record(const std::string& problem_id, const llm::ChatResponse& r) override;
  int64_t replayed() const;

private:
  std::string redact(const std::string& model, const std::string& text) const;
  RunRecorder& m_recorder;
  mutable std::mutex m_mutex; // the journal's own state
  int64_t m_run_id;
  std::map<std::string, int64_t> m_model_rows;
  std::map<std::string, const llm::Client*> m_clients;
  bool m_use_cache;
  std::map<std::string, std::deque<store::LlmCallRow>> m_run_calls; // by request hash
  int64_t m_replayed = 0;
};

// The roofline ceilings of the GPUs of a run (or of `kbench evaluate`), one resolve_ceilings per
// GPU model.
struct CeilingsPlan {
  struct Group {
    std::vector<int> gpus; // GPU indexes of one model, in the order given
    CeilingsChoice choice;
  };
  std::map<int, GpuCeilings> by_gpu; // what each GPU's evaluator gets
  std::vector<Group> groups;         // the first holds the first GPU
  std::vector<std::string> lines;    // "ceilings: <source> (<figures>)", one per group
};
// Resolves the ceilings of `gpus` (their names from `doctor`), calibrating through
// backend.calibrate when allowed; `log` (may be null) hears of each calibration before it runs.
CeilingsPlan plan_ceilings(const std::vector<int>& gpus, const DoctorReport& doctor,
                           const std::string& calibration_file, const std::string& db,
                           EvalBackend& backend, bool allow_calibrate,
                           const std::function<void(const std::string&)>& log);

// The run's calibrations row (one per run: the first GPU's ceilings). A run that has one already
// (resume, a second `kbench evaluate`) keeps it; a different figure now is logged.
void record_ceilings(store::Store& s, int64_t run_id, const CeilingsPlan& plan,
                     const std::function<void(const std::string&)>& log);
// The GPUs of `kbench run` and `kbench evaluate`: those asked for, else every GPU the doctor
// sees; throws kb::Error when the doctor sees none (with `hint` appended) or an asked GPU is not
// among them.
std::vector<int> gpus_to_use(const std::vector<int>& asked, const DoctorReport& doctor,
                             const std::string& hint);
// Tells `backend` the doctor's entries of `gpus` (EvalBackend::target), before the first compile.
void target_gpus(EvalBackend& backend, const std::vector<int>& gpus, const DoctorReport& doctor);
// Parallel compiles: `jobs` when positive, else the hardware threads.
int default_jobs(int jobs);

// The progress thread of `kbench run` and `kbench evaluate`: every 50 ms a set `cancel` sets
// `stop`; every 250 ms `progress` (may be null) gets a snapshot from `snapshot`. Stops (and
// joins) on destruction or stop().
class ProgressTicker {
public:
  ProgressTicker(const std::atomic<bool>* cancel, std::atomic<bool>& stop,
                 std::function<Progress()> snapshot, std::function<void(const Progress&)> progress);
  ~ProgressTicker();
  void stop();

private:
  std::atomic<bool> m_done{false};
  std::thread m_thread;
};

// The EvalResult of a candidate that never reached a GPU.
EvalResult no_code_result(const std::string& reason, Protocol protocol);
EvalResult compile_failure_result(const CompileResult& c, Protocol protocol);

} // namespace kb::runner::detail
