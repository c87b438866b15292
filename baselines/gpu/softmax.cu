// softmax / log_softmax: one warp per contiguous row of up to 1024 values (held in registers), one
// block per longer row (online max/sum, then one write pass; float rows of whole 16-byte packs
// read and write packs, with as many rows in flight as the L2 cache can hold, so the second read
// of a row is served by L2), or one thread per column when the softmax dim is not the last; also
// the attention softmax.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

// Running (max, sum of exp(x - max)) with a guard for -inf (fully masked so far).
template <class A> struct MaxSum {
  A m, s;
  __device__ __forceinline__ void add(A x) {
    if (x == neg_inf<A>())
      return;
    if (x > m) {
      s = s * d_exp(m - x) + A(1);
      m = x;
    } else {
      s += d_exp(x - m);
    }
  }
  __device__ __forceinline__ void merge(A bm, A bs) {
    const A nm = fmax(m, bm);
    if (nm == neg_inf<A>())
      return;
    s = (m == neg_inf<A>() ? A(0) : s * d_exp(m - nm)) +
        (bm == neg_inf<A>() ? A(0) : bs * d_exp(bm - nm));
    m = nm;
  }
  // add() for one input value; a NaN poisons the state for good, as in PyTorch.
  __device__ __forceinline__ void push(A x) {
    if (x != x) {
      m = x;
      s = x;
    } else if (m == m) {
      add(x);
    }
  }
  // Merges the states of the 32 lanes of a warp (every lane ends with the result).
  __device__ __forceinline__ void warp_merge() {
    for (int o = 16; o > 0; o >>= 1) {
      const A bm = __shfl_xor_sync(0xffffffffu, m, o);
      const A bs = __shfl_xor_sync(0xffffffffu, s, o);
      if (bm != bm || m != m) {
        m = m != m ? m : bm;
        s = m;
      } else {
        merge(bm, bs);
      }
    }
  }
};

// Merges the per-thread states of a block; every thread returns the row's (max, sum).
template <class A> __device__ MaxSum<A> block_merge(MaxSum<A> st, A* sm, A* ss) {
  st.warp_merge();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads(); // the previous row's readers of sm/ss are done
  if (lane == 0) {
    sm[warp] = st.m;
    ss[warp] = st.s;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    MaxSum<A> t{lane < warps ? sm[lane] : neg_inf<A>(), lane < warps ? ss[lane] : A(0)};
    t.warp_merge();
    if (lane == 0) {
      sm[0] = t.m;
      ss[0] = t.s;
    }
  }
  __syncthreads();
  return MaxSum<A>{sm[0], ss[0]};
}

template <class Tin, class Tout>
__global__ void softmax_rows_kernel(const Tin* __restrict__ x, Tout* __restrict__ y, int64_t rows,
                                    int64_t cols, bool log, int64_t causal_rows) {
  using A = Acc<Tin>;
  __shared__ A sm[32], ss[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const Tin* xr = x + row * cols;
    Tout* yr = y + row * cols;
    // Columns past `limit` are masked (causal); limit = cols without a mask.
    const int64_t limit = causal_rows > 0 ? std::min<int64_t>(cols, row % causal_rows + 1) : cols;
    MaxSum<A> st{neg_inf<A>(), A(0)};
    for (int64_t c = threadIdx.x; c < limit; c += blockDim.x) {
      st.push(to_acc(xr[c]));
    }
    st = block_merge(st, sm, ss);
    const A m = st.m, s = st.s;
    const A log_s = d_log(s);
    const A inv_s = A(1) / s;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      A r;
      if (c >= limit)
        r = log ? neg_inf<A>() : A(0);
      else {
        const A v = to_acc(xr[c]);
        r = log ? v - m - log_s : d_exp(v - m) * inv_s;
      }
      yr[c] = from_acc<Tout>(r);
    }
  }
}

// Float rows of cols4 16-byte packs, no mask: one block per row. The statistics pass reads with
// normal caching (the row stays in L2 when the grid keeps few enough rows in flight); the write
// pass reads the row for the last time and streams the output past L2 (evict-first), so the
// output does not push the rows still to be reread out of the cache. NaN and -inf follow
// MaxSum: a NaN makes the row NaN; -inf values add nothing.
__global__ void __launch_bounds__(1024)
    softmax_rows_f32x4_kernel(const float4* __restrict__ x, float4* __restrict__ y, int64_t rows,
                              int64_t cols4, bool log) {
  __shared__ float sm[32], ss[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float4* xr = x + row * cols4;
    float4* yr = y + row * cols4;
    float m = neg_inf<float>(), s = 0.0f;
    bool nan = false;
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < cols4; c += blockDim.x) {
      const float4 v = xr[c];
      nan |= (v.x != v.x) | (v.y != v.y) | (v.z != v.z) | (v.w != v.w);
      const float mx = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
      if (mx > m) {
        s *= d_exp(m - mx); // 0 while m is -inf (s is 0 then too)
        m = mx;
      }
      if (m != neg_inf<float>())
        s += (d_exp(v.x - m) + d_exp(v.y - m)) + (d_exp(v.z - m) + d_exp(v.w - m));
    }
    MaxSum<float> st{m, s};
    if (nan)
      st.m = st.s = NAN;
    st = block_merge(st, sm, ss);
    const float mm = st.m, log_s = d_log(st.s), inv_s = 1.0f / st.s;
#pragma unroll 4
    for (int64_t c = threadIdx.x; c < cols4; c += blockDim.x) {
      const float4 v = __ldcs(xr + c);
      float4 r;
      if (log) {
        r = make_float4(v.x - mm - log_s, v.y - mm - log_s, v.z - mm - log_s, v.w - mm - log_s);
      } else {
        r = make_float4(d_exp(v.x - mm) * inv_s, d_exp(v.y - mm) * inv_s, d_exp(v.z - mm) * inv_s,
                        d_exp(v.w - mm) * inv_s);
      }
      __stcs(yr + c, r);
    }
  }
}

// Rows of at most 32 * VPL columns: one warp per row, the row held in registers (one read of the
// input), statistics merged by shuffles; same masking and NaN rules as softmax_rows_kernel.
template <class Tin, class Tout, int VPL>
__global__ void softmax_warp_rows_kernel(const Tin* __restrict__ x, Tout* __restrict__ y,
                                         int64_t rows, int cols, bool log, int64_t causal_rows) {
  using A = Acc<Tin>;
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * int64_t{blockDim.x >> 5} + (threadIdx.x >> 5); row < rows;
       row += warps) {
    const Tin* xr = x + row * cols;
    Tout* yr = y + row * cols;
    const int limit =
        causal_rows > 0 ? static_cast<int>(std::min<int64_t>(cols, row % causal_rows + 1)) : cols;
    A v[VPL];
#pragma unroll
    for (int j = 0; j < VPL; ++j) {
      const int c = lane + j * 32;
      v[j] = c < limit ? to_acc(xr[c]) : neg_inf<A>();
    }
    MaxSum<A> st{neg_inf<A>(), A(0)};
#pragma unroll
    for (int j = 0; j < VPL; ++j) {
      st.push(v[j]);
    }
    st.warp_merge();
    const A m = st.m, log_s = d_log(st.s), inv_s = A(1) / st.s;
#pragma unroll
    for (int j = 0; j < VPL; ++j) {
      const int c = lane + j * 32;
      if (c >= cols)
        break;
      A r;
      if (c >= limit)
        r = log ? neg_inf<A>() : A(0);
      else
        r = log ? v[j] - m - log_s : d_exp(v[j] - m) * inv_s;
      yr[c] = from_acc<Tout>(r);
    }
  }
}

// Softmax over the middle dim of [outer, R, inner]: one thread per (outer, inner) column.
template <class T>
__global__ void softmax_cols_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                    int64_t R, int64_t inner, bool log) {
  using A = Acc<T>;
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const T* xc = x + o * R * inner + i;
    T* yc = y + o * R * inner + i;
    A m = neg_inf<A>();
    bool nan = false;
    for (int64_t r = 0; r < R; ++r) {
      const A v = to_acc(xc[r * inner]);
      nan |= v != v;
      m = fmax(m, v);
    }
    A s = 0;
    for (int64_t r = 0; r < R; ++r)
      s += m == neg_inf<A>() ? A(0) : d_exp(to_acc(xc[r * inner]) - m);
    if (nan)
      m = s = A(NAN);
    const A log_s = d_log(s), inv_s = A(1) / s;
    for (int64_t r = 0; r < R; ++r) {
      const A v = to_acc(xc[r * inner]);
      yc[r * inner] = from_acc<T>(log ? v - m - log_s : d_exp(v - m) * inv_s);
    }
  }
}

template <class Tin, class Tout>
void launch_rows(const void* in, void* out, int64_t rows, int64_t cols, bool log,
                 int64_t causal_rows, cudaStream_t s) {
  const auto* x = static_cast<const Tin*>(in);
  auto* y = static_cast<Tout*>(out);
  if (cols <= 1024) {
    // Four rows per 128-thread block.
    const int grid = static_cast<int>(std::min<int64_t>((rows + 3) / 4, 1 << 20));
    const int c = static_cast<int>(cols);
    if (cols <= 128)
      softmax_warp_rows_kernel<Tin, Tout, 4><<<grid, 128, 0, s>>>(x, y, rows, c, log, causal_rows);
    else if (cols <= 256)
      softmax_warp_rows_kernel<Tin, Tout, 8><<<grid, 128, 0, s>>>(x, y, rows, c, log, causal_rows);
    else if (cols <= 512)
      softmax_warp_rows_kernel<Tin, Tout, 16><<<grid, 128, 0, s>>>(x, y, rows, c, log, causal_rows);
    else
      softmax_warp_rows_kernel<Tin, Tout, 32><<<grid, 128, 0, s>>>(x, y, rows, c, log, causal_rows);
  } else {
    const int block = cols >= 4096 ? 512 : (cols >= 512 ? 256 : 128);
    const int grid = static_cast<int>(std::min<int64_t>(rows, 1 << 20));
    softmax_rows_kernel<Tin, Tout><<<grid, block, 0, s>>>(x, y, rows, cols, log, causal_rows);
  }
  KB_CUDA_CHECK_LAUNCH();
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// 1024 threads a block for long rows. The grid keeps every SM busy; when the rows in flight at
// once would not fit in three quarters of the L2 cache, it keeps one block per SM, and if even
// those do not fit, as many as the device holds (the second read then comes from memory either
// way).
void launch_rows_f32x4(Context& ctx, const void* in, void* out, int64_t rows, int64_t cols4,
                       bool log) {
  const Context::Impl& c = ctx.impl();
  const int block = cols4 >= 4096 ? 1024 : (cols4 >= 1024 ? 512 : 256);
  const int64_t per_sm = 2048 / block;
  const int64_t sms = std::max(1, c.sm_count);
  const int64_t row_bytes = cols4 * 16;
  int64_t grid = sms * per_sm;
  const int64_t l2_share = int64_t{c.l2_bytes} / 4 * 3;
  if (grid * row_bytes > l2_share && sms * row_bytes <= l2_share)
    grid = sms;
  grid = std::min<int64_t>(grid, rows);
  softmax_rows_f32x4_kernel<<<static_cast<int>(grid), block, 0, c.stream>>>(
      static_cast<const float4*>(in), static_cast<float4*>(out), rows, cols4, log);
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace

void launch_softmax_rows(const OpNode& node, const void* in, DType in_dtype, void* out,
                         DType out_dtype, int64_t rows, int64_t cols, bool log, int64_t causal_rows,
                         cudaStream_t s) {
  if (rows == 0 || cols == 0)
    return;
  if (in_dtype == out_dtype) {
    KB_DISPATCH_FLOAT(in_dtype, node,
                      { launch_rows<T, T>(in, out, rows, cols, log, causal_rows, s); });
    return;
  }
  if (in_dtype == DType::f32 && out_dtype == DType::f16)
    launch_rows<float, __half>(in, out, rows, cols, log, causal_rows, s);
  else if (in_dtype == DType::f32 && out_dtype == DType::bf16)
    launch_rows<float, __nv_bfloat16>(in, out, rows, cols, log, causal_rows, s);
  else
    op_fail(node, str_cat("softmax from ", dtype_name(in_dtype), " to ", dtype_name(out_dtype),
                          " is not supported"));
}

void op_softmax(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                const DeviceTensor& out) {
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  if (out.dtype != x.dtype || out.numel() != x.numel())
    op_fail(node, "output spec does not match the input");
  const bool log = node.op == "log_softmax";
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (x.numel() == 0)
    return;
  if (rank == 0) {
    // Softmax of a scalar is 1 (log: 0); PyTorch accepts dim 0 / -1 here.
    launch_softmax_rows(node, x.data, x.dtype, out.data, out.dtype, 1, 1, log, 0, ctx.stream());
    return;
  }
  const int64_t dim = norm_dim(node, attr_int(node.attrs, "dim"), rank);
  const int64_t outer = shape_prod(x.shape, 0, dim);
  const int64_t R = x.shape[dim];
  const int64_t inner = shape_prod(x.shape, dim + 1, x.shape.size());
  if (ctx.impl().prefer_cudnn && cudnn_softmax(ctx, node, x, out, outer, R, inner, log))
    return;
  if (inner == 1) {
    if (x.dtype == DType::f32 && R >= 2048 && R % 4 == 0 && aligned16(x.data) &&
        aligned16(out.data)) {
      launch_rows_f32x4(ctx, x.data, out.data, outer, R / 4, log);
      return;
    }
    launch_softmax_rows(node, x.data, x.dtype, out.data, out.dtype, outer, R, log, 0, ctx.stream());
    return;
  }
  KB_DISPATCH_FLOAT(x.dtype, node, {
    softmax_cols_kernel<T><<<grid_for(outer * inner, 256), 256, 0, ctx.stream()>>>(
        static_cast<const T*>(x.data), static_cast<T*>(out.data), outer, R, inner, log);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
