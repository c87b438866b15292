// Reductions sum / mean / max / min / prod / argmax / argmin and logsumexp over one or more dims:
// block-per-row when the reduced dims are innermost, a 2-D block over columns otherwise, a generic
// gather kernel for non-adjacent dims.
#include <numeric>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

enum class Red : int { sum, mean, max, min, argmax, argmin, prod };

template <class A> struct Item {
  A v;
  int64_t i;
};

template <class A> __device__ __forceinline__ Item<A> identity(Red k) {
  switch (k) {
  case Red::max:
  case Red::argmax:
    return {neg_inf<A>(), INT64_MAX};
  case Red::min:
  case Red::argmin:
    return {pos_inf<A>(), INT64_MAX};
  case Red::prod:
    return {A(1), INT64_MAX};
  default:
    return {A(0), INT64_MAX};
  }
}

// Combines two partial results; NaN wins (first NaN by index for arg*), ties go to the lower index.
template <class A> __device__ __forceinline__ Item<A> combine(Red k, Item<A> a, Item<A> b) {
  if (k == Red::sum || k == Red::mean)
    return {a.v + b.v, 0};
  if (k == Red::prod)
    return {a.v * b.v, 0};
  const bool an = a.v != a.v, bn = b.v != b.v;
  if (an || bn) {
    if (an && bn)
      return a.i <= b.i ? a : b;
    return an ? a : b;
  }
  const bool is_max = k == Red::max || k == Red::argmax;
  if (a.v == b.v)
    return a.i <= b.i ? a : b;
  return (is_max ? b.v > a.v : b.v < a.v) ? b : a;
}

template <class A> __device__ Item<A> warp_combine(Red k, Item<A> it) {
  for (int o = 16; o > 0; o >>= 1) {
    Item<A> other{__shfl_xor_sync(0xffffffffu, it.v, o), __shfl_xor_sync(0xffffffffu, it.i, o)};
    it = combine(k, it, other);
  }
  return it;
}

template <class T>
__device__ __forceinline__ void write_result(Red k, Item<Acc<T>> it, int64_t R, void* out,
                                             int64_t idx) {
  if (k == Red::argmax || k == Red::argmin)
    static_cast<int64_t*>(out)[idx] = it.i == INT64_MAX ? 0 : it.i;
  else if (k == Red::mean)
    static_cast<T*>(out)[idx] = from_acc<T>(it.v / static_cast<Acc<T>>(R));
  else
    static_cast<T*>(out)[idx] = from_acc<T>(it.v);
}

// One block per row of a [rows, R] view.
template <class T>
__global__ void reduce_rows_kernel(const T* __restrict__ x, void* out, int64_t rows, int64_t R,
                                   Red k) {
  using A = Acc<T>;
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * R;
    Item<A> it = identity<A>(k);
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
      it = combine(k, it, Item<A>{to_acc(xr[r]), r});
    it = warp_combine(k, it);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
      sv[warp] = it.v;
      si[warp] = it.i;
    }
    __syncthreads();
    if (warp == 0) {
      const int warps = blockDim.x >> 5;
      Item<A> t = lane < warps ? Item<A>{sv[lane], si[lane]} : identity<A>(k);
      t = warp_combine(k, t);
      if (lane == 0)
        write_result<T>(k, t, R, out, row);
    }
  }
}

// [outer, R, inner] with inner > 1: a block of 256 threads covers blockDim.x adjacent columns (128
// when inner allows: 512 contiguous bytes per row in f32); its blockDim.y rows of threads split R
// with 16 independent loads and partial results per thread, then combine through shared memory.
// The combine keeps the lowest index among equal values (and among NaNs), so the order partial
// results merge in does not change argmax/argmin.
constexpr int k_cols_threads = 256;

template <class T, Red K>
__global__ void __launch_bounds__(k_cols_threads)
    reduce_cols_kernel(const T* __restrict__ x, void* out, int64_t outer, int64_t R,
                       int64_t inner) {
  using A = Acc<T>;
  constexpr int unroll = 16;
  __shared__ A sv[k_cols_threads];
  __shared__ int64_t si[k_cols_threads];
  const int64_t col = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int slot = threadIdx.y * blockDim.x + threadIdx.x;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    Item<A> it = identity<A>(K);
    if (col < inner) {
      Item<A> part[unroll];
#pragma unroll
      for (int u = 0; u < unroll; ++u)
        part[u] = identity<A>(K);
      const int64_t rs = blockDim.y, step = rs * inner;
      const T* p = x + (o * R + threadIdx.y) * inner + col;
      int64_t r = threadIdx.y;
      for (; r + (unroll - 1) * rs < R; r += unroll * rs, p += unroll * step) {
        A v[unroll];
#pragma unroll
        for (int u = 0; u < unroll; ++u)
          v[u] = to_acc(p[u * step]);
#pragma unroll
        for (int u = 0; u < unroll; ++u)
          part[u] = combine(K, part[u], Item<A>{v[u], r + u * rs});
      }
      for (; r < R; r += rs, p += step)
        part[0] = combine(K, part[0], Item<A>{to_acc(*p), r});
#pragma unroll
      for (int u = 0; u < unroll; ++u)
        it = combine(K, it, part[u]);
    }
    sv[slot] = it.v;
    si[slot] = it.i;
    __syncthreads();
    if (threadIdx.y == 0 && col < inner) {
      for (int j = 1; j < static_cast<int>(blockDim.y); ++j)
        it = combine(K, it,
                     Item<A>{sv[j * blockDim.x + threadIdx.x], si[j * blockDim.x + threadIdx.x]});
      write_result<T>(K, it, R, out, o * inner + col);
    }
    __syncthreads();
  }
}

template <class T, Red K>
void launch_reduce_cols(const T* x, void* out, int64_t outer, int64_t R, int64_t inner,
                        cudaStream_t s) {
  const int bx = inner >= 128 ? 128 : (inner >= 64 ? 64 : 32);
  const dim3 grid(static_cast<unsigned>((inner + bx - 1) / bx),
                  static_cast<unsigned>(std::min<int64_t>(outer, 65535)));
  reduce_cols_kernel<T, K><<<grid, dim3(bx, k_cols_threads / bx), 0, s>>>(x, out, outer, R, inner);
}

template <class T>
void launch_reduce_cols(Red k, const T* x, void* out, int64_t outer, int64_t R, int64_t inner,
                        cudaStream_t s) {
  switch (k) {
  case Red::sum:
    return launch_reduce_cols<T, Red::sum>(x, out, outer, R, inner, s);
  case Red::mean:
    return launch_reduce_cols<T, Red::mean>(x, out, outer, R, inner, s);
  case Red::max:
    return launch_reduce_cols<T, Red::max>(x, out, outer, R, inner, s);
  case Red::min:
    return launch_reduce_cols<T, Red::min>(x, out, outer, R, inner, s);
  case Red::argmax:
    return launch_reduce_cols<T, Red::argmax>(x, out, outer, R, inner, s);
  case Red::argmin:
    return launch_reduce_cols<T, Red::argmin>(x, out, outer, R, inner, s);
  case Red::prod:
    return launch_reduce_cols<T, Red::prod>(x, out, outer, R, inner, s);
  }
}

constexpr int k_max_dims = 8;
struct GenericIndex {
  int rank_kept = 0, rank_red = 0;
  int64_t kept_shape[k_max_dims], kept_stride[k_max_dims];
  int64_t red_shape[k_max_dims], red_stride[k_max_dims];
};

// Any set of reduced dims: one thread per output element walks the reduced index space.
template <class T>
__global__ void reduce_generic_kernel(const T* __restrict__ x, void* out, int64_t n_out, int64_t R,
                                      Red k, GenericIndex ix) {
  using A = Acc<T>;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n_out;
       t += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = t, base = 0;
    for (int d = ix.rank_kept - 1; d >= 0; --d) {
      base += (rem % ix.kept_shape[d]) * ix.kept_stride[d];
      rem /= ix.kept_shape[d];
    }
    Item<A> it = identity<A>(k);
    for (int64_t r = 0; r < R; ++r) {
      int64_t rr = r, off = base;
      for (int d = ix.rank_red - 1; d >= 0; --d) {
        off += (rr % ix.red_shape[d]) * ix.red_stride[d];
        rr /= ix.red_shape[d];
      }
      it = combine(k, it, Item<A>{to_acc(x[off]), r});
    }
    write_result<T>(k, it, R, out, t);
  }
}

// ----- logsumexp ----------------------------------------------------------------------------

// Running state of a log-sum-exp: the maximum m seen and s = sum of exp(x - m). m = -inf with
// s = 0 is the empty state; +inf absorbs every finite value; NaN propagates.
template <class A> struct Lse { A m, s; };

template <class A> __device__ __forceinline__ Lse<A> lse_empty() {
  return {neg_inf<A>(), A(0)};
}

template <class A> __device__ __forceinline__ Lse<A> lse_merge(Lse<A> a, Lse<A> b) {
  if (a.m != a.m || b.m != b.m)
    return {a.m != a.m ? a.m : b.m, a.m != a.m ? a.m : b.m}; // NaN
  if (b.m > a.m) {
    const Lse<A> t = a;
    a = b;
    b = t;
  }
  // Now a.m >= b.m. An empty b adds nothing; an infinite a.m is the answer (exp(inf - inf)
  // would be NaN).
  if (b.m == neg_inf<A>() || a.m == pos_inf<A>())
    return a;
  return {a.m, a.s + b.s * d_exp(b.m - a.m)};
}

template <class A> __device__ __forceinline__ Lse<A> lse_add(Lse<A> st, A x) {
  return lse_merge(st, Lse<A>{x, x == neg_inf<A>() ? A(0) : A(1)});
}

template <class A> __device__ __forceinline__ A lse_value(Lse<A> st) {
  if (st.m != st.m || st.m == neg_inf<A>() || st.m == pos_inf<A>())
    return st.m;
  return st.m + d_log(st.s);
}

template <class A> __device__ __forceinline__ Lse<A> lse_warp_merge(Lse<A> st) {
  for (int o = 16; o > 0; o >>= 1) {
    const Lse<A> other{__shfl_xor_sync(0xffffffffu, st.m, o),
                       __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = lse_merge(st, other);
  }
  return st;
}

// One block per row of a [rows, R] view (blockDim.x a multiple of 32, at most 1024).
template <class T>
__global__ void lse_rows_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows,
                                int64_t R) {
  using A = Acc<T>;
  __shared__ A sm[32], ss[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * R;
    Lse<A> st = lse_empty<A>();
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
      st = lse_add(st, to_acc(xr[r]));
    st = lse_warp_merge(st);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); // the shared arrays may still be read for the previous row
    if (lane == 0) {
      sm[warp] = st.m;
      ss[warp] = st.s;
    }
    __syncthreads();
    if (warp == 0) {
      const int warps = blockDim.x >> 5;
      Lse<A> t = lane < warps ? Lse<A>{sm[lane], ss[lane]} : lse_empty<A>();
      t = lse_warp_merge(t);
      if (lane == 0)
        out[row] = from_acc<T>(lse_value(t));
    }
  }
}

// [outer, R, inner] with inner > 1: a block of k_cols_threads threads covers blockDim.x adjacent
// columns (coalesced loads along inner); its blockDim.y rows of threads split R and merge their
// states through shared memory.
template <class T>
__global__ void __launch_bounds__(k_cols_threads)
    lse_cols_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t outer, int64_t R,
                    int64_t inner) {
  using A = Acc<T>;
  __shared__ A sm[k_cols_threads], ss[k_cols_threads];
  const int64_t col = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int slot = threadIdx.y * blockDim.x + threadIdx.x;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    Lse<A> st = lse_empty<A>();
    if (col < inner)
      for (int64_t r = threadIdx.y; r < R; r += blockDim.y)
        st = lse_add(st, to_acc(x[(o * R + r) * inner + col]));
    sm[slot] = st.m;
    ss[slot] = st.s;
    __syncthreads();
    if (threadIdx.y == 0 && col < inner) {
      for (int j = 1; j < static_cast<int>(blockDim.y); ++j)
        st = lse_merge(st,
                       Lse<A>{sm[j * blockDim.x + threadIdx.x], ss[j * blockDim.x + threadIdx.x]});
      out[o * inner + col] = from_acc<T>(lse_value(st));
    }
    __syncthreads();
  }
}

// Any set of reduced dims: one thread per output element walks the reduced index space.
template <class T>
__global__ void lse_generic_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t n_out,
                                   int64_t R, GenericIndex ix) {
  using A = Acc<T>;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n_out;
       t += int64_t{gridDim.x} * blockDim.x) {
    int64_t rem = t, base = 0;
    for (int d = ix.rank_kept - 1; d >= 0; --d) {
      base += (rem % ix.kept_shape[d]) * ix.kept_stride[d];
      rem /= ix.kept_shape[d];
    }
    Lse<A> st = lse_empty<A>();
    for (int64_t r = 0; r < R; ++r) {
      int64_t rr = r, off = base;
      for (int d = ix.rank_red - 1; d >= 0; --d) {
        off += (rr % ix.red_shape[d]) * ix.red_stride[d];
        rr /= ix.red_shape[d];
      }
      st = lse_add(st, to_acc(x[off]));
    }
    out[t] = from_acc<T>(lse_value(st));
  }
}

} // namespace

void op_reduce(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  static const std::map<std::string, Red, std::less<>> names = {
      {"sum", Red::sum},   {"mean", Red::mean},     {"max", Red::max},      {"min", Red::min},
      {"prod", Red::prod}, {"argmax", Red::argmax}, {"argmin", Red::argmin}};
  const auto found = names.find(node.op);
  if (found == names.end())
    op_fail(node, "not a reduction");
  const Red k = found->second;
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  const bool arg = k == Red::argmax || k == Red::argmin;
  if (arg ? out.dtype != DType::i64 : out.dtype != x.dtype)
    op_fail(node, str_cat("output dtype ", dtype_name(out.dtype), " is wrong"));
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  std::vector<bool> reduced(std::max<int64_t>(rank, 1), false);
  if (rank == 0) {
    reduced.assign(0, false);
  } else if (arg || k == Red::prod) { // one dim, an int
    reduced[norm_dim(node, attr_int(node.attrs, "dim"), rank)] = true;
  } else {
    for (int64_t d : attr_ints(node.attrs, "dim", 0, {}))
      reduced[norm_dim(node, d, rank)] = true;
  }
  const int64_t n_out = out.numel();
  if (n_out == 0)
    return;
  int64_t R = 1;
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d])
      R *= x.shape[d];
  if (R == 0 && k != Red::sum && k != Red::mean && k != Red::prod)
    op_fail(node, "reduction over an empty dim has no identity");
  if (n_out * R != x.numel())
    op_fail(node, "output size does not match the reduction");
  cudaStream_t s = ctx.stream();
  // Span of reduced dims, ignoring size-1 dims: adjacent when nothing kept of size > 1 lies
  // between.
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d] && x.shape[d] != 1) {
      if (first < 0)
        first = d;
      last = d;
    }
  bool adjacent = true;
  for (int64_t d = first; first >= 0 && d <= last; ++d)
    if (!reduced[d] && x.shape[d] != 1)
      adjacent = false;
  if (first < 0) {
    first = 0;
    last = -1; // nothing of size > 1 reduced: R == 1
  }
  if (adjacent) {
    const int64_t outer = shape_prod(x.shape, 0, first);
    const int64_t inner = shape_prod(x.shape, last + 1, x.shape.size());
    KB_DISPATCH_FLOAT(x.dtype, node, {
      if (inner == 1) {
        const int block = R >= 2048 ? 512 : (R >= 256 ? 256 : 64);
        reduce_rows_kernel<T><<<static_cast<int>(std::min<int64_t>(outer, 1 << 20)), block, 0, s>>>(
            static_cast<const T*>(x.data), out.data, outer, R, k);
      } else {
        launch_reduce_cols<T>(k, static_cast<const T*>(x.data), out.data, outer, R, inner, s);
      }
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  GenericIndex ix;
  const Shape st = contiguous_strides(x.shape);
  for (int64_t d = 0; d < rank; ++d) {
    if (ix.rank_kept >= k_max_dims || ix.rank_red >= k_max_dims)
      op_fail(node, "too many dims");
    if (reduced[d]) {
      ix.red_shape[ix.rank_red] = x.shape[d];
      ix.red_stride[ix.rank_red++] = st[d];
    } else {
      ix.kept_shape[ix.rank_kept] = x.shape[d];
      ix.kept_stride[ix.rank_kept++] = st[d];
    }
  }
  KB_DISPATCH_FLOAT(x.dtype, node, {
    reduce_generic_kernel<T><<<grid_for(n_out, 128), 128, 0, s>>>(static_cast<const T*>(x.data),
                                                                  out.data, n_out, R, k, ix);
  });
  KB_CUDA_CHECK_LAUNCH();
}

void op_logsumexp(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                  const DeviceTensor& out) {
  if (node.op != "logsumexp")
    op_fail(node, "not logsumexp");
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  if (out.dtype != x.dtype)
    op_fail(node, str_cat("output dtype ", dtype_name(out.dtype), " differs from x's"));
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (rank == 0)
    op_fail(node, "x must have rank >= 1");
  std::vector<bool> reduced(static_cast<std::size_t>(rank), false);
  for (int64_t d : attr_ints(node.attrs, "dim", 0, {}))
    reduced[norm_dim(node, d, rank)] = true;
  const int64_t n_out = out.numel();
  if (n_out == 0)
    return;
  int64_t R = 1;
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d])
      R *= x.shape[d];
  if (n_out * R != x.numel())
    op_fail(node, "output size does not match the reduction");
  cudaStream_t s = ctx.stream();
  // Reduced dims of size > 1 adjacent (nothing kept of size > 1 between them): a [outer, R, inner]
  // view.
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < rank; ++d)
    if (reduced[d] && x.shape[d] != 1) {
      if (first < 0)
        first = d;
      last = d;
    }
  bool adjacent = true;
  for (int64_t d = first; first >= 0 && d <= last; ++d)
    if (!reduced[d] && x.shape[d] != 1)
      adjacent = false;
  if (first < 0) {
    first = 0;
    last = -1; // nothing of size > 1 reduced: R == 1
  }
  if (adjacent) {
    const int64_t outer = shape_prod(x.shape, 0, first);
    const int64_t inner = shape_prod(x.shape, last + 1, x.shape.size());
    KB_DISPATCH_FLOAT(x.dtype, node, {
      const T* xp = static_cast<const T*>(x.data);
      T* op = static_cast<T*>(out.data);
      if (inner == 1) {
        const int block = R >= 2048 ? 512 : (R >= 256 ? 256 : 64);
        lse_rows_kernel<T><<<static_cast<int>(std::min<int64_t>(outer, 1 << 20)), block, 0, s>>>(
            xp, op, outer, R);
      } else {
        const int bx = inner >= 128 ? 128 : (inner >= 64 ? 64 : 32);
        const dim3 grid(static_cast<unsigned>((inner + bx - 1) / bx),
                        static_cast<unsigned>(std::min<int64_t>(outer, 65535)));
        lse_cols_kernel<T><<<grid, dim3(bx, k_cols_threads / bx), 0, s>>>(xp, op, outer, R, inner);
      }
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  GenericIndex ix;
  const Shape st = contiguous_strides(x.shape);
  for (int64_t d = 0; d < rank; ++d) {
    if (ix.rank_kept >= k_max_dims || ix.rank_red >= k_max_dims)
      op_fail(node, "too many dims");
    if (reduced[d]) {
      ix.red_shape[ix.rank_red] = x.shape[d];
      ix.red_stride[ix.rank_red++] = st[d];
    } else {
      ix.kept_shape[ix.rank_kept] = x.shape[d];
      ix.kept_stride[ix.rank_kept++] = st[d];
    }
  }
  KB_DISPATCH_FLOAT(x.dtype, node, {
    lse_generic_kernel<T><<<grid_for(n_out, 128), 128, 0, s>>>(
        static_cast<const T*>(x.data), static_cast<T*>(out.data), n_out, R, ix);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
