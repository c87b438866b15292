// Tuned layer_norm for few, very long rows: each row is split into 16384-element chunks, one
// 256-thread block per (chunk, row). Pass 1 keeps the chunk in registers (float4 loads), shifts it
// by the row's first element (exact in FP32 for data clustered around a large mean), and writes the
// chunk's count, mean and sum of squared deviations (two-pass within registers) to the workspace.
// Pass 2 merges the row's chunk statistics with Chan's parallel formula in FP64 and normalises its
// chunk: y = (x - shift - mean) * rstd * w + b, the affine step in FP64. No E[x^2] - E[x]^2. Scalar
// accesses are used when the row length is not a multiple of 4 or a pointer is unaligned.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_threads = 256;
constexpr int k_items = 16; // float4 per thread per chunk
constexpr int64_t k_chunk = (int64_t)k_threads * k_items * 4;
constexpr double k_eps = 1e-5;

template <bool Vec>
__device__ __forceinline__ float4 load4(const float* p, int64_t j, int64_t end) {
  if (Vec)
    return j < end ? __ldg(reinterpret_cast<const float4*>(p + j))
                   : make_float4(0.f, 0.f, 0.f, 0.f);
  float4 r;
  r.x = j + 0 < end ? p[j + 0] : 0.f;
  r.y = j + 1 < end ? p[j + 1] : 0.f;
  r.z = j + 2 < end ? p[j + 2] : 0.f;
  r.w = j + 3 < end ? p[j + 3] : 0.f;
  return r;
}

__device__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0)
    scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = 0.f;
#pragma unroll
  for (int w = 0; w < k_threads / 32; ++w)
    t += scratch[w];
  __syncthreads();
  return t;
}

struct Stats {
  double n, mean, m2;
};

__device__ __forceinline__ Stats chan(Stats a, Stats b) {
  const double n = a.n + b.n;
  if (n == 0.0)
    return a;
  const double delta = b.mean - a.mean;
  const double fb = b.n / n;
  return {n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * a.n * fb};
}

// Pass 1: per-chunk (mean, M2) of d = x - shift, into ws[row * chunks + chunk].
template <bool Vec>
__global__ __launch_bounds__(k_threads) void chunk_stats(const float* __restrict__ x,
                                                         float4* __restrict__ ws, int64_t cols,
                                                         int chunks) {
  __shared__ float scratch[k_threads / 32];
  const float* xr = x + (int64_t)blockIdx.y * cols;
  const float shift = __ldg(xr);
  const int64_t start = (int64_t)blockIdx.x * k_chunk;
  const int64_t end = min(start + k_chunk, cols);
  float d[k_items][4];
  float sum = 0.f;
#pragma unroll
  for (int it = 0; it < k_items; ++it) {
    const int64_t j = start + ((int64_t)it * k_threads + threadIdx.x) * 4;
    const float4 v = load4<Vec>(xr, j, end);
    d[it][0] = j + 0 < end ? v.x - shift : 0.f;
    d[it][1] = j + 1 < end ? v.y - shift : 0.f;
    d[it][2] = j + 2 < end ? v.z - shift : 0.f;
    d[it][3] = j + 3 < end ? v.w - shift : 0.f;
    sum += (d[it][0] + d[it][1]) + (d[it][2] + d[it][3]);
  }
  const float count = (float)(end - start);
  const float mean = block_sum(sum, scratch) / count;
  float m2 = 0.f;
#pragma unroll
  for (int it = 0; it < k_items; ++it) {
    const int64_t j = start + ((int64_t)it * k_threads + threadIdx.x) * 4;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float e = j + q < end ? d[it][q] - mean : 0.f;
      m2 = fmaf(e, e, m2);
    }
  }
  m2 = block_sum(m2, scratch);
  if (threadIdx.x == 0)
    ws[(int64_t)blockIdx.y * chunks + blockIdx.x] = make_float4(count, mean, m2, 0.f);
}

// Pass 2: merge the row's chunk statistics (every block redoes this small merge, which avoids a
// separate launch), then normalise this block's chunk.
template <bool Vec>
__global__ __launch_bounds__(k_threads) void normalise(
    const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
    const float4* __restrict__ ws, float* __restrict__ y, int64_t cols, int chunks) {
  __shared__ Stats warp_stats[k_threads / 32];
  __shared__ float row_mean;
  __shared__ double row_rstd;
  const float4* part = ws + (int64_t)blockIdx.y * chunks;
  Stats st{0.0, 0.0, 0.0};
  for (int i = threadIdx.x; i < chunks; i += k_threads) {
    const float4 p = part[i];
    st = chan(st, Stats{(double)p.x, (double)p.y, (double)p.z});
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    Stats o;
    o.n = __shfl_xor_sync(0xffffffffu, st.n, off);
    o.mean = __shfl_xor_sync(0xffffffffu, st.mean, off);
    o.m2 = __shfl_xor_sync(0xffffffffu, st.m2, off);
    st = chan(st, o);
  }
  if ((threadIdx.x & 31) == 0)
    warp_stats[threadIdx.x >> 5] = st;
  __syncthreads();
  if (threadIdx.x == 0) {
    Stats t = warp_stats[0];
    for (int i = 1; i < k_threads / 32; ++i)
      t = chan(t, warp_stats[i]);
    row_mean = (float)t.mean;
    row_rstd = 1.0 / sqrt(t.m2 / (double)cols + k_eps);
  }
  __syncthreads();

  const float* xr = x + (int64_t)blockIdx.y * cols;
  float* yr = y + (int64_t)blockIdx.y * cols;
  const float shift = __ldg(xr);
  const float mean = row_mean;
  const double rstd = row_rstd;
  const int64_t start = (int64_t)blockIdx.x * k_chunk;
  const int64_t end = min(start + k_chunk, cols);
#pragma unroll 4
  for (int it = 0; it < k_items; ++it) {
    const int64_t j = start + ((int64_t)it * k_threads + threadIdx.x) * 4;
    if (j >= end)
      break;
    const float4 v = load4<Vec>(xr, j, end);
    const float4 g = load4<Vec>(w, j, end);
    const float4 h = load4<Vec>(b, j, end);
    float4 r;
    // The affine step runs in FP64 (one rounding at the end): with large weights and biases,
    // w * z + b cancels and FP32 rounding of z would show up at the 1e-4 level.
    r.x = (float)fma((double)((v.x - shift) - mean) * rstd, (double)g.x, (double)h.x);
    r.y = (float)fma((double)((v.y - shift) - mean) * rstd, (double)g.y, (double)h.y);
    r.z = (float)fma((double)((v.z - shift) - mean) * rstd, (double)g.z, (double)h.z);
    r.w = (float)fma((double)((v.w - shift) - mean) * rstd, (double)g.w, (double)h.w);
    if (Vec) {
      __stcs(reinterpret_cast<float4*>(yr + j), r);
    } else {
      yr[j] = r.x;
      if (j + 1 < end)
        yr[j + 1] = r.y;
      if (j + 2 < end)
        yr[j + 2] = r.z;
      if (j + 3 < end)
        yr[j + 3] = r.w;
    }
  }
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Validates shapes; returns rows x cols of the normalisation, or false.
bool row_shape(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out, int64_t& rows,
               int64_t& cols) {
  if (n_in != 3 || n_out != 1)
    return false;
  const kb_tensor& x = in[0];
  const kb_tensor& w = in[1];
  const kb_tensor& b = in[2];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || w.dtype != KB_F32 || b.dtype != KB_F32 || y.dtype != KB_F32)
    return false;
  if (w.ndim < 1 || w.ndim > x.ndim || b.ndim != w.ndim || y.ndim != x.ndim)
    return false;
  for (int i = 0; i < x.ndim; ++i)
    if (y.shape[i] != x.shape[i])
      return false;
  for (int i = 0; i < w.ndim; ++i)
    if (w.shape[i] != x.shape[x.ndim - w.ndim + i] || b.shape[i] != w.shape[i])
      return false;
  cols = kb_numel(&w);
  rows = cols > 0 ? kb_numel(&x) / cols : 0;
  return rows > 0 && rows <= 65535 && (cols + k_chunk - 1) / k_chunk <= 0x7fffffff;
}

} // namespace

extern "C" size_t kb_workspace_bytes(const kb_tensor* in, int n_in, const kb_tensor* out,
                                     int n_out) {
  int64_t rows = 0, cols = 0;
  if (!row_shape(in, n_in, out, n_out, rows, cols))
    return 0;
  return (size_t)(rows * ((cols + k_chunk - 1) / k_chunk)) * sizeof(float4);
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  int64_t rows = 0, cols = 0;
  if (!row_shape(in, n_in, out, n_out, rows, cols) || workspace == nullptr || !aligned16(workspace))
    return 1;
  const float* px = static_cast<const float*>(in[0].data);
  const float* pw = static_cast<const float*>(in[1].data);
  const float* pb = static_cast<const float*>(in[2].data);
  float* py = static_cast<float*>(out[0].data);
  float4* ws = static_cast<float4*>(workspace);
  const int chunks = (int)((cols + k_chunk - 1) / k_chunk);
  const dim3 grid((unsigned)chunks, (unsigned)rows);
  const bool vec =
      cols % 4 == 0 && aligned16(px) && aligned16(pw) && aligned16(pb) && aligned16(py);
  if (vec) {
    chunk_stats<true><<<grid, k_threads, 0, stream>>>(px, ws, cols, chunks);
    normalise<true><<<grid, k_threads, 0, stream>>>(px, pw, pb, ws, py, cols, chunks);
  } else {
    chunk_stats<false><<<grid, k_threads, 0, stream>>>(px, ws, cols, chunks);
    normalise<false><<<grid, k_threads, 0, stream>>>(px, pw, pb, ws, py, cols, chunks);
  }
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
