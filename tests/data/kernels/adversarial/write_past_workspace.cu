// ReLU (relu_small) that asks for a 4 KiB workspace and writes one word just past its end.
// Expect mismatch out_of_bounds (the workspace's guard zone changed), not a later, unrelated
// launch error.
#include "kbench/kb_abi.h"

#define WS_BYTES 4096

__global__ void relu_and_scribble(const float* x, float* y, int64_t n, unsigned* ws) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = x[i] > 0.f ? x[i] : 0.f;
  if (i == 0)
    ws[WS_BYTES / sizeof(unsigned)] = 0x5A5A5A5Au;
}

extern "C" size_t kb_workspace_bytes(const kb_tensor*, int, const kb_tensor*, int) {
  return WS_BYTES;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void* ws, cudaStream_t s) {
  const int64_t n = kb_numel(&in[0]);
  relu_and_scribble<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(
      (const float*)in[0].data, (float*)out[0].data, n, (unsigned*)ws);
  return cudaGetLastError() != cudaSuccess;
}
