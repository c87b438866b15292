// cumsum and cumprod: a CUB block scan per contiguous row (tiles carried by a running prefix), or a
// sequential scan per column when the dim is not the last. fp32 accumulation for f16/bf16.
#include <cub/block/block_load.cuh>
#include <cub/block/block_scan.cuh>

#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_scan_threads = 256;
constexpr int k_scan_items = 4;

// The scan's operation: a running sum (cumsum) or product (cumprod), with its identity.
template <bool Prod> struct ScanOp {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const {
    return Prod ? a * b : a + b;
  }
  template <class A> static __device__ __forceinline__ A identity() { return Prod ? A(1) : A(0); }
};

template <class A, bool Prod> struct RunningPrefix {
  A total;
  __device__ A operator()(A block_total) {
    const A old = total;
    total = ScanOp<Prod>{}(total, block_total);
    return old;
  }
};

template <class T, bool Prod>
__global__ void scan_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                 int64_t cols) {
  using A = Acc<T>;
  using Scan = cub::BlockScan<A, k_scan_threads>;
  __shared__ typename Scan::TempStorage temp;
  constexpr int64_t tile = int64_t{k_scan_threads} * k_scan_items;
  const A id = ScanOp<Prod>::template identity<A>();
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    RunningPrefix<A, Prod> prefix{id};
    for (int64_t base = 0; base < cols; base += tile) {
      A items[k_scan_items];
      // Blocked arrangement: thread t holds elements [t * items, (t + 1) * items) of the tile;
      // past the row's end it holds the identity, which leaves the scan unchanged.
      for (int j = 0; j < k_scan_items; ++j) {
        const int64_t c = base + threadIdx.x * k_scan_items + j;
        items[j] = c < cols ? to_acc(xr[c]) : id;
      }
      Scan(temp).InclusiveScan(items, items, ScanOp<Prod>{}, prefix);
      __syncthreads(); // temp is reused by the next tile
      for (int j = 0; j < k_scan_items; ++j) {
        const int64_t c = base + threadIdx.x * k_scan_items + j;
        if (c < cols)
          yr[c] = from_acc<T>(items[j]);
      }
    }
  }
}

template <class T, bool Prod>
__global__ void scan_cols_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                 int64_t R, int64_t inner) {
  using A = Acc<T>;
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < n;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / inner, i = t - o * inner;
    const int64_t base = o * R * inner + i;
    A acc = ScanOp<Prod>::template identity<A>();
    for (int64_t r = 0; r < R; ++r) {
      acc = ScanOp<Prod>{}(acc, to_acc(x[base + r * inner]));
      y[base + r * inner] = from_acc<T>(acc);
    }
  }
}

template <class T, bool Prod>
void launch_scan(const DeviceTensor& x, const DeviceTensor& out, int64_t outer, int64_t R,
                 int64_t inner, cudaStream_t s) {
  if (inner == 1)
    scan_rows_kernel<T, Prod>
        <<<static_cast<int>(std::min<int64_t>(outer, 1 << 20)), k_scan_threads, 0, s>>>(
            static_cast<const T*>(x.data), static_cast<T*>(out.data), outer, R);
  else
    scan_cols_kernel<T, Prod><<<grid_for(outer * inner, 256), 256, 0, s>>>(
        static_cast<const T*>(x.data), static_cast<T*>(out.data), outer, R, inner);
}

} // namespace

void op_cumsum(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
               const DeviceTensor& out) {
  if (node.op != "cumsum" && node.op != "cumprod")
    op_fail(node, "not a scan");
  const bool prod = node.op == "cumprod";
  if (in.size() != 1)
    op_fail(node, "expects one input");
  const DeviceTensor& x = in[0];
  require_float_dtype(node, x, "x");
  if (out.dtype != x.dtype || out.numel() != x.numel())
    op_fail(node, "output spec does not match the input");
  if (x.numel() == 0)
    return;
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const int64_t dim = rank == 0 ? 0 : norm_dim(node, attr_int(node.attrs, "dim"), rank);
  const int64_t outer = rank == 0 ? 1 : shape_prod(x.shape, 0, dim);
  const int64_t R = rank == 0 ? 1 : x.shape[dim];
  const int64_t inner = rank == 0 ? 1 : shape_prod(x.shape, dim + 1, x.shape.size());
  cudaStream_t s = ctx.stream();
  KB_DISPATCH_FLOAT(x.dtype, node, {
    if (prod)
      launch_scan<T, true>(x, out, outer, R, inner, s);
    else
      launch_scan<T, false>(x, out, outer, R, inner, s);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
