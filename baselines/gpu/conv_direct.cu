// Direct convolution kernels (forward and transposed, up to 3 spatial dims): the float64
// reference of the convolution ops and the fallback where cuDNN offers no algorithm.
#include "kernel_common.cuh"

namespace kb::gpu {

namespace {

// Output elements are ordered (n, co, d, h, w), so a block mostly shares one output channel and
// its weight loads are broadcasts.
template <class T>
__global__ void conv_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                ConvGeom g) {
  using A = Acc<T>;
  const int64_t osp = g.out[0] * g.out[1] * g.out[2];
  const int64_t isp = g.in[0] * g.in[1] * g.in[2];
  const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
  const int64_t cin_g = g.Cin / g.groups, cout_g = g.Cout / g.groups;
  const int64_t n_out = g.N * g.Cout * osp;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n_out;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % g.out[2];
    const int64_t oh = (i / g.out[2]) % g.out[1];
    const int64_t od = (i / (g.out[2] * g.out[1])) % g.out[0];
    const int64_t co = (i / osp) % g.Cout;
    const int64_t n = i / (osp * g.Cout);
    const int64_t grp = co / cout_g;
    const T* xb = x + (n * g.Cin + grp * cin_g) * isp;
    const T* wb = w + co * cin_g * ksz;
    A acc = 0;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
      if (id < 0 || id >= g.in[0])
        continue;
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
        if (ih < 0 || ih >= g.in[1])
          continue;
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
          if (iw < 0 || iw >= g.in[2])
            continue;
          const int64_t xoff = (id * g.in[1] + ih) * g.in[2] + iw;
          const int64_t woff = (kd * g.k[1] + kh) * g.k[2] + kw;
          for (int64_t ci = 0; ci < cin_g; ++ci)
            acc += to_acc(xb[ci * isp + xoff]) * to_acc(wb[ci * ksz + woff]);
        }
      }
    }
    y[i] = from_acc<T>(acc);
  }
}

// Transposed convolution as a gather: output position o receives x[i] * w[k] where
// o = i * stride - pad + k * dil.
template <class T>
__global__ void conv_transpose_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                      T* __restrict__ y, ConvGeom g) {
  using A = Acc<T>;
  const int64_t osp = g.out[0] * g.out[1] * g.out[2];
  const int64_t isp = g.in[0] * g.in[1] * g.in[2];
  const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
  const int64_t cin_g = g.Cin / g.groups, cout_g = g.Cout / g.groups;
  const int64_t n_out = g.N * g.Cout * osp;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n_out;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ow = i % g.out[2];
    const int64_t oh = (i / g.out[2]) % g.out[1];
    const int64_t od = (i / (g.out[2] * g.out[1])) % g.out[0];
    const int64_t co = (i / osp) % g.Cout;
    const int64_t n = i / (osp * g.Cout);
    const int64_t grp = co / cout_g, col = co % cout_g;
    A acc = 0;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      const int64_t td = od + g.pad[0] - kd * g.dil[0];
      if (td < 0 || td % g.stride[0] != 0 || td / g.stride[0] >= g.in[0])
        continue;
      const int64_t id = td / g.stride[0];
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        const int64_t th = oh + g.pad[1] - kh * g.dil[1];
        if (th < 0 || th % g.stride[1] != 0 || th / g.stride[1] >= g.in[1])
          continue;
        const int64_t ih = th / g.stride[1];
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t tw = ow + g.pad[2] - kw * g.dil[2];
          if (tw < 0 || tw % g.stride[2] != 0 || tw / g.stride[2] >= g.in[2])
            continue;
          const int64_t iw = tw / g.stride[2];
          const int64_t xoff = (id * g.in[1] + ih) * g.in[2] + iw;
          const int64_t woff = (kd * g.k[1] + kh) * g.k[2] + kw;
          for (int64_t ci = grp * cin_g; ci < (grp + 1) * cin_g; ++ci)
            acc += to_acc(x[(n * g.Cin + ci) * isp + xoff]) *
                   to_acc(w[(ci * cout_g + col) * ksz + woff]);
        }
      }
    }
    y[i] = from_acc<T>(acc);
  }
}

// wf[grp * cout_g + oc][ci][k] = w[grp * cin_g + ci][oc][ksz - 1 - k] (k flattened over the
// spatial dims, so the reversal flips every spatial axis).
template <class T>
__global__ void transposed_filter_kernel(const T* __restrict__ w, T* __restrict__ wf, ConvGeom g) {
  const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
  const int64_t cin_g = g.Cin / g.groups, cout_g = g.Cout / g.groups;
  const int64_t n = g.Cout * cin_g * ksz;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t k = i % ksz;
    const int64_t ci = (i / ksz) % cin_g;
    const int64_t co = i / (ksz * cin_g);
    const int64_t grp = co / cout_g, oc = co % cout_g;
    wf[i] = w[((grp * cin_g + ci) * cout_g + oc) * ksz + (ksz - 1 - k)];
  }
}

} // namespace

void launch_conv_direct(const OpNode& node, const DeviceTensor& x, const DeviceTensor& w,
                        const DeviceTensor& y, const ConvGeom& g, bool transposed, cudaStream_t s) {
  const int64_t n = g.N * g.Cout * g.out[0] * g.out[1] * g.out[2]; // y may be a batch slice
  if (n == 0)
    return;
  KB_DISPATCH_FLOAT(x.dtype, node, {
    if (transposed)
      conv_transpose_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(
          static_cast<const T*>(x.data), static_cast<const T*>(w.data), static_cast<T*>(y.data), g);
    else
      conv_fwd_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(
          static_cast<const T*>(x.data), static_cast<const T*>(w.data), static_cast<T*>(y.data), g);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu

namespace kb::gpu {

void launch_transposed_filter_as_forward(const OpNode& node, const DeviceTensor& w, void* wf,
                                         const ConvGeom& g, cudaStream_t s) {
  const int64_t n = g.Cout * (g.Cin / g.groups) * g.k[0] * g.k[1] * g.k[2];
  if (n == 0)
    return;
  KB_DISPATCH_FLOAT(w.dtype, node, {
    transposed_filter_kernel<T>
        <<<grid_for(n, 256), 256, 0, s>>>(static_cast<const T*>(w.data), static_cast<T*>(wf), g);
  });
  KB_CUDA_CHECK_LAUNCH();
}

} // namespace kb::gpu
