// Correct, deliberately plain square fp32 matmul (one thread per output, no tiling) for
// matmul_small.yaml and matmul_2048.yaml: a slow, steady kernel for timing tests.
#include "kbench/kb_abi.h"

__global__ void matmul_naive(const float* a, const float* b, float* c, int n) {
  const int row = blockIdx.y * 16 + threadIdx.y, col = blockIdx.x * 16 + threadIdx.x;
  if (row >= n || col >= n)
    return;
  float acc = 0.f;
  for (int k = 0; k < n; ++k)
    acc += a[(int64_t)row * n + k] * b[(int64_t)k * n + col];
  c[(int64_t)row * n + col] = acc;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*,
                          cudaStream_t stream) {
  const int n = (int)in[0].shape[0];
  matmul_naive<<<dim3((n + 15) / 16, (n + 15) / 16), dim3(16, 16), 0, stream>>>(
      (const float*)in[0].data, (const float*)in[1].data, (float*)out[0].data, n);
  return cudaGetLastError() != cudaSuccess;
}
