// A compute-bound case (matmul_2048): the plain tiled matmul on the given stream (STREAM_MODE
// 0) or on cudaStreamPerThread (1), where its event time would be a few microseconds, far below
// the roofline floor too. The tests prepend "#define STREAM_MODE n". Expect correct, off_stream in
// mode 1, and no speedup above the honest kernel's.
#include "kbench/kb_abi.h"

#ifndef STREAM_MODE
#define STREAM_MODE 1
#endif

__global__ void matmul_tiled(const float* a, const float* b, float* c, int n) {
  __shared__ float as[16][16], bs[16][16];
  const int row = blockIdx.y * 16 + threadIdx.y, col = blockIdx.x * 16 + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < n; k0 += 16) {
    as[threadIdx.y][threadIdx.x] = a[(size_t)row * n + k0 + threadIdx.x];
    bs[threadIdx.y][threadIdx.x] = b[(size_t)(k0 + threadIdx.y) * n + col];
    __syncthreads();
    for (int k = 0; k < 16; ++k)
      acc += as[threadIdx.y][k] * bs[k][threadIdx.x];
    __syncthreads();
  }
  c[(size_t)row * n + col] = acc;
}

extern "C" int kb_forward(const kb_tensor* in, int, kb_tensor* out, int, void*,
                          cudaStream_t given) {
  const int n = (int)in[0].shape[0];
#if STREAM_MODE == 0
  cudaStream_t s = given;
#else
  cudaStream_t s = cudaStreamPerThread;
  (void)given;
#endif
  matmul_tiled<<<dim3(n / 16, n / 16), dim3(16, 16), 0, s>>>(
      (const float*)in[0].data, (const float*)in[1].data, (float*)out[0].data, n);
  return cudaGetLastError() != cudaSuccess;
}
