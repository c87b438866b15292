// Stable LayerNorm (two passes: mean, then variance of x - mean) for layernorm_rows.yaml: must be
// judged correct, also on the ill-conditioned check distribution.
#include "kbench/kb_abi.h"

__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  float t = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.f;
  if (warp == 0)
    for (int o = 16; o > 0; o /= 2)
      t += __shfl_down_sync(0xffffffffu, t, o);
  if (threadIdx.x == 0)
    shared[32] = t;
  __syncthreads();
  const float r = shared[32];
  __syncthreads();
  return r;
}

__global__ void layernorm_kernel(const float* x, float* y, int cols) {
  __shared__ float shared[33];
  const float* row = x + (int64_t)blockIdx.x * cols;
  float* out = y + (int64_t)blockIdx.x * cols;
  float s = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    s += row[i];
  const float mean = block_sum(s, shared) / cols;
  float v = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = row[i] - mean;
    v += d * d;
  }
  const float rstd = rsqrtf(block_sum(v, shared) / cols + 1e-5f);
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    out[i] = (row[i] - mean) * rstd;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*,
                          cudaStream_t stream) {
  const int cols = (int)in[0].shape[in[0].ndim - 1];
  const int rows = (int)(kb_numel(&in[0]) / cols);
  layernorm_kernel<<<rows, 256, 0, stream>>>((const float*)in[0].data, (float*)out[0].data, cols);
  return cudaGetLastError() != cudaSuccess;
}
