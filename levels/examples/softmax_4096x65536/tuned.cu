// Tuned softmax over dim 1 of a 2-D FP32 tensor: one 512-thread block per row; one read pass keeps
// an online (running max, rescaled sum) pair per thread over float4 chunks, the pairs are merged by
// warp shuffles and shared memory, then a second pass writes exp(x - max) / sum with float4
// streaming stores. Rows whose length is not a multiple of 4, or unaligned pointers, use the same
// algorithm with scalar accesses.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_threads = 512;
constexpr int k_unroll = 4;

struct MaxSum {
  float m;
  float s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY)
    return {m, a.s + b.s};
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ MaxSum block_merge(MaxSum v) {
  __shared__ MaxSum partial[k_threads / 32];
  __shared__ MaxSum total;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    MaxSum o;
    o.m = __shfl_xor_sync(0xffffffffu, v.m, off);
    o.s = __shfl_xor_sync(0xffffffffu, v.s, off);
    v = merge(v, o);
  }
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0)
    partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = (threadIdx.x < k_threads / 32) ? partial[threadIdx.x] : MaxSum{-INFINITY, 0.f};
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      MaxSum o;
      o.m = __shfl_xor_sync(0xffffffffu, v.m, off);
      o.s = __shfl_xor_sync(0xffffffffu, v.s, off);
      v = merge(v, o);
    }
    if (threadIdx.x == 0)
      total = v;
  }
  __syncthreads();
  return total;
}

// Folds a group of values into the running pair: one rescale per group, not per element.
__device__ __forceinline__ void fold(MaxSum& st, const float* v, int count) {
  float cm = -INFINITY;
  for (int i = 0; i < count; ++i)
    cm = fmaxf(cm, v[i]);
  if (cm == -INFINITY)
    return;
  if (cm > st.m) {
    st.s *= expf(st.m - cm);
    st.m = cm;
  }
  for (int i = 0; i < count; ++i)
    st.s += expf(v[i] - st.m);
}

__global__ __launch_bounds__(k_threads) void softmax_vec4(const float* __restrict__ x,
                                                          float* __restrict__ y, int64_t cols) {
  const int64_t n4 = cols / 4;
  const float4* xr = reinterpret_cast<const float4*>(x + (int64_t)blockIdx.x * cols);
  float4* yr = reinterpret_cast<float4*>(y + (int64_t)blockIdx.x * cols);
  MaxSum st{-INFINITY, 0.f};
  for (int64_t base = threadIdx.x; base < n4; base += (int64_t)k_threads * k_unroll) {
    float v[4 * k_unroll];
#pragma unroll
    for (int u = 0; u < k_unroll; ++u) {
      const int64_t i = base + (int64_t)u * k_threads;
      const float4 q =
          i < n4 ? __ldg(xr + i) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      v[4 * u + 0] = q.x;
      v[4 * u + 1] = q.y;
      v[4 * u + 2] = q.z;
      v[4 * u + 3] = q.w;
    }
    fold(st, v, 4 * k_unroll);
  }
  const MaxSum row = block_merge(st);
  const float m = row.m;
  const float inv = 1.f / row.s;
  for (int64_t base = threadIdx.x; base < n4; base += (int64_t)k_threads * k_unroll) {
#pragma unroll
    for (int u = 0; u < k_unroll; ++u) {
      const int64_t i = base + (int64_t)u * k_threads;
      if (i < n4) {
        const float4 q = __ldcs(xr + i);
        __stcs(yr + i, make_float4(expf(q.x - m) * inv, expf(q.y - m) * inv, expf(q.z - m) * inv,
                                   expf(q.w - m) * inv));
      }
    }
  }
}

__global__ __launch_bounds__(k_threads) void softmax_scalar(const float* __restrict__ x,
                                                            float* __restrict__ y, int64_t cols) {
  const float* xr = x + (int64_t)blockIdx.x * cols;
  float* yr = y + (int64_t)blockIdx.x * cols;
  MaxSum st{-INFINITY, 0.f};
  for (int64_t base = threadIdx.x; base < cols; base += (int64_t)k_threads * 4) {
    float v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t i = base + (int64_t)u * k_threads;
      v[u] = i < cols ? xr[i] : -INFINITY;
    }
    fold(st, v, 4);
  }
  const MaxSum row = block_merge(st);
  const float inv = 1.f / row.s;
  for (int64_t i = threadIdx.x; i < cols; i += k_threads)
    yr[i] = expf(xr[i] - row.m) * inv;
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

} // namespace

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  (void)workspace;
  if (n_in != 1 || n_out != 1)
    return 1;
  const kb_tensor& x = in[0];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || y.dtype != KB_F32 || x.ndim != 2 || y.ndim != 2 ||
      y.shape[0] != x.shape[0] || y.shape[1] != x.shape[1])
    return 1;
  const int64_t rows = x.shape[0], cols = x.shape[1];
  if (rows <= 0 || cols <= 0 || rows > 0x7fffffff)
    return 1;
  const float* px = static_cast<const float*>(x.data);
  float* py = static_cast<float*>(y.data);
  if (cols % 4 == 0 && aligned16(px) && aligned16(py))
    softmax_vec4<<<(unsigned)rows, k_threads, 0, stream>>>(px, py, cols);
  else
    softmax_scalar<<<(unsigned)rows, k_threads, 0, stream>>>(px, py, cols);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
