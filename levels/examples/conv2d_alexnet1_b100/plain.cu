// Plain conv2d (stride 4, padding 2, with bias): one thread per output element, direct loops over
// input channels and the kernel window, FP32 FMA; any N, C, H, W, Cout, kernel size.
#include <kbench/kb_abi.h>

namespace {

constexpr int k_stride = 4;
constexpr int k_pad = 2;

struct ConvShape {
  int n, c, h, w, co, kh, kw, oh, ow;
};

__global__ void conv2d_direct(const float* __restrict__ x, const float* __restrict__ wt,
                              const float* __restrict__ bias, float* __restrict__ y, ConvShape s) {
  const int64_t total = (int64_t)s.n * s.co * s.oh * s.ow;
  const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total)
    return;
  const int ox = (int)(idx % s.ow);
  const int oy = (int)((idx / s.ow) % s.oh);
  const int co = (int)((idx / ((int64_t)s.ow * s.oh)) % s.co);
  const int n = (int)(idx / ((int64_t)s.ow * s.oh * s.co));
  float acc = bias[co];
  for (int ci = 0; ci < s.c; ++ci) {
    const float* xp = x + ((int64_t)n * s.c + ci) * s.h * s.w;
    const float* wp = wt + ((int64_t)co * s.c + ci) * s.kh * s.kw;
    for (int ky = 0; ky < s.kh; ++ky) {
      const int iy = oy * k_stride - k_pad + ky;
      if (iy < 0 || iy >= s.h)
        continue;
      for (int kx = 0; kx < s.kw; ++kx) {
        const int ix = ox * k_stride - k_pad + kx;
        if (ix < 0 || ix >= s.w)
          continue;
        acc = fmaf(xp[(int64_t)iy * s.w + ix], wp[ky * s.kw + kx], acc);
      }
    }
  }
  y[idx] = acc;
}

} // namespace

extern "C" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out, void* workspace,
                          cudaStream_t stream) {
  (void)workspace;
  if (n_in != 3 || n_out != 1)
    return 1;
  const kb_tensor& x = in[0];
  const kb_tensor& w = in[1];
  const kb_tensor& b = in[2];
  const kb_tensor& y = out[0];
  if (x.dtype != KB_F32 || w.dtype != KB_F32 || b.dtype != KB_F32 || y.dtype != KB_F32 ||
      x.ndim != 4 || w.ndim != 4 || b.ndim != 1 || y.ndim != 4)
    return 1;
  ConvShape s{};
  s.n = (int)x.shape[0];
  s.c = (int)x.shape[1];
  s.h = (int)x.shape[2];
  s.w = (int)x.shape[3];
  s.co = (int)w.shape[0];
  s.kh = (int)w.shape[2];
  s.kw = (int)w.shape[3];
  if (w.shape[1] != s.c || b.shape[0] != s.co || s.h + 2 * k_pad < s.kh || s.w + 2 * k_pad < s.kw)
    return 1;
  s.oh = (s.h + 2 * k_pad - s.kh) / k_stride + 1;
  s.ow = (s.w + 2 * k_pad - s.kw) / k_stride + 1;
  if (y.shape[0] != s.n || y.shape[1] != s.co || y.shape[2] != s.oh || y.shape[3] != s.ow)
    return 1;
  const int64_t total = kb_numel(&y);
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  if (total <= 0 || blocks > 0x7fffffff)
    return 1;
  conv2d_direct<<<(unsigned)blocks, threads, 0, stream>>>(
      static_cast<const float*>(x.data), static_cast<const float*>(w.data),
      static_cast<const float*>(b.data), static_cast<float*>(y.data), s);
  return cudaGetLastError() == cudaSuccess ? 0 : 2;
}
