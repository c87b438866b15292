// Plain FP16 matmul C = A·B: one thread per output element, 16x16 shared-memory tiles, products
// and sums in FP32, result rounded once to FP16; any M, N, K; no tensor cores.
#include <cuda_fp16.h>
#include <kbench/kb_abi.h>

namespace {

constexpr int k_tile = 16;

__global__ void matmul_f16_tiled(const __half* __restrict__ a, const __half* __restrict__ b,
                                 __half* __restrict__ c, int m, int n, int k) {
  __shared__ float a_tile[k_tile][k_tile];
  __shared__ float b_tile[k_tile][k_tile + 1];
  const int row = blockIdx.y * k_tile + threadIdx.y;
  const int col = blockIdx.x * k_tile + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < k; k0 += k_tile) {
    const int ka = k0 + threadIdx.x;
    const int kb = k0 + threadIdx.y;
    a_tile[threadIdx.y][threadIdx.x] =
        (row < m && ka < k) ? __half2float(a[(int64_t)row * k + ka]) : 0.f;
    b_tile[threadIdx.y][threadIdx.x] =
        (kb < k && col < n) ? __half2float(b[(int64_t)kb * n + col]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < k_tile; ++kk)
      acc = fmaf(a_tile[threadIdx.y][kk], b_tile[kk][threadIdx.x], acc);
    __syncthreads();
  }
  if (row < m && col < n)
    c[(int64_t)row * n + col] = __float2half_rn(acc);
}

} // namespace

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  (void)workspace;
  if (n_in != 2 || n_out != 1)
    return 1;
  const kb_tensor& a = in[0];
  const kb_tensor& b = in[1];
  const kb_tensor& c = out[0];
  if (a.dtype != KB_F16 || b.dtype != KB_F16 || c.dtype != KB_F16 || a.ndim != 2 || b.ndim != 2 ||
      c.ndim != 2)
    return 1;
  const int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
  if (b.shape[0] != k || c.shape[0] != m || c.shape[1] != n || m <= 0 || n <= 0 || k <= 0 ||
      m > (1 << 30) || n > (1 << 30) || k > (1 << 30))
    return 1;
  const dim3 block(k_tile, k_tile);
  const dim3 grid((unsigned)((n + k_tile - 1) / k_tile), (unsigned)((m + k_tile - 1) / k_tile));
  if (grid.y > 65535)
    return 1;
  matmul_f16_tiled<<<grid, block, 0, stream>>>(
      static_cast<const __half*>(a.data), static_cast<const __half*>(b.data),
      static_cast<__half*>(c.data), (int)m, (int)n, (int)k);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
