// The op library's GPU side: fast references on cuBLAS/cuBLASLt, cuDNN, CUB or own kernels, a
// float64 mode of every op, and counter-based input generation. Used only by worker processes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cuda_runtime.h>

#include "core.hpp"

namespace kb::gpu {

// Throws kb::Error("file:line: expr: cudaErrorName: message") when a CUDA call fails.
#define KB_CUDA_CHECK(expr) ::kb::gpu::check_cuda((expr), #expr, __FILE__, __LINE__)
void check_cuda(cudaError_t e, const char* expr, const char* file, int line);

// A contiguous device tensor; does not own its memory.
struct DeviceTensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Shape shape;
  int64_t numel() const { return kb::numel(shape); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
};

// Owned device memory (cudaMalloc/cudaFree).
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return m_ptr; }
  std::size_t size() const { return m_bytes; }

private:
  void* m_ptr = nullptr;
  std::size_t m_bytes = 0;
};

// Library handles, workspace and plan caches for one device and stream. Not thread-safe.
class Context {
public:
  // allow_tf32: fp32 GEMMs/convolutions may use TF32 (the problem's precision contract).
  explicit Context(cudaStream_t stream, bool allow_tf32 = false);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  cudaStream_t stream() const;
  bool allow_tf32() const;
  // Lets fp32 convolutions use TF32 while GEMMs keep the contract above: PyTorch's defaults
  // (torch.backends.cudnn.allow_tf32 on, torch.backends.cuda.matmul.allow_tf32 off), which the
  // KernelBench protocols time their baseline under.
  void set_conv_tf32(bool on);
  // Pooling, softmax and layer/RMS norm through cuDNN wherever it supports the configuration,
  // instead of the own kernels the baseline uses by default (to test and time the alternative).
  void set_prefer_cudnn(bool on);
  struct Impl;
  Impl& impl();

private:
  std::unique_ptr<Impl> m_impl;
};

// Runs one op: out = op(in...). `out` is allocated by the caller with the inferred spec. Every op
// supports f64 tensors (the float64 GPU reference) besides the dtypes problems use.
void run_op(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
            const DeviceTensor& out);
// True when run_op has a GPU reference for the op of this name.
bool has_gpu_op(std::string_view op);

// Executes a problem's graph op by op ("eager"), like a framework user would. Intermediates are
// allocated once at construction, so run() does only the ops. With `as_f64` every value is
// computed in float64 (inputs given in their declared dtype are converted first).
class GraphRunner {
public:
  GraphRunner(Context& ctx, const Problem& problem, bool as_f64 = false);
  ~GraphRunner();
  // inputs: the problem's inputs then params, in declared order; outputs: in declared order,
  // allocated by the caller (f64 when as_f64).
  void run(std::span<const DeviceTensor> inputs, std::span<const DeviceTensor> outputs);
  // Per-step timing for profiling a baseline: when on, each run records CUDA events around every
  // op (and synchronises at its end); step_times() gives each op's mean time over the runs since
  // the last set_step_timing call. Aliasing steps (reshape) take no time and are left out.
  struct StepTime {
    std::string output, op;
    double mean_ms = 0.0;
  };
  void set_step_timing(bool on);
  std::vector<StepTime> step_times() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Fills `t` from `dist` with a counter-based generator (Philox): the value of element i depends
// only on (seed, stream_id, i), so any process regenerates it bit for bit.
void fill(const DeviceTensor& t, const Distribution& dist, uint64_t seed, uint64_t stream_id,
          cudaStream_t stream);
// Fills with a NaN pattern (floating types) or 0xA5 bytes (integer types).
void poison(const DeviceTensor& t, cudaStream_t stream);
// Converts between dtypes element-wise (any pair of supported dtypes).
void convert(const DeviceTensor& src, const DeviceTensor& dst, cudaStream_t stream);
// 64-bit checksum of the tensor's bytes (order-sensitive).
uint64_t checksum(const DeviceTensor& t, cudaStream_t stream);

} // namespace kb::gpu
