// max_pool1d/2d/3d and avg_pool1d/2d/3d (spatial dims right-aligned into depth, height, width:
// 1-D pools run as 2-D pools of height 1, 2-D pools as 3-D pools of depth 1), and the adaptive
// pools. Supports dilation, ceil_mode (via the output shape), count_include_pad and
// divisor_override. Non-overlapping 2-D windows go to cuDNN (faster there). Other 2-D pools on
// planes of at least 32 x 8 outputs run tiled: a block stages its input window in shared memory,
// reduces along rows, then along columns (kh + kw reads per output instead of kh * kw). The rest,
// 3-D pools included, take the one-thread-per-output kernel (3-D pools go to cuDNN only when the
// Context prefers it). Adaptive pools have no cuDNN counterpart: one thread, one warp or one block
// per output, by window size.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

struct PoolParams {
  int64_t D, H, W, OD, OH, OW;
  int64_t kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw;
  int64_t divisor; // avg: divisor_override, 0 when absent
  bool count_include_pad;
};

template <class T>
__global__ void max_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                PoolParams p) {
  using A = Acc<T>;
  const int64_t n = planes * p.OD * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % p.OW;
    const int64_t oh = (i / p.OW) % p.OH;
    const int64_t od = (i / (p.OW * p.OH)) % p.OD;
    const int64_t plane = i / (p.OW * p.OH * p.OD);
    const T* xp = x + plane * p.D * p.H * p.W;
    const int64_t d0 = od * p.sd - p.pd, h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    A best = neg_inf<A>();
    for (int64_t a = 0; a < p.kd; ++a) {
      const int64_t d = d0 + a * p.dd;
      if (d < 0 || d >= p.D)
        continue;
      for (int64_t b = 0; b < p.kh; ++b) {
        const int64_t h = h0 + b * p.dh;
        if (h < 0 || h >= p.H)
          continue;
        for (int64_t c = 0; c < p.kw; ++c) {
          const int64_t w = w0 + c * p.dw;
          if (w < 0 || w >= p.W)
            continue;
          const A v = to_acc(xp[(d * p.H + h) * p.W + w]);
          if (v > best || v != v) // NaN propagates, as in PyTorch
            best = v;
        }
      }
    }
    y[i] = from_acc<T>(best);
  }
}

// The input box [ds, de) x [hs, he) x [ws, we) that average-pooling output (od, oh, ow) reads, and
// its divisor: divisor_override when given, else the window as clipped to the padded input
// (count_include_pad), else its in-bounds part. An empty box (never produced by PyTorch's output
// sizes) averages to 0, as in PyTorch.
struct AvgWindow {
  int64_t ds, de, hs, he, ws, we, divisor;
};

__device__ __forceinline__ AvgWindow avg_window(const PoolParams& p, int64_t od, int64_t oh,
                                                int64_t ow) {
  const int64_t ds = od * p.sd - p.pd, hs = oh * p.sh - p.ph, ws = ow * p.sw - p.pw;
  const int64_t de = std::min(ds + p.kd, p.D + p.pd), he = std::min(hs + p.kh, p.H + p.ph),
                we = std::min(ws + p.kw, p.W + p.pw);
  AvgWindow w{std::max<int64_t>(ds, 0),
              std::min(de, p.D),
              std::max<int64_t>(hs, 0),
              std::min(he, p.H),
              std::max<int64_t>(ws, 0),
              std::min(we, p.W),
              0};
  const bool empty = w.ds >= w.de || w.hs >= w.he || w.ws >= w.we;
  if (p.divisor != 0)
    w.divisor = p.divisor;
  else if (p.count_include_pad)
    w.divisor = (de - ds) * (he - hs) * (we - ws);
  else
    w.divisor = empty ? 1 : (w.de - w.ds) * (w.he - w.hs) * (w.we - w.ws);
  return w;
}

template <class T>
__global__ void avg_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                PoolParams p) {
  using A = Acc<T>;
  const int64_t n = planes * p.OD * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % p.OW;
    const int64_t oh = (i / p.OW) % p.OH;
    const int64_t od = (i / (p.OW * p.OH)) % p.OD;
    const int64_t plane = i / (p.OW * p.OH * p.OD);
    const T* xp = x + plane * p.D * p.H * p.W;
    const AvgWindow win = avg_window(p, od, oh, ow);
    A sum = 0;
    for (int64_t d = win.ds; d < win.de; ++d)
      for (int64_t h = win.hs; h < win.he; ++h)
        for (int64_t w = win.ws; w < win.we; ++w)
          sum += to_acc(xp[(d * p.H + h) * p.W + w]);
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
          acc /= static_cast<A>(avg_window(p, 0, oh, ow).divisor);
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
  const std::size_t sp = node.op.ends_with("1d") ? 1 : node.op.ends_with("2d") ? 2 : 3;
  if (x.shape.size() != sp + 2 || out.shape.size() != sp + 2)
    op_fail(node, str_cat("x and the output must have rank ", sp + 2));
  const auto k = spatial_attr(node, "kernel_size", sp, {});
  // An absent or empty stride is the kernel size, as in PyTorch.
  const auto* st_list = node.attrs.contains("stride")
                            ? std::get_if<std::vector<int64_t>>(&node.attrs.find("stride")->second)
                            : nullptr;
  const auto st = st_list && st_list->empty() ? k : spatial_attr(node, "stride", sp, k);
  const auto pad = spatial_attr(node, "padding", sp, std::vector<int64_t>(sp, 0));
  const auto dil = spatial_attr(node, "dilation", sp, std::vector<int64_t>(sp, 1));
  if (k.size() != sp)
    op_fail(node, "kernel_size is required");
  if (!is_max && node.attrs.contains("dilation"))
    op_fail(node, "avg pooling has no dilation");
  // Spatial dims right-aligned into (D, H, W); missing leading dims are 1 with a unit window.
  int64_t sz[3] = {1, 1, 1}, osz[3] = {1, 1, 1}, kk[3] = {1, 1, 1}, ss[3] = {1, 1, 1},
          pp[3] = {0, 0, 0}, dd[3] = {1, 1, 1};
  for (std::size_t i = 0; i < sp; ++i) {
    const std::size_t d = 3 - sp + i;
    sz[d] = x.shape[2 + i];
    osz[d] = out.shape[2 + i];
    kk[d] = k[i];
    ss[d] = st[i];
    pp[d] = pad[i];
    dd[d] = dil[i];
    if (kk[d] < 1 || ss[d] < 1 || pp[d] < 0 || dd[d] < 1)
      op_fail(node, "kernel_size, stride and dilation must be >= 1 and padding >= 0");
  }
  PoolParams p{sz[0], sz[1], sz[2], osz[0], osz[1], osz[2], kk[0], kk[1], kk[2], ss[0],
               ss[1], ss[2], pp[0], pp[1],  pp[2],  dd[0],  dd[1], dd[2], 0,     true};
  p.count_include_pad = attr_bool(node.attrs, "count_include_pad", true);
  p.divisor = is_max ? 0 : attr_int(node.attrs, "divisor_override", 0);
  if (node.attrs.contains("divisor_override") && p.divisor == 0)
    op_fail(node, "divisor_override must not be zero");
  const int64_t planes = x.shape[0] * x.shape[1];
  if (out.shape[0] != x.shape[0] || out.shape[1] != x.shape[1])
    op_fail(node, "output batch/channels differ from x");
  const int64_t n = out.numel();
  if (n == 0)
    return;
  // A 3-D pool whose depth window is trivial is a 2-D pool of every depth slice: the 2-D paths
  // (cuDNN, tiles) apply to the planes of its D slices.
  const bool flat = p.kd == 1 && p.sd == 1 && p.pd == 0 && p.D == p.OD;
  const int64_t planes2d = flat ? planes * p.D : planes;
  PoolParams p2 = p;
  if (flat)
    p2.D = p2.OD = 1;
  // cuDNN pools non-overlapping 2-D windows (stride = kernel size) faster than the kernels below
  // (H100: 0.93 vs 1.24 ms for k4 on 128x64x254x254, 0.57 vs 1.03 ms for k2 in
  // l2/kb_conv2d_sub_hardswish_maxpool_mish); overlapping windows stay with the own kernels
  // (k4 s1 on 32x64x512x512: 4.95 vs 8.89 ms). docs/baselines.md has the comparison. A divisor
  // override has no cuDNN mode.
  const bool non_overlapping =
      sp == 2 && p.sh == p.kh && p.sw == p.kw && p.dh == 1 && p.dw == 1 && p.ph == 0 && p.pw == 0;
  if ((ctx.impl().prefer_cudnn || non_overlapping) && p.divisor == 0) {
    CudnnPoolArgs a{};
    a.nsp = flat ? 2 : 3;
    const PoolParams& q = flat ? p2 : p;
    const int64_t qi[3] = {q.D, q.H, q.W}, qo[3] = {q.OD, q.OH, q.OW}, qk[3] = {q.kd, q.kh, q.kw},
                  qs[3] = {q.sd, q.sh, q.sw}, qp[3] = {q.pd, q.ph, q.pw},
                  qd[3] = {q.dd, q.dh, q.dw};
    for (int i = 0; i < 3; ++i) {
      a.in[i] = qi[i];
      a.out[i] = qo[i];
      a.k[i] = qk[i];
      a.s[i] = qs[i];
      a.p[i] = qp[i];
      a.d[i] = qd[i];
    }
    a.n = x.shape[0];
    a.c = planes2d / x.shape[0]; // C, or C * D for a 3-D pool run as 2-D pools of its slices
    a.count_include_pad = p.count_include_pad;
    a.is_max = is_max;
    if (cudnn_pool(ctx, node, x, out, a))
      return;
  }
  KB_DISPATCH_FLOAT(x.dtype, node, {
    using A = Acc<T>;
    // Window sizes beyond int range cannot be tiled; 1-D pools run per output (height 1).
    TileGeom t{};
    if (flat && sp >= 2 && std::max({p2.kh, p2.kw, p2.sh, p2.sw, p2.dh, p2.dw}) < 4096)
      t = pick_tile<A>(p2);
    if (t.tile_w > 0 && (p2.OH + t.tile_h - 1) / t.tile_h > 65535)
      t.tile_w = 0;
    if (t.tile_w > 0) {
      const dim3 grid(static_cast<unsigned>((p2.OW + t.tile_w - 1) / t.tile_w),
                      static_cast<unsigned>((p2.OH + t.tile_h - 1) / t.tile_h),
                      static_cast<unsigned>(std::min<int64_t>(planes2d, 65535)));
      const dim3 block(k_block_x, k_block_y);
      const std::size_t smem = tile_smem<A>(t);
      if (is_max)
        pool2d_tiled_kernel<T, true><<<grid, block, smem, ctx.stream()>>>(
            static_cast<const T*>(x.data), static_cast<T*>(out.data), planes2d, p2, t);
      else
        pool2d_tiled_kernel<T, false><<<grid, block, smem, ctx.stream()>>>(
            static_cast<const T*>(x.data), static_cast<T*>(out.data), planes2d, p2, t);
    } else if (is_max)
      max_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
    else
      avg_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
  });
  KB_CUDA_CHECK_LAUNCH();
}

// ----- adaptive pooling -------------------------------------------------------------------------

namespace {

// Spatial dims right-aligned into (D, H, W) as for the fixed-window pools.
struct AdaptiveParams {
  int64_t in[3], out[3];
};

// PyTorch's window [floor(i * in / out), ceil((i + 1) * in / out)) of output i along one dim, in
// a form whose products stay below out * in (the host checks that this fits).
__device__ __forceinline__ int64_t adaptive_start(int64_t i, int64_t out, int64_t in) {
  return (i / out) * in + ((i % out) * in) / out;
}
__device__ __forceinline__ int64_t adaptive_end(int64_t i, int64_t out, int64_t in) {
  const int64_t j = i + 1;
  return (j / out) * in + ((j % out) * in + out - 1) / out;
}

template <bool IsMax, class A> __device__ __forceinline__ A adaptive_combine(A acc, A v) {
  if constexpr (IsMax)
    return (v > acc || v != v) ? v : acc; // NaN propagates and then stays
  else
    return acc + v;
}

// G threads per output (1, 32 or 256) in blocks of 256: the G threads stride through the window's
// elements (row-major over its box), then combine their partials with shuffles (and, for G = 256,
// through shared memory). Outputs are visited grid-stride, uniformly per warp (G = 32) or per
// block (G = 256), so every shuffle and barrier is reached by all the threads it names.
template <class T, bool IsMax, int G>
__global__ void __launch_bounds__(256)
    adaptive_pool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n_out,
                         AdaptiveParams p) {
  static_assert(G == 1 || G == 32 || G == 256, "one thread, one warp or one block per output");
  using A = Acc<T>;
  constexpr int per_block = 256 / G;
  __shared__ A partial[8];
  const int lane = static_cast<int>(threadIdx.x) % G;
  const int slot = static_cast<int>(threadIdx.x) / G;
  const int64_t in_plane = p.in[0] * p.in[1] * p.in[2];
  const int64_t out_plane = p.out[0] * p.out[1] * p.out[2];
  for (int64_t base = int64_t{blockIdx.x} * per_block; base < n_out;
       base += int64_t{gridDim.x} * per_block) {
    const int64_t i = base + slot;
    A acc = IsMax ? neg_inf<A>() : A(0);
    int64_t count = 1;
    if (i < n_out) {
      const int64_t ow = i % p.out[2];
      const int64_t oh = (i / p.out[2]) % p.out[1];
      const int64_t od = (i / (p.out[2] * p.out[1])) % p.out[0];
      const int64_t plane = i / out_plane;
      const int64_t d0 = adaptive_start(od, p.out[0], p.in[0]);
      const int64_t h0 = adaptive_start(oh, p.out[1], p.in[1]);
      const int64_t w0 = adaptive_start(ow, p.out[2], p.in[2]);
      const int64_t wd = adaptive_end(od, p.out[0], p.in[0]) - d0;
      const int64_t wh = adaptive_end(oh, p.out[1], p.in[1]) - h0;
      const int64_t ww = adaptive_end(ow, p.out[2], p.in[2]) - w0;
      count = wd * wh * ww;
      const T* xp = x + plane * in_plane + (d0 * p.in[1] + h0) * p.in[2] + w0;
      // Element e of the box is (a, b, c) = (e / (wh * ww), (e / ww) % wh, e % ww); each thread
      // starts at e = lane and steps by G, carrying instead of dividing.
      int64_t c = lane % ww, b = (lane / ww) % wh, a = lane / (ww * wh);
      const int64_t step_c = G % ww, step_rows = G / ww;
      const int64_t step_b = step_rows % wh, step_a = step_rows / wh;
      for (int64_t e = lane; e < count; e += G) {
        acc = adaptive_combine<IsMax>(acc, to_acc(xp[(a * p.in[1] + b) * p.in[2] + c]));
        c += step_c;
        b += step_b;
        a += step_a;
        if (c >= ww) {
          c -= ww;
          ++b;
        }
        if (b >= wh) {
          b -= wh;
          ++a;
        }
      }
    }
    if constexpr (G >= 32) {
      for (int o = 16; o > 0; o >>= 1)
        acc = adaptive_combine<IsMax>(acc, __shfl_xor_sync(0xffffffffu, acc, o));
    }
    if constexpr (G == 256) {
      __syncthreads(); // the previous output's partials have been read
      if (lane % 32 == 0)
        partial[lane / 32] = acc;
      __syncthreads();
      acc = partial[0];
      for (int w = 1; w < 8; ++w)
        acc = adaptive_combine<IsMax>(acc, partial[w]);
    }
    if (i < n_out && lane == 0)
      y[i] = from_acc<T>(IsMax ? acc : acc / static_cast<A>(count));
  }
}

template <class T, bool IsMax>
void launch_adaptive(const T* x, T* y, int64_t n_out, const AdaptiveParams& p, int group,
                     cudaStream_t s) {
  const int grid = grid_for(n_out * group, 256);
  if (group == 256)
    adaptive_pool_kernel<T, IsMax, 256><<<grid, 256, 0, s>>>(x, y, n_out, p);
  else if (group == 32)
    adaptive_pool_kernel<T, IsMax, 32><<<grid, 256, 0, s>>>(x, y, n_out, p);
  else
    adaptive_pool_kernel<T, IsMax, 1><<<grid, 256, 0, s>>>(x, y, n_out, p);
}

} // namespace

void op_adaptive_pool(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                      const DeviceTensor& out) {
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  if (out.dtype != x.dtype)
    op_fail(node, "output dtype differs from x");
  const bool is_max = node.op.starts_with("adaptive_max");
  const std::size_t sp = node.op.ends_with("1d") ? 1 : node.op.ends_with("2d") ? 2 : 3;
  if (x.shape.size() != sp + 2 || out.shape.size() != sp + 2)
    op_fail(node, str_cat("x and the output must have rank ", sp + 2));
  if (out.shape[0] != x.shape[0] || out.shape[1] != x.shape[1])
    op_fail(node, "output batch/channels differ from x");
  const auto size = spatial_attr(node, "output_size", sp, {});
  AdaptiveParams p{{1, 1, 1}, {1, 1, 1}};
  // Upper bound of the window size: ceil(in / out) + 1 elements along a dim that out does not
  // divide, in / out along one it does.
  double window = 1.0; // in double: a product of three huge extents must not overflow
  for (std::size_t i = 0; i < sp; ++i) {
    const std::size_t d = 3 - sp + i;
    p.in[d] = x.shape[2 + i];
    p.out[d] = out.shape[2 + i];
    if (size.size() != sp || size[i] != p.out[d] || p.out[d] < 1 || p.in[d] < 1)
      op_fail(node, "output_size does not match the output's shape");
    // The window bounds multiply an output index by the input size (checked by shape inference;
    // rechecked here because the kernels have no checked arithmetic).
    if (p.in[d] > INT64_MAX / (p.out[d] + 1))
      op_fail(node, "input and output sizes too large for the window arithmetic");
    window *= static_cast<double>((p.in[d] + p.out[d] - 1) / p.out[d] +
                                  (p.in[d] % p.out[d] != 0 ? 1 : 0));
  }
  const int64_t n = out.numel();
  if (n == 0)
    return;
  // One thread per output for small windows; a warp, then a whole block, for larger ones, so
  // that a global pool over a large plane reads it coalesced and with enough threads in flight.
  const int group = window >= 4096 ? 256 : window >= 64 ? 32 : 1;
  KB_DISPATCH_FLOAT(x.dtype, node, {
    if (is_max)
      launch_adaptive<T, true>(static_cast<const T*>(x.data), static_cast<T*>(out.data), n, p,
                               group, ctx.stream());
    else
      launch_adaptive<T, false>(static_cast<const T*>(x.data), static_cast<T*>(out.data), n, p,
                                group, ctx.stream());
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
