// Device-side helpers of the op library's own kernels: dtype traits (fp32 accumulation for
// f16/bf16, f64 for f64), math overloads, fast integer division and block reductions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu_internal.hpp"

namespace kb::gpu {

// Accumulation type: float for f32/f16/bf16, double for f64.
template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using Acc = typename AccOf<T>::type;

template <class T> __device__ __forceinline__ Acc<T> to_acc(T v) {
  return static_cast<Acc<T>>(v);
}
template <> __device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}
template <> __device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <class T, class A> __device__ __forceinline__ T from_acc(A v) {
  return static_cast<T>(v);
}
template <> __device__ __forceinline__ __half from_acc<__half, float>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16_rn(v);
}

// Math on the accumulation type.
__device__ __forceinline__ float d_exp(float x) {
  return expf(x);
}
__device__ __forceinline__ double d_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float d_expm1(float x) {
  return expm1f(x);
}
__device__ __forceinline__ double d_expm1(double x) {
  return expm1(x);
}
__device__ __forceinline__ float d_log(float x) {
  return logf(x);
}
__device__ __forceinline__ double d_log(double x) {
  return log(x);
}
__device__ __forceinline__ float d_log1p(float x) {
  return log1pf(x);
}
__device__ __forceinline__ double d_log1p(double x) {
  return log1p(x);
}
__device__ __forceinline__ float d_tanh(float x) {
  return tanhf(x);
}
__device__ __forceinline__ double d_tanh(double x) {
  return tanh(x);
}
__device__ __forceinline__ float d_erf(float x) {
  return erff(x);
}
__device__ __forceinline__ double d_erf(double x) {
  return erf(x);
}
__device__ __forceinline__ float d_sqrt(float x) {
  return sqrtf(x);
}
__device__ __forceinline__ double d_sqrt(double x) {
  return sqrt(x);
}
__device__ __forceinline__ float d_rsqrt(float x) {
  return rsqrtf(x);
}
__device__ __forceinline__ double d_rsqrt(double x) {
  return rsqrt(x);
}
__device__ __forceinline__ float d_abs(float x) {
  return fabsf(x);
}
__device__ __forceinline__ double d_abs(double x) {
  return fabs(x);
}

template <class A> __device__ __forceinline__ A neg_inf() {
  return -INFINITY;
}
template <> __device__ __forceinline__ double neg_inf<double>() {
  return -HUGE_VAL;
}
template <class A> __device__ __forceinline__ A pos_inf() {
  return INFINITY;
}
template <> __device__ __forceinline__ double pos_inf<double>() {
  return HUGE_VAL;
}

// Division by a runtime constant with a multiply-high (valid for numerators below 2^31).
struct FastDiv {
  uint32_t d = 1, m = 0, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    while ((uint64_t{1} << s) < d)
      ++s;
    m = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

// Warp and block sums (all threads of the block must call block_sum; blockDim.x % 32 == 0, at
// most 1024 threads). The result is valid in every thread.
template <class A> __device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A> __device__ __forceinline__ A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <class A> __device__ A block_sum(A v, A* shared32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads(); // shared32 may still be read by a previous call
  if (lane == 0)
    shared32[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shared32[lane] : A(0);
  return warp_sum(v);
}
template <class A> __device__ A block_max(A v, A* shared32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0)
    shared32[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = lane < warps ? shared32[lane] : neg_inf<A>();
  return warp_max(v);
}

// Welford state (count, mean, sum of squared deviations) with Chan's merge.
template <class A> struct Welford {
  A n = 0, mean = 0, m2 = 0;
  __device__ __forceinline__ void add(A x) {
    n += A(1);
    const A delta = x - mean;
    mean += delta / n;
    m2 += delta * (x - mean);
  }
  __device__ __forceinline__ void merge(A bn, A bmean, A bm2) {
    if (bn == A(0))
      return;
    if (n == A(0)) {
      n = bn, mean = bmean, m2 = bm2;
      return;
    }
    const A total = n + bn;
    const A delta = bmean - mean;
    mean += delta * (bn / total);
    m2 += bm2 + delta * delta * (n * bn / total);
    n = total;
  }
};
template <class A> __device__ void block_welford(Welford<A>& w, A* shared96) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const A bn = __shfl_xor_sync(0xffffffffu, w.n, o);
    const A bm = __shfl_xor_sync(0xffffffffu, w.mean, o);
    const A b2 = __shfl_xor_sync(0xffffffffu, w.m2, o);
    w.merge(bn, bm, b2);
  }
  __syncthreads();
  if (lane == 0) {
    shared96[warp] = w.n;
    shared96[32 + warp] = w.mean;
    shared96[64 + warp] = w.m2;
  }
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  Welford<A> r;
  if (lane < warps)
    r = Welford<A>{shared96[lane], shared96[32 + lane], shared96[64 + lane]};
  for (int o = 16; o > 0; o >>= 1) {
    const A bn = __shfl_xor_sync(0xffffffffu, r.n, o);
    const A bm = __shfl_xor_sync(0xffffffffu, r.mean, o);
    const A b2 = __shfl_xor_sync(0xffffffffu, r.m2, o);
    r.merge(bn, bm, b2);
  }
  w = r;
}

// Dispatch on a floating dtype: defines `T` in the body.
#define KB_DISPATCH_FLOAT(dtype, node, ...)                                                        \
  switch (dtype) {                                                                                 \
  case ::kb::DType::f32: {                                                                         \
    using T = float;                                                                               \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case ::kb::DType::f16: {                                                                         \
    using T = __half;                                                                              \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case ::kb::DType::bf16: {                                                                        \
    using T = __nv_bfloat16;                                                                       \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  case ::kb::DType::f64: {                                                                         \
    using T = double;                                                                              \
    __VA_ARGS__;                                                                                   \
    break;                                                                                         \
  }                                                                                                \
  default:                                                                                         \
    ::kb::gpu::op_fail(node, "unsupported dtype " + std::string(::kb::dtype_name(dtype)));         \
  }

} // namespace kb::gpu
