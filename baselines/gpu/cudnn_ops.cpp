// cuDNN's pooling, softmax (legacy API) and layer/RMS normalisation (backend norm operation) as
// alternatives to the own kernels of pool.cu, softmax.cu and norm.cu. The baseline uses the own
// kernels by default (docs/baselines.md compares the two). A Context with set_prefer_cudnn(true)
// runs these instead wherever cuDNN supports the configuration, so the GPU tests check both
// against the float64 CPU reference and bench_baselines --cudnn_ops=1 times both. Descriptors and
// execution plans are cached per shape in the Context.
#include <array>
#include <vector>

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

// Owner of one backend descriptor.
class BackendDesc {
public:
  BackendDesc() = default;
  explicit BackendDesc(cudnnBackendDescriptorType_t t) {
    KB_CUDNN_CHECK(cudnnBackendCreateDescriptor(t, &m_d));
  }
  BackendDesc(BackendDesc&& o) noexcept : m_d(o.m_d) { o.m_d = nullptr; }
  BackendDesc& operator=(BackendDesc&& o) noexcept {
    std::swap(m_d, o.m_d);
    return *this;
  }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  ~BackendDesc() {
    if (m_d)
      cudnnBackendDestroyDescriptor(m_d);
  }
  cudnnBackendDescriptor_t get() const { return m_d; }
  // Sets one attribute; false when cuDNN refuses it.
  template <class V>
  bool set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const V* values) {
    return cudnnBackendSetAttribute(m_d, name, type, count, values) == CUDNN_STATUS_SUCCESS;
  }
  bool finalize() { return cudnnBackendFinalize(m_d) == CUDNN_STATUS_SUCCESS; }

private:
  cudnnBackendDescriptor_t m_d = nullptr;
};

struct NormPlan : Plan {
  bool ok = false;
  BackendDesc plan;
  int64_t workspace = 0;
  bool has_bias = false;
  float epsilon = 0.0f;
};

enum : int64_t { k_uid_x = 1, k_uid_y, k_uid_scale, k_uid_bias, k_uid_eps };

// A packed 4-D tensor descriptor (by_value: a host scalar such as epsilon).
bool make_tensor(BackendDesc& t, int64_t uid, cudnnDataType_t type, std::array<int64_t, 4> dims,
                 bool by_value = false) {
  std::array<int64_t, 4> strides{};
  int64_t s = 1;
  for (int i = 3; i >= 0; --i) {
    strides[i] = s;
    s *= dims[i];
  }
  const int64_t alignment = by_value ? 4 : 16;
  t = BackendDesc(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  bool ok = t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type) &&
            t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data()) &&
            t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data()) &&
            t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid) &&
            t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  if (ok && by_value) {
    const bool yes = true;
    ok = t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
  }
  return ok && t.finalize();
}

// Builds the inference norm graph for x [rows, cols] (normalised over cols) and the first
// execution plan cuDNN's heuristics offer that finalises; false when there is none.
bool build_norm_plan(cudnnHandle_t h, NormPlan& p, bool rms, DType dt, int64_t rows, int64_t cols) {
  const cudnnDataType_t type = cudnn_data_type(dt);
  BackendDesc x, y, scale, bias, eps;
  if (!make_tensor(x, k_uid_x, type, {rows, cols, 1, 1}) ||
      !make_tensor(y, k_uid_y, type, {rows, cols, 1, 1}) ||
      !make_tensor(scale, k_uid_scale, type, {1, cols, 1, 1}) ||
      (p.has_bias && !make_tensor(bias, k_uid_bias, type, {1, cols, 1, 1})) ||
      !make_tensor(eps, k_uid_eps, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, true))
    return false;
  BackendDesc op(CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR);
  const cudnnBackendNormMode_t mode = rms ? CUDNN_RMS_NORM : CUDNN_LAYER_NORM;
  const cudnnBackendNormFwdPhase_t phase = CUDNN_NORM_FWD_INFERENCE;
  auto desc = [](const BackendDesc& d) { return d.get(); };
  const cudnnBackendDescriptor_t xd = desc(x), yd = desc(y), sd = desc(scale), bd = desc(bias),
                                 ed = desc(eps);
  bool ok =
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_MODE, CUDNN_TYPE_NORM_MODE, 1, &mode) &&
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_PHASE, CUDNN_TYPE_NORM_FWD_PHASE, 1, &phase) &&
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd) &&
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &sd) &&
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_EPSILON_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ed) &&
      op.set(CUDNN_ATTR_OPERATION_NORM_FWD_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
  if (ok && p.has_bias)
    ok = op.set(CUDNN_ATTR_OPERATION_NORM_FWD_BIAS_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bd);
  if (!ok || !op.finalize())
    return false;
  BackendDesc graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  const cudnnBackendDescriptor_t opd = op.get();
  if (!graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &opd) ||
      !graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) || !graph.finalize())
    return false;
  BackendDesc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendDescriptor_t gd = graph.get();
  const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
  if (!heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &gd) ||
      !heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode) ||
      !heur.finalize())
    return false;
  int64_t count = 0;
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                               nullptr) != CUDNN_STATUS_SUCCESS ||
      count <= 0)
    return false;
  std::vector<BackendDesc> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(cfgs.back().get());
  }
  int64_t got = 0;
  if (cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                               raw.data()) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < got; ++i) {
    BackendDesc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (!plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) ||
        !plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &raw[i]) ||
        !plan.finalize())
      continue;
    int64_t ws = 0, n = 0;
    if (cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                 CUDNN_TYPE_INT64, 1, &n, &ws) != CUDNN_STATUS_SUCCESS)
      continue;
    p.plan = std::move(plan);
    p.workspace = ws;
    return true;
  }
  return false;
}

} // namespace

bool cudnn_pool(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                const CudnnPoolArgs& a) {
  if (a.nsp != 2 && a.nsp != 3)
    op_fail(node, "cuDNN pooling takes 2 or 3 spatial dims");
  const int first = 3 - a.nsp; // first used entry of the right-aligned arrays
  for (int i = first; i < 3; ++i)
    if (a.d[i] != 1)
      return false; // cuDNN pooling has no dilation
  if (x.numel() > k_int_limit || out.numel() > k_int_limit || a.n > k_int_limit ||
      a.c > k_int_limit)
    return false;
  for (int i = first; i < 3; ++i)
    if (a.k[i] > k_int_limit || a.s[i] > k_int_limit || a.p[i] > k_int_limit)
      return false;
  auto& c = ctx.impl();
  const auto dims3 = [](const int64_t* v) { return fmt::format("{}x{}x{}", v[0], v[1], v[2]); };
  const std::string key = fmt::format(
      "cudnn_pool:{}:{}:{}:{}x{}:{}:{}:k{}:s{}:p{}:{}", node.op, dtype_name(x.dtype), a.nsp, a.n,
      a.c, dims3(a.in), dims3(a.out), dims3(a.k), dims3(a.s), dims3(a.p), a.count_include_pad);
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
    // x and y as packed [n, c, spatial...]; the window, padding and stride per spatial dim.
    const int nb = a.nsp + 2;
    std::vector<int> xd = {static_cast<int>(a.n), static_cast<int>(a.c)}, yd = xd;
    std::vector<int> win, pad, stride;
    for (int i = first; i < 3; ++i) {
      xd.push_back(static_cast<int>(a.in[i]));
      yd.push_back(static_cast<int>(a.out[i]));
      win.push_back(static_cast<int>(a.k[i]));
      pad.push_back(static_cast<int>(a.p[i]));
      stride.push_back(static_cast<int>(a.s[i]));
    }
    const auto packed = [nb](const std::vector<int>& d) {
      std::vector<int> st(nb);
      int64_t s = 1;
      for (int i = nb - 1; i >= 0; --i) {
        st[i] = static_cast<int>(s);
        s *= d[i];
      }
      return st;
    };
    const std::vector<int> xs = packed(xd), ys = packed(yd);
    KB_CUDNN_CHECK(
        cudnnSetTensorNdDescriptor(p->x, cudnn_data_type(x.dtype), nb, xd.data(), xs.data()));
    KB_CUDNN_CHECK(
        cudnnSetTensorNdDescriptor(p->y, cudnn_data_type(out.dtype), nb, yd.data(), ys.data()));
    const cudnnStatus_t st = cudnnSetPoolingNdDescriptor(p->pool, mode, CUDNN_PROPAGATE_NAN, a.nsp,
                                                         win.data(), pad.data(), stride.data());
    if (st == CUDNN_STATUS_SUCCESS) {
      // cuDNN sizes the output with floor division; ceil_mode shapes that differ stay with the
      // own kernel, whose windows PyTorch defines.
      std::vector<int> od(nb, 0);
      const cudnnStatus_t ost = cudnnGetPoolingNdForwardOutputDim(p->pool, p->x, nb, od.data());
      if (ost != CUDNN_STATUS_SUCCESS && !unsupported(ost))
        KB_CUDNN_CHECK(ost);
      p->ok = ost == CUDNN_STATUS_SUCCESS && od == yd;
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

bool cudnn_norm(Context& ctx, const OpNode& node, const DeviceTensor& x, const DeviceTensor& out,
                const void* weight, const void* bias, int64_t rows, int64_t cols, double eps,
                bool rms) {
  // cuDNN normalises each row of x [rows, cols, 1, 1] and always scales (layer norm: and
  // shifts); f64 and missing parameters stay with the own kernels.
  if (x.dtype == DType::f64 || !weight || (!rms && !bias) || rows <= 0 || cols <= 0)
    return false;
  for (const void* ptr :
       {static_cast<const void*>(x.data), static_cast<const void*>(out.data), weight, bias})
    if (ptr && reinterpret_cast<uintptr_t>(ptr) % 16 != 0)
      return false;
  auto& c = ctx.impl();
  const std::string key =
      fmt::format("cudnn_norm:{}:{}:{}x{}:{}", node.op, dtype_name(x.dtype), rows, cols, eps);
  auto* plan = static_cast<NormPlan*>(c.find_plan(key));
  if (!plan) {
    auto p = std::make_unique<NormPlan>();
    p->has_bias = !rms;
    p->epsilon = static_cast<float>(eps);
    p->ok = build_norm_plan(c.cudnn(), *p, rms, x.dtype, rows, cols);
    plan = static_cast<NormPlan*>(c.put_plan(key, std::move(p)));
  }
  if (!plan->ok)
    return false;
  std::vector<int64_t> uids = {k_uid_x, k_uid_y, k_uid_scale, k_uid_eps};
  std::vector<void*> ptrs = {x.data, out.data, const_cast<void*>(weight), &plan->epsilon};
  if (plan->has_bias) {
    uids.push_back(k_uid_bias);
    ptrs.push_back(const_cast<void*>(bias));
  }
  void* ws = plan->workspace > 0 ? c.scratch(static_cast<std::size_t>(plan->workspace)) : nullptr;
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  if (!pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                static_cast<int64_t>(uids.size()), uids.data()) ||
      !pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                static_cast<int64_t>(ptrs.size()), ptrs.data()) ||
      !pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws) || !pack.finalize())
    op_fail(node, "cuDNN refused the norm's variant pack");
  KB_CUDNN_CHECK(cudnnBackendExecute(c.cudnn(), plan->plan.get(), pack.get()));
  return true;
}

} // namespace kb::gpu
