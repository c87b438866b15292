// Normalisations: layer_norm, group_norm, instance_norm (Welford statistics, rows split over
// several blocks and merged with Chan's formula), batch_norm (inference), batch_norm_train (batch
// statistics: Welford partials per row chunk or per column chunk, merged per channel) and rms_norm.
//
// Two passes over x. The statistics kernel reads each row chunk in 16-byte packs, several in
// flight per thread, and merges one batch of loaded values at a time into its Welford state (the
// batch's own mean and squared deviations, then one Chan merge). The apply kernel walks x as a flat
// sequence of 16-byte packs in tiles (grid-stride, so that all blocks stay within a window of a few
// MB and reused statistics and weights hit in L2), and tracks the row, the column and the channel
// incrementally (no 64-bit division per element).
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_block = 256; // threads per block of the statistics and apply kernels
constexpr int k_unroll = 4;  // packs each thread loads before it uses any of them

// Elements of T in 16 bytes.
template <class T> constexpr int k_vec = static_cast<int>(16 / sizeof(T));

// V elements of T, moved as one 16-byte access when V * sizeof(T) == 16.
template <class T, int V> struct alignas(V * sizeof(T)) Vec { T v[V]; };

// Elements of `elem` bytes from p up to the next 16-byte boundary.
__host__ __device__ inline int64_t to_boundary(const void* p, std::size_t elem) {
  return static_cast<int64_t>(((16 - (reinterpret_cast<uintptr_t>(p) & 15u)) & 15u) / elem);
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// A pack as loaded: an int4 for 16-byte packs (four registers whatever T is), else one T.
template <class T, int V> struct RawOf { using type = T; };
template <class T, int V>
requires(V * sizeof(T) == 16) struct RawOf<T, V> {
  using type = int4;
};
template <class T, int V> using Raw = typename RawOf<T, V>::type;

// Load of the pack at p; `last` marks data read for the last time (evict-first, so that what is
// read again, such as per-column weights, stays in L2).
template <class T, int V, bool last = false>
__device__ __forceinline__ Raw<T, V> load_raw(const T* p) {
  static_assert(V == 1 || V * sizeof(T) == 16, "packs are 16 bytes or one element");
  if constexpr (V * sizeof(T) == 16)
    return last ? __ldcs(reinterpret_cast<const int4*>(p))
                : __ldg(reinterpret_cast<const int4*>(p));
  else
    return p[0];
}

template <class T, int V> __device__ __forceinline__ Vec<T, V> unpack(const Raw<T, V>& raw) {
  Vec<T, V> r;
  memcpy(&r, &raw, sizeof(r));
  return r;
}

template <class T, int V> __device__ __forceinline__ Vec<T, V> load_pack(const T* p) {
  return unpack<T, V>(load_raw<T, V>(p));
}

template <class T, int V> __device__ __forceinline__ void store_pack(T* p, const Vec<T, V>& r) {
  if constexpr (V * sizeof(T) == 16) {
    int4 raw;
    memcpy(&raw, &r, 16);
    *reinterpret_cast<int4*>(p) = raw;
  } else {
    p[0] = r.v[0];
  }
}

// Pairwise sum of the K values of v (K a power of two; v is overwritten): level H adds the upper
// half of the first 2H values onto the lower half.
template <class A, int K, int H = K / 2> __device__ __forceinline__ A tree_sum(A (&v)[K]) {
  static_assert((K & (K - 1)) == 0, "K must be a power of two");
  if constexpr (H == 0) {
    return v[0];
  } else {
#pragma unroll
    for (int i = 0; i < H; ++i)
      v[i] += v[i + H];
    return tree_sum<A, K, H / 2>(v);
  }
}

enum class StatMode : int { welford, sum_squares };

// Adds K values to the thread's statistics: for Welford, the batch's mean and squared deviations
// (exact two-pass in registers) and one Chan merge, whose first use (w.n == 0) copies the batch;
// for sum_squares, the sum of squares.
template <StatMode M, class A, int K>
__device__ __forceinline__ void accumulate(Welford<A>& w, A& ss, const A (&v)[K]) {
  A t[K];
  if constexpr (M == StatMode::welford) {
#pragma unroll
    for (int j = 0; j < K; ++j)
      t[j] = v[j];
    const A bmean = tree_sum(t) * (A(1) / A(K));
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const A d = v[j] - bmean;
      t[j] = d * d;
    }
    const A bm2 = tree_sum(t);
    const A total = w.n + A(K);
    const A r = A(K) / total;
    const A delta = bmean - w.mean;
    w.mean += delta * r;
    w.m2 += bm2 + delta * delta * (w.n * r);
    w.n = total;
  } else {
#pragma unroll
    for (int j = 0; j < K; ++j)
      t[j] = v[j] * v[j];
    ss += tree_sum(t);
  }
}

// Statistics of unit u = row * splits + split, the columns [split * chunk, +chunk) of its row.
// With one split per row and `mean` given the kernel writes mean and 1/sqrt(var + eps) (rms: mean
// 0, 1/sqrt(ms + eps)); otherwise it writes the partial (count, mean, m2) or (count, 0, sumsq).
template <class T, StatMode M>
__global__ void __launch_bounds__(k_block)
    row_stats_kernel(const T* __restrict__ x, int64_t rows, int64_t cols, int64_t chunk,
                     int64_t splits, Acc<T> eps, Acc<T>* __restrict__ partial,
                     Acc<T>* __restrict__ mean, Acc<T>* __restrict__ rstd) {
  using A = Acc<T>;
  constexpr int V = k_vec<T>;
  __shared__ A shared[96];
  const int64_t units = rows * splits;
  for (int64_t unit = blockIdx.x; unit < units; unit += gridDim.x) {
    const int64_t row = unit / splits;
    const int64_t begin = (unit - row * splits) * chunk;
    const int64_t len = std::min(chunk, cols - begin);
    const T* p = x + row * cols + begin;
    // Scalar head up to the first 16-byte boundary and scalar tail after the last whole pack.
    const int64_t head = std::min(len, to_boundary(p, sizeof(T)));
    const int64_t packs = (len - head) / V;
    const int64_t tail = head + packs * V;
    const T* body = p + head;
    Welford<A> w;
    A ss = 0;
    if (threadIdx.x < head) {
      const A v[1] = {to_acc(p[threadIdx.x])};
      accumulate<M>(w, ss, v);
    }
    if (tail + threadIdx.x < len) {
      const A v[1] = {to_acc(p[tail + threadIdx.x])};
      accumulate<M>(w, ss, v);
    }
    int64_t k = threadIdx.x;
    for (; k + (k_unroll - 1) * k_block < packs; k += k_unroll * k_block) {
      Raw<T, V> raw[k_unroll];
#pragma unroll
      for (int u = 0; u < k_unroll; ++u)
        raw[u] = load_raw<T, V>(body + (k + u * k_block) * V);
      A v[k_unroll * V];
#pragma unroll
      for (int u = 0; u < k_unroll; ++u) {
        const Vec<T, V> r = unpack<T, V>(raw[u]);
#pragma unroll
        for (int j = 0; j < V; ++j)
          v[u * V + j] = to_acc(r.v[j]);
      }
      accumulate<M>(w, ss, v);
    }
    for (; k < packs; k += k_block) {
      const Vec<T, V> r = load_pack<T, V>(body + k * V);
      A v[V];
#pragma unroll
      for (int j = 0; j < V; ++j)
        v[j] = to_acc(r.v[j]);
      accumulate<M>(w, ss, v);
    }
    if constexpr (M == StatMode::welford) {
      block_welford(w, shared);
    } else {
      w.n = static_cast<A>(len);
      w.m2 = block_sum(ss, shared);
    }
    if (threadIdx.x == 0) {
      if (splits == 1 && mean) {
        mean[row] = w.mean;
        rstd[row] = d_rsqrt(w.m2 / w.n + eps);
      } else {
        A* q = partial + unit * 3;
        q[0] = w.n;
        q[1] = w.mean;
        q[2] = w.m2;
      }
    }
  }
}

// Merges the partials of each row (one warp per row) into mean and 1/sqrt(var + eps). The
// sum_squares partials have mean 0, so the same merge adds their counts and sums of squares.
template <class A>
__global__ void finalize_stats_kernel(const A* __restrict__ partial, int64_t rows, int64_t splits,
                                      A eps, A* __restrict__ mean, A* __restrict__ rstd) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x >> 5);
  for (int64_t row = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5; row < rows;
       row += warps) {
    const A* p = partial + row * splits * 3;
    Welford<A> w;
    for (int64_t s = lane; s < splits; s += 32)
      w.merge(p[s * 3], p[s * 3 + 1], p[s * 3 + 2]);
    for (int o = 16; o > 0; o >>= 1) {
      const A bn = __shfl_xor_sync(0xffffffffu, w.n, o);
      const A bm = __shfl_xor_sync(0xffffffffu, w.mean, o);
      const A b2 = __shfl_xor_sync(0xffffffffu, w.m2, o);
      w.merge(bn, bm, b2);
    }
    if (lane == 0) {
      mean[row] = w.mean;
      rstd[row] = d_rsqrt(w.m2 / w.n + eps);
    }
  }
}

// Welford statistics of the columns of x viewed as [rows, cols] (batch_norm_train with few
// spatial elements: a column is one (channel, position), a row one batch entry), in chunks of
// rows_per rows: thread t = chunk * cols + col writes (count, mean, m2) to partial[t * 3].
// Adjacent threads read adjacent columns.
template <class T>
__global__ void col_stats_kernel(const T* __restrict__ x, int64_t rows, int64_t cols,
                                 int64_t rows_per, int64_t chunks, Acc<T>* __restrict__ partial) {
  using A = Acc<T>;
  const int64_t n = chunks * cols;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t chunk = t / cols, col = t - chunk * cols;
    const int64_t begin = chunk * rows_per;
    const int64_t end = begin + rows_per < rows ? begin + rows_per : rows;
    Welford<A> w;
    for (int64_t r = begin; r < end; ++r)
      w.add(to_acc(x[r * cols + col]));
    A* q = partial + t * 3;
    q[0] = w.n;
    q[1] = w.mean;
    q[2] = w.m2;
  }
}

// Merges the partials (count, mean, m2) of each channel c of batch_norm_train, found at
// partial[(a * stride_a + c * stride_c + b) * 3] for a < count_a, b < count_b, into its mean and
// 1/sqrt(var + eps), written for every row (n, c), n < batch, of the apply pass. One block per
// channel; thread 0's merge is the one written, so every row of a channel gets the same values.
template <class A>
__global__ void __launch_bounds__(k_block)
    channel_stats_kernel(const A* __restrict__ partial, int64_t channels, int64_t count_a,
                         int64_t stride_a, int64_t stride_c, int64_t count_b, int64_t batch, A eps,
                         A* __restrict__ mean, A* __restrict__ rstd) {
  __shared__ A shared[96];
  __shared__ A result[2];
  const int64_t total = count_a * count_b;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    Welford<A> w;
    for (int64_t k = threadIdx.x; k < total; k += blockDim.x) {
      const int64_t a = k / count_b, b = k - a * count_b;
      const A* p = partial + (a * stride_a + c * stride_c + b) * 3;
      w.merge(p[0], p[1], p[2]);
    }
    block_welford(w, shared);
    if (threadIdx.x == 0) {
      result[0] = w.mean;
      result[1] = d_rsqrt(w.m2 / w.n + eps);
    }
    __syncthreads();
    const A m = result[0], r = result[1];
    for (int64_t n = threadIdx.x; n < batch; n += blockDim.x) {
      mean[n * channels + c] = m;
      rstd[n * channels + c] = r;
    }
    __syncthreads(); // result is written again for the block's next channel
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

// rms_norm over the middle dim of [outer, R, inner] (inner > 1): statistics per column, each
// thread over V adjacent columns (16-byte loads when V > 1: x aligned and inner % V == 0).
template <class T, int V>
__global__ void __launch_bounds__(k_block)
    rms_cols_stats_kernel(const T* __restrict__ x, int64_t outer, int64_t R, int64_t inner,
                          Acc<T> eps, Acc<T>* __restrict__ rstd) {
  using A = Acc<T>;
  const int64_t groups = inner / V;
  const int64_t n = outer * groups;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / groups, i = (t - o * groups) * V;
    const T* xc = x + o * R * inner + i;
    A ss[V];
#pragma unroll
    for (int j = 0; j < V; ++j)
      ss[j] = 0;
    int64_t r = 0;
    for (; r + k_unroll <= R; r += k_unroll) {
      Vec<T, V> p[k_unroll];
#pragma unroll
      for (int u = 0; u < k_unroll; ++u)
        p[u] = load_pack<T, V>(xc + (r + u) * inner);
#pragma unroll
      for (int u = 0; u < k_unroll; ++u)
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const A v = to_acc(p[u].v[j]);
          ss[j] += v * v;
        }
    }
    for (; r < R; ++r) {
      const Vec<T, V> p = load_pack<T, V>(xc + r * inner);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_acc(p.v[j]);
        ss[j] += v * v;
      }
    }
#pragma unroll
    for (int j = 0; j < V; ++j)
      rstd[o * inner + i + j] = d_rsqrt(ss[j] / static_cast<A>(R) + eps);
  }
}

enum class Affine : int { none, per_col, per_channel };

// Quotient by d of numerators below d + span: a comparison when d >= span (the quotient is 0 or
// 1), else a multiply-high (the numerators stay below 2 * span).
struct StepDiv {
  int64_t d = 1;
  FastDiv f;
  bool big = false;
  StepDiv() = default;
  StepDiv(int64_t divisor, int64_t span) : d(divisor), big(divisor >= span) {
    if (!big)
      f = FastDiv(static_cast<uint32_t>(divisor));
  }
  __device__ __forceinline__ int64_t div(int64_t n) const {
    return big ? int64_t{n >= d} : int64_t{f.div(static_cast<uint32_t>(n))};
  }
};

// y = (x - mean[s]) * rstd[s] (* weight[i] + bias[i]) over the flat x of n elements, where
// row = e / cols and, per affine mode, i = e % cols (per_col) or i = (e / spatial) % channels
// (per_channel). The statistic s is the row, or with col_stats row * spatial + e % spatial (rms
// over the middle dim; mean is then nullptr, i.e. 0).
template <class T> struct ApplyArgs {
  const T* x = nullptr;
  T* y = nullptr;
  const Acc<T>* mean = nullptr;
  const Acc<T>* rstd = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  int64_t n = 0, cols = 1, spatial = 1, channels = 1;
  bool col_stats = false;
  // Set by run_apply: the elements before the first 16-byte boundary of x (done one by one), the
  // whole packs after them, whether each pack lies in one row and one channel (else its elements
  // are located one by one), and whether per_col weight and bias can be read as packs.
  int64_t head = 0, packs = 0;
  bool uniform = true, vec_affine = false;
  StepDiv by_cols, by_spatial, by_channels;
  // Tiles of k_block * k_unroll packs, visited grid-stride; one stride of S elements moves the row
  // by S / cols and the column by S % cols, the plane offset by S % spatial and the channel by
  // (S / spatial) % channels (each plus a carry).
  int64_t tiles = 0;
  int64_t step_rows = 0, step_cols = 0, step_spatial = 0, step_channels = 0;
};

template <class T, Affine AF>
__device__ __forceinline__ Acc<T> normalize(const ApplyArgs<T>& a, Acc<T> v, int64_t s, int64_t i) {
  using A = Acc<T>;
  const A m = a.mean ? a.mean[s] : A(0);
  v = (v - m) * a.rstd[s];
  if constexpr (AF != Affine::none) {
    if (a.weight)
      v *= to_acc(a.weight[i]);
    if (a.bias)
      v += to_acc(a.bias[i]);
  }
  return v;
}

// Uniform: every pack lies in one row and one channel (located once per pack), else each element
// of a pack is located on its own.
template <class T, Affine AF, int V, bool Uniform>
__global__ void __launch_bounds__(k_block, 4) apply_kernel(const ApplyArgs<T> a) {
  using A = Acc<T>;
  constexpr int64_t tile = int64_t{k_block} * k_unroll * V; // elements per tile
  // Block 0 also does the scalar elements: the head and the tail after the last whole pack.
  if (blockIdx.x == 0) {
    const int64_t tail = a.head + a.packs * V;
    if (threadIdx.x < a.head + (a.n - tail)) {
      const int64_t e = threadIdx.x < a.head ? int64_t{threadIdx.x} : tail + threadIdx.x - a.head;
      const int64_t row = e / a.cols;
      int64_t s = row, i = 0;
      if constexpr (AF == Affine::per_col)
        i = e - row * a.cols;
      if constexpr (AF == Affine::per_channel) {
        const int64_t plane = e / a.spatial;
        i = plane % a.channels;
        if (a.col_stats)
          s = row * a.spatial + (e - plane * a.spatial);
      }
      a.y[e] = from_acc<T>(normalize<T, AF>(a, to_acc(a.x[e]), s, i));
    }
  }
  int64_t t = blockIdx.x;
  if (t >= a.tiles)
    return;
  // Position of the tile's first element: row r0, column c0; plane offset q0 and channel ch0.
  const int64_t e0 = a.head + t * tile;
  int64_t r0 = e0 / a.cols, c0 = e0 - r0 * a.cols;
  int64_t q0 = 0, ch0 = 0;
  if constexpr (AF == Affine::per_channel) {
    const int64_t p0 = e0 / a.spatial;
    q0 = e0 - p0 * a.spatial;
    ch0 = p0 % a.channels;
  }
  // Statistic and affine index of the element `off` (< tile) past the tile's first element.
  auto locate = [&](int64_t off, int64_t& s, int64_t& i) {
    const int64_t nc = c0 + off;
    const int64_t d = a.by_cols.div(nc);
    s = r0 + d;
    i = 0;
    if constexpr (AF == Affine::per_col)
      i = nc - d * a.cols;
    if constexpr (AF == Affine::per_channel) {
      const int64_t nq = q0 + off;
      const int64_t dp = a.by_spatial.div(nq);
      const int64_t ch = ch0 + dp;
      i = ch - a.channels * a.by_channels.div(ch);
      if (a.col_stats)
        s = s * a.spatial + (nq - dp * a.spatial);
    }
  };
  const T* x = a.x + a.head;
  T* y = a.y + a.head;
  for (; t < a.tiles; t += gridDim.x) {
    const int64_t k0 = t * (int64_t{k_block} * k_unroll) + threadIdx.x;
    Raw<T, V> raw[k_unroll];
#pragma unroll
    for (int u = 0; u < k_unroll; ++u)
      if (k0 + u * k_block < a.packs)
        raw[u] = load_raw<T, V, true>(x + (k0 + u * k_block) * V);
#pragma unroll
    for (int u = 0; u < k_unroll; ++u) {
      const int64_t k = k0 + u * k_block;
      if (k >= a.packs)
        break;
      const int64_t off = (int64_t{u} * k_block + threadIdx.x) * V;
      const Vec<T, V> in = unpack<T, V>(raw[u]);
      Vec<T, V> o;
      if constexpr (Uniform) {
        int64_t s, i;
        locate(off, s, i);
        const A m = a.mean ? a.mean[s] : A(0);
        const A rs = a.rstd[s];
        // Affine factors of the pack's elements (per_col) or of its channel (per_channel).
        Vec<T, V> wv, bv;
        if constexpr (AF == Affine::per_col) {
          if (a.vec_affine) {
            if (a.weight)
              wv = load_pack<T, V>(a.weight + i);
            if (a.bias)
              bv = load_pack<T, V>(a.bias + i);
          } else {
#pragma unroll
            for (int j = 0; j < V; ++j) {
              if (a.weight)
                wv.v[j] = a.weight[i + j];
              if (a.bias)
                bv.v[j] = a.bias[i + j];
            }
          }
        }
        if constexpr (AF == Affine::per_channel) {
          if (a.weight)
            wv.v[0] = a.weight[i];
          if (a.bias)
            bv.v[0] = a.bias[i];
        }
#pragma unroll
        for (int j = 0; j < V; ++j) {
          A v = to_acc(in.v[j]) - m;
          v *= AF == Affine::per_channel && a.col_stats && j > 0 ? a.rstd[s + j] : rs;
          if constexpr (AF != Affine::none) {
            const int jj = AF == Affine::per_col ? j : 0;
            if (a.weight)
              v *= to_acc(wv.v[jj]);
            if (a.bias)
              v += to_acc(bv.v[jj]);
          }
          o.v[j] = from_acc<T>(v);
        }
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          int64_t s, i;
          locate(off + j, s, i);
          o.v[j] = from_acc<T>(normalize<T, AF>(a, to_acc(in.v[j]), s, i));
        }
      }
      store_pack<T, V>(y + k * V, o);
    }
    // Move the position on by one grid stride.
    r0 += a.step_rows;
    c0 += a.step_cols;
    if (c0 >= a.cols) {
      c0 -= a.cols;
      ++r0;
    }
    if constexpr (AF == Affine::per_channel) {
      q0 += a.step_spatial;
      const int carry = q0 >= a.spatial;
      if (carry)
        q0 -= a.spatial;
      ch0 += a.step_channels + carry;
      if (ch0 >= a.channels)
        ch0 -= a.channels;
    }
  }
}

// Launches apply_kernel with one block per resident slot.
template <class T, Affine AF, int V, bool Uniform> void launch_apply(Context& ctx, ApplyArgs<T> a) {
  static const int resident = [] {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, apply_kernel<T, AF, V, Uniform>, k_block,
                                                      0) != cudaSuccess) {
      (void)cudaGetLastError();
      b = 0;
    }
    return std::max(b, 1);
  }();
  a.tiles = ceil_div(a.packs, int64_t{k_block} * k_unroll);
  const int64_t slots = std::max<int64_t>(1, int64_t{ctx.impl().sm_count} * resident);
  const int64_t used = std::clamp<int64_t>(a.tiles, 1, slots);
  const int64_t stride = used * int64_t{k_block} * k_unroll * V;
  a.step_rows = stride / a.cols;
  a.step_cols = stride % a.cols;
  a.step_spatial = stride % a.spatial;
  a.step_channels = (stride / a.spatial) % a.channels;
  apply_kernel<T, AF, V, Uniform><<<static_cast<unsigned>(used), k_block, 0, ctx.stream()>>>(a);
  KB_CUDA_CHECK_LAUNCH();
}

template <class T, int V, bool Uniform>
void launch_apply(Context& ctx, const ApplyArgs<T>& a, Affine af) {
  switch (af) {
  case Affine::none:
    launch_apply<T, Affine::none, V, Uniform>(ctx, a);
    break;
  case Affine::per_col:
    launch_apply<T, Affine::per_col, V, Uniform>(ctx, a);
    break;
  case Affine::per_channel:
    launch_apply<T, Affine::per_channel, V, Uniform>(ctx, a);
    break;
  }
}

// Applies the statistics: 16-byte packs when x and y sit at the same offset from a 16-byte
// boundary (a scalar head and tail around them), else element by element.
template <class T> void run_apply(Context& ctx, ApplyArgs<T> a, Affine af) {
  constexpr int V = k_vec<T>;
  const auto ax = reinterpret_cast<uintptr_t>(a.x), ay = reinterpret_cast<uintptr_t>(a.y);
  if (((ax ^ ay) & 15u) == 0 && ax % sizeof(T) == 0) {
    a.head = std::min(a.n, to_boundary(a.x, sizeof(T)));
    a.packs = (a.n - a.head) / V;
    a.uniform = a.head == 0 && a.cols % V == 0 && (af != Affine::per_channel || a.spatial % V == 0);
    a.vec_affine = af == Affine::per_col && a.uniform && aligned16(a.weight) && aligned16(a.bias);
    const int64_t span = int64_t{k_block} * k_unroll * V + 1;
    a.by_cols = StepDiv(a.cols, span);
    a.by_spatial = StepDiv(a.spatial, span);
    a.by_channels = StepDiv(a.channels, span);
    if (a.uniform)
      launch_apply<T, V, true>(ctx, a, af);
    else
      launch_apply<T, V, false>(ctx, a, af);
  } else {
    a.head = 0;
    a.packs = a.n;
    a.uniform = true;
    a.vec_affine = false;
    const int64_t span = int64_t{k_block} * k_unroll + 1;
    a.by_cols = StepDiv(a.cols, span);
    a.by_spatial = StepDiv(a.spatial, span);
    a.by_channels = StepDiv(a.channels, span);
    launch_apply<T, 1, true>(ctx, a, af);
  }
}

template <class T>
void row_stats(Context& ctx, const T* x, int64_t rows, int64_t cols, StatMode mode, double eps,
               Acc<T>* mean, Acc<T>* rstd, Acc<T>* partial, int64_t splits, int64_t chunk) {
  using A = Acc<T>;
  cudaStream_t s = ctx.stream();
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows * splits, 0x7fffffff));
  if (mode == StatMode::welford)
    row_stats_kernel<T, StatMode::welford><<<grid, k_block, 0, s>>>(
        x, rows, cols, chunk, splits, static_cast<A>(eps), partial, mean, rstd);
  else
    row_stats_kernel<T, StatMode::sum_squares><<<grid, k_block, 0, s>>>(
        x, rows, cols, chunk, splits, static_cast<A>(eps), partial, mean, rstd);
  KB_CUDA_CHECK_LAUNCH();
  if (splits > 1) {
    finalize_stats_kernel<A><<<grid_for(rows * 32, 256), 256, 0, s>>>(
        partial, rows, splits, static_cast<A>(eps), mean, rstd);
    KB_CUDA_CHECK_LAUNCH();
  }
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
  ApplyArgs<T> ap;
  ap.x = static_cast<const T*>(x.data);
  ap.y = static_cast<T*>(out.data);
  ap.n = x.numel();
  int64_t rows = 0, cols = 0;
  Affine affine = Affine::none;
  StatMode mode = StatMode::welford;
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
    ap.weight = ptr(1);
    ap.bias = ptr(2);
    affine = Affine::per_col;
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
      ap.weight = ptr(1);
      ap.bias = ptr(2);
    } else if (node.op == "instance_norm") {
      ap.weight = ptr(1);
      ap.bias = ptr(2);
    } else {
      if (in.size() < 3)
        op_fail(node, "expects x, running_mean, running_var");
      ap.weight = ptr(3);
      ap.bias = ptr(4);
      running = true;
    }
    rows = N * G;
    cols = (C / G) * spatial;
    affine = Affine::per_channel;
    ap.spatial = std::max<int64_t>(spatial, 1);
    ap.channels = std::max<int64_t>(C, 1);
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
    ap.weight = ptr(1);
    if (ap.weight && in[1].numel() != R && in[1].numel() != 1)
      op_fail(node, str_cat("weight ", shape_str(in[1].shape),
                            " must have one value per reduced element (", R, ")"));
    if (x.numel() == 0)
      return;
    if (ap.weight && in[1].numel() == 1 && R != 1)
      op_fail(node, "a single-element weight is not supported by the GPU reference");
    if (inner > 1) {
      constexpr int V = k_vec<T>;
      A* rstd = static_cast<A*>(c.scratch(sizeof(A) * outer * inner));
      if (aligned16(x.data) && inner % V == 0)
        rms_cols_stats_kernel<T, V><<<grid_for(outer * inner / V, k_block), k_block, 0, s>>>(
            ap.x, outer, R, inner, static_cast<A>(eps), rstd);
      else
        rms_cols_stats_kernel<T, 1><<<grid_for(outer * inner, k_block), k_block, 0, s>>>(
            ap.x, outer, R, inner, static_cast<A>(eps), rstd);
      KB_CUDA_CHECK_LAUNCH();
      // y[o, r, i] = x[o, r, i] * rstd[o, i] * weight[r]: rows of R * inner, channels r.
      ap.rstd = rstd;
      ap.cols = R * inner;
      ap.spatial = inner;
      ap.channels = R;
      ap.col_stats = true;
      run_apply<T>(ctx, ap, Affine::per_channel);
      return;
    }
    rows = outer;
    cols = R;
    mode = StatMode::sum_squares;
    affine = Affine::per_col;
  } else {
    op_fail(node, "not a normalisation");
  }
  if (rows == 0 || cols == 0)
    return;
  if (c.prefer_cudnn && (node.op == "layer_norm" || node.op == "rms_norm") &&
      cudnn_norm(ctx, node, x, out, ap.weight, ap.bias, rows, cols, eps, node.op == "rms_norm"))
    return;
  ap.cols = cols;
  // Split long rows into chunks of at most 64K elements, and further (down to 4K) until there
  // are about four waves of blocks, so that few rows still fill the GPU.
  int64_t splits = 1, chunk = cols;
  if (!running) {
    const int64_t want_blocks = 4 * 8 * int64_t{c.sm_count};
    splits = std::max(ceil_div(cols, 65536), ceil_div(want_blocks, rows));
    splits = std::min(splits, std::max<int64_t>(1, cols / 4096));
    chunk = std::min(cols, ceil_div(ceil_div(cols, splits), 64) * 64);
    splits = ceil_div(cols, chunk);
  }
  const std::size_t stat_bytes = sizeof(A) * rows;
  const std::size_t partial_bytes = splits > 1 ? sizeof(A) * rows * splits * 3 : 0;
  char* mem = static_cast<char*>(c.scratch(2 * stat_bytes + partial_bytes + 64));
  A* mean = reinterpret_cast<A*>(mem);
  A* rstd = reinterpret_cast<A*>(mem + stat_bytes);
  if (running) {
    running_stats_kernel<T, A><<<grid_for(rows, 256), 256, 0, s>>>(
        static_cast<const T*>(in[1].data), static_cast<const T*>(in[2].data), rows, x.shape[1],
        static_cast<A>(eps), mean, rstd);
    KB_CUDA_CHECK_LAUNCH();
  } else {
    row_stats<T>(ctx, ap.x, rows, cols, mode, eps, mean, rstd,
                 reinterpret_cast<A*>(mem + 2 * stat_bytes), splits, chunk);
  }
  ap.mean = mean;
  ap.rstd = rstd;
  run_apply<T>(ctx, ap, affine);
}

// Spatial sizes from which batch_norm_train reads each (n, c) row with a block (row_stats_kernel);
// below, a thread per column of x viewed as [N, C * spatial] (col_stats_kernel).
constexpr int64_t k_bn_row_path_spatial = 1024;

std::size_t round_up_256(std::size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// batch_norm_train: Welford partials of each channel over the batch and the spatial positions,
// merged per channel (channel_stats_kernel) into per-row statistics, then the apply pass of the
// other norms with per-channel weight and bias.
template <class T>
void run_batch_norm_train(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
                          const DeviceTensor& out) {
  using A = Acc<T>;
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  const DeviceTensor& x = in[0];
  const std::size_t rank = x.shape.size();
  if (rank < 2)
    op_fail(node, "x must have rank >= 2");
  if (in.size() > 3)
    op_fail(node, "expects x and an optional weight and bias");
  const int64_t N = x.shape[0], C = x.shape[1];
  const int64_t S = shape_prod(x.shape, 2, rank);
  for (std::size_t i = 1; i < in.size(); ++i)
    if (in[i].numel() != C)
      op_fail(node, str_cat("weight and bias must have one value per channel (", C, "), got ",
                            shape_str(in[i].shape)));
  if (x.numel() == 0)
    return;
  const double eps = attr_double(node.attrs, "eps", 1e-5);
  const int64_t rows = N * C;
  const std::size_t stat_bytes = round_up_256(sizeof(A) * rows);
  const unsigned channel_grid = static_cast<unsigned>(std::min<int64_t>(C, 1 << 20));
  A* mean = nullptr;
  A* rstd = nullptr;
  if (S >= k_bn_row_path_spatial) {
    // As run_norm splits its rows: chunks of at most 64K elements, more (down to 4K) until there
    // are about four waves of blocks.
    const int64_t want_blocks = 4 * 8 * int64_t{c.sm_count};
    int64_t splits = std::max(ceil_div(S, 65536), ceil_div(want_blocks, rows));
    splits = std::min(splits, std::max<int64_t>(1, S / 4096));
    const int64_t chunk = std::min(S, ceil_div(ceil_div(S, splits), 64) * 64);
    splits = ceil_div(S, chunk);
    char* mem = static_cast<char*>(c.scratch(2 * stat_bytes + sizeof(A) * rows * splits * 3));
    mean = reinterpret_cast<A*>(mem);
    rstd = reinterpret_cast<A*>(mem + stat_bytes);
    A* partial = reinterpret_cast<A*>(mem + 2 * stat_bytes);
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows * splits, 0x7fffffff));
    // mean == nullptr: partials even for a single split per row.
    row_stats_kernel<T, StatMode::welford>
        <<<grid, k_block, 0, s>>>(static_cast<const T*>(x.data), rows, S, chunk, splits,
                                  static_cast<A>(eps), partial, nullptr, nullptr);
    KB_CUDA_CHECK_LAUNCH();
    // Unit (n * C + c) * splits + split holds channel c's partial for batch entry n.
    channel_stats_kernel<A><<<channel_grid, k_block, 0, s>>>(
        partial, C, N, C * splits, splits, splits, N, static_cast<A>(eps), mean, rstd);
    KB_CUDA_CHECK_LAUNCH();
  } else {
    // Enough column chunks for about four waves of resident threads (2048 per SM), each chunk of
    // at least 16 rows.
    const int64_t cols = C * S;
    const int64_t want_threads = 4 * int64_t{c.sm_count} * 2048;
    const int64_t max_chunks = std::max<int64_t>(1, N / 16);
    const int64_t want_chunks = std::clamp<int64_t>(ceil_div(want_threads, cols), 1, max_chunks);
    const int64_t rows_per = ceil_div(N, want_chunks);
    const int64_t chunks = ceil_div(N, rows_per);
    char* mem = static_cast<char*>(c.scratch(2 * stat_bytes + sizeof(A) * chunks * cols * 3));
    mean = reinterpret_cast<A*>(mem);
    rstd = reinterpret_cast<A*>(mem + stat_bytes);
    A* partial = reinterpret_cast<A*>(mem + 2 * stat_bytes);
    col_stats_kernel<T><<<grid_for(chunks * cols, 256), 256, 0, s>>>(
        static_cast<const T*>(x.data), N, cols, rows_per, chunks, partial);
    KB_CUDA_CHECK_LAUNCH();
    // Thread chunk * cols + c * S + position holds channel c's partial for that chunk.
    channel_stats_kernel<A><<<channel_grid, k_block, 0, s>>>(partial, C, chunks, cols, S, S, N,
                                                             static_cast<A>(eps), mean, rstd);
    KB_CUDA_CHECK_LAUNCH();
  }
  ApplyArgs<T> ap;
  ap.x = static_cast<const T*>(x.data);
  ap.y = static_cast<T*>(out.data);
  ap.n = x.numel();
  ap.mean = mean;
  ap.rstd = rstd;
  ap.weight = in.size() > 1 ? static_cast<const T*>(in[1].data) : nullptr;
  ap.bias = in.size() > 2 ? static_cast<const T*>(in[2].data) : nullptr;
  ap.cols = std::max<int64_t>(S, 1);
  ap.spatial = std::max<int64_t>(S, 1);
  ap.channels = std::max<int64_t>(C, 1);
  run_apply<T>(ctx, ap, Affine::per_channel);
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
  KB_DISPATCH_FLOAT(in[0].dtype, node, {
    if (node.op == "batch_norm_train")
      run_batch_norm_train<T>(ctx, node, in, out);
    else
      run_norm<T>(ctx, node, in, out);
  });
}

} // namespace kb::gpu
