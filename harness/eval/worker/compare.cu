// On-device comparison of an output against the float64 reference: the same statistics as
// kb::compare_host, reduced with warp shuffles and a few atomics.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <string>

#include "worker.hpp"

namespace kb::worker {

namespace {

struct DeviceStats {
  unsigned long long mismatch, first_bad, finite, nan, inf, missed;
  unsigned long long max_abs, max_rel; // non-negative doubles as bits: integer order = value order
  unsigned long long cmin, cmax, rmin, rmax; // ordered encodings of signed doubles
  double sum_sq;
};

__device__ __forceinline__ unsigned long long order_key(double x) {
  const unsigned long long b = static_cast<unsigned long long>(__double_as_longlong(x));
  return (b >> 63) ? ~b : (b | 0x8000000000000000ull);
}
__host__ __device__ inline double from_order_key(unsigned long long k) {
  const unsigned long long b = (k >> 63) ? (k & 0x7fffffffffffffffull) : ~k;
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

template <class T> __device__ __forceinline__ double load_as_double(const T* p, long long i) {
  return static_cast<double>(p[i]);
}
template <> __device__ __forceinline__ double load_as_double(const __half* p, long long i) {
  return static_cast<double>(__half2float(p[i]));
}
template <> __device__ __forceinline__ double load_as_double(const __nv_bfloat16* p, long long i) {
  return static_cast<double>(__bfloat162float(p[i]));
}

template <class T>
__global__ void compare_kernel(const T* cand, const double* ref, long long n, double atol,
                               double rtol, DeviceStats* out) {
  unsigned long long mismatch = 0, finite = 0, nan = 0, inf = 0, missed = 0;
  unsigned long long first_bad = ~0ull;
  double max_abs = 0.0, max_rel = 0.0, sum_sq = 0.0;
  double cmin = INFINITY, cmax = -INFINITY, rmin = INFINITY, rmax = -INFINITY;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const double c = load_as_double(cand, i);
    const double r = ref[i];
    bool bad = false;
    if (isfinite(c)) {
      cmin = fmin(cmin, c);
      cmax = fmax(cmax, c);
    }
    if (isfinite(r)) {
      rmin = fmin(rmin, r);
      rmax = fmax(rmax, r);
    }
    if (isnan(c) && !isnan(r)) {
      ++nan;
      bad = true;
    } else if (isinf(c) && c != r) {
      ++inf;
      bad = true;
    } else if (!isfinite(r) && isfinite(c)) {
      ++missed;
      bad = true;
    } else if (isfinite(c) && isfinite(r)) {
      const double err = fabs(c - r);
      ++finite;
      sum_sq += err * err;
      max_abs = fmax(max_abs, err);
      if (r != 0.0)
        max_rel = fmax(max_rel, err / fabs(r));
      bad = err > atol + rtol * fabs(r);
    }
    if (bad) {
      ++mismatch;
      if (static_cast<unsigned long long>(i) < first_bad)
        first_bad = static_cast<unsigned long long>(i);
    }
  }
  for (int off = 16; off > 0; off /= 2) {
    mismatch += __shfl_down_sync(0xffffffffu, mismatch, off);
    finite += __shfl_down_sync(0xffffffffu, finite, off);
    nan += __shfl_down_sync(0xffffffffu, nan, off);
    inf += __shfl_down_sync(0xffffffffu, inf, off);
    missed += __shfl_down_sync(0xffffffffu, missed, off);
    first_bad = min(first_bad, __shfl_down_sync(0xffffffffu, first_bad, off));
    max_abs = fmax(max_abs, __shfl_down_sync(0xffffffffu, max_abs, off));
    max_rel = fmax(max_rel, __shfl_down_sync(0xffffffffu, max_rel, off));
    sum_sq += __shfl_down_sync(0xffffffffu, sum_sq, off);
    cmin = fmin(cmin, __shfl_down_sync(0xffffffffu, cmin, off));
    cmax = fmax(cmax, __shfl_down_sync(0xffffffffu, cmax, off));
    rmin = fmin(rmin, __shfl_down_sync(0xffffffffu, rmin, off));
    rmax = fmax(rmax, __shfl_down_sync(0xffffffffu, rmax, off));
  }
  if ((threadIdx.x & 31) == 0) {
    if (mismatch)
      atomicAdd(&out->mismatch, mismatch);
    if (finite)
      atomicAdd(&out->finite, finite);
    if (nan)
      atomicAdd(&out->nan, nan);
    if (inf)
      atomicAdd(&out->inf, inf);
    if (missed)
      atomicAdd(&out->missed, missed);
    atomicMin(&out->first_bad, first_bad);
    atomicMax(&out->max_abs, static_cast<unsigned long long>(__double_as_longlong(max_abs)));
    atomicMax(&out->max_rel, static_cast<unsigned long long>(__double_as_longlong(max_rel)));
    atomicAdd(&out->sum_sq, sum_sq);
    if (cmin <= cmax) {
      atomicMin(&out->cmin, order_key(cmin));
      atomicMax(&out->cmax, order_key(cmax));
    }
    if (rmin <= rmax) {
      atomicMin(&out->rmin, order_key(rmin));
      atomicMax(&out->rmax, order_key(rmax));
    }
  }
}

template <class T>
void launch(const void* cand, const double* ref, long long n, double atol, double rtol,
            DeviceStats* out, cudaStream_t stream) {
  const int threads = 256;
  const long long want = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(std::max<long long>(1, std::min<long long>(want, 4096)));
  compare_kernel<T>
      <<<blocks, threads, 0, stream>>>(static_cast<const T*>(cand), ref, n, atol, rtol, out);
}

} // namespace

ErrorStats compare_device(const gpu::DeviceTensor& cand, const gpu::DeviceTensor& ref, double atol,
                          double rtol, cudaStream_t stream) {
  if (ref.dtype != DType::f64 || cand.numel() != ref.numel())
    throw Error("compare_device: the reference must be f64 with " + std::to_string(cand.numel()) +
                " elements");
  DeviceStats init{};
  init.first_bad = ~0ull;
  init.cmin = init.rmin = ~0ull;
  init.cmax = init.rmax = 0ull;
  gpu::DeviceBuffer buf(sizeof(DeviceStats));
  auto* d = static_cast<DeviceStats*>(buf.get());
  KB_CUDA_CHECK(cudaMemcpyAsync(d, &init, sizeof init, cudaMemcpyHostToDevice, stream));
  const long long n = cand.numel();
  const auto* r = static_cast<const double*>(ref.data);
  if (n > 0) {
    switch (cand.dtype) {
    case DType::f32:
      launch<float>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::f16:
      launch<__half>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::bf16:
      launch<__nv_bfloat16>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::i32:
      launch<int32_t>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::i64:
      launch<long long>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::b8:
      launch<uint8_t>(cand.data, r, n, atol, rtol, d, stream);
      break;
    case DType::f64:
      launch<double>(cand.data, r, n, atol, rtol, d, stream);
      break;
    }
    KB_CUDA_CHECK(cudaGetLastError());
  }
  DeviceStats h{};
  KB_CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, stream));
  KB_CUDA_CHECK(cudaStreamSynchronize(stream));
  ErrorStats s;
  s.numel = n;
  s.mismatch_count = static_cast<int64_t>(h.mismatch);
  s.first_bad_index = h.first_bad == ~0ull ? -1 : static_cast<int64_t>(h.first_bad);
  s.finite_count = static_cast<int64_t>(h.finite);
  s.nan_count = static_cast<int64_t>(h.nan);
  s.inf_count = static_cast<int64_t>(h.inf);
  s.missed_special = static_cast<int64_t>(h.missed);
  std::memcpy(&s.max_abs_err, &h.max_abs, sizeof(double));
  std::memcpy(&s.max_rel_err, &h.max_rel, sizeof(double));
  s.sum_sq_err = h.sum_sq;
  const bool cand_any = h.cmin != ~0ull, ref_any = h.rmin != ~0ull;
  s.cand_min = cand_any ? from_order_key(h.cmin) : 0.0;
  s.cand_max = cand_any ? from_order_key(h.cmax) : 0.0;
  s.ref_min = ref_any ? from_order_key(h.rmin) : 0.0;
  s.ref_max = ref_any ? from_order_key(h.rmax) : 0.0;
  return s;
}

namespace {
__global__ void guard_zone_kernel(const uint32_t* p, std::size_t words, uint32_t pattern,
                                  int* flag) {
  bool bad = false;
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < words;
       i += (std::size_t)gridDim.x * blockDim.x)
    bad = bad || p[i] != pattern;
  if (bad)
    atomicExch(flag, 1);
}
__global__ void guard_zones_kernel(const void* const* zones, std::size_t words, uint32_t pattern,
                                   int* flag) {
  const auto* p = static_cast<const uint32_t*>(zones[blockIdx.y]);
  bool bad = false;
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < words;
       i += (std::size_t)gridDim.x * blockDim.x)
    bad = bad || p[i] != pattern;
  if (bad)
    atomicExch(flag, 1);
}
} // namespace

namespace {
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
// Holds its stream until the host writes *release (host memory mapped into the device), or
// until timeout_ns have passed, which it reports in *timed_out.
__global__ void hold_kernel(const volatile int* release, unsigned long long timeout_ns,
                            volatile int* timed_out) {
  const unsigned long long t0 = global_ns();
  while (*release == 0) {
    if (global_ns() - t0 > timeout_ns) {
      *timed_out = 1;
      return;
    }
    __nanosleep(256);
  }
}
} // namespace

void hold_stream(const volatile int* release, volatile int* timed_out, double timeout_s,
                 cudaStream_t stream) {
  hold_kernel<<<1, 1, 0, stream>>>(release, static_cast<unsigned long long>(timeout_s * 1e9),
                                   timed_out);
  KB_CUDA_CHECK(cudaGetLastError());
}

void check_guard_zones(const void* const* zones, int n, unsigned char pattern, int* flag,
                       cudaStream_t stream) {
  const uint32_t word = 0x01010101u * pattern;
  guard_zones_kernel<<<dim3(8, n), 256, 0, stream>>>(zones, k_guard_bytes / 4, word, flag);
  KB_CUDA_CHECK(cudaGetLastError());
}

void check_guard_zone(const void* p, std::size_t bytes, unsigned char pattern, int* flag,
                      cudaStream_t stream) {
  const uint32_t word = 0x01010101u * pattern;
  const std::size_t words = bytes / 4;
  guard_zone_kernel<<<32, 256, 0, stream>>>(static_cast<const uint32_t*>(p), words, word, flag);
  KB_CUDA_CHECK(cudaGetLastError());
}

} // namespace kb::worker
