// Plain ReLU: one element per thread per step of a grid-stride loop, scalar loads and stores;
// NaN propagates as in PyTorch (x < 0 ? 0 : x).
#include <kbench/kb_abi.h>

namespace {

__global__ void relu_scalar(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    y[i] = v < 0.f ? 0.f : v;
  }
}

} // namespace

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  (void)workspace;
  if (n_in != 1 || n_out != 1)
    return 1;
  const kb_tensor& x = in[0];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || y.dtype != KB_F32 || x.ndim != y.ndim)
    return 1;
  for (int i = 0; i < x.ndim; ++i)
    if (x.shape[i] != y.shape[i])
      return 1;
  const int64_t n = kb_numel(&x);
  if (n <= 0)
    return n == 0 ? 0 : 1;
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  relu_scalar<<<(unsigned)(blocks < 65536 * 16 ? blocks : 65536 * 16), threads, 0, stream>>>(
      static_cast<const float*>(x.data), static_cast<float*>(y.data), n);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
