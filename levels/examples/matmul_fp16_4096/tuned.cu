// Tuned FP16 GEMM on tensor cores: mma.sync m16n8k16 (FP16 in, FP32 accumulate) with ldmatrix
// fragment loads (.trans for row-major B), 128x128x32 block tiles, 8 warps each owning a 64x32
// warp tile, a 4-stage cp.async global->shared pipeline, padded shared-memory rows so ldmatrix is
// bank-conflict free, grouped block order for L2 reuse, FP16 output rounded once. Shapes that are
// not tile multiples or unaligned pointers fall back to a shared-memory tiled SIMT kernel.
#include <cuda_fp16.h>
#include <kbench/kb_abi.h>

namespace {

constexpr int k_bm = 128;
constexpr int k_bn = 128;
constexpr int k_bk = 32;
constexpr int k_stages = 4;
constexpr int k_threads = 256;
constexpr int k_group_m = 8;
constexpr int k_a_ld = k_bk + 8; // halves per shared A row (80 bytes: ldmatrix conflict free)
constexpr int k_b_ld = k_bn + 8; // halves per shared B row (272 bytes)
constexpr int k_a_stage = k_bm * k_a_ld;
constexpr int k_b_stage = k_bk * k_b_ld;
constexpr size_t k_smem_bytes = (size_t)k_stages * (k_a_stage + k_b_stage) * sizeof(__half);

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async_16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
               "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__global__ __launch_bounds__(k_threads, 2) void hgemm_mma(const __half* __restrict__ a,
                                                          const __half* __restrict__ b,
                                                          __half* __restrict__ c, int m, int n,
                                                          int k) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* a_s = reinterpret_cast<__half*>(smem_raw);
  __half* b_s = a_s + k_stages * k_a_stage;

  const int tiles_m = m / k_bm;
  const int tiles_n = n / k_bn;
  const int pid = blockIdx.x;
  const int per_group = k_group_m * tiles_n;
  const int first_m = (pid / per_group) * k_group_m;
  const int group_rows = min(tiles_m - first_m, k_group_m);
  const int bm = (first_m + (pid % per_group) % group_rows) * k_bm;
  const int bn = ((pid % per_group) / group_rows) * k_bn;

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int warp_m = (warp >> 2) * 64;
  const int warp_n = (warp & 3) * 32;

  // Each thread copies two 16-byte chunks of A (128 rows x 4 chunks) and two of B (32 x 16).
  auto load_tile = [&](int stage, int kt) {
    __half* as = a_s + stage * k_a_stage;
    __half* bs = b_s + stage * k_b_stage;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int e = tid + r * k_threads;
      const int ar = e >> 2, ac = (e & 3) * 8;
      cp_async_16(as + ar * k_a_ld + ac, a + (int64_t)(bm + ar) * k + kt * k_bk + ac);
      const int br = e >> 4, bc = (e & 15) * 8;
      cp_async_16(bs + br * k_b_ld + bc, b + (int64_t)(kt * k_bk + br) * n + bn + bc);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q)
        acc[i][j][q] = 0.f;

  const int k_tiles = k / k_bk;
#pragma unroll
  for (int s = 0; s < k_stages - 1; ++s) {
    if (s < k_tiles)
      load_tile(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < k_tiles; ++kt) {
    // Groups committed so far: (stages-1) + kt; allowing stages-2 pending means tile kt landed.
    cp_async_wait<k_stages - 2>();
    __syncthreads();
    // The stage refilled here was consumed in iteration kt-1, finished by all before the barrier.
    const int next = kt + k_stages - 1;
    if (next < k_tiles)
      load_tile(next % k_stages, next);
    cp_async_commit();

    const __half* as = a_s + (kt % k_stages) * k_a_stage;
    const __half* bs = b_s + (kt % k_stages) * k_b_stage;
#pragma unroll
    for (int kk = 0; kk < k_bk; kk += 16) {
      uint32_t af[4][4];
      uint32_t bf[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int row = warp_m + mi * 16 + (lane & 15);
        const int col = kk + (lane >> 4) * 8;
        ldmatrix_x4(af[mi], as + row * k_a_ld + col);
      }
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        const int krow = kk + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = warp_n + nj * 16 + (lane >> 4) * 8;
        uint32_t r[4];
        ldmatrix_x4_trans(r, bs + krow * k_b_ld + col);
        bf[2 * nj][0] = r[0];
        bf[2 * nj][1] = r[1];
        bf[2 * nj + 1][0] = r[2];
        bf[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          mma_16816(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
    const int row = bm + warp_m + mi * 16 + (lane >> 2);
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int col = bn + warp_n + ni * 8 + (lane & 3) * 2;
      *reinterpret_cast<__half2*>(c + (int64_t)row * n + col) =
          __floats2half2_rn(acc[mi][ni][0], acc[mi][ni][1]);
      *reinterpret_cast<__half2*>(c + (int64_t)(row + 8) * n + col) =
          __floats2half2_rn(acc[mi][ni][2], acc[mi][ni][3]);
    }
  }
}

constexpr int k_small_tile = 16;

__global__ void hgemm_fallback(const __half* __restrict__ a, const __half* __restrict__ b,
                               __half* __restrict__ c, int m, int n, int k) {
  __shared__ float a_tile[k_small_tile][k_small_tile];
  __shared__ float b_tile[k_small_tile][k_small_tile + 1];
  const int row = blockIdx.y * k_small_tile + threadIdx.y;
  const int col = blockIdx.x * k_small_tile + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < k; k0 += k_small_tile) {
    const int ka = k0 + threadIdx.x;
    const int kb = k0 + threadIdx.y;
    a_tile[threadIdx.y][threadIdx.x] =
        (row < m && ka < k) ? __half2float(a[(int64_t)row * k + ka]) : 0.f;
    b_tile[threadIdx.y][threadIdx.x] =
        (kb < k && col < n) ? __half2float(b[(int64_t)kb * n + col]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < k_small_tile; ++kk)
      acc = fmaf(a_tile[threadIdx.y][kk], b_tile[kk][threadIdx.x], acc);
    __syncthreads();
  }
  if (row < m && col < n)
    c[(int64_t)row * n + col] = __float2half_rn(acc);
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

int set_attributes() {
  return cudaFuncSetAttribute(hgemm_mma, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)k_smem_bytes) == cudaSuccess
             ? 0
             : 3;
}

} // namespace

extern "C" int kb_setup(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out) {
  (void)in;
  (void)n_in;
  (void)out;
  (void)n_out;
  return set_attributes();
}

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
  const __half* pa = static_cast<const __half*>(a.data);
  const __half* pb = static_cast<const __half*>(b.data);
  __half* pc = static_cast<__half*>(c.data);
  const bool tiled = m % k_bm == 0 && n % k_bn == 0 && k % k_bk == 0 && aligned16(pa) &&
                     aligned16(pb) && aligned16(pc) && (m / k_bm) * (n / k_bn) <= 0x7fffffff;
  if (tiled) {
    // Idempotent host-side attribute set, so the kernel also runs if setup was skipped.
    if (set_attributes() != 0)
      return 3;
    const int64_t blocks = (m / k_bm) * (n / k_bn);
    hgemm_mma<<<(unsigned)blocks, k_threads, k_smem_bytes, stream>>>(pa, pb, pc, (int)m, (int)n,
                                                                     (int)k);
  } else {
    const dim3 grid((unsigned)((n + k_small_tile - 1) / k_small_tile),
                    (unsigned)((m + k_small_tile - 1) / k_small_tile));
    if (grid.y > 65535)
      return 1;
    hgemm_fallback<<<grid, dim3(k_small_tile, k_small_tile), 0, stream>>>(pa, pb, pc, (int)m,
                                                                          (int)n, (int)k);
  }
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
