// Candidate evaluation, parent side: compiles and screens a candidate, runs it in a fresh
// kbench-worker process under a watchdog, has a separate reference process (which never loads
// candidate code) judge its outputs, and assembles the EvalResult. Creates no CUDA context.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compile.hpp"
#include "core.hpp"
#include "process.hpp"
#include "protocol.hpp"

namespace kb {

// ---------------------------------------------------------------------------------------------
// Options and the evaluator
// ---------------------------------------------------------------------------------------------

struct EvalOptions {
  Protocol protocol = Protocol::kbench; // docs/evaluation.md
  int gpu = 0;                          // this process's numbering: worker_visible_device
  std::string worker_path;              // empty: see default_worker_path()
  CompileOptions compile;
  bool screen = true; // symbol screening; off only to exercise runtime defences
  int seeds = 5;      // seeds per distribution (kbench protocol)
  // Watchdog on the candidate process: each command it is given must be answered within
  // timeout_floor_s + timeout_factor x (the baseline's time for the calls that command makes),
  // capped at timeout_s; so a hang costs seconds on a fast problem (docs/evaluation.md).
  double timeout_s = 180.0;      // ceiling of one command's deadline
  double timeout_floor_s = 5.0;  // floor of one command's deadline
  double timeout_factor = 500.0; // slowdown against the baseline tolerated before "hung"
  double start_timeout_s = 60.0; // watchdog on a worker's start-up (CUDA initialisation)
  TimingOptions timing;
  double speedup_threshold = 10.0; // flag speedup_threshold above this
  double relative_k = 8.0;         // ill-conditioned checks: cand err <= k * baseline err + atol
  GpuCeilings ceilings;            // for roofline %; datasheet values when not measured
  uint64_t secret = 0;             // mixed into every seed; 0: drawn from the OS per Evaluator
  std::size_t output_limit_bytes = 64 * 1024;  // worker stdout/stderr kept per stream
  uint64_t cpu_limit_s = 600;                  // RLIMIT_CPU of a candidate worker
  uint64_t file_size_limit_bytes = 1ull << 30; // RLIMIT_FSIZE of a candidate worker
  bool gpu_probe = true;                       // evaluate(): gpu_driver_present() before compiling
};

// True when this machine shows an NVIDIA GPU driver (its control device, /dev/nvidiactl, or
// WSL's /dev/dxg under `dev_dir`): a cheap check that needs no CUDA context, made before a
// candidate is compiled so "no GPU" is said first.
bool gpu_driver_present(const std::string& dev_dir = "/dev");

// The kbench-worker executable: $KB_WORKER, else kbench-worker beside the running executable,
// else as built (build/bin). Throws kb::Error when none exists.
std::string default_worker_path();

// The CUDA_VISIBLE_DEVICES a worker gets to see GPU `gpu` as this process numbers it: entry `gpu`
// of this process's CUDA_VISIBLE_DEVICES when that is set (Slurm, containers: with "2,3", GPU 0
// is the machine's GPU 2; UUIDs pass as they are), else the index itself. Throws kb::Error
// naming the variable when `gpu` is not one of the devices it lists.
std::string worker_visible_device(int gpu);

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
  // process failing). With EvalOptions::compile.arch empty the candidate compiles for the GPU's
  // architecture, as the reference process reports it (nvcc starts on default_arch() while the
  // reference starts CUDA, and compiles again only for a GPU of another architecture).
  EvalResult evaluate(const Problem& problem, std::string_view source);
  // As evaluate() for an object compiled already (compile.ok must hold); fills compile fields
  // from `compile`.
  EvalResult evaluate_compiled(const Problem& problem, const CompileResult& compile);

  const EvalOptions& options() const { return m_opts; }
  // The ceilings roofline figures use: EvalOptions::ceilings, or once the GPU is known (after
  // the first evaluation) the datasheet figures of its name (catalog.hpp).
  const GpuCeilings& ceilings() const;

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
  std::string arch() const; // gpu_arch(cc_major, cc_minor)
};

// The nvcc architecture of a GPU of compute capability major.minor: "sm_90a" for 9.0 (Hopper's
// arch-specific instructions), "sm_<major><minor>" otherwise; "" when major is 0 (not known).
std::string gpu_arch(int cc_major, int cc_minor);

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

} // namespace kb
