// max_pool1d/2d and avg_pool1d/2d: one thread per output element (1-D pools run as 2-D pools of
// height 1). Supports dilation, ceil_mode (via the output shape) and count_include_pad.
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
    int64_t hs = oh * p.sh - p.ph, ws = ow * p.sw - p.pw;
    int64_t he = std::min(hs + p.kh, p.H + p.ph), we = std::min(ws + p.kw, p.W + p.pw);
    const int64_t pool_size = (he - hs) * (we - ws);
    hs = std::max<int64_t>(hs, 0);
    ws = std::max<int64_t>(ws, 0);
    he = std::min(he, p.H);
    we = std::min(we, p.W);
    A sum = 0;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w)
        sum += to_acc(xp[h * p.W + w]);
    const int64_t divisor = p.count_include_pad ? pool_size : (he - hs) * (we - ws);
    y[i] = from_acc<T>(sum / static_cast<A>(divisor));
  }
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
  KB_DISPATCH_FLOAT(x.dtype, node, {
    if (is_max)
      max_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
    else
      avg_pool_kernel<T><<<grid_for(n, 256), 256, 0, ctx.stream()>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), planes, p);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
