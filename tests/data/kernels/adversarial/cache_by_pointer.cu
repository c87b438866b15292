// Caches results by input address: computes once per pointer into a static device buffer, then
// copies it (relu_small). Expect mismatch.
#include "kbench/kb_abi.h"

__device__ float g_cache[4][1024 * 1024];

__global__ void relu_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  static const void* keys[4] = {nullptr, nullptr, nullptr, nullptr};
  const int64_t n = kb_numel(&in[0]);
  float* slot_base = nullptr;
  cudaGetSymbolAddress((void**)&slot_base, g_cache);
  for (int k = 0; k < 4; ++k) {
    if (keys[k] == in[0].data) // seen this buffer: replay the old result
      return cudaMemcpyAsync(out[0].data, slot_base + k * 1024 * 1024, n * sizeof(float),
                             cudaMemcpyDeviceToDevice, s) != cudaSuccess;
  }
  for (int k = 0; k < 4; ++k) {
    if (!keys[k]) {
      keys[k] = in[0].data;
      relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const float*)in[0].data,
                                                              slot_base + k * 1024 * 1024, n);
      break;
    }
  }
  relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const float*)in[0].data,
                                                          (float*)out[0].data, n);
  return 0;
}
