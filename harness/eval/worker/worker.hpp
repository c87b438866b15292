// Internal to kbench-worker: the result channel, device tensors of a problem, the timing loop
// shared by candidate and baseline, and the on-device comparison against the float64 reference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <nlohmann/json.hpp>

#include "core.hpp"
#include "eval.hpp"
#include "gpu_ops.hpp"

namespace kb::worker {

// Writes one JSON line to the result channel (fd 3, or stdout when fd 3 is not open).
void emit(const nlohmann::json& j);
// Reads one JSON line from stdin; false at end of file. Throws kb::Error on malformed JSON.
bool read_message(nlohmann::json& j);

// A CUDA error raised by (or after) candidate code, with the error's name.
struct CudaFailure : Error {
  CudaFailure(std::string name_, const std::string& what) : Error(what), name(std::move(name_)) {}
  std::string name;
};
// Throws CudaFailure when `e` is not cudaSuccess.
void check_candidate_cuda(cudaError_t e, const char* where);

// Device tensors of one role (inputs+params, or outputs), owned together.
struct TensorSet {
  std::vector<gpu::DeviceBuffer> buffers;
  std::vector<gpu::DeviceTensor> tensors;
  std::size_t bytes() const;
};
// The problem's inputs then params, in ABI order, in their declared dtypes.
TensorSet alloc_inputs(const Problem& p);
// The problem's outputs in declared dtypes, or all f64 when `f64`.
TensorSet alloc_outputs(const Problem& p, bool f64);
std::size_t input_bytes(const Problem& p);
std::size_t output_bytes(const Problem& p);
// Draws every tensor: tensor j from dists[j] with (seed, stream id j).
void fill_inputs(const TensorSet& s, const std::vector<Distribution>& dists, uint64_t seed,
                 cudaStream_t stream);
void poison_all(const TensorSet& s, cudaStream_t stream);
std::vector<uint64_t> checksums(const TensorSet& s, cudaStream_t stream);

// One call of the thing being timed on given inputs and outputs (on `stream`).
using CallFn = std::function<void(const std::vector<gpu::DeviceTensor>& in,
                                  const std::vector<gpu::DeviceTensor>& out, cudaStream_t stream)>;

struct TimingRun {
  TimingStats stats;
  bool off_stream = false;
  int off_stream_samples = 0;
  int sets = 0;
  // Rotating sets whose outputs (of the last call on them) should be judged, with the seed their
  // inputs were drawn from for that call.
  std::vector<std::pair<int, uint64_t>> judged;
  std::vector<TensorSet> inputs, outputs; // the rotating sets (kept for judging)
};

// The timing protocol (docs/evaluation.md). kbench: rotating sets re-drawn before every sample,
// outputs poisoned, L2 flushed, device-wide synchronisation, adaptive sample count. kernelbench:
// one fixed input set, events on the stream around the call, 3 warm-ups, 100 trials.
// `reuse_in`/`reuse_out`, when not empty, become the first rotating set (saves their memory).
// Throws CudaFailure for a CUDA error during a call.
TimingRun run_timing(const Problem& p, const std::vector<Distribution>& dists,
                     const TimingOptions& opts, const std::string& protocol, uint64_t seed_base,
                     cudaStream_t stream, const CallFn& call, TensorSet reuse_in = {},
                     TensorSet reuse_out = {});

// Compares `cand` (any dtype) with the float64 reference `ref` element-wise on the device.
ErrorStats compare_device(const gpu::DeviceTensor& cand, const gpu::DeviceTensor& ref, double atol,
                          double rtol, cudaStream_t stream);

// kb_dtype code of a dtype (the ABI uses the same numbering as kb::DType).
int32_t abi_dtype(DType t);

// Worker modes.
int run_candidate();
int run_reference();
int run_doctor();
int run_calibrate();

} // namespace kb::worker
