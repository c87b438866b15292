// Naive kernels of convolutions (direct and transposed, 1-D to 3-D, grouped, dilated) and pools
// (max, average, adaptive): one thread per output element looping over its window. Spatial dims
// are right-aligned into three (unused leading dims have extent 1), as the op library does.
#include <array>

#include "emit.hpp"

namespace kb::codegen {
namespace {

using Dims3 = std::array<int64_t, 3>;

// Right-aligns the `sd` spatial entries of `v` into three, filling with `fill`.
Dims3 align3(const std::vector<int64_t>& v, int64_t fill) {
  Dims3 a{fill, fill, fill};
  const std::size_t sd = v.size();
  for (std::size_t i = 0; i < sd; ++i)
    a[3 - sd + i] = v[i];
  return a;
}

std::vector<int64_t> spatial_of(const Shape& s) {
  return std::vector<int64_t>(s.begin() + 2, s.end());
}

// Statements decoding output element i of [N, C, D, H, W] (aligned) into n, ch, od, oh, ow.
std::string decode_out(int64_t c, const Dims3& out) {
  const int64_t sp = out[0] * out[1] * out[2];
  return fmt::format("const int64_t ow = i % {0}, oh = (i / {0}) % {1}, od = (i / {2}) % {3};\n"
                     "const int64_t ch = (i / {4}) % {5}, n = i / {6};\n",
                     lit(out[2]), lit(out[1]), lit(out[1] * out[2]), lit(out[0]), lit(sp), lit(c),
                     lit(sp * c));
}

void conv(NodeCtx& c, bool transposed) {
  const Attrs& a = c.node.attrs;
  const Shape &xs = c.in[0].shape, &ws = c.in[1].shape;
  const std::size_t sd = xs.size() - 2;
  const Dims3 in = align3(spatial_of(xs), 1), k = align3(spatial_of(ws), 1);
  const Dims3 out = align3(spatial_of(c.out.shape), 1);
  const Dims3 s = align3(spatial(a, "stride", sd, std::vector<int64_t>(sd, 1)), 1);
  const Dims3 p = align3(spatial(a, "padding", sd, std::vector<int64_t>(sd, 0)), 0);
  const Dims3 d = align3(spatial(a, "dilation", sd, std::vector<int64_t>(sd, 1)), 1);
  const int64_t groups = attr_int(a, "groups", 1);
  const int64_t cin = xs[1], cout = c.out.shape[1];
  const int64_t cin_g = cin / groups, cout_g = cout / groups;
  const int64_t in_sp = in[0] * in[1] * in[2], k_sp = k[0] * k[1] * k[2];
  std::vector<Arg> args = {in_arg("x", c.in[0]), in_arg("w", c.in[1])};
  if (c.in.size() == 3)
    args.push_back(in_arg("bias", c.in[2]));
  args.push_back(out_arg("y", c.out));
  std::string body = decode_out(cout, out);
  body += fmt::format("double acc = {};\n", c.in.size() == 3 ? "kb_ld(bias, ch)" : "0.0");
  if (!transposed) {
    body += fmt::format("const int64_t g = ch / {};\n"
                        "for (int64_t ic = 0; ic < {}; ++ic) {{\n"
                        "  const int64_t xc = (n * {} + g * {} + ic) * {};\n"
                        "  const int64_t wc = (ch * {} + ic) * {};\n",
                        lit(cout_g), lit(cin_g), lit(cin), lit(cin_g), lit(in_sp), lit(cin_g),
                        clit(k_sp));
    const char* const o[3] = {"od", "oh", "ow"};
    const char* const kk[3] = {"kd", "kh", "kw"};
    const char* const ii[3] = {"id", "ih", "iw"};
    std::string indent = "  ";
    for (int q = 0; q < 3; ++q) {
      body += fmt::format("{0}for (int64_t {1} = 0; {1} < {2}; ++{1}) {{\n"
                          "{0}  const int64_t {3} = {4} * {5} - {6} + {1} * {7};\n"
                          "{0}  if ({3} < 0 || {3} >= {8}) continue;\n",
                          indent, kk[q], clit(k[q]), ii[q], o[q], clit(s[q]), clit(p[q]),
                          clit(d[q]), lit(in[q]));
      indent += "  ";
    }
    body += fmt::format("{}acc += kb_ld(x, xc + (id * {} + ih) * {} + iw) * "
                        "kb_ld(w, wc + (kd * {} + kh) * {} + kw);\n",
                        indent, lit(in[1]), lit(in[2]), clit(k[1]), clit(k[2]));
  } else {
    // Output o receives input i through tap k when o = i * stride - padding + k * dilation.
    body += fmt::format("const int64_t g = ch / {0}, ocg = ch % {0};\n"
                        "for (int64_t icg = 0; icg < {1}; ++icg) {{\n"
                        "  const int64_t ic = g * {1} + icg;\n"
                        "  const int64_t xc = (n * {2} + ic) * {3};\n"
                        "  const int64_t wc = (ic * {0} + ocg) * {4};\n",
                        lit(cout_g), lit(cin_g), lit(cin), lit(in_sp), clit(k_sp));
    const char* const o[3] = {"od", "oh", "ow"};
    const char* const kk[3] = {"kd", "kh", "kw"};
    const char* const ii[3] = {"id", "ih", "iw"};
    const char* const tt[3] = {"td", "th", "tw"};
    std::string indent = "  ";
    for (int q = 0; q < 3; ++q) {
      body += fmt::format("{0}for (int64_t {1} = 0; {1} < {2}; ++{1}) {{\n"
                          "{0}  const int64_t {3} = {4} + {5} - {1} * {6};\n"
                          "{0}  if ({3} < 0 || {3} % {7} != 0) continue;\n"
                          "{0}  const int64_t {8} = {3} / {7};\n"
                          "{0}  if ({8} >= {9}) continue;\n",
                          indent, kk[q], clit(k[q]), tt[q], o[q], clit(p[q]), clit(d[q]),
                          clit(s[q]), ii[q], lit(in[q]));
      indent += "  ";
    }
    body += fmt::format("{}acc += kb_ld(x, xc + (id * {} + ih) * {} + iw) * "
                        "kb_ld(w, wc + (kd * {} + kh) * {} + kw);\n",
                        indent, lit(in[1]), lit(in[2]), clit(k[1]), clit(k[2]));
  }
  for (int q = 3; q >= 0; --q)
    body += std::string(static_cast<std::size_t>(q) * 2, ' ') + "}\n";
  body += "kb_st(y, i, acc);\n";
  c.e.map(c.kname(), c.out.numel(), args, body);
}

struct PoolGeo {
  Dims3 in, out, k, s, p, d;
};

PoolGeo pool_geo(const NodeCtx& c, bool with_dilation) {
  const Attrs& a = c.node.attrs;
  const std::size_t sd = c.in[0].shape.size() - 2;
  const auto kernel = spatial(a, "kernel_size", sd, {});
  PoolGeo g;
  g.in = align3(spatial_of(c.in[0].shape), 1);
  g.out = align3(spatial_of(c.out.shape), 1);
  g.k = align3(kernel, 1);
  g.s = align3(spatial(a, "stride", sd, kernel), 1);
  g.p = align3(spatial(a, "padding", sd, std::vector<int64_t>(sd, 0)), 0);
  g.d = align3(with_dilation ? spatial(a, "dilation", sd, std::vector<int64_t>(sd, 1))
                             : std::vector<int64_t>(sd, 1),
               1);
  return g;
}

// Max with PyTorch's NaN rule: a NaN wins and stays.
void max_pool(NodeCtx& c) {
  const PoolGeo g = pool_geo(c, true);
  const int64_t channels = c.out.shape[1];
  std::string body = decode_out(channels, g.out);
  body += fmt::format("const int64_t xb = (n * {} + ch) * {};\n"
                      "double m = -HUGE_VAL;\n",
                      lit(channels), lit(g.in[0] * g.in[1] * g.in[2]));
  const char* const o[3] = {"od", "oh", "ow"};
  const char* const kk[3] = {"kd", "kh", "kw"};
  const char* const ii[3] = {"id", "ih", "iw"};
  std::string indent;
  for (int q = 0; q < 3; ++q) {
    body += fmt::format("{0}for (int64_t {1} = 0; {1} < {2}; ++{1}) {{\n"
                        "{0}  const int64_t {3} = {4} * {5} - {6} + {1} * {7};\n"
                        "{0}  if ({3} < 0 || {3} >= {8}) continue;\n",
                        indent, kk[q], clit(g.k[q]), ii[q], o[q], clit(g.s[q]), clit(g.p[q]),
                        clit(g.d[q]), lit(g.in[q]));
    indent += "  ";
  }
  body += fmt::format("{}const double v = kb_ld(x, xb + (id * {} + ih) * {} + iw);\n"
                      "{}if (v > m || kb_isnan(v)) m = v;\n",
                      indent, lit(g.in[1]), lit(g.in[2]), indent);
  for (int q = 2; q >= 0; --q)
    body += std::string(static_cast<std::size_t>(q) * 2, ' ') + "}\n";
  body += "kb_st(y, i, m);\n";
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)}, body);
}

// PyTorch's divisor: divisor_override, else the window clipped to the padded input
// (count_include_pad) or to the input itself; a window entirely in the padding gives 0.
void avg_pool(NodeCtx& c) {
  const PoolGeo g = pool_geo(c, false);
  const bool include_pad = attr_bool(c.node.attrs, "count_include_pad", true);
  const int64_t divisor = attr_int(c.node.attrs, "divisor_override", 0);
  const int64_t channels = c.out.shape[1];
  std::string body = decode_out(channels, g.out);
  body += fmt::format("const int64_t xb = (n * {} + ch) * {};\n", lit(channels),
                      lit(g.in[0] * g.in[1] * g.in[2]));
  const char* const o[3] = {"od", "oh", "ow"};
  const char* const dn[3] = {"d", "h", "w"};
  for (int q = 0; q < 3; ++q)
    body += fmt::format("const int64_t lo_{0}0 = {1} * {2} - {3};\n"
                        "const int64_t hi_{0}0 = lo_{0}0 + {4} < {5} ? lo_{0}0 + {4} : {5};\n"
                        "const int64_t lo_{0} = lo_{0}0 < 0 ? 0 : lo_{0}0;\n"
                        "const int64_t hi_{0} = hi_{0}0 < {6} ? hi_{0}0 : {6};\n",
                        dn[q], o[q], clit(g.s[q]), clit(g.p[q]), clit(g.k[q]),
                        lit(g.in[q] + g.p[q]), lit(g.in[q]));
  if (divisor == 0 && include_pad)
    body += "const int64_t padded = (hi_d0 - lo_d0) * (hi_h0 - lo_h0) * (hi_w0 - lo_w0);\n";
  body += "const int64_t count = (hi_d > lo_d ? hi_d - lo_d : 0) * (hi_h > lo_h ? hi_h - lo_h : 0) "
          "* (hi_w > lo_w ? hi_w - lo_w : 0);\n"
          "double sum = 0.0;\n";
  body += fmt::format("for (int64_t id = lo_d; id < hi_d; ++id)\n"
                      "  for (int64_t ih = lo_h; ih < hi_h; ++ih)\n"
                      "    for (int64_t iw = lo_w; iw < hi_w; ++iw)\n"
                      "      sum += kb_ld(x, xb + (id * {} + ih) * {} + iw);\n",
                      lit(g.in[1]), lit(g.in[2]));
  const std::string div = divisor != 0  ? dlit(static_cast<double>(divisor))
                          : include_pad ? "(double)padded"
                                        : "(double)count";
  body += fmt::format("kb_st(y, i, count == 0 ? 0.0 : sum / {});\n", div);
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)}, body);
}

// Window of output o along a dim of `in` inputs and `out` outputs:
// [floor(o * in / out), ceil((o + 1) * in / out)), in a form that cannot overflow.
void adaptive_pool(NodeCtx& c, bool is_max) {
  const Dims3 in = align3(spatial_of(c.in[0].shape), 1);
  const Dims3 out = align3(spatial_of(c.out.shape), 1);
  const int64_t channels = c.out.shape[1];
  std::string body = decode_out(channels, out);
  body += fmt::format("const int64_t xb = (n * {} + ch) * {};\n", lit(channels),
                      lit(in[0] * in[1] * in[2]));
  const char* const o[3] = {"od", "oh", "ow"};
  const char* const dn[3] = {"d", "h", "w"};
  for (int q = 0; q < 3; ++q)
    body += fmt::format("const int64_t {0}0 = ({1} / {2}) * {3} + (({1} % {2}) * {3}) / {2};\n"
                        "const int64_t {0}1 = (({1} + 1) / {2}) * {3} + ((({1} + 1) % {2}) * {3} + "
                        "{4}) / {2};\n",
                        dn[q], o[q], lit(out[q]), lit(in[q]), lit(out[q] - 1));
  body += fmt::format("double acc = {};\n"
                      "for (int64_t id = d0; id < d1; ++id)\n"
                      "  for (int64_t ih = h0; ih < h1; ++ih)\n"
                      "    for (int64_t iw = w0; iw < w1; ++iw) {{\n"
                      "      const double v = kb_ld(x, xb + (id * {} + ih) * {} + iw);\n"
                      "      {}\n"
                      "    }}\n",
                      is_max ? "-HUGE_VAL" : "0.0", lit(in[1]), lit(in[2]),
                      is_max ? "if (v > acc || kb_isnan(v)) acc = v;" : "acc += v;");
  body += is_max ? "kb_st(y, i, acc);\n"
                 : "kb_st(y, i, acc / (double)((d1 - d0) * (h1 - h0) * (w1 - w0)));\n";
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)}, body);
}

} // namespace

void add_conv_pool(std::map<std::string, OpEmitter, std::less<>>& m) {
  for (const char* op : {"conv1d", "conv2d", "conv3d"})
    m[op] = [](NodeCtx& c) { conv(c, false); };
  for (const char* op : {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"})
    m[op] = [](NodeCtx& c) { conv(c, true); };
  for (const char* op : {"max_pool1d", "max_pool2d", "max_pool3d"})
    m[op] = max_pool;
  for (const char* op : {"avg_pool1d", "avg_pool2d", "avg_pool3d"})
    m[op] = avg_pool;
  for (const char* op : {"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"})
    m[op] = [](NodeCtx& c) { adaptive_pool(c, false); };
  for (const char* op : {"adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"})
    m[op] = [](NodeCtx& c) { adaptive_pool(c, true); };
}

} // namespace kb::codegen
