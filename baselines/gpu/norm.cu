// Normalisations: layer_norm, group_norm, instance_norm (Welford statistics, rows split over
// several blocks and merged with Chan's formula), batch_norm (inference) and rms_norm.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

enum class StatMode : int { welford, sum_squares };

// Partial statistics of chunk blockIdx.x of row blockIdx.y: (count, mean, m2) or (count, 0, sumsq).
template <class T>
__global__ void row_stats_kernel(const T* __restrict__ x, int64_t cols, int64_t chunk,
                                 int64_t splits, StatMode mode, Acc<T>* __restrict__ partial,
                                 int64_t row_offset) {
  using A = Acc<T>;
  __shared__ A shared[96];
  const int64_t row = blockIdx.y + row_offset;
  const int64_t begin = blockIdx.x * chunk;
  const int64_t end = std::min<int64_t>(cols, begin + chunk);
  const T* xr = x + row * cols;
  Welford<A> w;
  if (mode == StatMode::welford) {
    for (int64_t c = begin + threadIdx.x; c < end; c += blockDim.x)
      w.add(to_acc(xr[c]));
    block_welford(w, shared);
  } else {
    A ss = 0;
    for (int64_t c = begin + threadIdx.x; c < end; c += blockDim.x) {
      const A v = to_acc(xr[c]);
      ss += v * v;
    }
    ss = block_sum(ss, shared);
    w.n = static_cast<A>(end > begin ? end - begin : 0);
    w.m2 = ss;
  }
  if (threadIdx.x == 0) {
    A* p = partial + (row * splits + blockIdx.x) * 3;
    p[0] = w.n;
    p[1] = w.mean;
    p[2] = w.m2;
  }
}

// Merges the partials of each row into mean and 1/sqrt(var + eps) (rms: mean 0, 1/sqrt(ms + eps)).
template <class A>
__global__ void finalize_stats_kernel(const A* __restrict__ partial, int64_t rows, int64_t splits,
                                      StatMode mode, A eps, A* __restrict__ mean,
                                      A* __restrict__ rstd) {
  for (int64_t row = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; row < rows;
       row += int64_t{gridDim.x} * blockDim.x) {
    const A* p = partial + row * splits * 3;
    if (mode == StatMode::welford) {
      Welford<A> w;
      for (int64_t s = 0; s < splits; ++s)
        w.merge(p[s * 3], p[s * 3 + 1], p[s * 3 + 2]);
      mean[row] = w.mean;
      rstd[row] = d_rsqrt(w.m2 / w.n + eps);
    } else {
      A n = 0, ss = 0;
      for (int64_t s = 0; s < splits; ++s) {
        n += p[s * 3];
        ss += p[s * 3 + 2];
      }
      mean[row] = 0;
      rstd[row] = d_rsqrt(ss / n + eps);
    }
  }
}

// Running statistics of batch_norm as per-row (n, c) mean and rstd.
template <class T, class A>
__global__ void running_stats_kernel(const T* __restrict__ rm, const T* __restrict__ rv,
                                     int64_t rows, int64_t channels, A eps, A* __restrict__ mean,
                                     A* __restrict__ rstd) {
  for (int64_t row = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; row < rows;
       row += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = row % channels;
    mean[row] = to_acc(rm[c]);
    rstd[row] = d_rsqrt(to_acc(rv[c]) + eps);
  }
}

enum class Affine : int { none, per_col, per_channel };

struct ApplyParams {
  int64_t rows, cols;
  Affine affine;
  // per_channel: channel = (row % groups) * per_group + col / spatial
  int64_t groups, per_group, spatial;
};

template <class T>
__global__ void apply_kernel(const T* __restrict__ x, T* __restrict__ y,
                             const Acc<T>* __restrict__ mean, const Acc<T>* __restrict__ rstd,
                             const T* __restrict__ weight, const T* __restrict__ bias,
                             ApplyParams p) {
  using A = Acc<T>;
  const int64_t n = p.rows * p.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / p.cols, col = i - row * p.cols;
    A v = (to_acc(x[i]) - mean[row]) * rstd[row];
    if (p.affine != Affine::none) {
      const int64_t widx =
          p.affine == Affine::per_col ? col : (row % p.groups) * p.per_group + col / p.spatial;
      if (weight)
        v *= to_acc(weight[widx]);
      if (bias)
        v += to_acc(bias[widx]);
    }
    y[i] = from_acc<T>(v);
  }
}

// rms_norm over the middle dim of [outer, R, inner] (inner > 1): statistics per column.
template <class T>
__global__ void rms_cols_stats_kernel(const T* __restrict__ x, int64_t outer, int64_t R,
                                      int64_t inner, Acc<T> eps, Acc<T>* __restrict__ rstd) {
  using A = Acc<T>;
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const T* xc = x + o * R * inner + i;
    A ss = 0;
    for (int64_t r = 0; r < R; ++r) {
      const A v = to_acc(xc[r * inner]);
      ss += v * v;
    }
    rstd[t] = d_rsqrt(ss / static_cast<A>(R) + eps);
  }
}

template <class T>
__global__ void rms_cols_apply_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                      int64_t R, int64_t inner, const Acc<T>* __restrict__ rstd,
                                      const T* __restrict__ weight) {
  using A = Acc<T>;
  const int64_t n = outer * R * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t in = i % inner;
    const int64_t rest = i / inner;
    const int64_t r = rest % R, o = rest / R;
    A v = to_acc(x[i]) * rstd[o * inner + in];
    if (weight)
      v *= to_acc(weight[r]);
    y[i] = from_acc<T>(v);
  }
}

template <class T>
void row_stats(Context& ctx, const DeviceTensor& x, int64_t rows, int64_t cols, StatMode mode,
               double eps, Acc<T>* mean, Acc<T>* rstd, Acc<T>* partial_mem, int64_t splits,
               int64_t chunk) {
  cudaStream_t s = ctx.stream();
  for (int64_t r0 = 0; r0 < rows; r0 += 65535) {
    const int64_t rc = std::min<int64_t>(65535, rows - r0);
    row_stats_kernel<T>
        <<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(rc)), 256, 0, s>>>(
            static_cast<const T*>(x.data), cols, chunk, splits, mode, partial_mem, r0);
    KB_CUDA_CHECK_LAUNCH();
  }
  finalize_stats_kernel<Acc<T>><<<grid_for(rows, 256), 256, 0, s>>>(
      partial_mem, rows, splits, mode, static_cast<Acc<T>>(eps), mean, rstd);
  KB_CUDA_CHECK_LAUNCH();
}

template <class T>
void run_norm(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
              const DeviceTensor& out) {
  using A = Acc<T>;
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  const DeviceTensor& x = in[0];
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const double eps = attr_double(node.attrs, "eps", 1e-5);
  auto ptr = [&](std::size_t i) -> const T* {
    return i < in.size() ? static_cast<const T*>(in[i].data) : nullptr;
  };
  int64_t rows = 0, cols = 0;
  ApplyParams ap{};
  StatMode mode = StatMode::welford;
  const T* weight = nullptr;
  const T* bias = nullptr;
  bool running = false;
  if (node.op == "layer_norm") {
    const auto ns = attr_ints(node.attrs, "normalized_shape", 0, {});
    if (static_cast<int64_t>(ns.size()) > rank)
      op_fail(node, "normalized_shape has more dims than x");
    for (std::size_t i = 0; i < ns.size(); ++i)
      if (x.shape[rank - ns.size() + i] != ns[i])
        op_fail(node, "normalized_shape does not match the last dims of x");
    cols = shape_prod(x.shape, rank - ns.size(), rank);
    rows = cols == 0 ? 0 : x.numel() / cols;
    weight = ptr(1);
    bias = ptr(2);
    ap.affine = Affine::per_col;
  } else if (node.op == "group_norm" || node.op == "instance_norm" || node.op == "batch_norm") {
    if (rank < 2)
      op_fail(node, "x must have rank >= 2");
    const int64_t N = x.shape[0], C = x.shape[1];
    const int64_t spatial = shape_prod(x.shape, 2, rank);
    int64_t G = C;
    if (node.op == "group_norm") {
      G = attr_int(node.attrs, "num_groups");
      if (G <= 0 || C % G != 0)
        op_fail(node, str_cat("num_groups ", G, " does not divide ", C, " channels"));
      weight = ptr(1);
      bias = ptr(2);
    } else if (node.op == "instance_norm") {
      weight = ptr(1);
      bias = ptr(2);
    } else {
      if (in.size() < 3)
        op_fail(node, "expects x, running_mean, running_var");
      weight = ptr(3);
      bias = ptr(4);
      running = true;
    }
    rows = N * G;
    cols = (C / G) * spatial;
    ap.affine = Affine::per_channel;
    ap.groups = G;
    ap.per_group = C / G;
    ap.spatial = std::max<int64_t>(spatial, 1);
  } else if (node.op == "rms_norm") {
    std::vector<bool> red(rank, false);
    for (int64_t d : attr_ints(node.attrs, "dims", 0, {}))
      red[norm_dim(node, d, rank)] = true;
    int64_t first = -1, last = -1;
    for (int64_t d = 0; d < rank; ++d)
      if (red[d]) {
        if (first < 0)
          first = d;
        last = d;
      }
    if (first < 0)
      op_fail(node, "dims is empty");
    for (int64_t d = first; d <= last; ++d)
      if (!red[d] && x.shape[d] != 1)
        op_fail(node, "the GPU reference needs adjacent dims");
    const int64_t outer = shape_prod(x.shape, 0, first);
    const int64_t R = shape_prod(x.shape, first, last + 1);
    const int64_t inner = shape_prod(x.shape, last + 1, rank);
    weight = ptr(1);
    if (weight && in[1].numel() != R && in[1].numel() != 1)
      op_fail(node, str_cat("weight ", shape_str(in[1].shape),
                            " must have one value per reduced element (", R, ")"));
    if (x.numel() == 0)
      return;
    if (weight && in[1].numel() == 1 && R != 1)
      op_fail(node, "a single-element weight is not supported by the GPU reference");
    if (inner > 1) {
      A* rstd = static_cast<A*>(c.scratch(sizeof(A) * outer * inner));
      rms_cols_stats_kernel<T><<<grid_for(outer * inner, 256), 256, 0, s>>>(
          static_cast<const T*>(x.data), outer, R, inner, static_cast<A>(eps), rstd);
      KB_CUDA_CHECK_LAUNCH();
      rms_cols_apply_kernel<T><<<grid_for(x.numel(), 256), 256, 0, s>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), outer, R, inner, rstd, weight);
      KB_CUDA_CHECK_LAUNCH();
      return;
    }
    rows = outer;
    cols = R;
    mode = StatMode::sum_squares;
    ap.affine = Affine::per_col;
  } else {
    op_fail(node, "not a normalisation");
  }
  if (rows == 0 || cols == 0)
    return;
  ap.rows = rows;
  ap.cols = cols;
  // Split long rows over several blocks so small batches still fill the GPU.
  int64_t splits = 1, chunk = cols;
  if (!running) {
    const int64_t want = std::max<int64_t>(1, (2 * c.sm_count + rows - 1) / rows);
    splits = std::min<int64_t>(want, std::max<int64_t>(1, cols / 4096));
    chunk = (cols + splits - 1) / splits;
    splits = (cols + chunk - 1) / chunk;
  }
  const std::size_t stat_bytes = sizeof(A) * rows;
  const std::size_t partial_bytes = running ? 0 : sizeof(A) * rows * splits * 3;
  char* mem = static_cast<char*>(c.scratch(2 * stat_bytes + partial_bytes + 64));
  A* mean = reinterpret_cast<A*>(mem);
  A* rstd = reinterpret_cast<A*>(mem + stat_bytes);
  if (running) {
    running_stats_kernel<T, A><<<grid_for(rows, 256), 256, 0, s>>>(
        static_cast<const T*>(in[1].data), static_cast<const T*>(in[2].data), rows, x.shape[1],
        static_cast<A>(eps), mean, rstd);
    KB_CUDA_CHECK_LAUNCH();
  } else {
    row_stats<T>(ctx, x, rows, cols, mode, eps, mean, rstd,
                 reinterpret_cast<A*>(mem + 2 * stat_bytes), splits, chunk);
  }
  apply_kernel<T><<<grid_for(rows * cols, 256), 256, 0, s>>>(
      static_cast<const T*>(x.data), static_cast<T*>(out.data), mean, rstd, weight, bias, ap);
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace

void op_norm(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  if (in.empty())
    op_fail(node, "expects an input");
  require_float_dtype(node, in[0], "x");
  for (const auto& t : in)
    if (t.dtype != in[0].dtype)
      op_fail(node, "inputs must share one dtype");
  if (out.dtype != in[0].dtype || out.numel() != in[0].numel())
    op_fail(node, "output spec does not match x");
  KB_DISPATCH_FLOAT(in[0].dtype, node, { run_norm<T>(ctx, node, in, out); });
}

} // namespace kb::gpu
