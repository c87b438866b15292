// Candidate evaluation, parent side: compiles and screens a candidate, runs it in a fresh
// kbench-worker process under a watchdog, has a separate reference process (which never loads
// candidate code) judge its outputs, and assembles the EvalResult. Creates no CUDA context.
// Also the pure statistics and tolerance rules the workers apply, so they can be tested anywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compile.hpp"
#include "core.hpp"

namespace kb {

// ---------------------------------------------------------------------------------------------
// Options and the evaluator
// ---------------------------------------------------------------------------------------------

struct TimingOptions {
  int warmup = 3;               // untimed calls before sampling
  double target_rse = 0.005;    // stop when stderr(median)/median <= this ...
  int min_samples = 20;         // ... and at least this many samples were taken
  int max_samples = 5000;       // hard stop (stop_reason "sample_cap")
  double time_cap_s = 5.0;      // stop after this much sampling time ("time_cap")
  double memory_fraction = 0.4; // rotating input sets fill at most this share of free memory
  int max_sets = 32;            // at most this many rotating sets
  int judged_sets = 2;          // timed outputs of this many sets are judged after timing
};

struct EvalOptions {
  std::string protocol = "kbench"; // "kbench" or "kernelbench" (docs/evaluation.md)
  int gpu = 0;                     // becomes CUDA_VISIBLE_DEVICES of the workers
  std::string worker_path;         // empty: see default_worker_path()
  CompileOptions compile;
  bool screen = true;            // symbol screening; off only to exercise runtime defences
  int seeds = 5;                 // seeds per distribution (kbench protocol)
  double timeout_s = 180.0;      // watchdog on one candidate process
  double start_timeout_s = 60.0; // watchdog on a worker's start-up (CUDA initialisation)
  TimingOptions timing;
  double speedup_threshold = 10.0; // flag speedup_threshold above this
  double relative_k = 8.0;         // ill-conditioned checks: cand err <= k * baseline err + atol
  GpuCeilings ceilings;            // for roofline %; datasheet values when not measured
  uint64_t secret = 0;             // mixed into every seed; 0: drawn from the OS per Evaluator
  std::size_t output_limit_bytes = 64 * 1024;  // worker stdout/stderr kept per stream
  uint64_t cpu_limit_s = 600;                  // RLIMIT_CPU of a candidate worker
  uint64_t file_size_limit_bytes = 1ull << 30; // RLIMIT_FSIZE of a candidate worker
};

// The kbench-worker executable: $KB_WORKER, else kbench-worker beside the running executable,
// else as built (build/bin). Throws kb::Error when none exists.
std::string default_worker_path();

// Evaluates candidates on one GPU. Keeps one reference process alive across evaluations (it
// caches baseline timings per problem). Not thread-safe: use one Evaluator per GPU.
class Evaluator {
public:
  explicit Evaluator(EvalOptions opts);
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Source to verdict: compile, screen, run, judge, time. A failing candidate is an outcome;
  // throws kb::Error only when the harness cannot run (no worker binary, no GPU, the reference
  // process failing).
  EvalResult evaluate(const Problem& problem, std::string_view source);
  // As evaluate() for an object compiled already (compile.ok must hold); fills compile fields
  // from `compile`.
  EvalResult evaluate_compiled(const Problem& problem, const CompileResult& compile);

  const EvalOptions& options() const { return m_opts; }

  struct Impl;

private:
  EvalOptions m_opts;
  std::unique_ptr<Impl> m_impl;
};

// ---------------------------------------------------------------------------------------------
// Doctor and calibration (through a worker)
// ---------------------------------------------------------------------------------------------

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  uint64_t memory_bytes = 0;
  uint64_t l2_bytes = 0;
  int sm_clock_mhz = 0;
  int memory_clock_mhz = 0;
  int memory_bus_bits = 0;
  std::string arch() const; // "sm_90a" for 9.0, "sm_80" otherwise
};

struct DoctorReport {
  bool worker_ran = false;
  std::string error; // why the worker could not report (no GPU, no driver, ...)
  std::vector<GpuInfo> gpus;
  int driver_version = 0; // cudaDriverGetVersion (12080 = 12.8)
  int runtime_version = 0;
  int cublas_version = 0;
  int cudnn_version = 0;
  std::string nvcc_release; // empty when nvcc is missing
  std::string nvcc_error;
  std::vector<std::string> missing; // what kbench cannot find
};

// Runs `kbench-worker doctor`; never throws for a missing GPU (error says why).
DoctorReport run_doctor(const std::string& worker_path, double timeout_s = 60.0);
// Runs `kbench-worker calibrate` on one GPU: copy bandwidth and cuBLAS GEMM rates.
// Throws kb::Error when the worker fails.
GpuCeilings run_calibrate(const std::string& worker_path, int gpu, double timeout_s = 300.0);

void to_json(nlohmann::json& j, const GpuInfo& g);
void to_json(nlohmann::json& j, const DoctorReport& d);

// ---------------------------------------------------------------------------------------------
// Statistics (pure)
// ---------------------------------------------------------------------------------------------

double median_of(std::vector<double> v);
// Distribution-free standard error of the median from the order statistics that bound its 95%
// confidence interval: (x[u] - x[l]) / (2 * 1.96), l,u = n/2 -/+ 0.98 sqrt(n). 0 for n < 3.
double median_stderr(const std::vector<double>& v);
// True when sampling may stop: enough samples and stderr(median)/median <= target.
bool timing_converged(const std::vector<double>& samples_ms, double target_rse, int min_samples);
// Summary of a series (event times) with the host-clock series beside it.
TimingStats summarize_timing(const std::vector<double>& samples_ms,
                             const std::vector<double>& host_ms, std::string stop_reason);

// ---------------------------------------------------------------------------------------------
// Tolerance rules (pure; the reference process computes the same statistics on the GPU)
// ---------------------------------------------------------------------------------------------

// Element-wise comparison of an output against the float64 reference.
struct ErrorStats {
  int64_t numel = 0;
  int64_t mismatch_count = 0; // |c - r| > atol + rtol*|r| (NaN/Inf handled by parity)
  int64_t first_bad_index = -1;
  double max_abs_err = 0.0; // over elements where both are finite
  double max_rel_err = 0.0; // |c - r| / |r| over finite, non-zero r
  double sum_sq_err = 0.0;  // over elements where both are finite
  int64_t finite_count = 0;
  int64_t nan_count = 0;                 // candidate NaN where the reference is not
  int64_t inf_count = 0;                 // candidate Inf where the reference is not that Inf
  int64_t missed_special = 0;            // reference NaN/Inf where the candidate is finite
  double cand_min = 0.0, cand_max = 0.0; // finite range of the candidate
  double ref_min = 0.0, ref_max = 0.0;   // finite range of the reference
  double rms_err() const;
};

// Computes ErrorStats on the host (tests, small outputs).
ErrorStats compare_host(const std::vector<double>& cand, const std::vector<double>& ref,
                        double atol, double rtol);

// Decision for one output of one check. `baseline` is the fp32 baseline's own error against the
// same reference; used only when `relative` (ill-conditioned inputs): then the candidate passes
// when rms <= k*rms_base + atol and max_abs <= k*max_abs_base + atol even if elements exceed the
// fixed tolerance. Returns "" for a pass, else the MismatchInfo reason ("values", "nan_parity",
// "constant_output", "values_vs_baseline").
std::string judge_output(const ErrorStats& cand, const ErrorStats* baseline, bool relative,
                         double k, double atol);

} // namespace kb
