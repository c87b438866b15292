// Writes nothing: hopes the output memory still holds a reference's result (relu_small). Expect
// mismatch.
#include "kbench/kb_abi.h"

__global__ void touch(float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = y[i]; // reads whatever was left there
}

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor* out, int, void*, cudaStream_t s) {
  const int64_t n = kb_numel(&out[0]);
  touch<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((float*)out[0].data, n);
  return 0;
}
