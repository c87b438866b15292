// Plain sum over dim 1 of a 3-D FP32 tensor (keepdim): one thread per output column, a serial loop
// over dim 1 with an FP64 accumulator; adjacent threads read adjacent columns (coalesced).
#include <kbench/kb_abi.h>

namespace {

__global__ void sum_dim1_columns(const float* __restrict__ x, float* __restrict__ y, int64_t batch,
                                 int64_t rows, int64_t cols) {
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= batch * cols)
    return;
  const int64_t bi = idx / cols;
  const int64_t j = idx - bi * cols;
  const float* p = x + bi * rows * cols + j;
  double s = 0.0;
  for (int64_t i = 0; i < rows; ++i)
    s += p[i * cols];
  y[idx] = (float)s;
}

} // namespace

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  (void)workspace;
  if (n_in != 1 || n_out != 1)
    return 1;
  const kb_tensor& x = in[0];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || y.dtype != KB_F32 || x.ndim != 3 || y.ndim != 3)
    return 1;
  const int64_t batch = x.shape[0], rows = x.shape[1], cols = x.shape[2];
  if (y.shape[0] != batch || y.shape[1] != 1 || y.shape[2] != cols || batch <= 0 || rows <= 0 ||
      cols <= 0)
    return 1;
  const int threads = 256;
  const int64_t blocks = (batch * cols + threads - 1) / threads;
  if (blocks > 0x7fffffff)
    return 1;
  sum_dim1_columns<<<(unsigned)blocks, threads, 0, stream>>>(
      static_cast<const float*>(x.data), static_cast<float*>(y.data), batch, rows, cols);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
