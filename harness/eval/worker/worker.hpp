// Internal to kbench-worker: the command channel, device tensors of a problem (with guard zones),
// the sample timer shared by candidate and baseline, and the on-device comparison against the
// float64 reference.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <nlohmann/json.hpp>

#include "core.hpp"
#include "cuda_error.hpp"
#include "gpu_ops.hpp"
#include "protocol.hpp"

namespace kb::worker {

// ---------------------------------------------------------------------------------------------
// Channel
// ---------------------------------------------------------------------------------------------

// Writes one raw JSON line to the result channel (doctor and calibrate modes).
void emit(const nlohmann::json& j);

// The protocol channel of the candidate and reference modes: commands on stdin, replies on the
// result descriptor (named by $KB_RESULT_FD, which is read once and removed from the
// environment). Each reply carries the command's sequence number and the session token.
class Channel {
public:
  Channel();
  // Reads the next command; false at end of input. Throws kb::Error on a malformed line.
  bool next(eval::Envelope& cmd);
  // Sets the token every reply carries (from the first command).
  void set_token(std::string token) { m_token = std::move(token); }
  template <class T> void reply(const T& msg) { write(eval::encode(msg, m_seq, m_token)); }
  uint64_t seq() const { return m_seq; }

private:
  void write(const std::string& line);
  uint64_t m_seq = 0;
  std::string m_token;
};

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

// Failure of the candidate itself (not of the harness): reported with an outcome.
struct CandidateFailure : Error {
  CandidateFailure(Outcome o, const std::string& what, std::string cuda = {})
      : Error(what), outcome(o), cuda_error(std::move(cuda)) {}
  Outcome outcome;
  std::string cuda_error;
};

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

// Bytes of the guard zone before and after every guarded buffer (keeps 256-byte alignment).
constexpr std::size_t k_guard_bytes = 64 * 1024;
// The byte the guard zones hold.
constexpr unsigned char k_guard_byte = 0xA7;

// Device memory with optional guard zones around the usable part.
class GuardedBuffer {
public:
  GuardedBuffer() = default;
  GuardedBuffer(std::size_t bytes, bool guarded);
  void* get() const;
  std::size_t size() const { return m_bytes; }
  // The two guard zones (before, after); null when unguarded.
  const void* zone_before() const;
  const void* zone_after() const;
  bool guarded() const { return m_guarded; }
  // Writes the guard pattern (stream-ordered).
  void arm(cudaStream_t stream) const;
  // Queues a check of both zones; a changed byte sets *flag to 1 (device memory).
  void check(int* flag, cudaStream_t stream) const;

private:
  gpu::DeviceBuffer m_buf;
  std::size_t m_bytes = 0;
  bool m_guarded = false;
};

// Device tensors of one role (inputs+params, or outputs), owned together.
struct TensorSet {
  std::vector<GuardedBuffer> buffers;
  std::vector<gpu::DeviceTensor> tensors;
  std::size_t bytes() const;
};
// The problem's inputs then params, in ABI order, in their declared dtypes.
TensorSet alloc_inputs(const Problem& p, bool guarded = false);
// The problem's outputs in declared dtypes, or all f64 when `f64`.
TensorSet alloc_outputs(const Problem& p, bool f64, bool guarded = false);
std::size_t input_bytes(const Problem& p);
std::size_t output_bytes(const Problem& p);
// Draws every tensor: tensor j from dists[j] with (seed, stream id j).
void fill_inputs(const TensorSet& s, const std::vector<Distribution>& dists, uint64_t seed,
                 cudaStream_t stream);
void poison_all(const TensorSet& s, cudaStream_t stream);
std::vector<uint64_t> checksums(const TensorSet& s, cudaStream_t stream);
void copy_set(const TensorSet& from, const TensorSet& to, cudaStream_t stream);

// Checks guard zones of buffers into one device flag.
class GuardWatch {
public:
  GuardWatch();
  // The zones of a set, uploaded once, checked with one launch per watch_zones call.
  struct Zones {
    gpu::DeviceBuffer addresses;
    int count = 0;
  };
  static Zones zones_of(const std::vector<const TensorSet*>& sets);
  void watch(const Zones& z, cudaStream_t stream) const;
  void watch(const GuardedBuffer& b, cudaStream_t stream) const {
    b.check(static_cast<int*>(m_flag.get()), stream);
  }
  void watch(const TensorSet& s, cudaStream_t stream) const;
  // Synchronises the stream, returns whether every zone was intact since the last read, and
  // resets the flag.
  bool intact(cudaStream_t stream);

private:
  gpu::DeviceBuffer m_flag;
};

// The candidate's workspace: garbage before every call (a byte pattern that changes per call).
class Workspace {
public:
  explicit Workspace(std::size_t bytes);
  void* ptr() const { return m_bytes > 0 ? m_buf.get() : nullptr; }
  std::size_t bytes() const { return m_bytes; }
  void scramble(cudaStream_t stream);
  const GuardedBuffer& buffer() const { return m_buf; }

private:
  GuardedBuffer m_buf;
  std::size_t m_bytes = 0;
  unsigned m_calls = 0;
};

// One call of the thing being timed on given inputs and outputs (on `stream`).
using CallFn = std::function<void(const std::vector<gpu::DeviceTensor>& in,
                                  const std::vector<gpu::DeviceTensor>& out, cudaStream_t stream)>;

// ---------------------------------------------------------------------------------------------
// The sample timer (docs/evaluation.md, "Timing"): one code path for candidate and baseline
// ---------------------------------------------------------------------------------------------

struct TimerHooks {
  // Called before every call (re-poisons the candidate's workspace); may be empty.
  std::function<void(cudaStream_t)> before_call;
  // Queues checks of further guard zones (the workspace) after every call; may be empty.
  std::function<void(GuardWatch&, cudaStream_t)> after_call;
};

class SampleTimer {
public:
  // Allocates the rotating sets and the kept slots, warms up and times the empty calls.
  // `reuse_in`/`reuse_out`, when not empty, become the first rotating set.
  SampleTimer(const Problem& p, const eval::TimePrepare& prep, cudaStream_t stream, CallFn call,
              TimerHooks hooks, TensorSet reuse_in = {}, TensorSet reuse_out = {});
  const eval::TimeReady& ready() const { return m_ready; }
  // Runs `n` samples; throws CandidateFailure (via the call) or gpu::CudaError.
  eval::RoundDone round(int n);
  // The kept outputs of one slot and the sample they came from.
  struct Kept {
    int64_t sample = -1;
    std::vector<uint64_t> input_checksums;
    TensorSet outputs;
  };
  const Kept& kept(int slot) const;
  int64_t samples_taken() const { return m_next_sample; }

private:
  const Problem& m_problem;
  eval::TimePrepare m_prep;
  bool m_kernelbench = false;
  cudaStream_t m_stream;
  CallFn m_call;
  TimerHooks m_hooks;
  std::vector<Distribution> m_dists;
  std::vector<TensorSet> m_in, m_out;
  std::vector<GuardWatch::Zones> m_zones; // per rotating set: its inputs' and outputs' zones
  std::vector<Kept> m_kept;
  gpu::DeviceBuffer m_flush;
  GuardWatch m_guards;
  cudaEvent_t m_start = nullptr, m_stop = nullptr, m_stop_wide = nullptr;
  // Launch hold (TimingOptions::hold_launch): the stream is held until the call has been
  // enqueued, so the events time the GPU's work and not the host's launch path.
  bool m_hold = false;
  cudaEvent_t m_held = nullptr;
  volatile int* m_flags = nullptr; // [0] release, [1] timed out: mapped host memory
  volatile int* m_flags_dev = nullptr;
  TensorSet m_discard; // where a sample's outputs go when no slot keeps them
  eval::TimeReady m_ready;
  int64_t m_next_sample = 0;
  std::mt19937_64 m_keep_rng;

  struct Sample {
    double stream_ms = 0.0, wide_ms = 0.0, host_ms = 0.0;
  };
  Sample one(int set, bool empty, const char* what);
  // Queues the launch hold (nothing unless m_hold) / lets it go and waits for the device: true
  // when the hold had timed out before the release.
  void hold();
  bool release();
  void keep(int set, int64_t sample);

public:
  ~SampleTimer();
  SampleTimer(const SampleTimer&) = delete;
  SampleTimer& operator=(const SampleTimer&) = delete;
};

// ---------------------------------------------------------------------------------------------
// Comparison and modes
// ---------------------------------------------------------------------------------------------

// Compares `cand` (any dtype) with the float64 reference `ref` element-wise on the device.
ErrorStats compare_device(const gpu::DeviceTensor& cand, const gpu::DeviceTensor& ref, double atol,
                          double rtol, cudaStream_t stream);
// Queues a check of `bytes` bytes at `p` against `pattern`; a difference sets *flag to 1.
void check_guard_zone(const void* p, std::size_t bytes, unsigned char pattern, int* flag,
                      cudaStream_t stream);
// Queues one check of `n` zones of k_guard_bytes each, their addresses in device memory.
void check_guard_zones(const void* const* zones, int n, unsigned char pattern, int* flag,
                       cudaStream_t stream);

// Queues a one-thread kernel that holds `stream` until the host sets *release to non-zero, or
// `timeout_s` passed (then *timed_out is set). Both flags are host memory mapped into the device.
void hold_stream(const volatile int* release, volatile int* timed_out, double timeout_s,
                 cudaStream_t stream);

// kb_dtype code of a dtype (the ABI uses the same numbering as kb::DType).
int32_t abi_dtype(DType t);

// The problem's own distributions, inputs then params (ABI order).
std::vector<Distribution> own_distributions(const Problem& p);
// The device's facts for the ready reply.
eval::DeviceInfo device_info();
// Starts CUDA; throws kb::Error("no usable CUDA GPU: ...") without naming harness sources.
void start_cuda();

// Worker modes.
int run_candidate();
int run_reference();
int run_doctor();
int run_calibrate();

} // namespace kb::worker
