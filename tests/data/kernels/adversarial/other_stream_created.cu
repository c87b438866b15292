// Creates its own stream and works there (relu_small). Expect rejected (screening).
#include "kbench/kb_abi.h"

__global__ void relu_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t) {
  static cudaStream_t mine = nullptr;
  if (!mine)
    cudaStreamCreateWithFlags(&mine, cudaStreamNonBlocking);
  const int64_t n = kb_numel(&in[0]);
  relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, mine>>>((const float*)in[0].data,
                                                             (float*)out[0].data, n);
  return 0;
}
