// Pooling: max_pool1d/2d and avg_pool1d/2d with PyTorch's output sizes, ceil_mode and divisors.
#include <array>
#include <cmath>
#include <limits>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

// Pooling geometry with the spatial dims right-aligned into two (pool1d has a unit height).
struct PoolGeometry {
  int64_t n = 0, c = 0;
  std::array<int64_t, 2> in{1, 1}, k{1, 1}, out{1, 1}, s{1, 1}, p{0, 0}, d{1, 1};
};

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

PoolGeometry pool_geometry(const Attrs& at, const Shape& x, std::size_t sd, bool with_dilation) {
  const auto kernel = attr_ints(at, "kernel_size", sd, {});
  const auto stride = attr_ints(at, "stride", sd, kernel);
  const auto padding = attr_ints(at, "padding", sd, std::vector<int64_t>(sd, 0));
  const auto dilation = with_dilation ? attr_ints(at, "dilation", sd, std::vector<int64_t>(sd, 1))
                                      : std::vector<int64_t>(sd, 1);
  const bool ceil_mode = attr_bool(at, "ceil_mode", false);
  require_at_least(kernel, 1, "kernel_size");
  require_at_least(stride, 1, "stride");
  require_at_least(padding, 0, "padding");
  require_at_least(dilation, 1, "dilation");
  PoolGeometry g;
  g.n = x[0];
  g.c = x[1];
  const std::size_t off = 2 - sd;
  for (std::size_t i = 0; i < sd; ++i) {
    if (padding[i] > kernel[i] / 2)
      fail("padding {} must be at most half of kernel_size {} (spatial dim {})", padding[i],
           kernel[i], i);
    const int64_t in = x[2 + i];
    // Checked: kernel_size, stride, padding and dilation are as large as the file says.
    const int64_t span = checked_add(checked_mul(dilation[i], kernel[i] - 1), 1);
    const int64_t last = checked_add(checked_add(in, checked_mul(2, padding[i])), -span);
    int64_t out = floor_div(checked_add(last, ceil_mode ? stride[i] - 1 : 0), stride[i]) + 1;
    // In ceil mode the last window must start inside the input or its left padding.
    if (ceil_mode && out > 1 && checked_mul(out - 1, stride[i]) >= checked_add(in, padding[i]))
      --out;
    if (out < 1)
      fail("output size {} is too small in spatial dim {} (input {}, kernel_size {}, stride {}, "
           "padding {}, dilation {})",
           out, i, in, kernel[i], stride[i], padding[i], dilation[i]);
    g.in[off + i] = in;
    g.k[off + i] = kernel[i];
    g.s[off + i] = stride[i];
    g.p[off + i] = padding[i];
    g.d[off + i] = dilation[i];
    g.out[off + i] = out;
  }
  return g;
}

ValueSpec pool_infer(const Attrs& at, std::span<const ValueSpec> in, std::size_t sd, bool is_max) {
  require_rank(in[0], "x", 2 + sd);
  require_floating(in[0], "x");
  if (!is_max)
    attr_bool(at, "count_include_pad", true);
  const PoolGeometry g = pool_geometry(at, in[0].shape, sd, is_max);
  Shape out{g.n, g.c};
  for (std::size_t i = 2 - sd; i < 2; ++i)
    out.push_back(g.out[i]);
  return {out, in[0].dtype};
}

void max_pool_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out,
                  std::size_t sd) {
  const PoolGeometry g = pool_geometry(at, in[0].shape, sd, true);
  double* o = out.data.data();
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const double* x = in[0].data.data() + nc * g.in[0] * g.in[1];
    for (int64_t oh = 0; oh < g.out[0]; ++oh)
      for (int64_t ow = 0; ow < g.out[1]; ++ow) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t kh = 0; kh < g.k[0]; ++kh) {
          const int64_t ih = oh * g.s[0] - g.p[0] + kh * g.d[0];
          if (ih < 0 || ih >= g.in[0])
            continue;
          for (int64_t kw = 0; kw < g.k[1]; ++kw) {
            const int64_t iw = ow * g.s[1] - g.p[1] + kw * g.d[1];
            if (iw < 0 || iw >= g.in[1])
              continue;
            const double v = x[ih * g.in[1] + iw];
            // NaN wins, as in PyTorch.
            if (v > m || std::isnan(v))
              m = v;
            if (std::isnan(m))
              break;
          }
        }
        *o++ = m;
      }
  }
}

void avg_pool_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out,
                  std::size_t sd) {
  const PoolGeometry g = pool_geometry(at, in[0].shape, sd, false);
  const bool include_pad = attr_bool(at, "count_include_pad", true);
  double* o = out.data.data();
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const double* x = in[0].data.data() + nc * g.in[0] * g.in[1];
    for (int64_t oh = 0; oh < g.out[0]; ++oh)
      for (int64_t ow = 0; ow < g.out[1]; ++ow) {
        // PyTorch's divisor: the window clipped to the padded input (count_include_pad), or to
        // the input itself; a ceil_mode window hanging past the padding counts only its part.
        int64_t h0 = oh * g.s[0] - g.p[0], w0 = ow * g.s[1] - g.p[1];
        int64_t h1 = std::min(h0 + g.k[0], g.in[0] + g.p[0]);
        int64_t w1 = std::min(w0 + g.k[1], g.in[1] + g.p[1]);
        const int64_t padded_count = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0);
        w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, g.in[0]);
        w1 = std::min(w1, g.in[1]);
        double sum = 0.0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw)
            sum += x[ih * g.in[1] + iw];
        const int64_t count = include_pad ? padded_count : (h1 - h0) * (w1 - w0);
        *o++ = h0 >= h1 || w0 >= w1 ? 0.0 : sum / static_cast<double>(count);
      }
  }
}

OpDef pool_def(std::string name, std::size_t sd, bool is_max) {
  std::vector<std::string> attrs =
      is_max ? std::vector<std::string>{"kernel_size", "stride", "padding", "dilation", "ceil_mode"}
             : std::vector<std::string>{"kernel_size", "stride", "padding", "ceil_mode",
                                        "count_include_pad"};
  OpDef d = make_op(name, 1, 1, attrs, {"kernel_size"});
  d.infer = [sd, is_max](const Attrs& a, std::span<const ValueSpec> in) {
    return pool_infer(a, in, sd, is_max);
  };
  d.cost = [sd](const Attrs& a, std::span<const ValueSpec> in, const ValueSpec& out) {
    // One comparison or addition per window element.
    const auto k = attr_ints(a, "kernel_size", sd, {});
    double window = 1.0;
    for (int64_t v : k)
      window *= static_cast<double>(v);
    return io_cost(in, out, static_cast<double>(numel(out.shape)) * window);
  };
  if (is_max)
    d.cpu = [sd](const Attrs& a, std::span<const HostTensor> in, HostTensor& out) {
      max_pool_cpu(a, in, out, sd);
    };
  else
    d.cpu = [sd](const Attrs& a, std::span<const HostTensor> in, HostTensor& out) {
      avg_pool_cpu(a, in, out, sd);
    };
  d.torch = [name, attrs](const Attrs& a, std::span<const std::string> n) {
    std::string s = fmt::format("F.{}({}", name, n[0]);
    for (const auto& k : attrs)
      if (auto it = a.find(k); it != a.end())
        s += fmt::format(", {}={}", k, attr_to_python(it->second));
    return s + ")";
  };
  return d;
}

} // namespace

void add_pool_ops(std::vector<OpDef>& ops) {
  ops.push_back(pool_def("max_pool1d", 1, true));
  ops.push_back(pool_def("max_pool2d", 2, true));
  ops.push_back(pool_def("avg_pool1d", 1, false));
  ops.push_back(pool_def("avg_pool2d", 2, false));
}

} // namespace kb::ops
