// Does all the work in the first call and keeps the result in a static device buffer; later calls
// copy it (relu_small). Expect mismatch.
#include "kbench/kb_abi.h"

__device__ float g_result[1024 * 1024];

__global__ void relu_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  static bool first = true;
  const int64_t n = kb_numel(&in[0]);
  float* cache = nullptr;
  cudaGetSymbolAddress((void**)&cache, g_result);
  if (first) {
    first = false;
    relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const float*)in[0].data, cache, n);
  }
  return cudaMemcpyAsync(out[0].data, cache, n * sizeof(float), cudaMemcpyDeviceToDevice, s) !=
         cudaSuccess;
}
