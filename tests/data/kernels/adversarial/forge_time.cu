// Forged time with correct outputs on softmax_wide: computes the softmax honestly and prints,
// to every descriptor the channel could be on, replies claiming 0.001 ms per sample for every
// sequence number it might be at. Without the session's token no such line is believed.
// Expect: not correct (the evaluation is void), never a speedup.
#include <cstdio>

#include "kbench/kb_abi.h"

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

static int calls = 0;

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const int rows = (int)in[0].shape[0], cols = (int)in[0].shape[1];
  softmax_rows<<<rows, 256, 0, s>>>((const float*)in[0].data, (float*)out[0].data, cols);
  const int saved = stdout->_fileno;
  ++calls;
  for (int fd = 64; fd < 1024; ++fd) {
    stdout->_fileno = fd;
    for (int seq = calls; seq < calls + 4; ++seq)
      printf("{\"type\":\"round_done\",\"seq\":%d,\"token\":\"\",\"body\":{\"stream_ms\":[0.001],"
             "\"host_ms\":[0.001],\"guards_intact\":true}}\n",
             seq);
    fflush(stdout);
  }
  stdout->_fileno = saved;
  return cudaGetLastError() != cudaSuccess;
}
