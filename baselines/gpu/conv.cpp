// conv1d/2d/3d (cuDNN forward) and conv_transpose1d/2d/3d (cuDNN backward-data, or with stride 1
// the equivalent forward convolution with a flipped filter, for which cuDNN has faster FP32
// kernels): descriptors and the algorithm chosen once per shape by cuDNN's heuristics (like PyTorch
// eager without benchmark mode) and cached in the Context. f64 and shapes cuDNN refuses run the
// direct kernels.
#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "gpu_internal.hpp"

namespace kb::gpu {

namespace {

struct ConvPlan : Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool use_cudnn = false;
  // A transposed convolution run as a forward one: `filter` holds the rewritten filter.
  bool forward_equivalent = false;
  DeviceBuffer filter;
  int algo = 0;
  std::size_t workspace_bytes = 0;
  ~ConvPlan() override {
    if (x)
      cudnnDestroyTensorDescriptor(x);
    if (y)
      cudnnDestroyTensorDescriptor(y);
    if (w)
      cudnnDestroyFilterDescriptor(w);
    if (conv)
      cudnnDestroyConvolutionDescriptor(conv);
  }
};

constexpr std::size_t k_max_workspace_bytes = std::size_t{4} << 30;

std::string dims_key(const int64_t* v) {
  return fmt::format("{}x{}x{}", v[0], v[1], v[2]);
}

void set_tensor(const OpNode& node, cudnnTensorDescriptor_t d, DType t, int64_t n, int64_t c,
                const int64_t* sp, int nsp) {
  // cuDNN wants at least 4 dims: 1-D convolutions run as 2-D ones of height 1.
  const int nb = std::max(nsp, 2) + 2;
  std::vector<int> dims, strides(nb);
  dims.push_back(static_cast<int>(n));
  dims.push_back(static_cast<int>(c));
  for (int i = 3 - std::max(nsp, 2); i < 3; ++i)
    dims.push_back(static_cast<int>(sp[i]));
  int64_t s = 1;
  for (int i = nb - 1; i >= 0; --i) {
    strides[i] = static_cast<int>(s);
    s *= dims[i];
  }
  if (s >= (int64_t{1} << 31))
    op_fail(node, "tensor too large for cuDNN's 32-bit descriptors");
  KB_CUDNN_CHECK(
      cudnnSetTensorNdDescriptor(d, cudnn_data_type(t), nb, dims.data(), strides.data()));
}

// Fills the plan's descriptors; the filter is [k0, k1, kernel...].
void make_descriptors(const OpNode& node, ConvPlan& p, DType t, const ConvGeom& g, int nsp,
                      bool transposed, cudnnMathType_t math) {
  KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  KB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  KB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  set_tensor(node, p.x, t, g.N, g.Cin, g.in, nsp);
  set_tensor(node, p.y, t, g.N, g.Cout, g.out, nsp);
  const int ns = std::max(nsp, 2);
  std::vector<int> fdims = {static_cast<int>(transposed ? g.Cin : g.Cout),
                            static_cast<int>(transposed ? g.Cout / g.groups : g.Cin / g.groups)};
  std::vector<int> pads, strides, dils;
  for (int i = 3 - ns; i < 3; ++i) {
    fdims.push_back(static_cast<int>(g.k[i]));
    pads.push_back(static_cast<int>(g.pad[i]));
    strides.push_back(static_cast<int>(g.stride[i]));
    dils.push_back(static_cast<int>(g.dil[i]));
  }
  KB_CUDNN_CHECK(cudnnSetFilterNdDescriptor(p.w, cudnn_data_type(t), CUDNN_TENSOR_NCHW,
                                            static_cast<int>(fdims.size()), fdims.data()));
  KB_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(
      p.conv, ns, pads.data(), strides.data(), dils.data(), CUDNN_CROSS_CORRELATION,
      t == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT));
  KB_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, static_cast<int>(g.groups)));
  KB_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, math));
}

// Picks the first heuristic result that succeeded, respects the precision contract (strict FP32:
// FMA math only) and fits the workspace limit.
template <class Perf> bool pick(const Perf* perf, int n, bool strict_fp32, ConvPlan& p) {
  for (int i = 0; i < n; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > k_max_workspace_bytes)
      continue;
    if (strict_fp32 && perf[i].mathType != CUDNN_FMA_MATH)
      continue;
    p.algo = static_cast<int>(perf[i].algo);
    p.workspace_bytes = perf[i].memory;
    KB_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, perf[i].mathType));
    return true;
  }
  return false;
}

// The forward geometry equal to transposed convolution `g`, if there is one: stride 1, no output
// padding, padding no larger than dil * (k - 1).
std::optional<ConvGeom> forward_equivalent(const ConvGeom& g) {
  ConvGeom f = g;
  for (int i = 0; i < 3; ++i) {
    const int64_t reach = g.dil[i] * (g.k[i] - 1);
    f.pad[i] = reach - g.pad[i];
    if (g.stride[i] != 1 || f.pad[i] < 0 || g.out[i] != g.in[i] + 2 * f.pad[i] - reach)
      return std::nullopt;
  }
  return f;
}

// True when the forward convolution of the transposed one's output size gives back its input
// size in every spatial dim, as cuDNN's backward-data descriptors require. An output_padding of at
// least the stride (allowed when it is below the dilation) breaks this; the direct kernel runs
// then.
bool backward_data_sizes_agree(const ConvGeom& g) {
  for (int i = 0; i < 3; ++i) {
    const int64_t span = g.dil[i] * (g.k[i] - 1) + 1;
    if ((g.out[i] + 2 * g.pad[i] - span) / g.stride[i] + 1 != g.in[i])
      return false;
  }
  return true;
}

bool plan_forward(const OpNode& node, cudnnHandle_t h, ConvPlan& p, DType t, const ConvGeom& g,
                  int nsp, bool strict, cudnnMathType_t math) {
  make_descriptors(node, p, t, g, nsp, false, math);
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  const cudnnStatus_t st = cudnnGetConvolutionForwardAlgorithm_v7(
      h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf);
  if (st != CUDNN_STATUS_NOT_SUPPORTED)
    KB_CUDNN_CHECK(st);
  return st == CUDNN_STATUS_SUCCESS && pick(perf, n, strict, p);
}

ConvPlan& get_plan(Context& ctx, const OpNode& node, DType t, const ConvGeom& g, int nsp,
                   bool transposed) {
  auto& c = ctx.impl();
  const bool strict = t == DType::f32 && !c.allow_tf32_conv;
  const std::string key = fmt::format(
      "conv:{}:{}:{}:N{}:Ci{}:Co{}:g{}:in{}:out{}:k{}:s{}:p{}:d{}:tf32{}", transposed,
      dtype_name(t), nsp, g.N, g.Cin, g.Cout, g.groups, dims_key(g.in), dims_key(g.out),
      dims_key(g.k), dims_key(g.stride), dims_key(g.pad), dims_key(g.dil), c.allow_tf32_conv);
  if (Plan* p = c.find_plan(key))
    return *static_cast<ConvPlan*>(p);
  auto plan = std::make_unique<ConvPlan>();
  if (t != DType::f64) {
    const cudnnMathType_t math =
        t == DType::f32 ? (strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH) : CUDNN_TENSOR_OP_MATH;
    cudnnHandle_t h = c.cudnn();
    const std::optional<ConvGeom> fwd = transposed ? forward_equivalent(g) : std::nullopt;
    if (!transposed) {
      plan->use_cudnn = plan_forward(node, h, *plan, t, g, nsp, strict, math);
    } else if (fwd && plan_forward(node, h, *plan, t, *fwd, nsp, strict, math)) {
      plan->use_cudnn = plan->forward_equivalent = true;
      plan->filter = DeviceBuffer(
          static_cast<std::size_t>(g.Cout * (g.Cin / g.groups) * g.k[0] * g.k[1] * g.k[2]) *
          dtype_size(t));
    } else if (backward_data_sizes_agree(g)) {
      plan = std::make_unique<ConvPlan>();
      make_descriptors(node, *plan, t, g, nsp, true, math);
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int n = 0;
      const cudnnStatus_t st = cudnnGetConvolutionBackwardDataAlgorithm_v7(
          h, plan->w, plan->x, plan->conv, plan->y, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n,
          perf);
      if (st != CUDNN_STATUS_NOT_SUPPORTED)
        KB_CUDNN_CHECK(st);
      plan->use_cudnn = st == CUDNN_STATUS_SUCCESS && pick(perf, n, strict, *plan);
    }
  }
  return *static_cast<ConvPlan*>(c.put_plan(key, std::move(plan)));
}

// One cuDNN (or direct) call on a batch slice; no bias.
void run_slice(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& w,
               const DeviceTensor& out, const ConvGeom& g, int nsp, bool transposed) {
  ConvPlan& p = get_plan(ctx, node, x.dtype, g, nsp, transposed);
  auto& c = ctx.impl();
  if (!p.use_cudnn) {
    launch_conv_direct(node, x, w, out, g, transposed, c.stream);
    return;
  }
  void* ws = p.workspace_bytes ? c.scratch(p.workspace_bytes) : nullptr;
  const float alpha = 1.0f, beta = 0.0f;
  if (p.forward_equivalent) {
    launch_transposed_filter_as_forward(node, w, p.filter.get(), g, c.stream);
    KB_CUDNN_CHECK(cudnnConvolutionForward(c.cudnn(), &alpha, p.x, x.data, p.w, p.filter.get(),
                                           p.conv, static_cast<cudnnConvolutionFwdAlgo_t>(p.algo),
                                           ws, p.workspace_bytes, &beta, p.y, out.data));
  } else if (!transposed)
    KB_CUDNN_CHECK(cudnnConvolutionForward(c.cudnn(), &alpha, p.x, x.data, p.w, w.data, p.conv,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(p.algo), ws,
                                           p.workspace_bytes, &beta, p.y, out.data));
  else
    KB_CUDNN_CHECK(cudnnConvolutionBackwardData(c.cudnn(), &alpha, p.w, w.data, p.x, x.data, p.conv,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo),
                                                ws, p.workspace_bytes, &beta, p.y, out.data));
}

void run_conv(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
              const DeviceTensor& out, const ConvGeom& g, int nsp, bool transposed) {
  const DeviceTensor &x = in[0], &w = in[1];
  auto& c = ctx.impl();
  const int64_t x_per_n = g.Cin * g.in[0] * g.in[1] * g.in[2];
  const int64_t y_per_n = g.Cout * g.out[0] * g.out[1] * g.out[2];
  // cuDNN's descriptors hold 32-bit sizes: larger batches run as slices of the batch.
  const int64_t limit = (int64_t{1} << 31) - 1;
  const int64_t chunk = std::max<int64_t>(1, limit / std::max<int64_t>({x_per_n, y_per_n, 1}));
  if (x.dtype == DType::f64 || chunk >= g.N || std::max(x_per_n, y_per_n) > limit) {
    if (x.dtype != DType::f64 && std::max(x_per_n, y_per_n) > limit)
      launch_conv_direct(node, x, w, out, g, transposed, c.stream);
    else
      run_slice(ctx, node, x, w, out, g, nsp, transposed);
  } else {
    const std::size_t es = dtype_size(x.dtype);
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      ConvGeom gs = g;
      gs.N = std::min(chunk, g.N - n0);
      DeviceTensor xs{static_cast<char*>(x.data) + n0 * x_per_n * es, x.dtype, {}};
      DeviceTensor ys{static_cast<char*>(out.data) + n0 * y_per_n * es, out.dtype, {}};
      run_slice(ctx, node, xs, w, ys, gs, nsp, transposed);
    }
  }
  if (in.size() == 3) {
    if (in[2].numel() != g.Cout)
      op_fail(node, fmt::format("bias {} must have {} elements", shape_str(in[2].shape), g.Cout));
    launch_add_bias_channels(out, in[2], g.N, g.Cout, g.out[0] * g.out[1] * g.out[2], c.stream);
  }
}

void check_common(const OpNode& node, std::span<const DeviceTensor> in, const DeviceTensor& out,
                  std::size_t nsp) {
  if (in.size() < 2 || in.size() > 3)
    op_fail(node, "expects x, w and an optional b");
  require_float_dtype(node, in[0], "x");
  for (const auto& t : in)
    if (t.dtype != in[0].dtype)
      op_fail(node, "inputs must share one dtype");
  if (out.dtype != in[0].dtype)
    op_fail(node, "output dtype differs from x");
  if (in[0].shape.size() != nsp + 2 || in[1].shape.size() != nsp + 2 || out.shape.size() != nsp + 2)
    op_fail(node, fmt::format("x, w and the output must have rank {}", nsp + 2));
}

// Completes `g` (batch, channels and groups already set) with the spatial extents, strides,
// padding and dilation, right-aligned in its 3 spatial slots, checks the output, and runs.
void run_spatial(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                 const DeviceTensor& out, ConvGeom& g, std::size_t nsp, bool transposed) {
  const DeviceTensor &x = in[0], &w = in[1];
  const auto st = spatial_attr(node, "stride", nsp, std::vector<int64_t>(nsp, 1));
  const auto pad = spatial_attr(node, "padding", nsp, std::vector<int64_t>(nsp, 0));
  const auto dil = spatial_attr(node, "dilation", nsp, std::vector<int64_t>(nsp, 1));
  for (std::size_t i = 0; i < nsp; ++i) {
    if (st[i] < 1 || pad[i] < 0 || dil[i] < 1)
      op_fail(node, "stride and dilation must be >= 1 and padding >= 0");
    const std::size_t d = 3 - nsp + i;
    g.in[d] = x.shape[2 + i];
    g.out[d] = out.shape[2 + i];
    g.k[d] = w.shape[2 + i];
    g.stride[d] = st[i];
    g.pad[d] = pad[i];
    g.dil[d] = dil[i];
  }
  if (out.shape[0] != g.N || out.shape[1] != g.Cout)
    op_fail(node, "output batch/channels do not match");
  if (out.numel() == 0)
    return;
  run_conv(ctx, node, in, out, g, static_cast<int>(nsp), transposed);
}

// 1, 2 or 3 from the op's name (conv1d, conv_transpose3d, ...).
std::size_t spatial_dims_of(const OpNode& node) {
  if (node.op.ends_with("1d"))
    return 1;
  if (node.op.ends_with("2d"))
    return 2;
  if (node.op.ends_with("3d"))
    return 3;
  op_fail(node, "not a 1-D, 2-D or 3-D convolution");
}

} // namespace

std::vector<int64_t> spatial_attr(const OpNode& node, std::string_view key, std::size_t sd,
                                  std::vector<int64_t> fallback) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end())
    return fallback;
  if (const auto* l = std::get_if<std::vector<int64_t>>(&it->second)) {
    if (l->size() == 1)
      return std::vector<int64_t>(sd, l->front());
    if (l->size() != sd)
      op_fail(node,
              fmt::format("attribute '{}' has {} entries for {} spatial dims", key, l->size(), sd));
    return *l;
  }
  if (const auto* v = std::get_if<int64_t>(&it->second))
    return std::vector<int64_t>(sd, *v);
  op_fail(node, fmt::format("attribute '{}' must be an integer or a list of integers", key));
}

void op_conv(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  const std::size_t nsp = spatial_dims_of(node);
  check_common(node, in, out, nsp);
  const DeviceTensor &x = in[0], &w = in[1];
  ConvGeom g;
  g.N = x.shape[0];
  g.Cin = x.shape[1];
  g.Cout = w.shape[0];
  g.groups = attr_int(node.attrs, "groups", 1);
  if (g.groups <= 0 || g.Cin % g.groups || g.Cout % g.groups || w.shape[1] * g.groups != g.Cin)
    op_fail(node, fmt::format("groups={} does not fit x {} and w {}", g.groups, shape_str(x.shape),
                              shape_str(w.shape)));
  run_spatial(ctx, node, in, out, g, nsp, false);
}

void op_conv_transpose(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                       const DeviceTensor& out) {
  const std::size_t nsp = spatial_dims_of(node);
  check_common(node, in, out, nsp);
  const DeviceTensor &x = in[0], &w = in[1];
  ConvGeom g;
  g.N = x.shape[0];
  g.Cin = x.shape[1];
  g.groups = attr_int(node.attrs, "groups", 1);
  if (g.groups <= 0 || w.shape[0] != g.Cin || g.Cin % g.groups)
    op_fail(node, fmt::format("groups={} does not fit x {} and w {}", g.groups, shape_str(x.shape),
                              shape_str(w.shape)));
  g.Cout = w.shape[1] * g.groups;
  run_spatial(ctx, node, in, out, g, nsp, true);
}

} // namespace kb::gpu
