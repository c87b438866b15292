// Defers the work to a host thread and returns at once (relu_small). Expect rejected (screening).
#include "kbench/kb_abi.h"
#include <thread>

__global__ void relu_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const float* x = (const float*)in[0].data;
  float* y = (float*)out[0].data;
  const int64_t n = kb_numel(&in[0]);
  std::thread([=] { relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, y, n); }).detach();
  return 0;
}
