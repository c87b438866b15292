// Losses reduced to a scalar and cosine_similarity. Element-wise losses (mse_loss, smooth_l1_loss,
// huber_loss, kl_div) sum grid-wide into per-block partials, then one block divides; cross_entropy
// and triplet_margin_loss compute each row's loss in a block, then one block averages;
// cosine_similarity reduces rows with a block each, or columns (and short rows) with a thread each.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_partial_blocks = 1024;

__device__ __forceinline__ float d_pow(float x, float y) {
  return powf(x, y);
}
__device__ __forceinline__ double d_pow(double x, double y) {
  return pow(x, y);
}

enum class PairLoss : int { mse, smooth_l1, huber, kl_div, kl_div_log_target };

// One element's term; `param` is beta (smooth_l1) or delta (huber). x is the input, y the target.
template <PairLoss K, class A> __device__ __forceinline__ A pair_term(A x, A y, A param) {
  if constexpr (K == PairLoss::mse) {
    const A d = x - y;
    return d * d;
  } else if constexpr (K == PairLoss::smooth_l1) {
    const A z = d_abs(x - y);
    return z < param ? A(0.5) * z * z / param : z - A(0.5) * param;
  } else if constexpr (K == PairLoss::huber) {
    const A z = d_abs(x - y);
    return z < param ? A(0.5) * z * z : param * (z - A(0.5) * param);
  } else if constexpr (K == PairLoss::kl_div) {
    // xlogy(y, y): 0 where y is 0, NaN where y is NaN.
    const A ylogy = y != y ? y : (y == A(0) ? A(0) : y * d_log(y));
    return ylogy - y * x;
  } else {
    return d_exp(y) * (y - x);
  }
}

template <class T, PairLoss K>
__global__ void pair_loss_partial_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                         int64_t n, Acc<T> param, Acc<T>* __restrict__ partial) {
  using A = Acc<T>;
  __shared__ A shared[32];
  A acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    acc += pair_term<K>(to_acc(a[i]), to_acc(b[i]), param);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0)
    partial[blockIdx.x] = acc;
}

// out[0] = sum(values[0..m)) / divisor, by one block.
template <class T>
__global__ void mean_of_kernel(const Acc<T>* __restrict__ values, int64_t m, Acc<T> divisor,
                               T* __restrict__ out) {
  using A = Acc<T>;
  __shared__ A shared[32];
  A acc = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x)
    acc += values[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0)
    out[0] = from_acc<T>(acc / divisor);
}

template <class T>
void launch_pair_loss(PairLoss k, const T* a, const T* b, int64_t n, Acc<T> param, int blocks,
                      Acc<T>* partial, cudaStream_t s) {
  switch (k) {
  case PairLoss::mse:
    pair_loss_partial_kernel<T, PairLoss::mse><<<blocks, 256, 0, s>>>(a, b, n, param, partial);
    break;
  case PairLoss::smooth_l1:
    pair_loss_partial_kernel<T, PairLoss::smooth_l1>
        <<<blocks, 256, 0, s>>>(a, b, n, param, partial);
    break;
  case PairLoss::huber:
    pair_loss_partial_kernel<T, PairLoss::huber><<<blocks, 256, 0, s>>>(a, b, n, param, partial);
    break;
  case PairLoss::kl_div:
    pair_loss_partial_kernel<T, PairLoss::kl_div><<<blocks, 256, 0, s>>>(a, b, n, param, partial);
    break;
  case PairLoss::kl_div_log_target:
    pair_loss_partial_kernel<T, PairLoss::kl_div_log_target>
        <<<blocks, 256, 0, s>>>(a, b, n, param, partial);
    break;
  }
  KB_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void cross_entropy_rows_kernel(const T* __restrict__ logits,
                                          const int64_t* __restrict__ target, int64_t rows,
                                          int64_t C, Acc<T>* __restrict__ loss) {
  using A = Acc<T>;
  __shared__ A shared[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = logits + row * C;
    A m = neg_inf<A>();
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      m = fmax(m, to_acc(xr[c]));
    m = block_max(m, shared);
    A s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      s += d_exp(to_acc(xr[c]) - m);
    s = block_sum(s, shared);
    if (threadIdx.x == 0) {
      const int64_t t = target[row];
      // An out-of-range class cannot raise here; NaN makes the result visibly wrong instead.
      loss[row] = (t < 0 || t >= C) ? A(NAN) : m + d_log(s) - to_acc(xr[t]);
    }
  }
}

// |v|^p summed for a p-norm (p = 2 and p = 1 without pow), and the sum's root.
template <class A> __device__ __forceinline__ A norm_term(A v, A p) {
  return p == A(2) ? v * v : (p == A(1) ? d_abs(v) : d_pow(d_abs(v), p));
}
template <class A> __device__ __forceinline__ A norm_root(A sum, A p) {
  return p == A(2) ? d_sqrt(sum) : (p == A(1) ? sum : d_pow(sum, A(1) / p));
}

// Per row of [rows, D]: max(margin + ||a - p + eps||_p - ||a - n + eps||_p, 0), the negative
// distance replaced by ||p - n + eps||_p when that is smaller and swap is set. NaN propagates as
// in PyTorch's clamp_min.
template <class T>
__global__ void triplet_rows_kernel(const T* __restrict__ an, const T* __restrict__ po,
                                    const T* __restrict__ ne, int64_t rows, int64_t D,
                                    Acc<T> margin, Acc<T> p, Acc<T> eps, bool swap,
                                    Acc<T>* __restrict__ loss) {
  using A = Acc<T>;
  __shared__ A shared[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * D;
    A sp = 0, sn = 0, ss = 0;
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
      const A av = to_acc(an[base + k]), pv = to_acc(po[base + k]), nv = to_acc(ne[base + k]);
      sp += norm_term(av - pv + eps, p);
      sn += norm_term(av - nv + eps, p);
      if (swap)
        ss += norm_term(pv - nv + eps, p);
    }
    sp = block_sum(sp, shared);
    sn = block_sum(sn, shared);
    if (swap)
      ss = block_sum(ss, shared);
    if (threadIdx.x == 0) {
      const A dp = norm_root(sp, p);
      A dn = norm_root(sn, p);
      if (swap) {
        const A ds = norm_root(ss, p);
        dn = ds < dn ? ds : dn;
      }
      const A v = margin + dp - dn;
      loss[row] = v < A(0) ? A(0) : v;
    }
  }
}

// x1 . x2 / (max(||x1||, eps) * max(||x2||, eps)) of one reduced line; NaN norms propagate.
template <class A> __device__ __forceinline__ A cosine_of(A dot, A s1, A s2, A eps) {
  const A n1 = d_sqrt(s1), n2 = d_sqrt(s2);
  return dot / ((n1 < eps ? eps : n1) * (n2 < eps ? eps : n2));
}

// cosine_similarity over the middle dim of [outer, R, inner], a thread per output (o, i):
// adjacent threads read adjacent columns when inner > 1.
template <class T>
__global__ void cosine_cols_kernel(const T* __restrict__ x1, const T* __restrict__ x2,
                                   int64_t outer, int64_t R, int64_t inner, Acc<T> eps,
                                   T* __restrict__ out) {
  using A = Acc<T>;
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const int64_t base = o * R * inner + i;
    A dot = 0, s1 = 0, s2 = 0;
    for (int64_t r = 0; r < R; ++r) {
      const A a = to_acc(x1[base + r * inner]), b = to_acc(x2[base + r * inner]);
      dot += a * b;
      s1 += a * a;
      s2 += b * b;
    }
    out[t] = from_acc<T>(cosine_of(dot, s1, s2, eps));
  }
}

// cosine_similarity over the last dim of [rows, R], a block per row.
template <class T>
__global__ void cosine_rows_kernel(const T* __restrict__ x1, const T* __restrict__ x2, int64_t rows,
                                   int64_t R, Acc<T> eps, T* __restrict__ out) {
  using A = Acc<T>;
  __shared__ A shared[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * R;
    A dot = 0, s1 = 0, s2 = 0;
    for (int64_t k = threadIdx.x; k < R; k += blockDim.x) {
      const A a = to_acc(x1[base + k]), b = to_acc(x2[base + k]);
      dot += a * b;
      s1 += a * a;
      s2 += b * b;
    }
    dot = block_sum(dot, shared);
    s1 = block_sum(s1, shared);
    s2 = block_sum(s2, shared);
    if (threadIdx.x == 0)
      out[row] = from_acc<T>(cosine_of(dot, s1, s2, eps));
  }
}

// Rows of at least this many elements get a block each in cosine_similarity over the last dim.
constexpr int64_t k_cosine_block_row = 64;

void cross_entropy(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                   const DeviceTensor& out) {
  if (in.size() != 2 || in[0].shape.size() != 2 || in[1].dtype != DType::i64 ||
      in[1].numel() != in[0].shape[0])
    op_fail(node, "expects logits [N, C] and an i64 target [N]");
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  const int64_t N = in[0].shape[0], C = in[0].shape[1];
  KB_DISPATCH_FLOAT(in[0].dtype, node, {
    using A = Acc<T>;
    A* loss = static_cast<A*>(c.scratch(sizeof(A) * std::max<int64_t>(N, 1)));
    if (N > 0) {
      cross_entropy_rows_kernel<T>
          <<<static_cast<int>(std::min<int64_t>(N, 1 << 20)), C >= 2048 ? 512 : 128, 0, s>>>(
              static_cast<const T*>(in[0].data), static_cast<const int64_t*>(in[1].data), N, C,
              loss);
      KB_CUDA_CHECK_LAUNCH();
    }
    mean_of_kernel<T><<<1, 1024, 0, s>>>(loss, N, static_cast<A>(N), static_cast<T*>(out.data));
  });
  KB_CUDA_CHECK_LAUNCH();
}

void triplet_margin_loss(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                         const DeviceTensor& out) {
  if (in.size() != 3)
    op_fail(node, "expects anchor, positive and negative");
  const Shape& shape = in[0].shape;
  if (shape.size() != 1 && shape.size() != 2)
    op_fail(node, "anchor must have rank 1 or 2");
  for (const auto& t : in)
    if (t.dtype != in[0].dtype || t.shape != shape)
      op_fail(node, "anchor, positive and negative must share one shape and dtype");
  const double margin = attr_double(node.attrs, "margin", 1.0);
  const double p = attr_double(node.attrs, "p", 2.0);
  const double eps = attr_double(node.attrs, "eps", 1e-6);
  const bool swap = attr_bool(node.attrs, "swap", false);
  if (!(p > 0.0))
    op_fail(node, str_cat("p must be > 0, got ", p));
  const int64_t D = shape.back();
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  KB_DISPATCH_FLOAT(in[0].dtype, node, {
    using A = Acc<T>;
    A* loss = static_cast<A*>(c.scratch(sizeof(A) * std::max<int64_t>(rows, 1)));
    if (rows > 0) {
      triplet_rows_kernel<T>
          <<<static_cast<int>(std::min<int64_t>(rows, 1 << 20)), D >= 2048 ? 256 : 128, 0, s>>>(
              static_cast<const T*>(in[0].data), static_cast<const T*>(in[1].data),
              static_cast<const T*>(in[2].data), rows, D, static_cast<A>(margin), static_cast<A>(p),
              static_cast<A>(eps), swap, loss);
      KB_CUDA_CHECK_LAUNCH();
    }
    mean_of_kernel<T>
        <<<1, 1024, 0, s>>>(loss, rows, static_cast<A>(rows), static_cast<T*>(out.data));
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace

void op_loss(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  if (in.empty())
    op_fail(node, "expects inputs");
  require_float_dtype(node, in[0], "input");
  if (out.dtype != in[0].dtype || out.numel() != 1)
    op_fail(node, "output must be a scalar of the input's dtype");
  if (node.op == "cross_entropy") {
    cross_entropy(ctx, node, in, out);
    return;
  }
  if (node.op == "triplet_margin_loss") {
    triplet_margin_loss(ctx, node, in, out);
    return;
  }
  if (in.size() != 2)
    op_fail(node, "expects input and target");
  if (in[1].dtype != in[0].dtype || in[1].shape != in[0].shape)
    op_fail(node, "input and target must have the same shape and dtype");
  const int64_t n = in[0].numel();
  PairLoss kind = PairLoss::mse;
  double param = 0.0;
  double divisor = static_cast<double>(n);
  if (node.op == "mse_loss") {
    kind = PairLoss::mse;
  } else if (node.op == "smooth_l1_loss") {
    kind = PairLoss::smooth_l1;
    param = attr_double(node.attrs, "beta", 1.0);
    if (!(param >= 0.0))
      op_fail(node, str_cat("beta must be >= 0, got ", param));
  } else if (node.op == "huber_loss") {
    kind = PairLoss::huber;
    param = attr_double(node.attrs, "delta", 1.0);
    if (!(param > 0.0))
      op_fail(node, str_cat("delta must be > 0, got ", param));
  } else if (node.op == "kl_div") {
    kind =
        attr_bool(node.attrs, "log_target", false) ? PairLoss::kl_div_log_target : PairLoss::kl_div;
    const std::string reduction = attr_string(node.attrs, "reduction", "mean");
    if (reduction == "sum")
      divisor = 1.0;
    else if (reduction == "batchmean")
      divisor = in[0].shape.empty() ? 1.0 : static_cast<double>(in[0].shape[0]);
    else if (reduction != "mean")
      op_fail(node, "reduction must be batchmean, mean or sum, got " + reduction);
  } else {
    op_fail(node, "not a loss");
  }
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  KB_DISPATCH_FLOAT(in[0].dtype, node, {
    using A = Acc<T>;
    const int blocks = grid_for(n, 256, k_partial_blocks);
    A* partial = static_cast<A*>(c.scratch(sizeof(A) * blocks));
    launch_pair_loss<T>(kind, static_cast<const T*>(in[0].data), static_cast<const T*>(in[1].data),
                        n, static_cast<A>(param), blocks, partial, s);
    mean_of_kernel<T>
        <<<1, 1024, 0, s>>>(partial, blocks, static_cast<A>(divisor), static_cast<T*>(out.data));
  });
  KB_CUDA_CHECK_LAUNCH();
}

void op_cosine_similarity(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                          const DeviceTensor& out) {
  if (in.size() != 2)
    op_fail(node, "expects x1 and x2");
  require_float_dtype(node, in[0], "x1");
  if (in[1].dtype != in[0].dtype || in[1].shape != in[0].shape)
    op_fail(node, "x1 and x2 must have the same shape and dtype");
  if (out.dtype != in[0].dtype)
    op_fail(node, "output dtype differs from x1");
  const Shape& shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0)
    op_fail(node, "x1 must have rank >= 1");
  const int64_t dim = norm_dim(node, attr_int(node.attrs, "dim", 1), rank);
  const int64_t outer = shape_prod(shape, 0, dim), R = shape[dim];
  const int64_t inner = shape_prod(shape, dim + 1, rank);
  if (out.numel() != outer * inner)
    op_fail(node,
            str_cat("output ", shape_str(out.shape), " does not hold ", outer * inner, " values"));
  if (outer * inner == 0)
    return;
  const double eps = attr_double(node.attrs, "eps", 1e-8);
  cudaStream_t s = ctx.stream();
  KB_DISPATCH_FLOAT(in[0].dtype, node, {
    using A = Acc<T>;
    const T* a = static_cast<const T*>(in[0].data);
    const T* b = static_cast<const T*>(in[1].data);
    T* y = static_cast<T*>(out.data);
    if (inner == 1 && R >= k_cosine_block_row)
      cosine_rows_kernel<T>
          <<<static_cast<int>(std::min<int64_t>(outer, 1 << 20)), R >= 2048 ? 256 : 128, 0, s>>>(
              a, b, outer, R, static_cast<A>(eps), y);
    else
      cosine_cols_kernel<T><<<grid_for(outer * inner, 256), 256, 0, s>>>(a, b, outer, R, inner,
                                                                         static_cast<A>(eps), y);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
