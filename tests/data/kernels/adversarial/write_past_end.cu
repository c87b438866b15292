// ReLU (relu_small) whose bounds check is off by one: the thread after the last element writes
// one float past the end of the output. Expect mismatch out_of_bounds (the guard zone changed),
// not a later, unrelated launch error.
#include "kbench/kb_abi.h"

__global__ void relu_off_by_one(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
  else if (i == n)
    y[i] = 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const int64_t n = kb_numel(&in[0]);
  relu_off_by_one<<<(unsigned)((n + 256) / 256), 256, 0, s>>>((const float*)in[0].data,
                                                             (float*)out[0].data, n);
  return cudaGetLastError() != cudaSuccess;
}
