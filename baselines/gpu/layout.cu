// Layout ops: reshape (copy), permute/transpose (generic strided gather), slice (2-D memcpy, or an
// index map with a step), masked_fill_causal, concat/stack (batched block copies), pad, flip and
// roll (one index map per output element), tril/triu, diag and gather. Copies work on element
// sizes, so every dtype is supported (gather: floating x).
#include <cstring>
#include <numeric>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_max_dims = 8;

struct PermuteIndex {
  int rank = 0;
  int64_t out_shape[k_max_dims] = {};
  int64_t in_stride[k_max_dims] = {}; // input stride of each output dim
  FastDiv div[k_max_dims];
};

template <class W, class I>
__global__ void permute_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t n,
                               PermuteIndex ix) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    I rem = static_cast<I>(i), off = 0;
    for (int d = ix.rank - 1; d >= 0; --d) {
      I q;
      if constexpr (sizeof(I) == 4)
        q = ix.div[d].div(rem);
      else
        q = rem / ix.out_shape[d];
      const I c = rem - q * static_cast<I>(ix.out_shape[d]);
      off += c * static_cast<I>(ix.in_stride[d]);
      rem = q;
    }
    y[i] = x[off];
  }
}

// One row of the last two dims per block iteration: the row's position r in its L x S matrix is
// found once per row, not per element.
template <class T>
__global__ void causal_fill_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                   int64_t L, int64_t S, T value) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t r = row % L;
    const T* xr = x + row * S;
    T* yr = y + row * S;
    for (int64_t c = threadIdx.x; c < S; c += blockDim.x)
      yr[c] = c > r ? value : xr[c];
  }
}

template <class W>
void launch_permute(const DeviceTensor& x, const DeviceTensor& y, const PermuteIndex& ix,
                    cudaStream_t s) {
  const int64_t n = y.numel();
  if (n < (int64_t{1} << 31))
    permute_kernel<W, uint32_t><<<grid_for(n, 256), 256, 0, s>>>(static_cast<const W*>(x.data),
                                                                 static_cast<W*>(y.data), n, ix);
  else
    permute_kernel<W, int64_t><<<grid_for(n, 256), 256, 0, s>>>(static_cast<const W*>(x.data),
                                                                static_cast<W*>(y.data), n, ix);
  KB_CUDA_CHECK_LAUNCH();
}

void permute(const OpNode& node, const DeviceTensor& x, const DeviceTensor& y,
             const std::vector<int64_t>& perm, cudaStream_t s) {
  const std::size_t rank = x.shape.size();
  if (perm.size() != rank)
    op_fail(node, str_cat("dims has ", perm.size(), " entries for rank ", rank));
  const Shape xs = contiguous_strides(x.shape);
  // Output dims with their input strides; size-1 dims dropped, neighbours merged when they are
  // contiguous in the input too.
  std::vector<int64_t> shp, str;
  for (std::size_t d = 0; d < rank; ++d) {
    const int64_t src = perm[d];
    const int64_t size = x.shape[src];
    if (size == 1)
      continue;
    if (!shp.empty() && str.back() == xs[src] * size) {
      shp.back() *= size;
      str.back() = xs[src];
      continue;
    }
    shp.push_back(size);
    str.push_back(xs[src]);
  }
  if (shp.size() > static_cast<std::size_t>(k_max_dims))
    op_fail(node, "too many dims");
  if (shp.size() <= 1 || (shp.size() == 1 && str[0] == 1)) {
    copy_tensor(x, y, s);
    return;
  }
  PermuteIndex ix;
  ix.rank = static_cast<int>(shp.size());
  for (int d = 0; d < ix.rank; ++d) {
    ix.out_shape[d] = shp[d];
    ix.in_stride[d] = str[d];
    if (shp[d] < (int64_t{1} << 31))
      ix.div[d] = FastDiv(static_cast<uint32_t>(shp[d]));
  }
  switch (dtype_size(x.dtype)) {
  case 1:
    launch_permute<uint8_t>(x, y, ix, s);
    break;
  case 2:
    launch_permute<uint16_t>(x, y, ix, s);
    break;
  case 4:
    launch_permute<uint32_t>(x, y, ix, s);
    break;
  case 8:
    launch_permute<uint64_t>(x, y, ix, s);
    break;
  default:
    op_fail(node, "unsupported element size");
  }
}

// ----- concat, stack ------------------------------------------------------------------------

// Inputs copied by one launch of join_kernel (kernel parameters stay well under 4 KB).
constexpr int k_join_batch = 32;

// Input j of a batch: its [outer, chunk] block goes to columns [offset, offset + chunk) of the
// [outer, row] output, in units of U.
struct JoinBatch {
  const void* src[k_join_batch];
  int64_t chunk[k_join_batch];
  int64_t offset[k_join_batch];
};

// grid.y picks the input; threads stride over its outer * chunk units.
template <class U, class I>
__global__ void join_kernel(U* __restrict__ out, int64_t outer, int64_t row, JoinBatch b) {
  const int j = blockIdx.y;
  const U* __restrict__ src = static_cast<const U*>(b.src[j]);
  const I chunk = static_cast<I>(b.chunk[j]);
  const I n = static_cast<I>(outer) * chunk;
  U* dst = out + b.offset[j];
  for (I i = blockIdx.x * I{blockDim.x} + threadIdx.x; i < n; i += I{gridDim.x} * blockDim.x) {
    const I o = i / chunk;
    dst[static_cast<int64_t>(o) * row + (i - o * chunk)] = src[i];
  }
}

template <class U>
void launch_join(const std::vector<const void*>& srcs, const std::vector<int64_t>& chunk,
                 const std::vector<int64_t>& offset, void* out, int64_t outer, int64_t row,
                 cudaStream_t s) {
  for (std::size_t first = 0; first < srcs.size(); first += k_join_batch) {
    const std::size_t count = std::min<std::size_t>(k_join_batch, srcs.size() - first);
    JoinBatch b{};
    int64_t most = 0;
    for (std::size_t j = 0; j < count; ++j) {
      b.src[j] = srcs[first + j];
      b.chunk[j] = chunk[first + j];
      b.offset[j] = offset[first + j];
      most = std::max(most, outer * chunk[first + j]);
    }
    const dim3 grid(static_cast<unsigned>(grid_for(most, 256, 8192)), static_cast<unsigned>(count));
    if (most < (int64_t{1} << 31))
      join_kernel<U, uint32_t><<<grid, 256, 0, s>>>(static_cast<U*>(out), outer, row, b);
    else
      join_kernel<U, int64_t><<<grid, 256, 0, s>>>(static_cast<U*>(out), outer, row, b);
    KB_CUDA_CHECK_LAUNCH();
  }
}

// Copies each input's [outer, chunk_bytes[j]] block into the [outer, row_bytes] output at byte
// column offset_bytes[j], in the widest unit (16, 8, 4, 2 or 1 bytes) that every size, offset and
// pointer allows.
void join(const OpNode& node, const std::vector<const void*>& srcs,
          const std::vector<int64_t>& chunk_bytes, const std::vector<int64_t>& offset_bytes,
          void* out, int64_t outer, int64_t row_bytes, cudaStream_t s) {
  uint64_t bits = static_cast<uint64_t>(row_bytes) | reinterpret_cast<uintptr_t>(out);
  for (std::size_t j = 0; j < srcs.size(); ++j)
    bits |= static_cast<uint64_t>(chunk_bytes[j]) | static_cast<uint64_t>(offset_bytes[j]) |
            reinterpret_cast<uintptr_t>(srcs[j]);
  int unit = 16;
  while (unit > 1 && (bits & static_cast<uint64_t>(unit - 1)) != 0)
    unit /= 2;
  std::vector<int64_t> chunk, offset;
  for (std::size_t j = 0; j < srcs.size(); ++j) {
    chunk.push_back(chunk_bytes[j] / unit);
    offset.push_back(offset_bytes[j] / unit);
  }
  const int64_t row = row_bytes / unit;
  switch (unit) {
  case 16:
    launch_join<uint4>(srcs, chunk, offset, out, outer, row, s);
    break;
  case 8:
    launch_join<uint64_t>(srcs, chunk, offset, out, outer, row, s);
    break;
  case 4:
    launch_join<uint32_t>(srcs, chunk, offset, out, outer, row, s);
    break;
  case 2:
    launch_join<uint16_t>(srcs, chunk, offset, out, outer, row, s);
    break;
  case 1:
    launch_join<uint8_t>(srcs, chunk, offset, out, outer, row, s);
    break;
  default:
    op_fail(node, "bad copy unit");
  }
}

// ----- index maps: pad, flip, roll, slice with a step ---------------------------------------

// Per output dim d with coordinate c, the input coordinate is
//   affine: a * c + b, valid when inside [0, in_size) (else the element is `fill`);
//   roll:   (c + b) mod in_size (b = size - shift).
struct MapIndex {
  int rank = 0;
  int64_t out_shape[k_max_dims] = {};
  int64_t in_size[k_max_dims] = {};
  int64_t in_stride[k_max_dims] = {};
  int64_t a[k_max_dims] = {};
  int64_t b[k_max_dims] = {};
  bool roll[k_max_dims] = {};
  FastDiv div[k_max_dims]; // by out_shape, for 32-bit indices
};

// I = uint32_t (fewer than 2^31 outputs: multiply-high division) or int64_t.
template <class W, class I>
__global__ void map_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t n, MapIndex ix,
                           W fill) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    I rem = static_cast<I>(i);
    int64_t off = 0;
    bool inside = true;
    for (int d = ix.rank - 1; d >= 0; --d) {
      I q;
      if constexpr (sizeof(I) == 4)
        q = ix.div[d].div(rem);
      else
        q = rem / ix.out_shape[d];
      const int64_t c = rem - q * static_cast<I>(ix.out_shape[d]);
      rem = q;
      int64_t src;
      if (ix.roll[d]) {
        src = c + ix.b[d];
        if (src >= ix.in_size[d])
          src -= ix.in_size[d];
      } else {
        src = ix.a[d] * c + ix.b[d];
        inside = inside && src >= 0 && src < ix.in_size[d];
      }
      off += src * ix.in_stride[d];
    }
    y[i] = inside ? x[off] : fill;
  }
}

// One dim of an index map before merging: identity dims that are contiguous merge.
struct MapDim {
  int64_t out, in, stride, a, b;
  bool roll;
  bool identity() const { return !roll && a == 1 && b == 0 && in == out; }
};

// The element bits of `value` in dtype t (pad's fill).
uint64_t fill_bits(const OpNode& node, DType t, double value) {
  uint64_t bits = 0;
  switch (t) {
  case DType::f32: {
    const float f = static_cast<float>(value);
    std::memcpy(&bits, &f, sizeof(f));
    break;
  }
  case DType::f64:
    std::memcpy(&bits, &value, sizeof(value));
    break;
  case DType::f16: {
    const __half h = __float2half_rn(static_cast<float>(value));
    std::memcpy(&bits, &h, sizeof(h));
    break;
  }
  case DType::bf16: {
    const __nv_bfloat16 h = __float2bfloat16_rn(static_cast<float>(value));
    std::memcpy(&bits, &h, sizeof(h));
    break;
  }
  case DType::i32: {
    const auto v = static_cast<int32_t>(value);
    std::memcpy(&bits, &v, sizeof(v));
    break;
  }
  case DType::i64: {
    const auto v = static_cast<int64_t>(value);
    std::memcpy(&bits, &v, sizeof(v));
    break;
  }
  case DType::b8:
    bits = value != 0.0 ? 1 : 0;
    break;
  default:
    op_fail(node, "unsupported dtype");
  }
  return bits;
}

template <class W>
void launch_map(const DeviceTensor& x, const DeviceTensor& y, const MapIndex& ix, uint64_t fill,
                cudaStream_t s) {
  W f;
  std::memcpy(&f, &fill, sizeof(W));
  const int64_t n = y.numel();
  if (n < (int64_t{1} << 31))
    map_kernel<W, uint32_t><<<grid_for(n, 256), 256, 0, s>>>(static_cast<const W*>(x.data),
                                                             static_cast<W*>(y.data), n, ix, f);
  else
    map_kernel<W, int64_t><<<grid_for(n, 256), 256, 0, s>>>(static_cast<const W*>(x.data),
                                                            static_cast<W*>(y.data), n, ix, f);
  KB_CUDA_CHECK_LAUNCH();
}

void run_map(const OpNode& node, const DeviceTensor& x, const DeviceTensor& y,
             const std::vector<MapDim>& dims, double fill, cudaStream_t s) {
  if (y.numel() == 0)
    return;
  std::vector<MapDim> merged;
  for (const MapDim& d : dims) {
    if (d.out == 1 && d.identity())
      continue; // contributes nothing
    if (!merged.empty() && merged.back().identity() && d.identity() &&
        merged.back().stride == d.stride * d.in) {
      merged.back().out *= d.out;
      merged.back().in *= d.in;
      merged.back().stride = d.stride;
      continue;
    }
    merged.push_back(d);
  }
  if (merged.size() > static_cast<std::size_t>(k_max_dims))
    op_fail(node, str_cat("index map over ", merged.size(), " dims exceeds ", k_max_dims));
  MapIndex ix;
  ix.rank = static_cast<int>(merged.size());
  for (int d = 0; d < ix.rank; ++d) {
    ix.out_shape[d] = merged[d].out;
    ix.in_size[d] = merged[d].in;
    ix.in_stride[d] = merged[d].stride;
    ix.a[d] = merged[d].a;
    ix.b[d] = merged[d].b;
    ix.roll[d] = merged[d].roll;
    if (merged[d].out < (int64_t{1} << 31))
      ix.div[d] = FastDiv(static_cast<uint32_t>(merged[d].out));
  }
  const uint64_t bits = fill_bits(node, y.dtype, fill);
  switch (dtype_size(y.dtype)) {
  case 1:
    return launch_map<uint8_t>(x, y, ix, bits, s);
  case 2:
    return launch_map<uint16_t>(x, y, ix, bits, s);
  case 4:
    return launch_map<uint32_t>(x, y, ix, bits, s);
  case 8:
    return launch_map<uint64_t>(x, y, ix, bits, s);
  default:
    op_fail(node, "unsupported element size");
  }
}

// ----- tril, triu, diag ---------------------------------------------------------------------

// One row of the last two dims per block iteration: keeps c - r <= k (lower) or >= k, else 0.
template <class W>
__global__ void triangle_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t rows, int64_t R,
                                int64_t C, int64_t k, bool lower) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t r = row % R;
    const W* xr = x + row * C;
    W* yr = y + row * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const bool keep = lower ? c - r <= k : c - r >= k;
      yr[c] = keep ? xr[c] : W(0);
    }
  }
}

// x [len] onto diagonal k of the n x n output (zero elsewhere), one row of the output per block
// iteration, so no division per element.
template <class W>
__global__ void diag_build_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t n, int64_t r0,
                                  int64_t c0) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    W* yr = y + r * n;
    const int64_t c_diag = r - r0 + c0; // the row's diagonal column, when r >= r0
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
      yr[c] = r >= r0 && c == c_diag ? x[r - r0] : W(0);
  }
}

// Diagonal k of x [rows, cols] (len elements from (r0, c0)).
template <class W>
__global__ void diag_take_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t len,
                                 int64_t cols, int64_t r0, int64_t c0) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < len;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = x[(r0 + i) * cols + c0 + i];
}

// Calls fn.template operator()<W>() with W the unsigned type of `bytes` bytes.
template <class F> void by_element_size(const OpNode& node, std::size_t bytes, F&& fn) {
  switch (bytes) {
  case 1:
    return fn(uint8_t{});
  case 2:
    return fn(uint16_t{});
  case 4:
    return fn(uint32_t{});
  case 8:
    return fn(uint64_t{});
  default:
    op_fail(node, "unsupported element size");
  }
}

// ----- gather -------------------------------------------------------------------------------

struct GatherIndex {
  int rank = 0, dim = 0;
  int64_t shape[k_max_dims] = {};    // index's (and the output's) shape
  int64_t x_stride[k_max_dims] = {}; // x's strides
  int64_t x_size = 0;                // x's extent along dim
};

// One thread per output element; an index outside [0, x_size) yields NaN, never a stray read.
template <class T>
__global__ void gather_kernel(const T* __restrict__ x, const int64_t* __restrict__ index,
                              T* __restrict__ y, int64_t n, GatherIndex g) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t v = index[i];
    if (v < 0 || v >= g.x_size) {
      y[i] = from_acc<T>(Acc<T>(NAN));
      continue;
    }
    int64_t rem = i, off = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      const int64_t c = rem % g.shape[d];
      rem /= g.shape[d];
      off += (d == g.dim ? v : c) * g.x_stride[d];
    }
    y[i] = x[off];
  }
}

} // namespace

void op_layout(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  if (x.dtype != out.dtype)
    op_fail(node, "output dtype differs from the input");
  cudaStream_t s = ctx.stream();
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (node.op == "reshape") {
    if (x.numel() != out.numel())
      op_fail(node, str_cat("cannot reshape ", shape_str(x.shape), " into ", shape_str(out.shape)));
    copy_tensor(x, out, s);
    return;
  }
  if (node.op == "permute" || node.op == "transpose") {
    std::vector<int64_t> perm(rank);
    std::iota(perm.begin(), perm.end(), 0);
    if (node.op == "permute") {
      perm = attr_ints(node.attrs, "dims", rank, {});
      if (static_cast<int64_t>(perm.size()) != rank)
        op_fail(node, "dims must list every dim");
      std::vector<bool> seen(rank, false);
      for (auto& d : perm) {
        d = norm_dim(node, d, rank);
        if (seen[d])
          op_fail(node, "dims is not a permutation");
        seen[d] = true;
      }
    } else {
      const int64_t d0 = norm_dim(node, attr_int(node.attrs, "dim0"), rank);
      const int64_t d1 = norm_dim(node, attr_int(node.attrs, "dim1"), rank);
      std::swap(perm[d0], perm[d1]);
    }
    if (out.numel() != x.numel())
      op_fail(node, "output size mismatch");
    if (x.numel() == 0)
      return;
    permute(node, x, out, perm, s);
    return;
  }
  if (node.op == "slice") {
    const int64_t dim = norm_dim(node, attr_int(node.attrs, "dim"), rank);
    const int64_t size = x.shape[dim];
    auto clampi = [&](int64_t v) {
      if (v < 0)
        v += size;
      return std::clamp<int64_t>(v, 0, size);
    };
    const int64_t start = clampi(attr_int(node.attrs, "start", 0));
    const int64_t end = std::max(start, clampi(attr_int(node.attrs, "end", size)));
    const int64_t step = attr_int(node.attrs, "step", 1);
    if (step < 1)
      op_fail(node, str_cat("step must be >= 1, got ", step));
    if (static_cast<int64_t>(out.shape.size()) != rank ||
        out.shape[dim] != (end - start + step - 1) / step)
      op_fail(node, str_cat("output ", shape_str(out.shape), " does not match slice [", start, ", ",
                            end, ") step ", step, " of dim ", dim));
    if (step != 1) {
      const Shape xs = contiguous_strides(x.shape);
      std::vector<MapDim> dims;
      for (int64_t d = 0; d < rank; ++d)
        dims.push_back(d == dim ? MapDim{out.shape[d], size, xs[d], step, start, false}
                                : MapDim{out.shape[d], x.shape[d], xs[d], 1, 0, false});
      run_map(node, x, out, dims, 0.0, s);
      return;
    }
    const int64_t outer = shape_prod(x.shape, 0, dim);
    const int64_t inner = shape_prod(x.shape, dim + 1, x.shape.size());
    const std::size_t es = dtype_size(x.dtype);
    if (out.numel() == 0)
      return;
    KB_CUDA_CHECK(cudaMemcpy2DAsync(
        out.data, (end - start) * inner * es, static_cast<const char*>(x.data) + start * inner * es,
        size * inner * es, (end - start) * inner * es, outer, cudaMemcpyDeviceToDevice, s));
    return;
  }
  if (node.op == "masked_fill_causal") {
    require_float_dtype(node, x, "x");
    if (rank < 2)
      op_fail(node, "x must have rank >= 2");
    const int64_t L = x.shape[rank - 2], S = x.shape[rank - 1];
    const int64_t n = x.numel();
    if (n == 0)
      return;
    const double value = attr_double(node.attrs, "value", -HUGE_VAL);
    KB_DISPATCH_FLOAT(x.dtype, node, {
      const int64_t rows = n / S;
      const int block = S >= 256 ? 256 : (S >= 128 ? 128 : 64);
      causal_fill_kernel<T><<<static_cast<int>(std::min<int64_t>(rows, 1 << 20)), block, 0, s>>>(
          static_cast<const T*>(x.data), static_cast<T*>(out.data), rows, L, S,
          static_cast<T>(static_cast<Acc<T>>(value)));
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  if (node.op == "pad" || node.op == "flip" || node.op == "roll") {
    if (out.numel() == 0)
      return;
    const Shape xs = contiguous_strides(x.shape);
    std::vector<MapDim> dims;
    for (int64_t d = 0; d < rank; ++d)
      dims.push_back(MapDim{out.shape[d], x.shape[d], xs[d], 1, 0, false});
    double fill = 0.0;
    if (node.op == "pad") {
      const auto pad = attr_ints(node.attrs, "pad", 0, {});
      if (pad.size() % 2 != 0 || static_cast<int64_t>(pad.size() / 2) > rank)
        op_fail(node, str_cat("pad has ", pad.size(), " entries for rank ", rank));
      for (std::size_t k = 0; k < pad.size() / 2; ++k) {
        MapDim& m = dims[rank - 1 - k];
        m.b = -pad[2 * k]; // output c reads input c - before
        if (m.out != m.in + pad[2 * k] + pad[2 * k + 1])
          op_fail(node, str_cat("output ", shape_str(out.shape), " does not match the padding"));
      }
      fill = attr_double(node.attrs, "value", 0.0);
    } else if (node.op == "flip") {
      if (out.shape != x.shape)
        op_fail(node, "output shape differs from x");
      for (int64_t d : attr_ints(node.attrs, "dims", 0, {})) {
        MapDim& m = dims[norm_dim(node, d, rank)];
        m.a = -1;
        m.b = m.in - 1;
      }
    } else { // roll
      if (out.shape != x.shape)
        op_fail(node, "output shape differs from x");
      const auto shifts = attr_ints(node.attrs, "shifts", 0, {});
      if (!node.attrs.contains("dims")) {
        // Rolled flat: one dim of every element.
        if (shifts.size() != 1)
          op_fail(node, "without dims, shifts must be one int");
        const int64_t n = x.numel();
        const int64_t sh = ((shifts[0] % n) + n) % n;
        dims = {MapDim{n, n, 1, 1, (n - sh) % n, true}};
      } else {
        const auto ds = attr_ints(node.attrs, "dims", 0, {});
        if (ds.size() != shifts.size())
          op_fail(node, "shifts and dims differ in length");
        std::vector<int64_t> total(rank, 0);
        for (std::size_t k = 0; k < ds.size(); ++k) {
          const int64_t d = norm_dim(node, ds[k], rank);
          total[d] = (total[d] + shifts[k] % x.shape[d]) % x.shape[d];
        }
        for (int64_t d = 0; d < rank; ++d)
          if (total[d] != 0) {
            const int64_t sh = (total[d] + x.shape[d]) % x.shape[d]; // in [0, size)
            dims[d].roll = true;
            dims[d].b = (x.shape[d] - sh) % x.shape[d]; // output c reads (c - sh) mod size
          }
      }
    }
    run_map(node, x, out, dims, fill, s);
    return;
  }
  if (node.op == "tril" || node.op == "triu") {
    if (rank < 2)
      op_fail(node, "x must have rank >= 2");
    if (out.shape != x.shape)
      op_fail(node, "output shape differs from x");
    const int64_t n = x.numel();
    if (n == 0)
      return;
    const int64_t R = x.shape[rank - 2], C = x.shape[rank - 1];
    const int64_t k = attr_int(node.attrs, "diagonal", 0);
    const bool lower = node.op == "tril";
    const int block = C >= 256 ? 256 : (C >= 128 ? 128 : 64);
    by_element_size(node, dtype_size(x.dtype), [&](auto w) {
      using W = decltype(w);
      triangle_kernel<W><<<static_cast<int>(std::min<int64_t>(n / C, 1 << 20)), block, 0, s>>>(
          static_cast<const W*>(x.data), static_cast<W*>(out.data), n / C, R, C, k, lower);
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  if (node.op == "diag") {
    const int64_t k = attr_int(node.attrs, "diagonal", 0);
    const int64_t r0 = k >= 0 ? 0 : -k, c0 = k >= 0 ? k : 0;
    if (out.numel() == 0)
      return;
    if (rank == 1) {
      const int64_t n = x.shape[0] + (k >= 0 ? k : -k);
      if (out.shape != Shape{n, n})
        op_fail(node, str_cat("output ", shape_str(out.shape), " is not ", n, " x ", n));
      by_element_size(node, dtype_size(x.dtype), [&](auto w) {
        using W = decltype(w);
        diag_build_kernel<W><<<static_cast<int>(std::min<int64_t>(n, 1 << 20)), 256, 0, s>>>(
            static_cast<const W*>(x.data), static_cast<W*>(out.data), n, r0, c0);
      });
    } else if (rank == 2) {
      const int64_t len = out.numel();
      if (r0 + len > x.shape[0] || c0 + len > x.shape[1])
        op_fail(node,
                str_cat("diagonal ", k, " of ", shape_str(x.shape), " has no ", len, " elements"));
      by_element_size(node, dtype_size(x.dtype), [&](auto w) {
        using W = decltype(w);
        diag_take_kernel<W><<<grid_for(len, 256), 256, 0, s>>>(
            static_cast<const W*>(x.data), static_cast<W*>(out.data), len, x.shape[1], r0, c0);
      });
    } else {
      op_fail(node, "x must have rank 1 or 2");
    }
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  op_fail(node, "not a layout op");
}

void op_join(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  if (node.op != "concat" && node.op != "stack")
    op_fail(node, "not concat or stack");
  if (in.empty())
    op_fail(node, "expects at least one input");
  for (const auto& t : in)
    if (t.dtype != out.dtype)
      op_fail(node, "inputs and output must share one dtype");
  const Shape& first = in[0].shape;
  const bool stack = node.op == "stack";
  const int64_t rank = static_cast<int64_t>(first.size());
  // The joined dim of the output: concat joins an existing dim, stack a new one.
  const int64_t dim = norm_dim(node, attr_int(node.attrs, "dim"), stack ? rank + 1 : rank);
  const std::size_t es = dtype_size(out.dtype);
  const int64_t outer = shape_prod(first, 0, dim);
  std::vector<const void*> srcs;
  std::vector<int64_t> chunk, offset;
  int64_t row = 0;
  for (const auto& t : in) {
    if (static_cast<int64_t>(t.shape.size()) != rank || shape_prod(t.shape, 0, dim) != outer)
      op_fail(node,
              str_cat("input ", shape_str(t.shape), " does not fit input 0 ", shape_str(first)));
    // Bytes of each outer row of this input: its dims from `dim` on (stack: all of them).
    const int64_t bytes = shape_prod(t.shape, dim, t.shape.size()) * static_cast<int64_t>(es);
    if (bytes == 0)
      continue;
    srcs.push_back(t.data);
    chunk.push_back(bytes);
    offset.push_back(row);
    row += bytes;
  }
  if (outer * row != static_cast<int64_t>(out.bytes()))
    op_fail(node, str_cat("output ", shape_str(out.shape), " does not hold the joined inputs"));
  if (srcs.empty() || outer == 0)
    return;
  join(node, srcs, chunk, offset, out.data, outer, row, ctx.stream());
}

void op_gather(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  if (in.size() != 2)
    op_fail(node, "expects x and index");
  const DeviceTensor &x = in[0], &index = in[1];
  require_float_dtype(node, x, "x");
  if (index.dtype != DType::i64)
    op_fail(node, "index must be i64");
  if (out.dtype != x.dtype || out.shape != index.shape)
    op_fail(node, "output spec does not match x's dtype and index's shape");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (static_cast<int64_t>(index.shape.size()) != rank || rank > k_max_dims)
    op_fail(node, "index must have x's rank (at most 8)");
  const int64_t n = out.numel();
  if (n == 0)
    return;
  GatherIndex g;
  g.rank = static_cast<int>(rank);
  g.dim = static_cast<int>(norm_dim(node, attr_int(node.attrs, "dim"), rank));
  const Shape xs = contiguous_strides(x.shape);
  for (int d = 0; d < g.rank; ++d) {
    g.shape[d] = index.shape[d];
    g.x_stride[d] = xs[d];
    if (d != g.dim && index.shape[d] > x.shape[d])
      op_fail(node, "index exceeds x outside dim");
  }
  g.x_size = x.shape[g.dim];
  cudaStream_t s = ctx.stream();
  KB_DISPATCH_FLOAT(x.dtype, node, {
    gather_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(static_cast<const T*>(x.data),
                                                      static_cast<const int64_t*>(index.data),
                                                      static_cast<T*>(out.data), n, g);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
