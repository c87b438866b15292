// cuDNN's pooling and softmax as alternatives to the own kernels of pool.cu and softmax.cu. The
// baseline uses the own kernels by default (faster on the suite's shapes; docs/baselines.md). A
// Context with set_cudnn_pool_softmax(true) runs these instead wherever cuDNN supports the
// configuration, so the GPU tests check both against the float64 CPU reference and
// bench_baselines --cudnn_ops=1 times both. Descriptors are cached per shape in the Context.
#include <fmt/format.h>

#include "gpu_internal.hpp"

namespace kb::gpu {

namespace {

// cuDNN's legacy descriptors hold 32-bit sizes and strides.
constexpr int64_t k_int_limit = (int64_t{1} << 31) - 1;

struct PoolPlan : Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnPoolingDescriptor_t pool = nullptr;
  bool ok = false;
  ~PoolPlan() override {
    if (x)
      cudnnDestroyTensorDescriptor(x);
    if (y)
      cudnnDestroyTensorDescriptor(y);
    if (pool)
      cudnnDestroyPoolingDescriptor(pool);
  }
};

struct SoftmaxPlan : Plan {
  cudnnTensorDescriptor_t x = nullptr;
  ~SoftmaxPlan() override {
    if (x)
      cudnnDestroyTensorDescriptor(x);
  }
};

void set_nchw(cudnnTensorDescriptor_t d, DType t, int64_t n, int64_t c, int64_t h, int64_t w) {
  KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, cudnn_data_type(t),
                                            static_cast<int>(n), static_cast<int>(c),
                                            static_cast<int>(h), static_cast<int>(w)));
}

bool unsupported(cudnnStatus_t st) {
  return st == CUDNN_STATUS_NOT_SUPPORTED || st == CUDNN_STATUS_BAD_PARAM;
}

// alpha = 1, beta = 0 in the scaling type cuDNN expects for the data type.
struct Scale {
  double d1 = 1.0, d0 = 0.0;
  float f1 = 1.0f, f0 = 0.0f;
  const void* one(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DType t) const { return t == DType::f64 ? static_cast<const void*>(&d0) : &f0; }
};

} // namespace

bool cudnn_pool(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                const CudnnPoolArgs& a) {
  if (a.dh != 1 || a.dw != 1)
    return false; // cuDNN pooling has no dilation
  const int64_t N = x.shape[0], C = x.shape[1];
  if (x.numel() > k_int_limit || out.numel() > k_int_limit || N > k_int_limit || C > k_int_limit)
    return false;
  auto& c = ctx.impl();
  const std::string key = fmt::format("cudnn_pool:{}:{}:{}x{}x{}x{}:{}x{}:k{}x{}:s{}x{}:p{}x{}:{}",
                                      node.op, dtype_name(x.dtype), N, C, a.H, a.W, a.OH, a.OW,
                                      a.kh, a.kw, a.sh, a.sw, a.ph, a.pw, a.count_include_pad);
  auto* plan = static_cast<PoolPlan*>(c.find_plan(key));
  if (!plan) {
    auto p = std::make_unique<PoolPlan>();
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
    KB_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&p->pool));
    const cudnnPoolingMode_t mode = a.is_max ? CUDNN_POOLING_MAX_DETERMINISTIC
                                    : a.count_include_pad
                                        ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                        : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
    set_nchw(p->x, x.dtype, N, C, a.H, a.W);
    set_nchw(p->y, out.dtype, N, C, a.OH, a.OW);
    const cudnnStatus_t st = cudnnSetPooling2dDescriptor(
        p->pool, mode, CUDNN_PROPAGATE_NAN, static_cast<int>(a.kh), static_cast<int>(a.kw),
        static_cast<int>(a.ph), static_cast<int>(a.pw), static_cast<int>(a.sh),
        static_cast<int>(a.sw));
    if (st == CUDNN_STATUS_SUCCESS) {
      // cuDNN sizes the output with floor division; ceil_mode shapes that differ stay with the
      // own kernel, whose windows PyTorch defines.
      int on = 0, oc = 0, oh = 0, ow = 0;
      KB_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(p->pool, p->x, &on, &oc, &oh, &ow));
      p->ok = oh == a.OH && ow == a.OW;
    } else if (!unsupported(st)) {
      KB_CUDNN_CHECK(st);
    }
    plan = static_cast<PoolPlan*>(c.put_plan(key, std::move(p)));
  }
  if (!plan->ok)
    return false;
  const Scale s;
  const cudnnStatus_t st = cudnnPoolingForward(c.cudnn(), plan->pool, s.one(x.dtype), plan->x,
                                               x.data, s.zero(x.dtype), plan->y, out.data);
  if (unsupported(st)) {
    plan->ok = false; // e.g. a data type this cuDNN build has no pooling kernel for
    return false;
  }
  KB_CUDNN_CHECK(st);
  return true;
}

bool cudnn_softmax(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                   int64_t outer, int64_t R, int64_t inner, bool log) {
  if (x.dtype != out.dtype || R > k_int_limit || inner > k_int_limit || R * inner > k_int_limit)
    return false;
  auto& c = ctx.impl();
  // Batches of rows small enough for 32-bit descriptors.
  const int64_t per = R * inner;
  const int64_t chunk = std::min<int64_t>(outer, std::max<int64_t>(1, k_int_limit / per));
  const Scale s;
  const std::size_t es = dtype_size(x.dtype);
  for (int64_t o0 = 0; o0 < outer; o0 += chunk) {
    const int64_t n = std::min(chunk, outer - o0);
    const std::string key =
        fmt::format("cudnn_softmax:{}:{}x{}x{}", dtype_name(x.dtype), n, R, inner);
    auto* plan = static_cast<SoftmaxPlan*>(c.find_plan(key));
    if (!plan) {
      auto p = std::make_unique<SoftmaxPlan>();
      KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
      set_nchw(p->x, x.dtype, n, R, inner, 1); // softmax over C for every (n, h)
      plan = static_cast<SoftmaxPlan*>(c.put_plan(key, std::move(p)));
    }
    const std::size_t off = static_cast<std::size_t>(o0 * per) * es;
    const cudnnStatus_t st = cudnnSoftmaxForward(
        c.cudnn(), log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL,
        s.one(x.dtype), plan->x, static_cast<const char*>(x.data) + off, s.zero(x.dtype), plan->x,
        static_cast<char*>(out.data) + off);
    if (o0 == 0 && unsupported(st))
      return false; // nothing written yet: the own kernel takes the whole op
    KB_CUDNN_CHECK(st);
  }
  (void)node;
  return true;
}

} // namespace kb::gpu
