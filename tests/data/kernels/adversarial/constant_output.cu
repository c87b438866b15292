// Constant output 1/65536 on softmax_wide (close to the true mean value). Expect mismatch
// constant_output.
#include "kbench/kb_abi.h"

__global__ void fill_const(float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = 1.0f / 65536.0f;
}

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const int64_t n = kb_numel(&out[0]);
  fill_const<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((float*)out[0].data, n);
  return 0;
}
