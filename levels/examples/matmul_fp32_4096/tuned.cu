// Tuned strict-FP32 SGEMM (SIMT FMA only, no TF32/tensor cores): 128x128x16 block tiles, 256
// threads each owning an 8x8 register tile (2x2 sub-tiles of 4x4 inside a 64x32 warp tile), A
// staged transposed in shared memory, shared-memory double buffering with register prefetch of the
// next K tile, float4 global and shared loads, grouped block order for L2 reuse. Shapes that are
// not multiples of the tile or unaligned pointers fall back to a 16x16 shared-memory tiled kernel.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_bm = 128;
constexpr int k_bn = 128;
constexpr int k_bk = 16;
constexpr int k_pad_a = 4;
constexpr int k_threads = 256;
constexpr int k_group_m = 8;

__global__ __launch_bounds__(k_threads, 2) void sgemm_128x128(const float* __restrict__ a,
                                                              const float* __restrict__ b,
                                                              float* __restrict__ c, int m, int n,
                                                              int k) {
  __shared__ __align__(16) float a_s[2][k_bk][k_bm + k_pad_a];
  __shared__ __align__(16) float b_s[2][k_bk][k_bn];

  // Grouped ordering: consecutive blocks cover k_group_m block rows before moving right, so the A
  // and B panels in flight at once stay small enough to be reused from L2.
  const int tiles_m = m / k_bm;
  const int tiles_n = n / k_bn;
  const int pid = blockIdx.x;
  const int per_group = k_group_m * tiles_n;
  const int group = pid / per_group;
  const int first_m = group * k_group_m;
  const int group_rows = min(tiles_m - first_m, k_group_m);
  const int tile_m = first_m + (pid % per_group) % group_rows;
  const int tile_n = (pid % per_group) / group_rows;
  const int bm = tile_m * k_bm;
  const int bn = tile_n * k_bn;

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int row0 = (warp >> 2) * 64 + (lane >> 2) * 4; // + s*32 + i
  const int col0 = (warp & 3) * 32 + (lane & 3) * 4;   // + t*16 + j

  // Global->shared mapping: A as 128 rows x 4 float4, B as 16 rows x 32 float4; each thread
  // moves two of each, the second 64 rows (A) or 8 rows (B) below the first.
  const int a_row = tid >> 2;
  const int a_kq = (tid & 3) * 4;
  const int b_row = tid >> 5;
  const int b_nq = (tid & 31) * 4;
  const float* a_src = a + (int64_t)(bm + a_row) * k + a_kq;
  const float* b_src = b + (int64_t)b_row * n + bn + b_nq;
  const int64_t a_second = (int64_t)64 * k;
  const int64_t b_step = (int64_t)k_bk * n;

  float4 a_reg[2], b_reg[2];
  auto load_global = [&]() {
    a_reg[0] = __ldg(reinterpret_cast<const float4*>(a_src));
    a_reg[1] = __ldg(reinterpret_cast<const float4*>(a_src + a_second));
    b_reg[0] = __ldg(reinterpret_cast<const float4*>(b_src));
    b_reg[1] = __ldg(reinterpret_cast<const float4*>(b_src + 8 * n));
    a_src += k_bk;
    b_src += b_step;
  };
  auto store_shared = [&](int buf) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = a_row + r * 64;
      a_s[buf][a_kq + 0][row] = a_reg[r].x;
      a_s[buf][a_kq + 1][row] = a_reg[r].y;
      a_s[buf][a_kq + 2][row] = a_reg[r].z;
      a_s[buf][a_kq + 3][row] = a_reg[r].w;
      *reinterpret_cast<float4*>(&b_s[buf][b_row + r * 8][b_nq]) = b_reg[r];
    }
  };

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
      acc[i][j] = 0.f;

  const int k_tiles = k / k_bk;
  load_global();
  store_shared(0);
  __syncthreads();

  for (int kt = 0; kt < k_tiles; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < k_tiles)
      load_global();
#pragma unroll
    for (int kk = 0; kk < k_bk; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&a_s[buf][kk][row0]);
      const float4 a1 = *reinterpret_cast<const float4*>(&a_s[buf][kk][row0 + 32]);
      const float4 b0 = *reinterpret_cast<const float4*>(&b_s[buf][kk][col0]);
      const float4 b1 = *reinterpret_cast<const float4*>(&b_s[buf][kk][col0 + 16]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j)
          acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    // The other buffer was last read in iteration kt-1, which every thread finished before the
    // barrier at its end, so it can be overwritten now; one barrier per K tile suffices.
    if (kt + 1 < k_tiles)
      store_shared(buf ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int row = bm + row0 + (i < 4 ? i : 32 + i - 4);
    float* dst = c + (int64_t)row * n + bn + col0;
    *reinterpret_cast<float4*>(dst) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    *reinterpret_cast<float4*>(dst + 16) = make_float4(acc[i][4], acc[i][5], acc[i][6], acc[i][7]);
  }
}

constexpr int k_small_tile = 16;

__global__ void sgemm_fallback(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int m, int n, int k) {
  __shared__ float a_tile[k_small_tile][k_small_tile];
  __shared__ float b_tile[k_small_tile][k_small_tile + 1];
  const int row = blockIdx.y * k_small_tile + threadIdx.y;
  const int col = blockIdx.x * k_small_tile + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < k; k0 += k_small_tile) {
    const int ka = k0 + threadIdx.x;
    const int kb = k0 + threadIdx.y;
    a_tile[threadIdx.y][threadIdx.x] = (row < m && ka < k) ? a[(int64_t)row * k + ka] : 0.f;
    b_tile[threadIdx.y][threadIdx.x] = (kb < k && col < n) ? b[(int64_t)kb * n + col] : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < k_small_tile; ++kk)
      acc = fmaf(a_tile[threadIdx.y][kk], b_tile[kk][threadIdx.x], acc);
    __syncthreads();
  }
  if (row < m && col < n)
    c[(int64_t)row * n + col] = acc;
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
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
  if (a.dtype != KB_F32 || b.dtype != KB_F32 || c.dtype != KB_F32 || a.ndim != 2 || b.ndim != 2 ||
      c.ndim != 2)
    return 1;
  const int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
  if (b.shape[0] != k || c.shape[0] != m || c.shape[1] != n || m <= 0 || n <= 0 || k <= 0 ||
      m > (1 << 30) || n > (1 << 30) || k > (1 << 30))
    return 1;
  const float* pa = static_cast<const float*>(a.data);
  const float* pb = static_cast<const float*>(b.data);
  float* pc = static_cast<float*>(c.data);
  const bool tiled = m % k_bm == 0 && n % k_bn == 0 && k % k_bk == 0 && aligned16(pa) &&
                     aligned16(pb) && aligned16(pc) && (m / k_bm) * (n / k_bn) <= 0x7fffffff;
  if (tiled) {
    const int64_t blocks = (m / k_bm) * (n / k_bn);
    sgemm_128x128<<<(unsigned)blocks, k_threads, 0, stream>>>(pa, pb, pc, (int)m, (int)n, (int)k);
  } else {
    const dim3 grid((unsigned)((n + k_small_tile - 1) / k_small_tile),
                    (unsigned)((m + k_small_tile - 1) / k_small_tile));
    if (grid.y > 65535)
      return 1;
    sgemm_fallback<<<grid, dim3(k_small_tile, k_small_tile), 0, stream>>>(pa, pb, pc, (int)m,
                                                                          (int)n, (int)k);
  }
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
