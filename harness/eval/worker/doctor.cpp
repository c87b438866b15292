// Doctor and calibrate modes: what GPUs and libraries this machine has, and the measured copy
// bandwidth and GEMM rates used for roofline figures.
#include <algorithm>
#include <vector>

#include <cublas_api.h>
#include <cudnn.h>

#include <fmt/format.h>

#include "worker.hpp"

namespace kb::worker {

int run_doctor() {
  nlohmann::json j;
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  j["runtime_version"] = runtime;
  j["driver_version"] = driver;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    j["cublas_version"] = major * 10000 + minor * 100 + patch;
  j["cudnn_version"] = static_cast<int>(cudnnGetVersion());
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    j["ok"] = false;
    j["error"] = e != cudaSuccess ? fmt::format("no usable CUDA device: {}: {}",
                                                cudaGetErrorName(e), cudaGetErrorString(e))
                                  : std::string("no CUDA device");
    emit(j);
    return 1;
  }
  nlohmann::json gpus = nlohmann::json::array();
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp p{};
    KB_CUDA_CHECK(cudaGetDeviceProperties(&p, d));
    int sm_clock = 0, mem_clock = 0, bus = 0;
    cudaDeviceGetAttribute(&sm_clock, cudaDevAttrClockRate, d);
    cudaDeviceGetAttribute(&mem_clock, cudaDevAttrMemoryClockRate, d);
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, d);
    gpus.push_back({{"index", d},
                    {"name", p.name},
                    {"cc_major", p.major},
                    {"cc_minor", p.minor},
                    {"sm_count", p.multiProcessorCount},
                    {"memory_bytes", static_cast<uint64_t>(p.totalGlobalMem)},
                    {"l2_bytes", static_cast<uint64_t>(p.l2CacheSize)},
                    {"sm_clock_mhz", sm_clock / 1000},
                    {"memory_clock_mhz", mem_clock / 1000},
                    {"memory_bus_bits", bus}});
  }
  j["ok"] = true;
  j["gpus"] = gpus;
  emit(j);
  return 0;
}

namespace {

// Median time of `reps` runs of `fn` on `stream`, in ms, after one warm-up.
template <class Fn> double median_ms(cudaStream_t stream, int reps, Fn fn) {
  cudaEvent_t a, b;
  KB_CUDA_CHECK(cudaEventCreate(&a));
  KB_CUDA_CHECK(cudaEventCreate(&b));
  fn();
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    KB_CUDA_CHECK(cudaEventRecord(a, stream));
    fn();
    KB_CUDA_CHECK(cudaEventRecord(b, stream));
    KB_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.f;
    KB_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median_of(t);
}

// GEMM rate through the op library's matmul (cuBLAS underneath) in TFLOP/s.
double gemm_tflops(cudaStream_t stream, DType dtype, bool tf32, int64_t n) {
  gpu::Context ctx(stream, tf32);
  std::vector<gpu::DeviceBuffer> bufs;
  std::vector<gpu::DeviceTensor> ts;
  for (int i = 0; i < 3; ++i) {
    gpu::DeviceTensor t;
    t.dtype = dtype;
    t.shape = {n, n};
    bufs.emplace_back(t.bytes());
    t.data = bufs.back().get();
    ts.push_back(t);
  }
  gpu::fill(ts[0], {DistKind::uniform, -1.0, 1.0}, 1, 0, stream);
  gpu::fill(ts[1], {DistKind::uniform, -1.0, 1.0}, 1, 1, stream);
  OpNode node;
  node.op = "matmul";
  node.inputs = {"a", "b"};
  node.output = "c";
  const std::vector<gpu::DeviceTensor> in = {ts[0], ts[1]};
  const double ms = median_ms(stream, 10, [&] { gpu::run_op(ctx, node, in, ts[2]); });
  return 2.0 * static_cast<double>(n) * n * n / (ms * 1e-3) / 1e12;
}

} // namespace

int run_calibrate() {
  cudaStream_t stream = nullptr;
  KB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaDeviceProp p{};
  KB_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  GpuCeilings c;
  c.gpu_name = p.name;
  {
    const std::size_t bytes = std::size_t{1} << 30;
    gpu::DeviceBuffer src(bytes), dst(bytes);
    KB_CUDA_CHECK(cudaMemsetAsync(src.get(), 1, bytes, stream));
    const double ms = median_ms(stream, 20, [&] {
      KB_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
    });
    c.bandwidth_gbs = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9; // read + write
  }
  c.fp32_tflops = gemm_tflops(stream, DType::f32, false, 4096);
  c.tf32_tflops = gemm_tflops(stream, DType::f32, true, 8192);
  c.fp16_tflops = gemm_tflops(stream, DType::f16, false, 8192);
  c.bf16_tflops = gemm_tflops(stream, DType::bf16, false, 8192);
  c.measured = true;
  emit({{"ok", true}, {"ceilings", c}});
  return 0;
}

} // namespace kb::worker
