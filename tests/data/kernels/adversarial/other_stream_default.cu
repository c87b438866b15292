// Slow but correct ReLU launched on the legacy default stream instead of the given one
// (relu_small). The harness's device-wide sync times it honestly; expect correct with flag
// off_stream.
#include "kbench/kb_abi.h"

__global__ void slow_relu(const float* x, float* y, int64_t n, int reps) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n)
    return;
  float v = x[i];
  float acc = 0.f;
  for (int r = 0; r < reps; ++r)
    acc += __sinf(v * (float)r) * 1e-30f; // busy work, ~1 ms
  y[i] = (v > 0.f ? v : 0.f) + acc * 0.f;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*, cudaStream_t) {
  const int64_t n = kb_numel(&in[0]);
  slow_relu<<<(unsigned)((n + 255) / 256), 256, 0, 0>>>((const float*)in[0].data,
                                                        (float*)out[0].data, n, 2000);
  return 0;
}
