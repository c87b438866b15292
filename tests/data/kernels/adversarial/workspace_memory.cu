// Relies on the workspace keeping what the previous call left (relu_small): each call ends by
// writing a marker into the workspace, and a call that finds the marker there writes a wrong
// output. The ABI promises a workspace of garbage at every call. Expect correct.
#include "kbench/kb_abi.h"

#define MARKER 0x1234ABCDu

__global__ void relu_unless_marked(const float* x, float* y, int64_t n, const unsigned* ws) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = (x[i] > 0.f ? x[i] : 0.f) + (ws[0] == MARKER ? 1.f : 0.f);
}

__global__ void mark(unsigned* ws) {
  ws[0] = MARKER;
}

extern "C" size_t kb_workspace_bytes(const kb_tensor*, int, const kb_tensor*, int) {
  return 4096;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void* ws,
                          cudaStream_t s) {
  const int64_t n = kb_numel(&in[0]);
  relu_unless_marked<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(
      (const float*)in[0].data, (float*)out[0].data, n, (const unsigned*)ws);
  mark<<<1, 1, 0, s>>>((unsigned*)ws);
  return cudaGetLastError() != cudaSuccess;
}
