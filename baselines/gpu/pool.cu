// max_pool1d/2d and avg_pool1d/2d (1-D pools run as 2-D pools of height 1). Supports dilation,
// ceil_mode (via the output shape) and count_include_pad. Non-overlapping 2-D windows go to cuDNN
// (faster there). Other 2-D pools on planes of at least 32 x 8 outputs run tiled: a block stages
// its input window in shared memory, reduces along rows, then along columns (kh + kw reads per
// output instead of kh * kw). The rest take the one-thread-per-output kernel.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

struct PoolParams {
  int64_t H, W, OH, OW;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
};

template <class T>
__global__ void max_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                PoolParams p) {
  using A = Acc<T>;
  const int64_t n = planes * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % p.OW;
    const int64_t oh = (i / p.OW) % p.OH;
    const int64_t plane = i / (p.OW * p.OH);
    const T* xp = x + plane * p.H * p.W;
    const int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    A best = neg_inf<A>();
    for (int64_t a = 0; a < p.kh; ++a) {
      const int64_t h = h0 + a * p.dh;
      if (h < 0 || h >= p.H)
        continue;
      for (int64_t b = 0; b < p.kw; ++b) {
        const int64_t w = w0 + b * p.dw;
        if (w < 0 || w >= p.W)
          continue;
        const A v = to_acc(xp[h * p.W + w]);
        if (v > best || v != v) // NaN propagates, as in PyTorch
          best = v;
        if (best != best)
          break;
      }
    }
    y[i] = from_acc<T>(best);
  }
}

// The input rows [hs, he) and columns [ws, we) that average-pooling output (oh, ow) reads, and its
// divisor: the window as clipped to the padded input (count_include_pad), else the in-bounds part.
struct AvgWindow {
  int64_t hs, he, ws, we, divisor;
};

__device__ __forceinline__ AvgWindow avg_window(const PoolParams& p, int64_t oh, int64_t ow) {
  const int64_t hs = oh * p.sh - p.ph, ws = ow * p.sw - p.pw;
  const int64_t he = std::min(hs + p.kh, p.H + p.ph), we = std::min(ws + p.kw, p.W + p.pw);
  AvgWindow w{std::max<int64_t>(hs, 0), std::min(he, p.H), std::max<int64_t>(ws, 0),
              std::min(we, p.W), 0};
  w.divisor = p.count_include_pad ? (he - hs) * (we - ws) : (w.he - w.hs) * (w.we - w.ws);
  return w;
}

template <class T>
__global__ void avg_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                PoolParams p) {
  using A = Acc<T>;
  const int64_t n = planes * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % p.OW;
    const int64_t oh = (i / p.OW) % p.OH;
    const int64_t plane = i / (p.OW * p.OH);
    const T* xp = x + plane * p.H * p.W;
    const AvgWindow win = avg_window(p, oh, ow);
    A sum = 0;
    for (int64_t h = win.hs; h < win.he; ++h)
      for (int64_t w = win.ws; w < win.we; ++w)
        sum += to_acc(xp[h * p.W + w]);
    y[i] = from_acc<T>(sum / static_cast<A>(win.divisor));
  }
}

// Output tile of one block: tile_w (64 or 32) columns by tile_h rows, chosen by the host so the
// staged input fits in shared memory and small planes do not leave most of a tile idle; 256
// threads as 32 x 8.
constexpr int k_block_x = 32, k_block_y = 8;
constexpr std::size_t k_max_tile_smem = 48 * 1024;

template <bool IsMax, class A> __device__ __forceinline__ A pool_combine(A acc, A v) {
  if constexpr (IsMax)
    return (v > acc || v != v) ? v : acc; // NaN propagates and then stays
  else
    return acc + v;
}

struct TileGeom {
  int tile_w, tile_h, in_w, in_h; // staged input window: in_h rows of in_w values
};

TileGeom tile_geom(const PoolParams& p, int tile_w, int tile_h) {
  TileGeom t;
  t.tile_w = tile_w;
  t.tile_h = tile_h;
  t.in_w = static_cast<int>((tile_w - 1) * p.sw + (p.kw - 1) * p.dw + 1);
  t.in_h = static_cast<int>((tile_h - 1) * p.sh + (p.kh - 1) * p.dh + 1);
  return t;
}

template <class A> std::size_t tile_smem(const TileGeom& t) {
  return sizeof(A) * static_cast<std::size_t>(t.in_h) * (t.in_w + t.tile_w);
}

template <class T, bool IsMax>
__global__ void __launch_bounds__(k_block_x* k_block_y)
    pool2d_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes, PoolParams p,
                        TileGeom t) {
  using A = Acc<T>;
  extern __shared__ unsigned char smem_raw[];
  A* in = reinterpret_cast<A*>(smem_raw);                   // [in_h][in_w]
  A* rows = in + static_cast<std::size_t>(t.in_h) * t.in_w; // [in_h][t.tile_w]
  const A pad = IsMax ? neg_inf<A>() : A(0);
  const int64_t ow0 = int64_t{blockIdx.x} * t.tile_w;
  const int64_t oh0 = int64_t{blockIdx.y} * t.tile_h;
  const int64_t gw0 = ow0 * p.sw - p.pw, gh0 = oh0 * p.sh - p.ph;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const T* xp = x + plane * p.H * p.W;
    // Stage the input window; padding and rows/columns past the edge read as the identity.
    for (int r = ty; r < t.in_h; r += k_block_y) {
      const int64_t gh = gh0 + r;
      const bool row_ok = gh >= 0 && gh < p.H;
      for (int c = tx; c < t.in_w; c += k_block_x) {
        const int64_t gw = gw0 + c;
        in[r * t.in_w + c] = row_ok && gw >= 0 && gw < p.W ? to_acc(xp[gh * p.W + gw]) : pad;
      }
    }
    __syncthreads();
    // Reduce along each staged row.
    for (int r = ty; r < t.in_h; r += k_block_y)
      for (int c = tx; c < t.tile_w; c += k_block_x) {
        const A* src = in + r * t.in_w + c * p.sw;
        A acc = pad;
        for (int b = 0; b < p.kw; ++b)
          acc = pool_combine<IsMax>(acc, src[b * p.dw]);
        rows[r * t.tile_w + c] = acc;
      }
    __syncthreads();
    // Reduce along columns and write the outputs.
    for (int r = ty; r < t.tile_h; r += k_block_y) {
      const int64_t oh = oh0 + r;
      if (oh >= p.OH)
        break;
      for (int c = tx; c < t.tile_w; c += k_block_x) {
        const int64_t ow = ow0 + c;
        if (ow >= p.OW)
          break;
        const A* src = rows + static_cast<std::size_t>(r * p.sh) * t.tile_w + c;
        A acc = pad;
        for (int a = 0; a < p.kh; ++a)
          acc = pool_combine<IsMax>(acc, src[a * p.dh * t.tile_w]);
        if constexpr (!IsMax)
          acc /= static_cast<A>(avg_window(p, oh, ow).divisor);
        y[(plane * p.OH + oh) * p.OW + ow] = from_acc<T>(acc);
      }
    }
    __syncthreads();
  }
}

// The output tile for planes of OH x OW outputs: 64 or 32 columns and the tallest of 32, 16 or 8
// rows whose staged window fits the shared-memory budget. Width 0 (the per-output kernel runs)
// when a plane is narrower than 32 or lower than 8 outputs, where most of a tile would stage
// padding, or when no tile fits (huge windows or strides).
template <class A> TileGeom pick_tile(const PoolParams& p) {
  if (p.OW >= 32 && p.OH >= 8) {
    const int w = p.OW >= 64 ? 64 : 32;
    for (int h : {32, 16, 8})
      if (tile_smem<A>(tile_geom(p, w, h)) <= k_max_tile_smem)
        return tile_geom(p, w, h);
  }
  return TileGeom{};
}

} // namespace

void op_pool(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  if (out.dtype != x.dtype)
    op_fail(node, "output dtype differs from x");
  const bool is_max = node.op.starts_with("max");
  const std::size_t sp = node.op.ends_with("1d") ? 1 : 2;
  if (x.shape.size() != sp + 2 || out.shape.size() != sp + 2)
    op_fail(node, str_cat("x must have rank ", sp + 2));
  const auto k = attr_ints(node.attrs, "kernel_size", sp, {});
  const auto st = attr_ints(node.attrs, "stride", sp, k);
  const auto pad = attr_ints(node.attrs, "padding", sp, std::vector<int64_t>(sp, 0));
  const auto dil = attr_ints(node.attrs, "dilation", sp, std::vector<int64_t>(sp, 1));
  if (k.size() != sp || st.size() != sp)
    op_fail(node, "kernel_size/stride have the wrong number of entries");
  if (!is_max && node.attrs.contains("dilation"))
    op_fail(node, "avg pooling has no dilation");
  PoolParams p{};
  const std::size_t o = 2 - sp; // 1-D: height 1
  p.H = sp == 2 ? x.shape[2] : 1;
  p.W = x.shape.back();
  p.OH = sp == 2 ? out.shape[2] : 1;
  p.OW = out.shape.back();
  p.kh = o ? 1 : k[0];
  p.kw = k[sp - 1];
  p.sh = o ? 1 : st[0];
  p.sw = st[sp - 1];
  p.ph = o ? 0 : pad[0];
  p.pw = pad[sp - 1];
  p.dh = o ? 1 : dil[0];
  p.dw = dil[sp - 1];
  p.count_include_pad = attr_bool(node.attrs, "count_include_pad", true);
  const int64_t planes = x.shape[0] * x.shape[1];
  if (out.shape[0] != x.shape[0] || out.shape[1] != x.shape[1])
    op_fail(node, "output batch/channels differ from x");
  const int64_t n = out.numel();
  if (n == 0)
    return;
  // cuDNN pools non-overlapping 2-D windows (stride = kernel size) faster than the kernels below
  // (H100: 0.93 vs 1.24 ms for k4 on 128x64x254x254, 0.57 vs 1.03 ms for k2 in
  // l2/kb_conv2d_sub_hardswish_maxpool_mish); overlapping windows stay with the own kernels
  // (k4 s1 on 32x64x512x512: 4.95 vs 8.89 ms). docs/baselines.md has the comparison.
  const bool non_overlapping =
      sp == 2 && p.sh == p.kh && p.sw == p.kw && p.dh == 1 && p.dw == 1 && p.ph == 0 && p.pw == 0;
  if ((ctx.impl().prefer_cudnn || non_overlapping) &&
      cudnn_pool(ctx, node, x, out,
                 CudnnPoolArgs{p.H, p.W, p.OH, p.OW, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw,
                               p.count_include_pad, is_max}))
    return;
  KB_DISPATCH_FLOAT(x.dtype, node, {
    using A = Acc<T>;
    // Window sizes beyond int range cannot be tiled; sp == 1 runs per output (height 1).
    TileGeom t{};
    if (sp == 2 && std::max({p.kh, p.kw, p.sh, p.sw, p.dh, p.dw}) < 4096)
      t = pick_tile<A>(p);
    if (t.tile_w > 0 && (p.OH + t.tile_h - 1) / t.tile_h > 65535)
      t.tile_w = 0;
    if (t.tile_w > 0) {
      const dim3 grid(static_cast<unsigned>((p.OW + t.tile_w - 1) / t.tile_w),
                      static_cast<unsigned>((p.OH + t.tile_h - 1) / t.tile_h),
                      static_cast<unsigned>(std::min<int64_t>(planes, 65535)));
      const dim3 block(k_block_x, k_block_y);
      const std::size_t smem = tile_smem<A>(t);
      if (is_max)
        pool2d_tiled_kernel<T, true><<<grid, block, smem, ctx.stream()>>>(
            static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p, t);
      else
        pool2d_tiled_kernel<T, false><<<grid, block, smem, ctx.stream()>>>(
            static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p, t);
    } else if (is_max)
      max_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
    else
      avg_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
