// Computes ReLU through FP16 (relu_small, an fp32 problem): relative error ~5e-4 > 1e-4. Expect
// mismatch.
#include "kbench/kb_abi.h"
#include <cuda_fp16.h>

__global__ void relu_half(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) {
    const __half h = __float2half(x[i]);
    y[i] = __half2float(__hgt(h, __float2half(0.f)) ? h : __float2half(0.f));
  }
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const int64_t n = kb_numel(&in[0]);
  relu_half<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const float*)in[0].data,
                                                        (float*)out[0].data, n);
  return 0;
}
