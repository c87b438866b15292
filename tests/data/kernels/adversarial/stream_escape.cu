// One softmax (softmax_wide), launched where STREAM_MODE says: 0 the given stream (honest),
// 1 cudaStreamPerThread, 2 the legacy default stream, 3 half the rows on the given stream and
// half on cudaStreamPerThread. The tests prepend "#define STREAM_MODE n". Expect correct in every
// mode, with flag off_stream where work left the stream, and never a speedup above the honest
// kernel's.
#include "kbench/kb_abi.h"

#ifndef STREAM_MODE
#define STREAM_MODE 1
#endif

__global__ void softmax_rows(const float* x, float* y, int cols) {
  const float* xr = x + (size_t)blockIdx.x * cols;
  float* yr = y + (size_t)blockIdx.x * cols;
  __shared__ float red[256];
  float m = -INFINITY;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    m = fmaxf(m, xr[i]);
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s)
      red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();
  float sum = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    sum += expf(xr[i] - m);
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s)
      red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  sum = red[0];
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    yr[i] = expf(xr[i] - m) / sum;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*,
                          cudaStream_t given) {
  const int rows = (int)in[0].shape[0], cols = (int)in[0].shape[1];
  const float* x = (const float*)in[0].data;
  float* y = (float*)out[0].data;
#if STREAM_MODE == 0
  softmax_rows<<<rows, 256, 0, given>>>(x, y, cols);
#elif STREAM_MODE == 1
  softmax_rows<<<rows, 256, 0, cudaStreamPerThread>>>(x, y, cols);
#elif STREAM_MODE == 2
  softmax_rows<<<rows, 256, 0, 0>>>(x, y, cols);
#else
  const int half = rows / 2;
  softmax_rows<<<half, 256, 0, given>>>(x, y, cols);
  softmax_rows<<<rows - half, 256, 0, cudaStreamPerThread>>>(x + (size_t)half * cols,
                                                             y + (size_t)half * cols, cols);
#endif
  return cudaGetLastError() != cudaSuccess;
}
