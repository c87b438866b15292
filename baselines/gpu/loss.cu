// Losses with mean reduction: mse_loss (grid-wide partial sums, then one block) and cross_entropy
// (a block per row computes logsumexp - logit[target], then one block averages).
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

constexpr int k_partial_blocks = 1024;

template <class T>
__global__ void sq_diff_partial_kernel(const T* __restrict__ a, const T* __restrict__ b, int64_t n,
                                       Acc<T>* __restrict__ partial) {
  using A = Acc<T>;
  __shared__ A shared[32];
  A acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const A d = to_acc(a[i]) - to_acc(b[i]);
    acc += d * d;
  }
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

} // namespace

void op_loss(Context& ctx, const OpNode& node, std::span<const DeviceTensor> in,
             const DeviceTensor& out) {
  if (in.size() != 2)
    op_fail(node, "expects two inputs");
  require_float_dtype(node, in[0], "input");
  if (out.dtype != in[0].dtype || out.numel() != 1)
    op_fail(node, "output must be a scalar of the input's dtype");
  auto& c = ctx.impl();
  cudaStream_t s = ctx.stream();
  if (node.op == "mse_loss") {
    if (in[1].dtype != in[0].dtype || in[1].numel() != in[0].numel())
      op_fail(node, "input and target must have the same shape and dtype");
    const int64_t n = in[0].numel();
    KB_DISPATCH_FLOAT(in[0].dtype, node, {
      using A = Acc<T>;
      const int blocks = grid_for(n, 256, k_partial_blocks);
      A* partial = static_cast<A*>(c.scratch(sizeof(A) * blocks));
      sq_diff_partial_kernel<T><<<blocks, 256, 0, s>>>(
          static_cast<const T*>(in[0].data), static_cast<const T*>(in[1].data), n, partial);
      KB_CUDA_CHECK_LAUNCH();
      mean_of_kernel<T>
          <<<1, 1024, 0, s>>>(partial, blocks, static_cast<A>(n), static_cast<T*>(out.data));
    });
    KB_CUDA_CHECK_LAUNCH();
    return;
  }
  if (node.op != "cross_entropy")
    op_fail(node, "not a loss");
  if (in[0].shape.size() != 2 || in[1].dtype != DType::i64 || in[1].numel() != in[0].shape[0])
    op_fail(node, "expects logits [N, C] and an i64 target [N]");
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

} // namespace kb::gpu
