// Convolutions: conv1d/2d/3d and conv_transpose1d/2d/3d (channels-first, PyTorch semantics).
#include <algorithm>
#include <array>

#include "ops_internal.hpp"

namespace kb::ops {

std::vector<int64_t> spatial_ints(const Attrs& a, std::string_view key, std::size_t sd,
                                  std::vector<int64_t> fallback) {
  auto it = a.find(key);
  if (it == a.end())
    return fallback;
  if (const auto* l = std::get_if<std::vector<int64_t>>(&it->second)) {
    // PyTorch expands a one-entry list to every spatial dim, as it does a plain int.
    if (l->size() == 1)
      return std::vector<int64_t>(sd, l->front());
    if (l->size() != sd)
      fail("attribute '{}' must be an integer or a list of {}, has {} entries", key,
           sd == 1 ? std::string("1 integer") : fmt::format("1 or {} integers", sd), l->size());
    return *l;
  }
  return attr_ints(a, key, sd, std::move(fallback)); // an int, or the type error
}

namespace {

constexpr const char* k_conv_names[] = {"x", "weight", "bias"};

// Geometry of one convolution with the spatial dims right-aligned into three (unused leading
// spatial dims have extent 1, kernel 1, stride 1, no padding), so one loop nest serves 1-D to 3-D.
struct ConvGeometry {
  int64_t n = 0, cin = 0, cout = 0, groups = 1;
  std::array<int64_t, 3> in{1, 1, 1}, k{1, 1, 1}, out{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1},
      op{0, 0, 0};
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
};

ConvGeometry conv_geometry(const Attrs& at, const Shape& x, const Shape& w, std::size_t sd,
                           bool transposed) {
  ConvGeometry g;
  const auto stride = spatial_ints(at, "stride", sd, std::vector<int64_t>(sd, 1));
  const auto padding = spatial_ints(at, "padding", sd, std::vector<int64_t>(sd, 0));
  const auto dilation = spatial_ints(at, "dilation", sd, std::vector<int64_t>(sd, 1));
  const auto out_pad = transposed
                           ? spatial_ints(at, "output_padding", sd, std::vector<int64_t>(sd, 0))
                           : std::vector<int64_t>(sd, 0);
  g.groups = attr_int(at, "groups", 1);
  require_at_least(stride, 1, "stride");
  require_at_least(dilation, 1, "dilation");
  require_at_least(padding, 0, "padding");
  require_at_least(out_pad, 0, "output_padding");
  if (g.groups < 1)
    fail("groups must be >= 1, got {}", g.groups);
  g.n = x[0];
  g.cin = x[1];
  if (g.cin % g.groups != 0)
    fail("groups={} does not divide the {} input channels of x {}", g.groups, g.cin, shape_str(x));
  if (transposed) {
    if (w[0] != g.cin)
      fail("weight {} must have {} input channels in dim 0 (x is {})", shape_str(w), g.cin,
           shape_str(x));
    g.cout = checked_mul(w[1], g.groups);
  } else {
    g.cout = w[0];
    if (g.cout % g.groups != 0)
      fail("groups={} does not divide the {} output channels of weight {}", g.groups, g.cout,
           shape_str(w));
    if (w[1] != g.cin / g.groups)
      fail("weight {} must have {} input channels per group in dim 1 (x {} with groups={})",
           shape_str(w), g.cin / g.groups, shape_str(x), g.groups);
  }
  const std::size_t off = 3 - sd;
  for (std::size_t i = 0; i < sd; ++i) {
    g.in[off + i] = x[2 + i];
    g.k[off + i] = w[2 + i];
    g.s[off + i] = stride[i];
    g.p[off + i] = padding[i];
    g.d[off + i] = dilation[i];
    g.op[off + i] = out_pad[i];
    // Checked: stride, padding and dilation are as large as the file says.
    const int64_t eff_k = checked_add(checked_mul(dilation[i], w[2 + i] - 1), 1);
    if (transposed) {
      if (out_pad[i] >= stride[i] && out_pad[i] >= dilation[i])
        fail("output_padding {} must be smaller than stride {} or dilation {} (spatial dim {})",
             out_pad[i], stride[i], dilation[i], i);
      g.out[off + i] = checked_add(checked_add(checked_add(checked_mul(x[2 + i] - 1, stride[i]),
                                                           -checked_mul(2, padding[i])),
                                               eff_k),
                                   out_pad[i]);
      if (g.out[off + i] < 1)
        fail("output size {} is too small (spatial dim {}: input {}, kernel {}, stride {}, padding "
             "{}, dilation {})",
             g.out[off + i], i, x[2 + i], w[2 + i], stride[i], padding[i], dilation[i]);
    } else {
      const int64_t padded = checked_add(x[2 + i], checked_mul(2, padding[i]));
      if (padded < eff_k)
        fail(
            "kernel larger than padded input in spatial dim {}: padded input {} (input {} + 2*{}), "
            "dilated kernel {} (kernel {}, dilation {})",
            i, padded, x[2 + i], padding[i], eff_k, w[2 + i], dilation[i]);
      g.out[off + i] = (padded - eff_k) / stride[i] + 1;
    }
  }
  return g;
}

ValueSpec conv_infer(const Attrs& at, std::span<const ValueSpec> in, std::size_t sd,
                     bool transposed) {
  require_rank(in[0], "x", 2 + sd);
  require_rank(in[1], "weight", 2 + sd);
  require_floating(in[0], "x");
  require_same_dtype(in, k_conv_names);
  const ConvGeometry g = conv_geometry(at, in[0].shape, in[1].shape, sd, transposed);
  if (in.size() == 3 && in[2].shape != Shape{g.cout})
    fail("bias must have shape [{}], got {}", g.cout, shape_str(in[2].shape));
  Shape out{g.n, g.cout};
  for (std::size_t i = 3 - sd; i < 3; ++i)
    out.push_back(g.out[i]);
  return {out, in[0].dtype};
}

OpCost conv_cost(const Attrs& at, std::span<const ValueSpec> in, const ValueSpec& out,
                 bool transposed) {
  const Shape& w = in[1].shape;
  const double k = static_cast<double>(prod(w, 2, w.size()));
  const int64_t groups = attr_int(at, "groups", 1);
  if (transposed)
    return io_cost(in, out,
                   2.0 * static_cast<double>(numel(in[0].shape)) * static_cast<double>(w[1]) * k);
  return io_cost(in, out,
                 2.0 * static_cast<double>(numel(out.shape)) *
                     static_cast<double>(in[0].shape[1] / groups) * k);
}

void conv_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out, std::size_t sd) {
  const ConvGeometry g = conv_geometry(at, in[0].shape, in[1].shape, sd, false);
  const int64_t cin_g = g.cin / g.groups, cout_g = g.cout / g.groups;
  const int64_t in_sp = g.in_size(), k_sp = g.k_size();
  const double* x = in[0].data.data();
  const double* w = in[1].data.data();
  double* o = out.data.data();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oc = 0; oc < g.cout; ++oc) {
      const int64_t grp = oc / cout_g;
      const double bias = in.size() == 3 ? in[2].data[oc] : 0.0;
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            double acc = bias;
            for (int64_t ic = 0; ic < cin_g; ++ic) {
              const double* xc = x + (n * g.cin + grp * cin_g + ic) * in_sp;
              const double* wc = w + (oc * cin_g + ic) * k_sp;
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
                    if (iw < 0 || iw >= g.in[2])
                      continue;
                    acc += xc[(id * g.in[1] + ih) * g.in[2] + iw] *
                           wc[(kd * g.k[1] + kh) * g.k[2] + kw];
                  }
                }
              }
            }
            *o++ = acc;
          }
    }
}

// Transposed convolution as the adjoint of the forward one: every input element scatters its
// kernel-weighted contribution into the output (input position i and tap k reach output
// i * stride - padding + k * dilation in each spatial dim).
void conv_transpose_cpu(const Attrs& at, std::span<const HostTensor> in, HostTensor& out,
                        std::size_t sd) {
  const ConvGeometry g = conv_geometry(at, in[0].shape, in[1].shape, sd, true);
  const int64_t cin_g = g.cin / g.groups, cout_g = g.cout / g.groups;
  const int64_t in_sp = g.in_size(), k_sp = g.k_size(), out_sp = g.out_size();
  const double* x = in[0].data.data();
  const double* w = in[1].data.data();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oc = 0; oc < g.cout; ++oc) {
      double* o = out.data.data() + (n * g.cout + oc) * out_sp;
      std::fill(o, o + out_sp, in.size() == 3 ? in[2].data[oc] : 0.0);
    }
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t ic = 0; ic < g.cin; ++ic) {
      const int64_t grp = ic / cin_g;
      const double* xc = x + (n * g.cin + ic) * in_sp;
      for (int64_t ocg = 0; ocg < cout_g; ++ocg) {
        const int64_t oc = grp * cout_g + ocg;
        const double* wc = w + (ic * cout_g + ocg) * k_sp;
        double* o = out.data.data() + (n * g.cout + oc) * out_sp;
        for (int64_t id = 0; id < g.in[0]; ++id)
          for (int64_t ih = 0; ih < g.in[1]; ++ih)
            for (int64_t iw = 0; iw < g.in[2]; ++iw) {
              const double xv = xc[(id * g.in[1] + ih) * g.in[2] + iw];
              for (int64_t kd = 0; kd < g.k[0]; ++kd) {
                const int64_t od = id * g.s[0] - g.p[0] + kd * g.d[0];
                if (od < 0 || od >= g.out[0])
                  continue;
                for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                  const int64_t oh = ih * g.s[1] - g.p[1] + kh * g.d[1];
                  if (oh < 0 || oh >= g.out[1])
                    continue;
                  double* orow = o + (od * g.out[1] + oh) * g.out[2];
                  const double* wrow = wc + (kd * g.k[1] + kh) * g.k[2];
                  for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                    const int64_t ow = iw * g.s[2] - g.p[2] + kw * g.d[2];
                    if (ow < 0 || ow >= g.out[2])
                      continue;
                    orow[ow] += xv * wrow[kw];
                  }
                }
              }
            }
      }
    }
}

OpDef conv_def(std::string name, std::size_t sd) {
  OpDef d = make_op(name, 2, 3, {"stride", "padding", "dilation", "groups"});
  d.infer = [sd](const Attrs& a, std::span<const ValueSpec> in) {
    return conv_infer(a, in, sd, false);
  };
  d.cost = [](const Attrs& a, std::span<const ValueSpec> in, const ValueSpec& out) {
    return conv_cost(a, in, out, false);
  };
  d.cpu = [sd](const Attrs& a, std::span<const HostTensor> in, HostTensor& out) {
    conv_cpu(a, in, out, sd);
  };
  d.torch = [name](const Attrs& a, std::span<const std::string> n) {
    return fmt::format("F.{}({}{})", name, join_names(n),
                       py_kwargs(a, {"stride", "padding", "dilation", "groups"}));
  };
  return d;
}

OpDef conv_transpose_def(std::string name, std::size_t sd) {
  OpDef d = make_op(name, 2, 3, {"stride", "padding", "output_padding", "dilation", "groups"});
  d.infer = [sd](const Attrs& a, std::span<const ValueSpec> in) {
    return conv_infer(a, in, sd, true);
  };
  d.cost = [](const Attrs& a, std::span<const ValueSpec> in, const ValueSpec& out) {
    return conv_cost(a, in, out, true);
  };
  d.cpu = [sd](const Attrs& a, std::span<const HostTensor> in, HostTensor& out) {
    conv_transpose_cpu(a, in, out, sd);
  };
  d.torch = [name](const Attrs& a, std::span<const std::string> n) {
    return fmt::format("F.{}({}{})", name, join_names(n),
                       py_kwargs(a, {"stride", "padding", "output_padding", "groups", "dilation"}));
  };
  return d;
}

} // namespace

void add_conv_ops(std::vector<OpDef>& ops) {
  ops.push_back(conv_def("conv1d", 1));
  ops.push_back(conv_def("conv2d", 2));
  ops.push_back(conv_def("conv3d", 3));
  ops.push_back(conv_transpose_def("conv_transpose1d", 1));
  ops.push_back(conv_transpose_def("conv_transpose2d", 2));
  ops.push_back(conv_transpose_def("conv_transpose3d", 3));
}

} // namespace kb::ops
