// Pooling: max_pool1d/2d/3d and avg_pool1d/2d/3d with PyTorch's output sizes, ceil_mode and
// divisors; adaptive_avg_pool1d/2d/3d and adaptive_max_pool1d/2d/3d with PyTorch's windows.
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

// Pooling geometry with the spatial dims right-aligned into three (unused leading dims have
// extent 1, kernel 1, stride 1, no padding), so one loop nest serves 1-D to 3-D.
struct PoolGeometry {
  int64_t n = 0, c = 0;
  std::array<int64_t, 3> in{1, 1, 1}, k{1, 1, 1}, out{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
};

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

PoolGeometry pool_geometry(const Attrs& at, const Shape& x, std::size_t sd, bool with_dilation) {
  const auto kernel = spatial_ints(at, "kernel_size", sd, {});
  // PyTorch takes an absent or empty stride as the kernel size.
  const AttrValue* st = at.contains("stride") ? &at.find("stride")->second : nullptr;
  const auto* st_list = st ? std::get_if<std::vector<int64_t>>(st) : nullptr;
  const auto stride = st_list && st_list->empty() ? kernel : spatial_ints(at, "stride", sd, kernel);
  const auto padding = spatial_ints(at, "padding", sd, std::vector<int64_t>(sd, 0));
  const auto dilation = with_dilation
                            ? spatial_ints(at, "dilation", sd, std::vector<int64_t>(sd, 1))
                            : std::vector<int64_t>(sd, 1);
  const bool ceil_mode = attr_bool(at, "ceil_mode", false);
  require_at_least(kernel, 1, "kernel_size");
  require_at_least(stride, 1, "stride");
  require_at_least(padding, 0, "padding");
  require_at_least(dilation, 1, "dilation");
  PoolGeometry g;
  g.n = x[0];
  g.c = x[1];
  const std::size_t off = 3 - sd;
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

// The divisor_override attribute of avg_pool2d/3d, 0 when absent.
int64_t divisor_override(const Attrs& at) {
  const int64_t v = attr_int(at, "divisor_override", 0);
  if (at.contains("divisor_override") && v == 0)
    fail("divisor_override must not be zero");
  return v;
}

ValueSpec pool_infer(const Attrs& at, std::span<const ValueSpec> in, std::size_t sd, bool is_max) {
  require_rank(in[0], "x", 2 + sd);
  require_floating(in[0], "x");
  if (!is_max) {
    attr_bool(at, "count_include_pad", true);
    divisor_override(at);
  }
  const PoolGeometry g = pool_geometry(at, in[0].shape, sd, is_max);
  Shape out{g.n, g.c};
  for (std::size_t i = 3 - sd; i < 3; ++i)
    out.push_back(g.out[i]);
  return {out, in[0].dtype};
}

// Max with PyTorch's NaN rule: a NaN wins and stays.
inline void max_into(double& m, double v) {
  if (v > m || std::isnan(v))
    m = v;
}

void max_pool_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out,
                  std::size_t sd) {
  const PoolGeometry g = pool_geometry(at, in[0].shape, sd, true);
  double* o = out.data.data();
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const double* x = in[0].data.data() + nc * g.in_size();
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t kd = 0; kd < g.k[0]; ++kd) {
            const int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0];
            if (id < 0 || id >= g.in[0])
              continue;
            for (int64_t kh = 0; kh < g.k[1]; ++kh) {
              const int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
              if (ih < 0 || ih >= g.in[1])
                continue;
              for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                const int64_t iw = ow * g.s[2] - g.p[2] + kw * g.d[2];
                if (iw >= 0 && iw < g.in[2])
                  max_into(m, x[(id * g.in[1] + ih) * g.in[2] + iw]);
              }
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
  const int64_t divisor = divisor_override(at);
  double* o = out.data.data();
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const double* x = in[0].data.data() + nc * g.in_size();
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          // PyTorch's divisor: the window clipped to the padded input (count_include_pad), or to
          // the input itself; a ceil_mode window hanging past the padding counts only its part.
          const std::array<int64_t, 3> o_idx{od, oh, ow};
          std::array<int64_t, 3> lo{}, hi{};
          int64_t padded_count = 1, count = 1;
          for (int i = 0; i < 3; ++i) {
            lo[i] = o_idx[i] * g.s[i] - g.p[i];
            hi[i] = std::min(lo[i] + g.k[i], g.in[i] + g.p[i]);
            padded_count *= hi[i] - lo[i];
            lo[i] = std::max<int64_t>(lo[i], 0);
            hi[i] = std::min(hi[i], g.in[i]);
            count *= std::max<int64_t>(hi[i] - lo[i], 0);
          }
          if (count == 0) {
            *o++ = 0.0; // a window entirely in the padding
            continue;
          }
          double sum = 0.0;
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih)
              for (int64_t iw = lo[2]; iw < hi[2]; ++iw)
                sum += x[(id * g.in[1] + ih) * g.in[2] + iw];
          const int64_t div = divisor != 0 ? divisor : include_pad ? padded_count : count;
          *o++ = sum / static_cast<double>(div);
        }
  }
}

OpDef pool_def(std::string name, std::size_t sd, bool is_max) {
  std::vector<std::string> attrs;
  if (is_max)
    attrs = {"kernel_size", "stride", "padding", "dilation", "ceil_mode"};
  else
    attrs = {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"};
  // F.avg_pool1d has no divisor_override; F.avg_pool2d/3d do.
  if (!is_max && sd > 1)
    attrs.push_back("divisor_override");
  OpDef d = make_op(name, 1, 1, attrs, {"kernel_size"});
  d.infer = [sd, is_max](const Attrs& a, std::span<const ValueSpec> in) {
    return pool_infer(a, in, sd, is_max);
  };
  d.cost = [sd](const Attrs& a, std::span<const ValueSpec> in, const ValueSpec& out) {
    // One comparison or addition per window element.
    const auto k = spatial_ints(a, "kernel_size", sd, {});
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

// ----- adaptive pooling -------------------------------------------------------------------------

// Adaptive pooling geometry, right-aligned into three spatial dims like PoolGeometry.
struct AdaptiveGeometry {
  int64_t n = 0, c = 0;
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1};
};

// PyTorch's adaptive window of output i along a dim of `in` inputs and `out` outputs:
// [floor(i * in / out), ceil((i + 1) * in / out)), in a form that cannot overflow.
int64_t adaptive_start(int64_t i, int64_t out, int64_t in) {
  return (i / out) * in + ((i % out) * in) / out;
}
int64_t adaptive_end(int64_t i, int64_t out, int64_t in) {
  const int64_t j = i + 1;
  return (j / out) * in + ((j % out) * in + out - 1) / out;
}

AdaptiveGeometry adaptive_geometry(const Attrs& at, const Shape& x, std::size_t sd) {
  // Unlike the fixed-window pools, PyTorch's adaptive pools take no one-entry list for 2-D/3-D.
  const auto size = attr_ints(at, "output_size", sd, {});
  require_at_least(size, 1, "output_size");
  AdaptiveGeometry g;
  g.n = x[0];
  g.c = x[1];
  for (std::size_t i = 0; i < sd; ++i) {
    // Checked: the window bounds are computed with products up to output_size * input size.
    checked_add(checked_mul(size[i], x[2 + i]), size[i]);
    g.in[3 - sd + i] = x[2 + i];
    g.out[3 - sd + i] = size[i];
  }
  return g;
}

void adaptive_pool_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out,
                       std::size_t sd, bool is_max) {
  const AdaptiveGeometry g = adaptive_geometry(at, in[0].shape, sd);
  const int64_t in_sp = g.in[0] * g.in[1] * g.in[2];
  double* o = out.data.data();
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const double* x = in[0].data.data() + nc * in_sp;
    for (int64_t od = 0; od < g.out[0]; ++od) {
      const int64_t d0 = adaptive_start(od, g.out[0], g.in[0]);
      const int64_t d1 = adaptive_end(od, g.out[0], g.in[0]);
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        const int64_t h0 = adaptive_start(oh, g.out[1], g.in[1]);
        const int64_t h1 = adaptive_end(oh, g.out[1], g.in[1]);
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          const int64_t w0 = adaptive_start(ow, g.out[2], g.in[2]);
          const int64_t w1 = adaptive_end(ow, g.out[2], g.in[2]);
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (int64_t id = d0; id < d1; ++id)
            for (int64_t ih = h0; ih < h1; ++ih)
              for (int64_t iw = w0; iw < w1; ++iw) {
                const double v = x[(id * g.in[1] + ih) * g.in[2] + iw];
                if (is_max)
                  max_into(acc, v);
                else
                  acc += v;
              }
          *o++ = is_max ? acc : acc / static_cast<double>((d1 - d0) * (h1 - h0) * (w1 - w0));
        }
      }
    }
  }
}

OpDef adaptive_pool_def(std::string name, std::size_t sd, bool is_max) {
  OpDef d = make_op(name, 1, 1, {"output_size"}, {"output_size"});
  d.infer = [sd](const Attrs& a, std::span<const ValueSpec> in) {
    require_rank(in[0], "x", 2 + sd);
    require_floating(in[0], "x");
    const AdaptiveGeometry g = adaptive_geometry(a, in[0].shape, sd);
    Shape out{g.n, g.c};
    for (std::size_t i = 3 - sd; i < 3; ++i)
      out.push_back(g.out[i]);
    return ValueSpec{out, in[0].dtype};
  };
  d.cost = [sd](const Attrs& a, std::span<const ValueSpec> in, const ValueSpec& out) {
    // One comparison or addition per window element; windows overlap when a dim does not divide.
    // Along one dim the windows cover in + out - gcd(in, out) elements: consecutive windows
    // share an element exactly where j * in / out (0 < j < out) is not an integer.
    const AdaptiveGeometry g = adaptive_geometry(a, in[0].shape, sd);
    double reads = static_cast<double>(g.n) * static_cast<double>(g.c);
    for (int i = 0; i < 3; ++i)
      reads *= static_cast<double>(g.in[i] + g.out[i] - std::gcd(g.in[i], g.out[i]));
    return io_cost(in, out, reads);
  };
  d.cpu = [sd, is_max](const Attrs& a, std::span<const HostTensor> in, HostTensor& out) {
    adaptive_pool_cpu(a, in, out, sd, is_max);
  };
  d.torch = [name](const Attrs& a, std::span<const std::string> n) {
    return fmt::format("F.{}({}, output_size={})", name, n[0],
                       attr_to_python(attr_value(a, "output_size")));
  };
  return d;
}

} // namespace

void add_pool_ops(std::vector<OpDef>& ops) {
  ops.push_back(pool_def("max_pool1d", 1, true));
  ops.push_back(pool_def("max_pool2d", 2, true));
  ops.push_back(pool_def("max_pool3d", 3, true));
  ops.push_back(pool_def("avg_pool1d", 1, false));
  ops.push_back(pool_def("avg_pool2d", 2, false));
  ops.push_back(pool_def("avg_pool3d", 3, false));
  ops.push_back(adaptive_pool_def("adaptive_avg_pool1d", 1, false));
  ops.push_back(adaptive_pool_def("adaptive_avg_pool2d", 2, false));
  ops.push_back(adaptive_pool_def("adaptive_avg_pool3d", 3, false));
  ops.push_back(adaptive_pool_def("adaptive_max_pool1d", 1, true));
  ops.push_back(adaptive_pool_def("adaptive_max_pool2d", 2, true));
  ops.push_back(adaptive_pool_def("adaptive_max_pool3d", 3, true));
}

} // namespace kb::ops
