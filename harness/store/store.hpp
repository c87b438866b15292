// The results store: one SQLite database (WAL) per run or shard, a versioned schema with forward
// migrations, writes of whole attempts in one transaction, and the queries resume and reports use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core.hpp"

namespace kb::store {

// Schema version this build writes. Older databases are migrated forward on open; a database with
// a newer version is refused (kb::Error), never modified.
inline constexpr int k_schema_version = 3;

// ---------------------------------------------------------------------------------------------
// Values written
// ---------------------------------------------------------------------------------------------

// Everything that identifies how and where a run was made. Secrets (API keys) are never part of
// it: the store has no column for them. JSON fields hold JSON text ("" is stored as "{}").
struct RunInfo {
  std::string command;     // the command line, e.g. "kbench run --suite l1 --model kevin"
  std::string config_json; // the resolved configuration, as JSON text
  std::string kbench_version;
  std::string git_commit;
  std::string gpu_name; // "NVIDIA H100 80GB HBM3"
  std::string gpu_uuid;
  std::string driver_version;
  std::string cuda_version;
  std::string cublas_version;
  std::string cudnn_version;
  std::string nvcc_version;
  std::string host;
  Protocol protocol = Protocol::kbench;
  std::string shard; // shard label ("3/16") for runs split across machines; "" when whole
};

// A model as the runner addresses it. The same (provider, model_id, settings_json) is one row.
struct ModelInfo {
  std::string provider;      // "openai", "vllm", "anthropic", ...
  std::string model_id;      // "cognition-ai/Kevin-32B"
  std::string settings_json; // temperature, max tokens, reasoning effort ... as JSON text
};

// One LLM request and its answer. Tokens come from the API's usage fields.
struct LlmCall {
  int64_t run_id = 0;
  int64_t model_id = 0;     // row id from upsert_model
  std::string problem_id;   // "" when the call is not about one problem
  std::string request_hash; // hash of the canonical request; the response cache key
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double latency_s = 0.0;
  std::string status;      // "ok", "error", "timeout", "rate_limited", "budget", ...
  std::string error_class; // "" when ok; else e.g. "http_5xx", "parse", "connect"
  double cost_usd = 0.0;
  std::string response_text;
  std::optional<int64_t> seed; // the request seed, where the API takes one (v3)
  // The answer's size in bytes as received when response_text holds a capped cut of it; 0 when
  // it is whole (v3).
  int64_t response_bytes = 0;
};

// A candidate kernel (or the failure to produce one: source may be empty for no_code).
struct Candidate {
  int64_t run_id = 0;
  std::string problem_id;
  int64_t model_id = 0;
  std::string strategy;             // "oneshot", "best_of_n", "refine", "ideas"
  int round = 0;                    // round or turn, 0-based
  std::optional<int64_t> parent_id; // candidate this one refines
  std::string idea;                 // natural-language idea that produced it
  std::string source;               // CUDA C++ source
  std::string source_hash;          // content hash of source ("" computes it)
  std::optional<int64_t> llm_call_id;
};

// A whole attempt, written in ONE transaction by record_attempt: the LLM call (if any), the
// candidate (its llm_call_id is set to the call written here) and its evaluation (if any).
struct Attempt {
  std::optional<LlmCall> llm_call;
  Candidate candidate;
  std::optional<EvalResult> evaluation;
};

struct AttemptIds {
  std::optional<int64_t> llm_call_id;
  int64_t candidate_id = 0;
  std::optional<int64_t> evaluation_id;
};

// A reference time measured outside kbench's own baselines (PyTorch eager, torch.compile).
// `problem_key` is "l<level>/<stem>" lower-case: KernelBench's file stem for KernelBench files
// ("l1/1_square_matrix_multiplication_") or a kbench problem id ("l1/matmul_square_4096").
struct ExternalBaseline {
  std::string problem_key;
  std::string source;   // "pytorch-eager", "torch-compile", ...
  std::string hardware; // "NVIDIA H100 80GB HBM3"
  double time_ms = 0.0; // KernelBench's statistic: mean
  double std_ms = 0.0;
  double min_ms = 0.0;
  double max_ms = 0.0;
  int num_trials = 0;
  std::string file; // where it was imported from
};

// ---------------------------------------------------------------------------------------------
// Values read back
// ---------------------------------------------------------------------------------------------

struct RunRow {
  int64_t id = 0;
  std::string uuid; // globally unique; merge uses it so a run is never copied twice
  RunInfo info;
  std::string started_at; // ISO-8601 UTC
  std::string ended_at;   // "" while running
  std::string status;     // "running", "completed", "failed", "interrupted"
  std::string origin;     // "" or "<source db path>#<run id>" for merged runs
  int64_t candidates = 0; // counts, for listings
  int64_t evaluations = 0;
};

struct ModelRow {
  int64_t id = 0;
  ModelInfo info;
  // "provider/model_id", with "#<id>" appended when two rows share provider and model id.
  std::string label;
};

struct ProblemRow {
  std::string id;
  int level = 0;
  std::string name;
  std::string content_hash;
  std::string provenance_source;
  std::string provenance_version;
  std::string provenance_ref;
  double flops = 0.0;
  double min_bytes = 0.0;
  // Keys under which external baselines for this problem are found (its id, and for KernelBench
  // mirrors "l<level>/<stem>").
  std::vector<std::string> baseline_keys() const;
};

// A cached LLM answer found by request hash.
struct CachedResponse {
  int64_t llm_call_id = 0;
  std::string response_text;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0.0;
};

// One candidate with its evaluation (when one was recorded) and the cost of the call behind it,
// flattened for reports and resume. Raw samples and source are loaded only when asked for.
struct AttemptRow {
  int64_t run_id = 0;
  int64_t candidate_id = 0;
  std::string problem_id;
  int level = 0;
  int64_t model_id = 0;
  std::string strategy;
  int round = 0;
  std::optional<int64_t> parent_id;
  std::string idea;
  std::string source_hash;
  std::string source; // only with AttemptFilter::with_source
  bool evaluated = false;
  EvalResult eval; // valid when evaluated; samples_ms filled only with with_samples
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0.0;
  double llm_latency_s = 0.0;
};

struct AttemptFilter {
  std::vector<int64_t> run_ids; // empty: all runs
  std::optional<std::string> problem_id;
  std::optional<int64_t> model_id;
  bool with_source = false;
  bool with_samples = false;
};

// Number of attempts (candidates) written per (problem id, model row id), for resume.
using AttemptCounts = std::map<std::pair<std::string, int64_t>, int64_t>;

struct BaselineRow {
  int64_t run_id = 0;
  std::string problem_id;
  std::string source; // "cublas/cudnn"
  TimingStats time;   // samples_ms filled
};

struct ExternalBaselineRow {
  int64_t id = 0;
  ExternalBaseline baseline;
  std::string imported_at;
};

struct LlmCallRow {
  int64_t id = 0;
  LlmCall call; // response_text left empty in listings
};

// What a run's LLM calls came to: answers, and requests that failed at the provider (after the
// client's retries) and were never answered since, by class (the call's status).
struct CallTally {
  int64_t answered = 0; // status "ok" (cache hits included)
  int64_t provider_failures = 0;
  std::map<std::string, int64_t> failures_by_class; // "rate_limited", "timeout", ...
  int64_t tokens_in = 0;                            // every call of the run, cache hits excluded
  int64_t tokens_out = 0;
  double cost_usd = 0.0;
};

// A request of a run that failed at the provider (after the client's retries) and that no later
// call of the run answered: one per request hash, with the status of its last failed call.
struct UnansweredRequest {
  int64_t model_id = 0;
  std::string problem_id;
  std::string status; // the failure's class: "rate_limited", "timeout", "http_error", ...
  std::string request_hash;
};

// Who holds a run's lease.
struct LeaseHolder {
  std::string host;
  int64_t pid = 0;
  double heartbeat_age_s = 0.0;
};

// Result of importing a KernelBench timing JSON file.
struct ImportSummary {
  std::string source;
  std::string hardware;                // the first entry's hardware ("" when absent)
  int64_t imported = 0;                // rows inserted or updated
  std::vector<std::string> unmeasured; // "levelN.file" entries published as null (not run there)
};

// Result of merging one database into another.
struct MergeSummary {
  int64_t runs_copied = 0;
  int64_t runs_skipped = 0; // already present (same run uuid)
  int64_t candidates = 0;
  int64_t evaluations = 0;
  int64_t llm_calls = 0;
  int64_t external_baselines = 0;
  // Shards of a suite (runs whose configuration names a suite and a shard) are not copied as
  // runs of their own: each is folded into its suite's one run (docs/scale.md).
  int64_t shards_merged = 0;
  // Evaluations copied into a run present on both sides (same uuid) for its candidates that had
  // none here: copies of one database evaluated slice by slice (`kbench evaluate --slice`).
  int64_t evaluations_filled = 0;
  std::vector<std::string> notes; // shards left out and why, runs filled in, GPU models mixed
};

// A suite run: which of its shards it holds, which it lacks, and those merged unfinished.
struct SuiteState {
  int64_t run_id = 0;
  std::string suite;  // the suite id
  std::string status; // the run's: "completed" only when every shard is in and completed
  int count = 0;      // shards of the suite
  std::vector<int> merged, missing;
  std::vector<std::pair<int, std::string>> unfinished; // (shard, status) merged but not completed
};

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

struct OpenOptions {
  bool read_only = false; // open an existing database only, never migrate or write
  bool create = true;     // create the file when absent (ignored when read_only)
  // Migrate up to this version only (tests build old databases this way); 0 means current.
  int max_schema_version = 0;
  int busy_timeout_ms = 10000;
};

// A connection to one database file. Not thread-safe: one Store per thread. Several processes
// may open the same file (WAL); writers serialise on SQLite's lock, waiting busy_timeout_ms.
// Every write method is atomic: it commits in its own transaction unless called inside an open
// Transaction. All methods throw kb::Error naming the file on SQLite failure.
class Store {
public:
  // Opens (and creates, and migrates) `path`. Throws kb::Error naming the path when the file is
  // unreadable, not a SQLite database, not a kbench database, or of a newer schema version.
  explicit Store(const std::string& path, OpenOptions options = {});
  ~Store();
  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;
  // Schema version of the open database (k_schema_version after a full migration).
  int schema_version() const;
  // "ok" when PRAGMA integrity_check passes, else its messages joined by newlines.
  std::string integrity_check();

  // RAII transaction: groups several writes into one commit (rolled back when destroyed without
  // commit()). Nested use is an error.
  class Transaction {
  public:
    explicit Transaction(Store& s);
    ~Transaction();
    void commit();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

  private:
    Store* m_store;
    bool m_done = false;
  };

  // --- runs ---
  // Starts a run (status "running", started_at now); returns its id.
  int64_t begin_run(const RunInfo& info);
  // Marks a run finished with `status` ("completed", "failed", "interrupted").
  void end_run(int64_t run_id, std::string_view status = "completed");
  // Sets a finished or interrupted run back to "running" so the runner can resume it.
  void resume_run(int64_t run_id);
  std::vector<RunRow> runs();
  std::optional<RunRow> run(int64_t run_id);

  // --- problems and models ---
  // Inserts or updates a problem (keyed by id; content hash, level, provenance, costs).
  void upsert_problem(const Problem& p);
  std::vector<ProblemRow> problems();
  // Returns the row id of (provider, model_id, settings_json), inserting it when new.
  int64_t upsert_model(const ModelInfo& m);
  int64_t upsert_model(std::string_view provider, std::string_view model_id,
                       std::string_view settings_json);
  std::vector<ModelRow> models();

  // --- LLM calls ---
  int64_t record_llm_call(const LlmCall& c);
  // The newest call with this request hash and status "ok", in any run.
  std::optional<CachedResponse> find_cached_response(std::string_view request_hash);
  std::vector<LlmCallRow> llm_calls(int64_t run_id);
  // Answers, unanswered provider failures and spending of a run's calls (see CallTally). A
  // failed request that a later call of the run answered (a resume retries failures) is not a
  // failure any more; a replay model without a kernel ("replay_not_found") is an answer with no
  // code, never a provider failure.
  CallTally call_tally(int64_t run_id);
  // The provider failures call_tally counts, one per request (the rule lives here alone).
  std::vector<UnansweredRequest> unanswered_requests(int64_t run_id);
  // --- the run lease: one writing process per run ---
  // Takes the lease of `run_id` for `token` (a random string per process) and returns nullopt,
  // or returns the holder when another process holds it. A lease is free when absent, held by
  // `token`, or stale: its holder is on this host and its process is gone, or its heartbeat is
  // older than `stale_after_s`. Atomic against other processes.
  std::optional<LeaseHolder> acquire_run_lease(int64_t run_id, std::string_view token,
                                               double stale_after_s = 60.0);
  // Refreshes the heartbeat; false when the lease is no longer `token`'s (taken over).
  bool renew_run_lease(int64_t run_id, std::string_view token);
  // Gives the lease up (nothing when `token` does not hold it).
  void release_run_lease(int64_t run_id, std::string_view token);

  // --- candidates and evaluations ---
  int64_t add_candidate(const Candidate& c);
  // Stores outcome, message, flags, mismatch, timing stats with raw samples (candidate and
  // baseline), speedup, roofline %, library calls, phase times and compile log. One evaluation
  // per candidate: recording again replaces the earlier one. Returns the evaluation id.
  int64_t record_evaluation(int64_t candidate_id, const EvalResult& r);
  // LLM call + candidate + evaluation in ONE transaction (or in the caller's open Transaction).
  AttemptIds record_attempt(const Attempt& a);
  // Candidate source by id; nullopt when absent.
  std::optional<std::string> candidate_source(int64_t candidate_id);

  // --- baselines and calibration ---
  // kbench's own baseline (cuBLAS/cuDNN graph) timed in `run_id`; returns its id.
  int64_t record_baseline_timing(int64_t run_id, std::string_view problem_id, const TimingStats& t,
                                 std::string_view source = "cublas/cudnn");
  std::vector<BaselineRow> baseline_timings(const std::vector<int64_t>& run_ids = {});
  // Inserts or replaces the row for (problem_key, source, hardware). Returns its id.
  int64_t record_external_baseline(const ExternalBaseline& b);
  std::vector<ExternalBaselineRow> external_baselines();
  // Reads KernelBench's timing JSON ({"level1": {"1_Square_....py": {"mean": ms, "std", "min",
  // "max", "num_trials", "hardware", ...}}}) and records every entry as an external baseline of
  // `source` in one transaction. Throws kb::InputError naming the file and the bad field.
  ImportSummary import_kernelbench_timings(const std::string& json_path, std::string_view source);
  void record_calibration(int64_t run_id, const GpuCeilings& c);
  std::optional<GpuCeilings> calibration(int64_t run_id);

  // --- queries for resume and reports ---
  // Attempts written so far in a run, per (problem, model); the runner resumes from these.
  AttemptCounts attempt_counts(int64_t run_id);
  int64_t attempts_done(int64_t run_id, std::string_view problem_id, int64_t model_id);
  std::vector<AttemptRow> attempts(const AttemptFilter& f = {});

  // --- merge ---
  // Copies every run of `other_path` not yet present here (by run uuid), with its candidates,
  // evaluations, LLM calls, baseline timings and calibration, plus problems, models and external
  // baselines, in one transaction. Copied runs keep their uuid and get origin
  // "<other_path>#<run id there>". Throws kb::Error naming other_path when it cannot be read.
  // A shard of a suite is folded into that suite's run here (created on its first shard, with a
  // fresh uuid and origin "suite <id>"): its rows join the suite run, one baseline per problem;
  // the suite run's configuration lists every shard merged (configuration key "suite":
  // "shards"), and its status, shard label ("" when every shard is in) and times follow from
  // them. A shard already merged, a second run of a merged shard, or a shard of another
  // configuration (suite fingerprint or shard count) is left out with a note. A run present on
  // both sides gets the evaluations it lacks (candidates matched in order; left alone with a note
  // when the two copies hold other candidates).
  MergeSummary merge_from(const std::string& other_path);
  // The suite runs of this database (made by merge_from from shards), in run order.
  std::vector<SuiteState> suites();
  // Writes a consistent copy of this database (even while another process writes it) to `to`:
  // a single file (no -wal), made beside `to` under a temporary name, flushed and renamed over
  // it, so readers of `to` see the old copy or the new one, never a part. Works on a read-only
  // connection. Throws kb::Error naming the file that cannot be written.
  void snapshot_to(const std::string& to);

  struct Impl; // internal

private:
  std::unique_ptr<Impl> m_impl;
};

// Encodes samples as little-endian float64 bytes and back (the evaluations' sample columns).
std::string encode_samples(const std::vector<double>& samples_ms);
std::vector<double> decode_samples(std::string_view bytes);

} // namespace kb::store
