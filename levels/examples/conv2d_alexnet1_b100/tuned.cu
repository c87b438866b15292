// Tuned conv2d (stride 4, padding 2, with bias) as an implicit GEMM in FP32 FMA (M = output pixels
// over the batch, N = 96 output channels, K = Cin*kh*kw = 363 padded to 368). 128x96x16 block
// tiles, 256 threads each owning an 8-pixel x 6-channel register tile; the A tile is gathered
// straight from x (im2col on the fly with zero padding, through a shared-memory table of per-k
// offsets), the B tile comes from a K-major zero-padded copy of the weights made in the workspace
// by a small transpose kernel; shared-memory double buffering with register prefetch of the next K
// tile; bias added in the epilogue. Flattening pixels over the batch keeps the 55x55 tail small.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_bm = 128;
constexpr int k_bn = 96;
constexpr int k_bk = 16;
constexpr int k_tn = 6;           // channels per thread; k_bn == 16 * k_tn
constexpr int k_b_vec = k_bn / 4; // float4 per B tile row
constexpr int k_threads = 256;
constexpr int k_max_k = 1024;
constexpr int k_invalid_hw = 0x7fff << 16; // pushes the input row out of range for padded k

struct Geometry {
  int n, c, h, w, co, kh, kw, oh, ow, stride, pad, k, kpad;
  int64_t pixels; // oh * ow
  int64_t m;      // n * pixels
};

// wt[k][co] = w[co][k] (zero for k >= K) so B tiles load as float4 rows.
__global__ void transpose_weights(const float* __restrict__ w, float* __restrict__ wt, int k,
                                  int kpad, int co) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= kpad * co)
    return;
  const int kk = idx / co;
  const int cc = idx - kk * co;
  wt[idx] = kk < k ? w[(int64_t)cc * k + kk] : 0.f;
}

__global__ __launch_bounds__(k_threads, 2) void conv_igemm_bias(const float* __restrict__ x,
                                                                const float* __restrict__ wt,
                                                                const float* __restrict__ bias,
                                                                float* __restrict__ y, Geometry g) {
  __shared__ __align__(16) float a_s[2][k_bk][k_bm];
  __shared__ __align__(16) float b_s[2][k_bk][k_bn];
  __shared__ int tab_off[k_max_k];
  __shared__ int tab_hw[k_max_k];

  const int tid = threadIdx.x;
  const int khw = g.kh * g.kw;
  for (int kk = tid; kk < g.kpad; kk += k_threads) {
    if (kk < g.k) {
      const int ci = kk / khw;
      const int r = kk - ci * khw;
      const int ky = r / g.kw;
      const int kx = r - ky * g.kw;
      tab_off[kk] = (ci * g.h + ky) * g.w + kx;
      tab_hw[kk] = (ky << 16) | kx;
    } else {
      tab_off[kk] = 0;
      tab_hw[kk] = k_invalid_hw;
    }
  }

  // Gather role: one output pixel per thread, k rows 2*j + k_sub of each K tile.
  const int m_local = tid & (k_bm - 1);
  const int k_sub = tid >> 7;
  const int64_t m_gather = (int64_t)blockIdx.x * k_bm + m_local;
  int ih0 = -(1 << 20), iw0 = 0;
  int64_t x_off = 0;
  if (m_gather < g.m) {
    const int64_t img = m_gather / g.pixels;
    const int pix = (int)(m_gather - img * g.pixels);
    const int oy = pix / g.ow;
    const int ox = pix - oy * g.ow;
    ih0 = oy * g.stride - g.pad;
    iw0 = ox * g.stride - g.pad;
    x_off = img * g.c * g.h * g.w + (int64_t)ih0 * g.w + iw0;
  }
  // B role: the 16 x 96 tile is 384 float4; threads 0..127 move a second one 256 further on.
  const int b_row0 = tid / k_b_vec;
  const int b_cq0 = (tid % k_b_vec) * 4;
  const int b_row1 = (tid + k_threads) / k_b_vec;
  const int b_cq1 = ((tid + k_threads) % k_b_vec) * 4;
  const bool b_two = tid + k_threads < k_bk * k_b_vec;
  const float* b_src0 = wt + (int64_t)b_row0 * g.co + (int64_t)blockIdx.y * k_bn + b_cq0;
  const float* b_src1 = wt + (int64_t)b_row1 * g.co + (int64_t)blockIdx.y * k_bn + b_cq1;
  const int64_t b_step = (int64_t)k_bk * g.co;
  __syncthreads();

  float a_reg[8];
  float4 b_reg[2];
  auto load_global = [&](int kt) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int kk = kt * k_bk + 2 * j + k_sub;
      const int hw = tab_hw[kk];
      const int iy = ih0 + (hw >> 16);
      const int ix = iw0 + (hw & 0xffff);
      a_reg[j] = ((unsigned)iy < (unsigned)g.h && (unsigned)ix < (unsigned)g.w)
                     ? __ldg(x + x_off + tab_off[kk])
                     : 0.f;
    }
    b_reg[0] = __ldg(reinterpret_cast<const float4*>(b_src0 + kt * b_step));
    if (b_two)
      b_reg[1] = __ldg(reinterpret_cast<const float4*>(b_src1 + kt * b_step));
  };
  auto store_shared = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      a_s[buf][2 * j + k_sub][m_local] = a_reg[j];
    *reinterpret_cast<float4*>(&b_s[buf][b_row0][b_cq0]) = b_reg[0];
    if (b_two)
      *reinterpret_cast<float4*>(&b_s[buf][b_row1][b_cq1]) = b_reg[1];
  };

  // Compute role: pixels tm*4+{0..3} and 64+tm*4+{0..3}, channels tn*6+{0..5}.
  const int tm = tid & 15;
  const int tn = tid >> 4;
  float acc[8][k_tn];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < k_tn; ++j)
      acc[i][j] = 0.f;

  const int k_tiles = g.kpad / k_bk;
  load_global(0);
  store_shared(0);
  __syncthreads();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < k_tiles)
      load_global(kt + 1);
#pragma unroll
    for (int kk = 0; kk < k_bk; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&a_s[buf][kk][tm * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&a_s[buf][kk][64 + tm * 4]);
      const float2 b0 = *reinterpret_cast<const float2*>(&b_s[buf][kk][tn * k_tn]);
      const float2 b1 = *reinterpret_cast<const float2*>(&b_s[buf][kk][tn * k_tn + 2]);
      const float2 b2 = *reinterpret_cast<const float2*>(&b_s[buf][kk][tn * k_tn + 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[k_tn] = {b0.x, b0.y, b1.x, b1.y, b2.x, b2.y};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < k_tn; ++j)
          acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    // The other buffer's last readers finished before the previous barrier.
    if (kt + 1 < k_tiles)
      store_shared(buf ^ 1);
    __syncthreads();
  }

  const int co0 = blockIdx.y * k_bn + tn * k_tn;
  float bb[k_tn];
#pragma unroll
  for (int j = 0; j < k_tn; ++j)
    bb[j] = __ldg(bias + co0 + j);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = (int64_t)blockIdx.x * k_bm + (i < 4 ? tm * 4 + i : 64 + tm * 4 + i - 4);
    if (m >= g.m)
      continue;
    const int64_t img = m / g.pixels;
    const int64_t pix = m - img * g.pixels;
    float* dst = y + (img * g.co + co0) * g.pixels + pix;
#pragma unroll
    for (int j = 0; j < k_tn; ++j)
      dst[(int64_t)j * g.pixels] = acc[i][j] + bb[j];
  }
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Validates the problem's tensors and fills the geometry; false when unsupported.
bool geometry(const kb_tensor* in, int n_in, const kb_tensor* out, int n_out, Geometry& g) {
  if (n_in != 3 || n_out != 1)
    return false;
  const kb_tensor& x = in[0];
  const kb_tensor& w = in[1];
  const kb_tensor& bias = in[2];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || w.dtype != KB_F32 || bias.dtype != KB_F32 || y.dtype != KB_F32 ||
      x.ndim != 4 || w.ndim != 4 || bias.ndim != 1 || y.ndim != 4)
    return false;
  g = Geometry{};
  g.n = (int)x.shape[0];
  g.c = (int)x.shape[1];
  g.h = (int)x.shape[2];
  g.w = (int)x.shape[3];
  g.co = (int)w.shape[0];
  g.kh = (int)w.shape[2];
  g.kw = (int)w.shape[3];
  g.stride = 4;
  g.pad = 2;
  if (w.shape[1] != g.c || bias.shape[0] != g.co || g.co % k_bn != 0 || g.kh <= 0 || g.kw <= 0 ||
      g.h + 2 * g.pad < g.kh || g.w + 2 * g.pad < g.kw || g.h >= 16384 || g.w >= 16384)
    return false;
  g.oh = (g.h + 2 * g.pad - g.kh) / g.stride + 1;
  g.ow = (g.w + 2 * g.pad - g.kw) / g.stride + 1;
  if (y.shape[0] != g.n || y.shape[1] != g.co || y.shape[2] != g.oh || y.shape[3] != g.ow)
    return false;
  g.k = g.c * g.kh * g.kw;
  g.kpad = (g.k + k_bk - 1) / k_bk * k_bk;
  g.pixels = (int64_t)g.oh * g.ow;
  g.m = (int64_t)g.n * g.pixels;
  return g.kpad <= k_max_k && (int64_t)g.c * g.h * g.w < 0x7fffffff && g.m > 0 &&
         (g.m + k_bm - 1) / k_bm <= 0x7fffffff;
}

} // namespace

extern "C" size_t kb_workspace_bytes(const kb_tensor* in, int n_in, const kb_tensor* out,
                                     int n_out) {
  Geometry g;
  if (!geometry(in, n_in, out, n_out, g))
    return 0;
  return (size_t)g.kpad * g.co * sizeof(float);
}

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  Geometry g;
  if (!geometry(in, n_in, out, n_out, g) || workspace == nullptr || !aligned16(workspace))
    return 1;
  float* wt = static_cast<float*>(workspace);
  const int t_threads = 256;
  transpose_weights<<<(g.kpad * g.co + t_threads - 1) / t_threads, t_threads, 0, stream>>>(
      static_cast<const float*>(in[1].data), wt, g.k, g.kpad, g.co);
  const dim3 grid((unsigned)((g.m + k_bm - 1) / k_bm), (unsigned)(g.co / k_bn));
  conv_igemm_bias<<<grid, k_threads, 0, stream>>>(static_cast<const float*>(in[0].data), wt,
                                                  static_cast<const float*>(in[2].data),
                                                  static_cast<float*>(out[0].data), g);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
