// Element-wise ops: activations and other one-input maps, clamp, broadcasting add/sub/mul/div/pow/
// minimum/maximum (or with a scalar; a bool mask may stand for either operand), and the bias-add
// kernels used after GEMMs and convolutions.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

enum class Unary : int {
  relu,
  leaky_relu,
  gelu,
  gelu_tanh,
  sigmoid,
  tanh,
  swish,
  elu,
  selu,
  hardtanh,
  hardsigmoid,
  hardswish,
  mish,
  softplus,
  softsign,
  abs,
  exp,
  log,
  sqrt,
  clamp,
  relu6,
  sign,
  log2,
  neg,
  reciprocal,
  square,
  rsqrt
};

__device__ __forceinline__ float d_log2(float x) {
  return log2f(x);
}
__device__ __forceinline__ double d_log2(double x) {
  return log2(x);
}
__device__ __forceinline__ float d_pow(float a, float b) {
  return powf(a, b);
}
__device__ __forceinline__ double d_pow(double a, double b) {
  return pow(a, b);
}

template <class A> __device__ __forceinline__ A sigmoid_of(A x) {
  return A(1) / (A(1) + d_exp(-x));
}

template <class A> __device__ __forceinline__ A apply_unary(Unary op, A x, A p0, A p1) {
  switch (op) {
  case Unary::relu:
    return x > A(0) ? x : (x != x ? x : A(0));
  case Unary::leaky_relu:
    return x > A(0) ? x : x * p0;
  case Unary::gelu:
    return A(0.5) * x * (A(1) + d_erf(x * A(0.70710678118654752440)));
  case Unary::gelu_tanh: {
    const A inner = A(0.79788456080286535588) * (x + A(0.044715) * x * x * x);
    return A(0.5) * x * (A(1) + d_tanh(inner));
  }
  case Unary::sigmoid:
    return sigmoid_of(x);
  case Unary::tanh:
    return d_tanh(x);
  case Unary::swish:
    return x * sigmoid_of(x);
  case Unary::elu:
    return x > A(0) ? x : p0 * d_expm1(x);
  case Unary::selu: {
    const A scale = A(1.0507009873554804934193349852946);
    const A alpha = A(1.6732632423543772848170429916717);
    return scale * (x > A(0) ? x : alpha * d_expm1(x));
  }
  case Unary::hardtanh:
    return x < p0 ? p0 : (x > p1 ? p1 : x);
  case Unary::hardsigmoid: {
    const A v = x / A(6) + A(0.5);
    return v < A(0) ? A(0) : (v > A(1) ? A(1) : v);
  }
  case Unary::hardswish: {
    const A v = x + A(3);
    return x * (v < A(0) ? A(0) : (v > A(6) ? A(6) : v)) / A(6);
  }
  case Unary::mish:
    return x * d_tanh(d_log1p(d_exp(x)));
  case Unary::softplus:
    return x * p0 > p1 ? x : d_log1p(d_exp(x * p0)) / p0;
  case Unary::softsign:
    return x / (A(1) + d_abs(x));
  case Unary::abs:
    return d_abs(x);
  case Unary::exp:
    return d_exp(x);
  case Unary::log:
    return d_log(x);
  case Unary::sqrt:
    return d_sqrt(x);
  case Unary::clamp: {
    // NaN stays NaN, as in torch.clamp; p0/p1 are -inf/+inf when absent.
    if (x != x)
      return x;
    return x < p0 ? p0 : (x > p1 ? p1 : x);
  }
  case Unary::relu6:
    return x < A(0) ? A(0) : (x > A(6) ? A(6) : x); // NaN fails both tests and stays
  case Unary::sign:
    return A((x > A(0)) - (x < A(0))); // NaN gives 0, as PyTorch's sign
  case Unary::log2:
    return d_log2(x);
  case Unary::neg:
    return -x;
  case Unary::reciprocal:
    return A(1) / x;
  case Unary::square:
    return x * x;
  case Unary::rsqrt:
    return A(1) / d_sqrt(x); // not rsqrtf: its approximation is off by up to 2 ulp
  }
  return x;
}

// 16 bytes of T: element-wise kernels move memory in such packs when every pointer is aligned,
// which is what brings a memory-bound op to the copy bandwidth (scalar loads leave ~15% behind).
template <class T> struct alignas(16) Pack16 { T v[16 / sizeof(T)]; };
template <class T> constexpr int k_pack = 16 / sizeof(T);

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Threads for n elements: one per pack when vectorised (the tail is handled by the same threads).
int64_t threads_for(int64_t n, int pack, bool vec) {
  return vec ? n / pack + 1 : n;
}

// y[i] = f(x[i]) for the n elements, computed in T's accumulation type; in 16-byte packs when
// `vec` (every pointer aligned), with the tail done element by element.
template <class T, class F>
__global__ void map1_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, F f, bool vec) {
  const int64_t tid = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t packs = n / k_pack<T>;
    const auto* xp = reinterpret_cast<const Pack16<T>*>(x);
    auto* yp = reinterpret_cast<Pack16<T>*>(y);
    for (int64_t i = tid; i < packs; i += stride) {
      Pack16<T> p = xp[i];
#pragma unroll
      for (int j = 0; j < k_pack<T>; ++j)
        p.v[j] = from_acc<T>(f(to_acc(p.v[j])));
      yp[i] = p;
    }
    done = packs * k_pack<T>;
  }
  for (int64_t i = done + tid; i < n; i += stride)
    y[i] = from_acc<T>(f(to_acc(x[i])));
}

template <class A> struct UnaryFn {
  Unary op;
  A p0, p1;
  __device__ __forceinline__ A operator()(A x) const { return apply_unary(op, x, p0, p1); }
};

enum class Binary : int { add, sub, mul, div, pow, minimum, maximum };

template <class A> __device__ __forceinline__ A apply_binary(Binary op, A a, A b) {
  switch (op) {
  case Binary::add:
    return a + b;
  case Binary::sub:
    return a - b;
  case Binary::mul:
    return a * b;
  case Binary::div:
    return a / b;
  case Binary::pow:
    return d_pow(a, b);
  // NaN in either operand gives NaN, as torch.minimum / torch.maximum.
  case Binary::minimum:
    return a != a ? a : (b != b ? b : (b < a ? b : a));
  case Binary::maximum:
    return a != a ? a : (b != b ? b : (b > a ? b : a));
  }
  return a;
}

constexpr int k_max_dims = 8;

struct BroadcastIndex {
  int rank = 0;
  int64_t shape[k_max_dims] = {};
  int64_t sa[k_max_dims] = {};
  int64_t sb[k_max_dims] = {};
  FastDiv div[k_max_dims];
};

template <class A> struct ScalarFn {
  Binary op;
  A scalar;
  __device__ __forceinline__ A operator()(A x) const { return apply_binary(op, x, scalar); }
};

// y[i] = op(a[i], b[i]) for same-shaped inputs; packs as in map1_kernel.
template <class T>
__global__ void binary_flat_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                   T* __restrict__ y, int64_t n, Binary op, bool vec) {
  const int64_t tid = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t packs = n / k_pack<T>;
    const auto* ap = reinterpret_cast<const Pack16<T>*>(a);
    const auto* bp = reinterpret_cast<const Pack16<T>*>(b);
    auto* yp = reinterpret_cast<Pack16<T>*>(y);
    for (int64_t i = tid; i < packs; i += stride) {
      Pack16<T> pa = ap[i];
      const Pack16<T> pb = bp[i];
#pragma unroll
      for (int j = 0; j < k_pack<T>; ++j)
        pa.v[j] = from_acc<T>(apply_binary(op, to_acc(pa.v[j]), to_acc(pb.v[j])));
      yp[i] = pa;
    }
    done = packs * k_pack<T>;
  }
  for (int64_t i = done + tid; i < n; i += stride)
    y[i] = from_acc<T>(apply_binary(op, to_acc(a[i]), to_acc(b[i])));
}

// Offsets into a and b of output element i (32-bit index math, multiply-high division).
__device__ __forceinline__ void bcast_offsets32(const BroadcastIndex& ix, uint32_t i, uint32_t& oa,
                                                uint32_t& ob) {
  uint32_t rem = i;
  oa = ob = 0;
  for (int d = ix.rank - 1; d >= 0; --d) {
    const uint32_t q = ix.div[d].div(rem);
    const uint32_t c = rem - q * static_cast<uint32_t>(ix.shape[d]);
    oa += c * static_cast<uint32_t>(ix.sa[d]);
    ob += c * static_cast<uint32_t>(ix.sb[d]);
    rem = q;
  }
}

// 32-bit index math with multiply-high division (n < 2^31).
template <class T>
__global__ void binary_bcast32_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                      T* __restrict__ y, uint32_t n, Binary op, BroadcastIndex ix) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    uint32_t oa, ob;
    bcast_offsets32(ix, i, oa, ob);
    y[i] = from_acc<T>(apply_binary(op, to_acc(a[oa]), to_acc(b[ob])));
  }
}

template <class T>
__global__ void binary_bcast64_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                      T* __restrict__ y, int64_t n, Binary op, BroadcastIndex ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = ix.rank - 1; d >= 0; --d) {
      const int64_t c = rem % ix.shape[d];
      rem /= ix.shape[d];
      oa += c * ix.sa[d];
      ob += c * ix.sb[d];
    }
    y[i] = from_acc<T>(apply_binary(op, to_acc(a[oa]), to_acc(b[ob])));
  }
}

// Broadcasting in 16-byte packs: the innermost (coalesced) dim is a multiple of the pack, so a pack
// never crosses a row; `ix` indexes packs (its innermost extent and strides already in packs).
// Each operand is a pack (stride 1 in the inner dim, base aligned) or one value repeated (stride
// 0).
template <class T>
__global__ void binary_bcast_packed_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                           T* __restrict__ y, uint32_t packs, Binary op,
                                           BroadcastIndex ix, bool a_pack, bool b_pack) {
  constexpr int P = k_pack<T>;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += gridDim.x * blockDim.x) {
    uint32_t oa, ob;
    bcast_offsets32(ix, i, oa, ob);
    Pack16<T> pa, pb;
    if (a_pack)
      pa = *reinterpret_cast<const Pack16<T>*>(a + oa);
    else
#pragma unroll
      for (int j = 0; j < P; ++j)
        pa.v[j] = a[oa];
    if (b_pack)
      pb = *reinterpret_cast<const Pack16<T>*>(b + ob);
    else
#pragma unroll
      for (int j = 0; j < P; ++j)
        pb.v[j] = b[ob];
#pragma unroll
    for (int j = 0; j < P; ++j)
      pa.v[j] = from_acc<T>(apply_binary(op, to_acc(pa.v[j]), to_acc(pb.v[j])));
    reinterpret_cast<Pack16<T>*>(y)[i] = pa;
  }
}

// One operand a bool mask (0/1 bytes), the other of T: y[i] = op(a, b) with the mask first when
// MaskFirst. Broadcast offsets as in binary_bcast32_kernel (a's offsets index the first operand).
template <class T, bool MaskFirst>
__global__ void binary_mask32_kernel(const void* __restrict__ a, const void* __restrict__ b,
                                     T* __restrict__ y, uint32_t n, Binary op, BroadcastIndex ix) {
  using A = Acc<T>;
  const auto* m = static_cast<const uint8_t*>(MaskFirst ? a : b);
  const auto* x = static_cast<const T*>(MaskFirst ? b : a);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    uint32_t oa, ob;
    bcast_offsets32(ix, i, oa, ob);
    const A mv = m[MaskFirst ? oa : ob] ? A(1) : A(0);
    const A xv = to_acc(x[MaskFirst ? ob : oa]);
    y[i] = from_acc<T>(MaskFirst ? apply_binary(op, mv, xv) : apply_binary(op, xv, mv));
  }
}

template <class T, bool MaskFirst>
__global__ void binary_mask64_kernel(const void* __restrict__ a, const void* __restrict__ b,
                                     T* __restrict__ y, int64_t n, Binary op, BroadcastIndex ix) {
  using A = Acc<T>;
  const auto* m = static_cast<const uint8_t*>(MaskFirst ? a : b);
  const auto* x = static_cast<const T*>(MaskFirst ? b : a);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = ix.rank - 1; d >= 0; --d) {
      const int64_t c = rem % ix.shape[d];
      rem /= ix.shape[d];
      oa += c * ix.sa[d];
      ob += c * ix.sb[d];
    }
    const A mv = m[MaskFirst ? oa : ob] ? A(1) : A(0);
    const A xv = to_acc(x[MaskFirst ? ob : oa]);
    y[i] = from_acc<T>(MaskFirst ? apply_binary(op, mv, xv) : apply_binary(op, xv, mv));
  }
}

// Strides of `in` broadcast against `out` (0 where `in` has size 1 or lacks the dim).
Shape broadcast_strides_of(const Shape& in, const Shape& out) {
  Shape s(out.size(), 0);
  const Shape cs = contiguous_strides(in);
  const std::size_t off = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i)
    s[off + i] = in[i] == 1 ? 0 : cs[i];
  return s;
}

template <class T>
__global__ void bias_cols_kernel(T* __restrict__ y, const T* __restrict__ bias, int64_t rows,
                                 int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = from_acc<T>(to_acc(y[i]) + to_acc(bias[i % cols]));
}

// grid.y walks (n, channel) pairs so the channel needs no division per element.
template <class T>
__global__ void bias_channels_kernel(T* __restrict__ y, const T* __restrict__ bias,
                                     int64_t channels, int64_t inner, int64_t row_offset) {
  const int64_t row = blockIdx.y + row_offset;
  const Acc<T> b = to_acc(bias[row % channels]);
  T* p = y + row * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < inner;
       i += int64_t{gridDim.x} * blockDim.x)
    p[i] = from_acc<T>(to_acc(p[i]) + b);
}

const OpNode k_bias_node{"bias_add", {}, {}, {}, 0};

} // namespace

void op_unary(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
              const DeviceTensor& out) {
  static const std::map<std::string, Unary, std::less<>> names = {
      {"relu", Unary::relu},
      {"leaky_relu", Unary::leaky_relu},
      {"gelu", Unary::gelu},
      {"sigmoid", Unary::sigmoid},
      {"tanh", Unary::tanh},
      {"swish", Unary::swish},
      {"elu", Unary::elu},
      {"selu", Unary::selu},
      {"hardtanh", Unary::hardtanh},
      {"hardsigmoid", Unary::hardsigmoid},
      {"hardswish", Unary::hardswish},
      {"mish", Unary::mish},
      {"softplus", Unary::softplus},
      {"softsign", Unary::softsign},
      {"abs", Unary::abs},
      {"exp", Unary::exp},
      {"log", Unary::log},
      {"sqrt", Unary::sqrt},
      {"clamp", Unary::clamp},
      {"relu6", Unary::relu6},
      {"sign", Unary::sign},
      {"log2", Unary::log2},
      {"neg", Unary::neg},
      {"reciprocal", Unary::reciprocal},
      {"square", Unary::square},
      {"rsqrt", Unary::rsqrt}};
  const auto it = names.find(node.op);
  if (it == names.end())
    op_fail(node, "not an element-wise op");
  if (in.size() != 1)
    op_fail(node, "expects one input");
  require_float_dtype(node, in[0], "x");
  if (out.dtype != in[0].dtype || out.numel() != in[0].numel())
    op_fail(node, "output spec does not match the input");
  Unary op = it->second;
  double p0 = 0.0, p1 = 0.0;
  switch (op) {
  case Unary::leaky_relu:
    p0 = attr_double(node.attrs, "negative_slope", 0.01);
    break;
  case Unary::elu:
    p0 = attr_double(node.attrs, "alpha", 1.0);
    break;
  case Unary::hardtanh:
    p0 = attr_double(node.attrs, "min_val", -1.0);
    p1 = attr_double(node.attrs, "max_val", 1.0);
    break;
  case Unary::softplus:
    p0 = attr_double(node.attrs, "beta", 1.0);
    p1 = attr_double(node.attrs, "threshold", 20.0);
    break;
  case Unary::gelu: {
    const std::string approx = attr_string(node.attrs, "approximate", "none");
    if (approx == "tanh")
      op = Unary::gelu_tanh;
    else if (approx != "none")
      op_fail(node, str_cat("approximate must be 'none' or 'tanh', got '", approx, "'"));
    break;
  }
  case Unary::clamp:
    p0 = attr_double(node.attrs, "min", -HUGE_VAL);
    p1 = attr_double(node.attrs, "max", HUGE_VAL);
    break;
  default:
    break;
  }
  const int64_t n = out.numel();
  if (n == 0)
    return;
  const bool vec = aligned16(in[0].data) && aligned16(out.data);
  KB_DISPATCH_FLOAT(out.dtype, node, {
    map1_kernel<T><<<grid_for(threads_for(n, k_pack<T>, vec), 256), 256, 0, ctx.stream()>>>(
        static_cast<const T*>(in[0].data), static_cast<T*>(out.data), n,
        UnaryFn<Acc<T>>{op, static_cast<Acc<T>>(p0), static_cast<Acc<T>>(p1)}, vec);
  });
  KB_CUDA_CHECK_LAUNCH();
}

void op_binary(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  static const std::map<std::string, Binary, std::less<>> names = {
      {"add", Binary::add},        {"sub", Binary::sub}, {"mul", Binary::mul},
      {"div", Binary::div},        {"pow", Binary::pow}, {"minimum", Binary::minimum},
      {"maximum", Binary::maximum}};
  const auto found = names.find(node.op);
  if (found == names.end())
    op_fail(node, "not a binary op");
  const Binary op = found->second;
  if (in.empty() || in.size() > 2)
    op_fail(node, "expects one or two inputs");
  // A bool operand is a mask: 0/1 in the other operand's dtype.
  int mask = -1;
  for (std::size_t k = 0; k < in.size(); ++k)
    if (in[k].dtype == DType::b8 && in.size() == 2) {
      if (mask >= 0)
        op_fail(node, "both inputs are bool");
      mask = static_cast<int>(k);
    }
  for (std::size_t k = 0; k < in.size(); ++k) {
    if (static_cast<int>(k) == mask)
      continue;
    require_float_dtype(node, in[k], "input");
    if (in[k].dtype != out.dtype)
      op_fail(node, "inputs and output must share one dtype");
  }
  const int64_t n = out.numel();
  if (n == 0)
    return;
  cudaStream_t s = ctx.stream();
  if (in.size() == 1) {
    const double scalar = attr_double(node.attrs, "scalar");
    if (in[0].numel() != n)
      op_fail(node, "output spec does not match the input");
    const bool vec = aligned16(in[0].data) && aligned16(out.data);
    KB_DISPATCH_FLOAT(out.dtype, node, {
      map1_kernel<T><<<grid_for(threads_for(n, k_pack<T>, vec), 256), 256, 0, s>>>(
          static_cast<const T*>(in[0].data), static_cast<T*>(out.data), n,
          ScalarFn<Acc<T>>{op, static_cast<Acc<T>>(scalar)}, vec);
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  const Shape& os = out.shape;
  if (in[0].shape.size() > os.size() || in[1].shape.size() > os.size())
    op_fail(node, "input rank exceeds the output rank");
  if (mask < 0 && in[0].numel() == n && in[1].numel() == n) {
    const bool vec = aligned16(in[0].data) && aligned16(in[1].data) && aligned16(out.data);
    KB_DISPATCH_FLOAT(out.dtype, node, {
      binary_flat_kernel<T><<<grid_for(threads_for(n, k_pack<T>, vec), 256), 256, 0, s>>>(
          static_cast<const T*>(in[0].data), static_cast<const T*>(in[1].data),
          static_cast<T*>(out.data), n, op, vec);
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  // Coalesce dims: drop size-1 output dims, merge neighbours that are contiguous in both inputs.
  const Shape sa = broadcast_strides_of(in[0].shape, os);
  const Shape sb = broadcast_strides_of(in[1].shape, os);
  std::vector<int64_t> shp, va, vb;
  for (std::size_t d = 0; d < os.size(); ++d) {
    if (os[d] == 1)
      continue;
    if (!shp.empty() && va.back() == sa[d] * os[d] && vb.back() == sb[d] * os[d]) {
      shp.back() *= os[d];
      va.back() = sa[d];
      vb.back() = sb[d];
      continue;
    }
    shp.push_back(os[d]);
    va.push_back(sa[d]);
    vb.push_back(sb[d]);
  }
  if (static_cast<int>(shp.size()) > k_max_dims)
    op_fail(node, str_cat("broadcast over ", shp.size(), " dims exceeds ", k_max_dims));
  BroadcastIndex ix;
  ix.rank = static_cast<int>(shp.size());
  for (int d = 0; d < ix.rank; ++d) {
    ix.shape[d] = shp[d];
    ix.sa[d] = va[d];
    ix.sb[d] = vb[d];
    if (shp[d] < (int64_t{1} << 31))
      ix.div[d] = FastDiv(static_cast<uint32_t>(shp[d]));
  }
  const bool small = n < (int64_t{1} << 31) && in[0].numel() < (int64_t{1} << 31) &&
                     in[1].numel() < (int64_t{1} << 31);
  if (mask >= 0) {
    KB_DISPATCH_FLOAT(out.dtype, node, {
      T* y = static_cast<T*>(out.data);
      if (small && mask == 0)
        binary_mask32_kernel<T, true><<<grid_for(n, 256), 256, 0, s>>>(
            in[0].data, in[1].data, y, static_cast<uint32_t>(n), op, ix);
      else if (small)
        binary_mask32_kernel<T, false><<<grid_for(n, 256), 256, 0, s>>>(
            in[0].data, in[1].data, y, static_cast<uint32_t>(n), op, ix);
      else if (mask == 0)
        binary_mask64_kernel<T, true>
            <<<grid_for(n, 256), 256, 0, s>>>(in[0].data, in[1].data, y, n, op, ix);
      else
        binary_mask64_kernel<T, false>
            <<<grid_for(n, 256), 256, 0, s>>>(in[0].data, in[1].data, y, n, op, ix);
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  KB_DISPATCH_FLOAT(out.dtype, node, {
    const T* a = static_cast<const T*>(in[0].data);
    const T* b = static_cast<const T*>(in[1].data);
    T* y = static_cast<T*>(out.data);
    constexpr int P = k_pack<T>;
    const int inner = ix.rank - 1;
    // Packs when the inner dim splits into whole packs and each operand either runs along it
    // (stride 1, aligned base: its other strides are multiples of the inner extent) or is
    // constant along it (stride 0).
    const bool packed = small && ix.rank > 0 && shp[inner] % P == 0 && aligned16(y) &&
                        va[inner] <= 1 && vb[inner] <= 1 && (va[inner] == 0 || aligned16(a)) &&
                        (vb[inner] == 0 || aligned16(b));
    if (packed) {
      BroadcastIndex px = ix;
      px.shape[inner] = shp[inner] / P;
      px.sa[inner] = va[inner] * P;
      px.sb[inner] = vb[inner] * P;
      px.div[inner] = FastDiv(static_cast<uint32_t>(px.shape[inner]));
      const int64_t packs = n / P;
      binary_bcast_packed_kernel<T><<<grid_for(packs, 256), 256, 0, s>>>(
          a, b, y, static_cast<uint32_t>(packs), op, px, va[inner] == 1, vb[inner] == 1);
    } else if (small)
      binary_bcast32_kernel<T>
          <<<grid_for(n, 256), 256, 0, s>>>(a, b, y, static_cast<uint32_t>(n), op, ix);
    else
      binary_bcast64_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(a, b, y, n, op, ix);
  });
  KB_CUDA_CHECK_LAUNCH();
}

void launch_add_bias_cols(const DeviceTensor& out, const DeviceTensor& bias, int64_t rows,
                          int64_t cols, cudaStream_t s) {
  if (rows * cols == 0)
    return;
  KB_DISPATCH_FLOAT(out.dtype, k_bias_node, {
    bias_cols_kernel<T><<<grid_for(rows * cols, 256), 256, 0, s>>>(
        static_cast<T*>(out.data), static_cast<const T*>(bias.data), rows, cols);
  });
  KB_CUDA_CHECK_LAUNCH();
}

void launch_add_bias_channels(const DeviceTensor& out, const DeviceTensor& bias, int64_t n,
                              int64_t channels, int64_t inner, cudaStream_t s) {
  if (n * channels * inner == 0)
    return;
  const int64_t rows = n * channels;
  const int64_t gx = std::min<int64_t>((inner + 255) / 256, 1024);
  for (int64_t r0 = 0; r0 < rows; r0 += 65535) {
    const int64_t rc = std::min<int64_t>(65535, rows - r0);
    KB_DISPATCH_FLOAT(out.dtype, k_bias_node, {
      bias_channels_kernel<T>
          <<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(rc)), 256, 0, s>>>(
              static_cast<T*>(out.data), static_cast<const T*>(bias.data), channels, inner, r0);
    });
    KB_CUDA_CHECK_LAUNCH();
  }
}

} // namespace kb::gpu
