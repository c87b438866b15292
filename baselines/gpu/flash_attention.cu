// Fused scaled_dot_product_attention forward for f16 and bf16 (FlashAttention-2 scheme): one block
// per 64 query rows of one batch index, 4 warps of 16 rows each. Q K^T and P V run on the tensor
// cores (mma.sync m16n8k16, fp32 accumulation) with operands fetched from shared memory by
// ldmatrix; K/V tiles of 64 keys are double-buffered with cp.async; the softmax is online (running
// row max and sum in fp32, exponentials in base 2 with scale * log2(e) folded in), so the scores
// never leave registers.
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_rows = 64; // query rows per block
constexpr int k_keys = 64; // keys per K/V tile
constexpr int k_warps = 4; // each warp owns 16 query rows
constexpr int k_threads = 32 * k_warps;
static_assert(k_rows == 16 * k_warps, "one m16 row block per warp");
static_assert(k_rows == k_keys, "Q, K and V tiles share one shared-memory geometry");

// Shared-memory geometry for head dim D: every tile is 64 rows of D elements with a row pitch of
// D + 8 elements. The pitch, (2D + 16) bytes, is 16 modulo 128, so the eight 16-byte rows that one
// ldmatrix 8x8 matrix reads (same columns, consecutive rows) fall into eight distinct groups of
// four banks: conflict-free without swizzling.
template <int D> struct Geometry {
  static constexpr int pitch = D + 8;
  static constexpr int tile = k_rows * pitch;     // elements per tile
  static constexpr int smem_bytes = 5 * tile * 2; // Q, 2 x K, 2 x V
  static constexpr int chunks = D / 8;            // 16-byte chunks per row
  static_assert(D % 16 == 0 && (pitch * 2) % 128 == 16, "pitch must be 16 mod 128 bytes");
};

struct FlashParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  int B;                    // batch (product of the leading dims)
  int L, S;                 // query rows, keys
  int64_t k_batch, v_batch; // elements between consecutive batch indices of k / v (0: broadcast)
  float scale_log2;         // scale * log2(e)
  bool causal;              // query row i sees keys j <= i (top-left aligned)
};

// ----- PTX wrappers ------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy that bypasses L1; with valid == false nothing is read and the 16
// destination bytes are zero-filled.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ldmatrix.x4: lane l supplies the address of row (l % 8) of 8x8 matrix l / 8 (16 contiguous
// bytes). Register r[m] receives matrix m: lane l holds its elements (row l / 4, columns
// 2 (l % 4) and 2 (l % 4) + 1), the lower column in the low half.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// ldmatrix.x4.trans: the same addressing, but every matrix is delivered transposed: lane l holds
// (rows 2 (l % 4) and 2 (l % 4) + 1, column l / 4) of the matrix as stored, the lower row in the
// low half.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// D (16x8, fp32) += A (16x16, row-major) * B (16x8, column-major), with g = lane / 4 and
// t = lane % 4 (PTX ISA, mma.m16n8k16 fragments for .f16/.bf16):
//   A: a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9],
//      a[3] = A[g+8][2t+8, 2t+9]
//   B: b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C/D: c[0], c[1] = C[g][2t, 2t+1], c[2], c[3] = C[g+8][2t, 2t+1]
// Each 32-bit register holds two 16-bit elements, the lower index in the low half.
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x on the special function unit (2^-inf = 0, NaN stays NaN).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats rounded to T and packed into one 32-bit register, `lo` in the low half.
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t u;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    memcpy(&u, &h, sizeof(u));
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &h, sizeof(u));
  }
  return u;
}

// Rows [r0, r0 + 64) of a row-major [n, D] matrix into a pitched shared tile with cp.async; rows
// at or past n are zero-filled (so masked keys meet zeros, never stale data, in P V).
template <class T, int D>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int r0, int n, int tid) {
  using G = Geometry<D>;
#pragma unroll
  for (int i = 0; i < k_rows * G::chunks / k_threads; ++i) {
    const int c = i * k_threads + tid;
    const int r = c / G::chunks, col = (c % G::chunks) * 8;
    const bool valid = r0 + r < n;
    const T* s = valid ? src + static_cast<int64_t>(r0 + r) * D + col : src;
    cp_async_16(smem_u32(dst + r * G::pitch + col), s, valid);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(k_threads, D == 64 ? 4 : 2)
    flash_attention_kernel(FlashParams p) {
  using G = Geometry<D>;
  constexpr int P = G::pitch;
  extern __shared__ __align__(16) unsigned char flash_smem[];
  T* const sQ = reinterpret_cast<T*>(flash_smem);
  T* const sK = sQ + G::tile; // two stages
  T* const sV = sK + 2 * G::tile;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3; // mma groupID and thread-in-group
  // Blocks of one batch index are consecutive (they share K and V in L2); within it, query tiles
  // run in reverse order: under a causal mask the last tiles see the most keys and start first.
  const int q_tiles = (p.L + k_rows - 1) / k_rows;
  const int b = blockIdx.x / q_tiles;
  const int q0 = (q_tiles - 1 - (blockIdx.x - b * q_tiles)) * k_rows;
  const int row_a = q0 + warp * 16 + g, row_b = row_a + 8; // this thread's two query rows
  // Keys at or past kv_end are masked for every row of the block.
  const int kv_end = p.causal ? min(p.S, q0 + k_rows) : p.S;
  const int n_tiles = (kv_end + k_keys - 1) / k_keys;

  // ldmatrix lane offsets (elements) inside a 16 x 16 block of a pitched tile. For A (Q, row-major
  // 16 x 16): matrices 0..3 = (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15),
  // (rows 8-15, cols 8-15) give a[0..3]. For B = K^T over two n8 blocks (K rows are keys): matrices
  // = (keys 0-7, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 0-7), (keys 8-15, dims 8-15)
  // give (b0, b1) of keys 0-7 and of keys 8-15. For B = V over two n8 blocks, transposed: matrices
  // = (keys 0-7, dims 0-7), (keys 8-15, dims 0-7), (keys 0-7, dims 8-15), (keys 8-15, dims 8-15)
  // give (b0, b1) of dims 0-7 and of dims 8-15.
  const int q_off = (lane & 15) * P + (lane >> 4) * 8;
  const int k_off = ((lane & 7) + (lane >> 4) * 8) * P + ((lane >> 3) & 1) * 8;
  const int v_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * P + (lane >> 4) * 8;

  const T* q = static_cast<const T*>(p.q) + int64_t{b} * p.L * D;
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch;
  T* o = static_cast<T*>(p.o) + int64_t{b} * p.L * D;

  load_tile<T, D>(sQ, q, q0, p.L, tid);
  load_tile<T, D>(sK, k, 0, p.S, tid);
  load_tile<T, D>(sV, v, 0, p.S, tid);
  cp_async_commit();

  uint32_t qf[D / 16][4]; // A fragments of this warp's 16 x D block of Q, one per k16 step
  float acc[D / 8][4];    // O accumulators, one C fragment per n8 block of head dims
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
    acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  // Running max (base-2 scaled scores) and this thread's partial sum of exponentials for rows
  // row_a and row_b; the four threads of a quad share the max and sum their partials at the end.
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

  for (int n = 0; n < n_tiles; ++n) {
    const int stage = n & 1;
    if (n + 1 < n_tiles) {
      // The other stage was last read in iteration n - 1, which ended with a barrier.
      load_tile<T, D>(sK + (stage ^ 1) * G::tile, k, (n + 1) * k_keys, p.S, tid);
      load_tile<T, D>(sV + (stage ^ 1) * G::tile, v, (n + 1) * k_keys, p.S, tid);
      cp_async_commit();
      cp_async_wait<1>(); // everything but the tile just issued has landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (n == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qf[kk], smem_u32(sQ + warp * 16 * P + kk * 16 + q_off));
    }

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys: s[j] is the C fragment of keys
    // 8j .. 8j + 7, i.e. s[j][0..1] = S[g][8j + 2t + {0, 1}], s[j][2..3] = S[g + 8][...].
    const T* kt = sK + stage * G::tile;
    float s[k_keys / 8][4];
#pragma unroll
    for (int j = 0; j < k_keys / 8; ++j)
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int jp = 0; jp < k_keys / 16; ++jp) {
        uint32_t kb[4];
        ldmatrix_x4(kb, smem_u32(kt + jp * 16 * P + kk * 16 + k_off));
        mma_16816<T>(s[2 * jp], qf[kk], kb[0], kb[1]);
        mma_16816<T>(s[2 * jp + 1], qf[kk], kb[2], kb[3]);
      }
    }

    // Scale into the base-2 domain; mask keys past S and, under the causal mask, keys j > i.
    // Only tiles that reach past S or past the block's first row need the per-element test.
#pragma unroll
    for (int j = 0; j < k_keys / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        s[j][e] *= p.scale_log2;
    const int key0 = n * k_keys;
    if (key0 + k_keys > p.S || (p.causal && key0 + k_keys - 1 > q0)) {
#pragma unroll
      for (int j = 0; j < k_keys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = key0 + 8 * j + 2 * t + (e & 1);
          const int row = e < 2 ? row_a : row_b;
          if (key >= p.S || (p.causal && key > row))
            s[j][e] = -INFINITY;
        }
    }

    // Online softmax. New row max over the quad (the 4 threads holding one row); fmaxf skips a
    // NaN score, which then reaches the sum and the output through exp2(NaN) = NaN.
    float mx_a = m_a, mx_b = m_b;
#pragma unroll
    for (int j = 0; j < k_keys / 8; ++j) {
      mx_a = fmaxf(mx_a, fmaxf(s[j][0], s[j][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[j][2], s[j][3]));
    }
#pragma unroll
    for (int d = 1; d <= 2; d <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, d));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, d));
    }
    // Exponent base: 0 while a row has seen only masked keys (avoids -inf - -inf).
    const float base_a = mx_a == -INFINITY ? 0.f : mx_a;
    const float base_b = mx_b == -INFINITY ? 0.f : mx_b;
    const float alpha_a = fast_exp2(m_a - base_a), alpha_b = fast_exp2(m_b - base_b);
    m_a = mx_a;
    m_b = mx_b;
    l_a *= alpha_a;
    l_b *= alpha_b;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      acc[j][0] *= alpha_a;
      acc[j][1] *= alpha_a;
      acc[j][2] *= alpha_b;
      acc[j][3] *= alpha_b;
    }
#pragma unroll
    for (int j = 0; j < k_keys / 8; ++j) {
      s[j][0] = fast_exp2(s[j][0] - base_a);
      s[j][1] = fast_exp2(s[j][1] - base_a);
      s[j][2] = fast_exp2(s[j][2] - base_b);
      s[j][3] = fast_exp2(s[j][3] - base_b);
      l_a += s[j][0] + s[j][1];
      l_b += s[j][2] + s[j][3];
    }

    // O += P V. The C fragments of key blocks 2kk and 2kk + 1, rounded to T, are exactly the A
    // fragment of keys 16kk .. 16kk + 15: a[0] = P[g][2t, 2t+1] = s[2kk][0..1],
    // a[1] = P[g+8][2t, 2t+1] = s[2kk][2..3], a[2] = P[g][8 + 2t, 9 + 2t] = s[2kk+1][0..1],
    // a[3] = s[2kk+1][2..3].
    const T* vt = sV + stage * G::tile;
#pragma unroll
    for (int kk = 0; kk < k_keys / 16; ++kk) {
      const uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]),
                              pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, smem_u32(vt + kk * 16 * P + dp * 16 + v_off));
        mma_16816<T>(acc[2 * dp], pa, vb[0], vb[1]);
        mma_16816<T>(acc[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads(); // every warp is done with this stage before it is refilled
  }

  // O / l, staged through this warp's own 16 rows of the Q tile (no longer read) so that the
  // global stores are whole 16-byte chunks of rows.
#pragma unroll
  for (int d = 1; d <= 2; d <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, d);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, d);
  }
  const float inv_a = l_a == 0.f ? 0.f : 1.f / l_a;
  const float inv_b = l_b == 0.f ? 0.f : 1.f / l_b;
  T* so = sQ + warp * 16 * P;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    *reinterpret_cast<uint32_t*>(so + g * P + 8 * j + 2 * t) =
        pack2<T>(acc[j][0] * inv_a, acc[j][1] * inv_a);
    *reinterpret_cast<uint32_t*>(so + (g + 8) * P + 8 * j + 2 * t) =
        pack2<T>(acc[j][2] * inv_b, acc[j][3] * inv_b);
  }
  __syncwarp();
#pragma unroll
  for (int i = 0; i < 16 * G::chunks / 32; ++i) {
    const int c = i * 32 + lane;
    const int r = c / G::chunks, col = (c % G::chunks) * 8;
    const int row = q0 + warp * 16 + r;
    if (row < p.L)
      *reinterpret_cast<uint4*>(o + static_cast<int64_t>(row) * D + col) =
          *reinterpret_cast<const uint4*>(so + r * P + col);
  }
}

template <class T, int D> void launch(const FlashParams& p, cudaStream_t s) {
  constexpr int smem = Geometry<D>::smem_bytes;
  auto kernel = flash_attention_kernel<T, D>;
  if (smem > 48 * 1024)
    KB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t blocks = p.B * ((p.L + k_rows - 1) / k_rows);
  kernel<<<static_cast<unsigned>(blocks), k_threads, smem, s>>>(p);
  KB_CUDA_CHECK_LAUNCH();
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

} // namespace

bool launch_flash_attention(DType dtype, const void* q, const void* k, const void* v, void* o,
                            int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev,
                            bool k_broadcast, bool v_broadcast, double scale, bool causal,
                            cudaStream_t s) {
  if (dtype != DType::f16 && dtype != DType::bf16)
    return false;
  if (E != Ev || (E != 64 && E != 128))
    return false;
  constexpr int64_t max_len = int64_t{1} << 30; // int arithmetic on rows and keys stays in range
  if (B < 1 || L < 1 || S < 1 || L > max_len || S > max_len)
    return false;
  if (B * ((L + k_rows - 1) / k_rows) > std::numeric_limits<int>::max()) // one block per grid.x
    return false;
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(o))
    return false;
  FlashParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = o;
  p.B = static_cast<int>(B);
  p.L = static_cast<int>(L);
  p.S = static_cast<int>(S);
  p.k_batch = k_broadcast ? 0 : S * E;
  p.v_batch = v_broadcast ? 0 : S * Ev;
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634); // log2(e)
  p.causal = causal;
  if (dtype == DType::f16) {
    if (E == 64)
      launch<__half, 64>(p, s);
    else
      launch<__half, 128>(p, s);
  } else {
    if (E == 64)
      launch<__nv_bfloat16, 64>(p, s);
    else
      launch<__nv_bfloat16, 128>(p, s);
  }
  return true;
}

} // namespace kb::gpu
