// Layout ops: reshape (copy), permute/transpose (generic strided gather), slice (2-D memcpy) and
// masked_fill_causal. Copies work on element sizes, so every dtype is supported.
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
    if (static_cast<int64_t>(out.shape.size()) != rank || out.shape[dim] != end - start)
      op_fail(node, str_cat("output ", shape_str(out.shape), " does not match slice [", start, ", ",
                            end, ") of dim ", dim));
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
  op_fail(node, "not a layout op");
}

} // namespace kb::gpu
