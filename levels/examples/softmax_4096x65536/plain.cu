// Plain softmax over dim 1 of a 2-D FP32 tensor: one block per row, three passes over the row
// (max, sum of exp(x - max), write exp(x - max) / sum) with shared-memory block reductions.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_threads = 256;

__device__ float block_reduce(float v, float* scratch, bool is_max) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int half = k_threads / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) {
      const float o = scratch[threadIdx.x + half];
      scratch[threadIdx.x] = is_max ? fmaxf(scratch[threadIdx.x], o) : scratch[threadIdx.x] + o;
    }
    __syncthreads();
  }
  const float r = scratch[0];
  __syncthreads();
  return r;
}

__global__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, int64_t cols) {
  __shared__ float scratch[k_threads];
  const float* xr = x + (int64_t)blockIdx.x * cols;
  float* yr = y + (int64_t)blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += k_threads)
    m = fmaxf(m, xr[j]);
  m = block_reduce(m, scratch, true);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += k_threads)
    s += expf(xr[j] - m);
  s = block_reduce(s, scratch, false);
  const float inv = 1.f / s;
  for (int64_t j = threadIdx.x; j < cols; j += k_threads)
    yr[j] = expf(xr[j] - m) * inv;
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
  softmax_rows<<<(unsigned)rows, k_threads, 0, stream>>>(static_cast<const float*>(x.data),
                                                         static_cast<float*>(y.data), cols);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
