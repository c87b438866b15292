// Fused scaled_dot_product_attention forward for f16 and bf16 (FlashAttention-2 scheme): one block
// of 4 warps per 128 query rows (head dim 64; each warp owns 32 rows as two m16 row tiles, so every
// K and V fragment loaded from shared memory feeds two mma instructions) or per 64 query rows (head
// dim 128; 16 rows per warp) of one batch index. Q K^T and P V run on the tensor cores
// (mma.sync m16n8k16, fp32 accumulation) with operands fetched from shared memory by ldmatrix;
// K/V tiles of 64 keys are double-buffered with cp.async; the softmax is online (running row max
// and sum in fp32, exponentials in base 2 with scale * log2(e) folded in), so the scores never
// leave registers.
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_keys = 64; // keys per K/V tile
constexpr int k_warps = 4;
constexpr int k_threads = 32 * k_warps;
constexpr int k_min_rows = 16 * k_warps; // query rows per block with one m16 row tile per warp

// m16 row tiles per warp for head dim D: two for D = 64 (each K/V fragment feeds two mma), one for
// D = 128, whose accumulators would not fit in registers twice over.
template <int D> constexpr int tiles_per_warp() {
  return D == 64 ? 2 : 1;
}

// Shared-memory geometry for head dim D: a Q tile of `rows` rows and four K/V tiles of 64 rows,
// all of D elements with a row pitch of D + 8 elements. The pitch, (2D + 16) bytes, is 16 modulo
// 128, so the eight 16-byte rows that one ldmatrix 8x8 matrix reads (same columns, consecutive
// rows) fall into eight distinct groups of four banks: conflict-free without swizzling.
template <int D> struct Geometry {
  static constexpr int rows = 16 * k_warps * tiles_per_warp<D>(); // query rows per block
  static constexpr int pitch = D + 8;
  static constexpr int kv_tile = k_keys * pitch;                      // elements per K/V tile
  static constexpr int smem_bytes = (rows * pitch + 4 * kv_tile) * 2; // Q, 2 x K, 2 x V
  static constexpr int chunks = D / 8;                                // 16-byte chunks per row
  static_assert(D % 16 == 0 && (pitch * 2) % 128 == 16, "pitch must be 16 mod 128 bytes");
  static_assert(rows % k_min_rows == 0 && rows >= k_min_rows, "whole m16 row tiles per warp");
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

// Rows [r0, r0 + R) of a row-major [n, D] matrix into a pitched shared tile with cp.async; rows at
// or past n are zero-filled (so masked keys meet zeros, never stale data, in P V).
template <class T, int D, int R>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int r0, int n, int tid) {
  using G = Geometry<D>;
  static_assert(R * G::chunks % k_threads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < R * G::chunks / k_threads; ++i) {
    const int c = i * k_threads + tid;
    const int r = c / G::chunks, col = (c % G::chunks) * 8;
    const bool valid = r0 + r < n;
    const T* s = valid ? src + static_cast<int64_t>(r0 + r) * D + col : src;
    cp_async_16(smem_u32(dst + r * G::pitch + col), s, valid);
  }
}

// Two blocks per SM: head dim 64 holds two row tiles of O and S per thread (246 registers), head
// dim 128 one row tile of a twice as wide O (243 registers); neither spills.
template <class T, int D>
__global__ void __launch_bounds__(k_threads, 2) flash_attention_kernel(FlashParams p) {
  using G = Geometry<D>;
  constexpr int P = G::pitch;
  constexpr int NT = tiles_per_warp<D>(); // m16 row tiles per warp
  constexpr int WR = 16 * NT;             // query rows per warp
  extern __shared__ __align__(16) unsigned char flash_smem[];
  T* const sQ = reinterpret_cast<T*>(flash_smem);
  T* const sK = sQ + G::rows * P; // two stages
  T* const sV = sK + 2 * G::kv_tile;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3; // mma groupID and thread-in-group
  // Blocks of one batch index are consecutive (they share K and V in L2); within it, query tiles
  // run in reverse order: under a causal mask the last tiles see the most keys and start first.
  const int q_tiles = (p.L + G::rows - 1) / G::rows;
  const int b = blockIdx.x / q_tiles;
  const int q0 = (q_tiles - 1 - (blockIdx.x - b * q_tiles)) * G::rows;
  // This thread's query rows: row tile i covers rows w0 + 16 i .. w0 + 16 i + 15, of which the
  // thread holds w0 + 16 i + g (fragment elements 0, 1) and w0 + 16 i + g + 8 (elements 2, 3).
  const int w0 = q0 + warp * WR;
  // Keys at or past kv_end are masked for every row of the block.
  const int kv_end = p.causal ? min(p.S, q0 + G::rows) : p.S;
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

  load_tile<T, D, G::rows>(sQ, q, q0, p.L, tid);
  load_tile<T, D, k_keys>(sK, k, 0, p.S, tid);
  load_tile<T, D, k_keys>(sV, v, 0, p.S, tid);
  cp_async_commit();

  uint32_t qf[NT][D / 16][4]; // A fragments of row tile i of Q, one per k16 step
  float acc[NT][D / 8][4];    // O accumulators, one C fragment per row tile and n8 block of dims
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;
  // Running max (base-2 scaled scores) and this thread's partial sum of exponentials for its rows
  // (index [i][0]: row w0 + 16 i + g, [i][1]: row w0 + 16 i + g + 8); the four threads of a quad
  // share the max and sum their partials at the end.
  float m[NT][2], l[NT][2];
#pragma unroll
  for (int i = 0; i < NT; ++i) {
    m[i][0] = m[i][1] = -INFINITY;
    l[i][0] = l[i][1] = 0.f;
  }

  for (int n = 0; n < n_tiles; ++n) {
    const int stage = n & 1;
    if (n + 1 < n_tiles) {
      // The other stage was last read in iteration n - 1, which ended with a barrier.
      load_tile<T, D, k_keys>(sK + (stage ^ 1) * G::kv_tile, k, (n + 1) * k_keys, p.S, tid);
      load_tile<T, D, k_keys>(sV + (stage ^ 1) * G::kv_tile, v, (n + 1) * k_keys, p.S, tid);
      cp_async_commit();
      cp_async_wait<1>(); // everything but the tile just issued has landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (n == 0) {
#pragma unroll
      for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
          ldmatrix_x4(qf[i][kk], smem_u32(sQ + (warp * WR + 16 * i) * P + kk * 16 + q_off));
    }

    // S = Q K^T for this warp's rows and the tile's 64 keys: s[i][j] is the C fragment of row tile
    // i and keys 8j .. 8j + 7, i.e. s[i][j][0..1] = S[16i + g][8j + 2t + {0, 1}],
    // s[i][j][2..3] = S[16i + g + 8][...]. Each K fragment feeds every row tile.
    const T* kt = sK + stage * G::kv_tile;
    float s[NT][k_keys / 8][4];
#pragma unroll
    for (int i = 0; i < NT; ++i)
#pragma unroll
      for (int j = 0; j < k_keys / 8; ++j)
        s[i][j][0] = s[i][j][1] = s[i][j][2] = s[i][j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int jp = 0; jp < k_keys / 16; ++jp) {
        uint32_t kb[4];
        ldmatrix_x4(kb, smem_u32(kt + jp * 16 * P + kk * 16 + k_off));
#pragma unroll
        for (int i = 0; i < NT; ++i) {
          mma_16816<T>(s[i][2 * jp], qf[i][kk], kb[0], kb[1]);
          mma_16816<T>(s[i][2 * jp + 1], qf[i][kk], kb[2], kb[3]);
        }
      }
    }

    // Scale into the base-2 domain; mask keys past S and, under the causal mask, keys j > i.
    // Only tiles that reach past S or past the block's first row need the per-element test.
#pragma unroll
    for (int i = 0; i < NT; ++i)
#pragma unroll
      for (int j = 0; j < k_keys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[i][j][e] *= p.scale_log2;
    const int key0 = n * k_keys;
    if (key0 + k_keys > p.S || (p.causal && key0 + k_keys - 1 > q0)) {
#pragma unroll
      for (int i = 0; i < NT; ++i)
#pragma unroll
        for (int j = 0; j < k_keys / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + 8 * j + 2 * t + (e & 1);
            const int row = w0 + 16 * i + g + (e < 2 ? 0 : 8);
            if (key >= p.S || (p.causal && key > row))
              s[i][j][e] = -INFINITY;
          }
    }

    // Online softmax. New row max over the quad (the 4 threads holding one row); fmaxf skips a
    // NaN score, which then reaches the sum and the output through exp2(NaN) = NaN.
#pragma unroll
    for (int i = 0; i < NT; ++i) {
      float mx[2] = {m[i][0], m[i][1]};
#pragma unroll
      for (int j = 0; j < k_keys / 8; ++j) {
        mx[0] = fmaxf(mx[0], fmaxf(s[i][j][0], s[i][j][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[i][j][2], s[i][j][3]));
      }
#pragma unroll
      for (int d = 1; d <= 2; d <<= 1) {
        mx[0] = fmaxf(mx[0], __shfl_xor_sync(0xffffffffu, mx[0], d));
        mx[1] = fmaxf(mx[1], __shfl_xor_sync(0xffffffffu, mx[1], d));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // Exponent base: 0 while a row has seen only masked keys (avoids -inf - -inf).
        const float base = mx[h] == -INFINITY ? 0.f : mx[h];
        const float alpha = fast_exp2(m[i][h] - base);
        m[i][h] = mx[h];
        l[i][h] *= alpha;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          acc[i][j][2 * h] *= alpha;
          acc[i][j][2 * h + 1] *= alpha;
        }
#pragma unroll
        for (int j = 0; j < k_keys / 8; ++j) {
          s[i][j][2 * h] = fast_exp2(s[i][j][2 * h] - base);
          s[i][j][2 * h + 1] = fast_exp2(s[i][j][2 * h + 1] - base);
          l[i][h] += s[i][j][2 * h] + s[i][j][2 * h + 1];
        }
      }
    }

    // O += P V. The C fragments of key blocks 2kk and 2kk + 1 of row tile i, rounded to T, are
    // exactly the A fragment of keys 16kk .. 16kk + 15: a[0] = P[g][2t, 2t+1] = s[i][2kk][0..1],
    // a[1] = P[g+8][2t, 2t+1] = s[i][2kk][2..3], a[2] = P[g][8 + 2t, 9 + 2t] = s[i][2kk+1][0..1],
    // a[3] = s[i][2kk+1][2..3]. Each V fragment feeds every row tile.
    const T* vt = sV + stage * G::kv_tile;
#pragma unroll
    for (int kk = 0; kk < k_keys / 16; ++kk) {
      uint32_t pa[NT][4];
#pragma unroll
      for (int i = 0; i < NT; ++i) {
        pa[i][0] = pack2<T>(s[i][2 * kk][0], s[i][2 * kk][1]);
        pa[i][1] = pack2<T>(s[i][2 * kk][2], s[i][2 * kk][3]);
        pa[i][2] = pack2<T>(s[i][2 * kk + 1][0], s[i][2 * kk + 1][1]);
        pa[i][3] = pack2<T>(s[i][2 * kk + 1][2], s[i][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, smem_u32(vt + kk * 16 * P + dp * 16 + v_off));
#pragma unroll
        for (int i = 0; i < NT; ++i) {
          mma_16816<T>(acc[i][2 * dp], pa[i], vb[0], vb[1]);
          mma_16816<T>(acc[i][2 * dp + 1], pa[i], vb[2], vb[3]);
        }
      }
    }
    __syncthreads(); // every warp is done with this stage before it is refilled
  }

  // O / l, staged through this warp's own rows of the Q tile (no longer read) so that the global
  // stores are whole 16-byte chunks of rows.
  T* so = sQ + warp * WR * P;
#pragma unroll
  for (int i = 0; i < NT; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int d = 1; d <= 2; d <<= 1)
        l[i][h] += __shfl_xor_sync(0xffffffffu, l[i][h], d);
      const float inv = l[i][h] == 0.f ? 0.f : 1.f / l[i][h];
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<uint32_t*>(so + (16 * i + g + 8 * h) * P + 8 * j + 2 * t) =
            pack2<T>(acc[i][j][2 * h] * inv, acc[i][j][2 * h + 1] * inv);
    }
  }
  __syncwarp();
#pragma unroll
  for (int c0 = 0; c0 < WR * G::chunks; c0 += 32) {
    const int c = c0 + lane;
    const int r = c / G::chunks, col = (c % G::chunks) * 8;
    const int row = w0 + r;
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
  const int64_t blocks = p.B * ((p.L + Geometry<D>::rows - 1) / Geometry<D>::rows);
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
  // One block per grid.x; the smallest row count per block gives the most blocks.
  if (B * ((L + k_min_rows - 1) / k_min_rows) > std::numeric_limits<int>::max())
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
