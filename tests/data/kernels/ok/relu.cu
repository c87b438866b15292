// Correct ReLU for tests/data/kernels/levels/level1/relu_small.yaml.
#include "kbench/kb_abi.h"

__global__ void relu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void*,
                          cudaStream_t stream) {
  if (n_in != 1 || n_out != 1)
    return 1;
  const int64_t n = kb_numel(&in[0]);
  relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((const float*)in[0].data,
                                                               (float*)out[0].data, n);
  return cudaGetLastError() != cudaSuccess;
}
