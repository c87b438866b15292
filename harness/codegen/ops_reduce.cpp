// Naive kernels of reductions and scans: sum, mean, max, min, prod, logsumexp (through the
// reduction helper), argmax/argmin (one thread per output), softmax/log_softmax (row statistics,
// then one thread per element) and cumsum/cumprod (one thread per scanned row).
#include <algorithm>

#include "emit.hpp"

namespace kb::codegen {
namespace {

// A tensor split by a set of reduced dims: the kept dims (with x's strides) index the rows, the
// reduced dims (with x's strides) index the elements of a row.
struct Split {
  Shape kept, kept_strides, red, red_strides;
  int64_t rows() const { return numel(kept); }
  int64_t len() const { return numel(red); }
  std::string setup() const {
    return fmt::format("const int64_t base = {};\n", remap("r", kept, kept_strides));
  }
  std::string offset() const { return "base + " + remap("k", red, red_strides); }
};

Split split(const Shape& x, const std::vector<int64_t>& dims) {
  Split s;
  const Shape st = contiguous_strides(x);
  for (std::size_t d = 0; d < x.size(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), static_cast<int64_t>(d)) != dims.end();
    (reduced ? s.red : s.kept).push_back(x[d]);
    (reduced ? s.red_strides : s.kept_strides).push_back(st[d]);
  }
  return s;
}

std::vector<int64_t> dims_attr(const Attrs& a, std::string_view key, std::size_t rank) {
  std::vector<int64_t> dims;
  for (int64_t d : attr_ints(a, key, 0, {}))
    dims.push_back(dim_of(d, rank));
  return dims;
}

void reduction(NodeCtx& c, Combine comb, bool mean) {
  const std::vector<int64_t> dims =
      c.node.op == "prod"
          ? std::vector<int64_t>{dim_of(attr_int(c.node.attrs, "dim"), c.in[0].shape.size())}
          : dims_attr(c.node.attrs, "dim", c.in[0].shape.size());
  const Split s = split(c.in[0].shape, dims);
  Reduction r;
  r.name = c.kname();
  r.rows = s.rows();
  r.len = s.len();
  r.args = {in_arg("x", c.in[0])};
  r.setup = s.setup();
  r.element = fmt::format("  const double t = kb_ld(x, {});\n", s.offset());
  r.combine = comb;
  r.finish = mean ? fmt::format("acc / {}", dlit(static_cast<double>(s.len()))) : "acc";
  r.into = c.out;
  reduce(c.e, r);
}

// log(sum(exp(x - m))) + m around the maximum m; a NaN gives NaN, an infinite m gives m.
void logsumexp(NodeCtx& c) {
  const Split s = split(c.in[0].shape, dims_attr(c.node.attrs, "dim", c.in[0].shape.size()));
  Reduction mx;
  mx.name = c.kname("max");
  mx.rows = s.rows();
  mx.len = s.len();
  mx.args = {in_arg("x", c.in[0])};
  mx.setup = s.setup();
  mx.element = fmt::format("  const double t = kb_ld(x, {});\n", s.offset());
  mx.combine = Combine::max;
  const Val m = reduce(c.e, mx);
  Reduction sum = mx;
  sum.name = c.kname("sum");
  sum.args = {in_arg("x", c.in[0]), in_arg("mx", m)};
  sum.setup = s.setup() + "const double m = mx[r];\n";
  sum.element =
      fmt::format("  const double t = kb_isfinite(m) ? exp(kb_ld(x, {}) - m) : 0.0;\n", s.offset());
  sum.combine = Combine::sum;
  sum.finish = "kb_isfinite(mx[r]) ? mx[r] + log(acc) : mx[r]";
  sum.into = c.out;
  reduce(c.e, sum);
}

// Outer blocks, extent and inner stride of one dim.
struct Axis {
  int64_t outer, extent, inner;
};

Axis axis_of(const Shape& x, int64_t dim) {
  Axis a{1, x[static_cast<std::size_t>(dim)], 1};
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (static_cast<int64_t>(d) < dim)
      a.outer *= x[d];
    else if (static_cast<int64_t>(d) > dim)
      a.inner *= x[d];
  }
  return a;
}

// Offset of element 0 of row r (rows enumerate outer x inner).
std::string row_base(const Axis& a) {
  if (a.inner == 1)
    return imul("r", a.extent);
  return fmt::format("{} + {}", imul(idiv("r", a.inner), a.extent * a.inner), imod("r", a.inner));
}

// The first index of the maximum (minimum); the first NaN wins, as torch.argmax.
void arg(NodeCtx& c, bool is_max) {
  const Axis a =
      axis_of(c.in[0].shape, dim_of(attr_int(c.node.attrs, "dim"), c.in[0].shape.size()));
  c.e.map(c.kname(), a.outer * a.inner, {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("const int64_t r = i;\n"
                      "const int64_t base = {0};\n"
                      "int64_t best = 0;\n"
                      "double b = kb_ld(x, base);\n"
                      "for (int64_t k = 1; k < {1} && !kb_isnan(b); ++k) {{\n"
                      "  const double v = kb_ld(x, base + k * {2});\n"
                      "  if (kb_isnan(v) || v {3} b) {{\n"
                      "    best = k;\n"
                      "    b = v;\n"
                      "  }}\n"
                      "}}\n"
                      "y[i] = best;\n",
                      row_base(a), lit(a.extent), lit(a.inner), is_max ? ">" : "<"));
}

void softmax(NodeCtx& c, bool log_form) {
  const Axis a =
      axis_of(c.in[0].shape, dim_of(attr_int(c.node.attrs, "dim"), c.in[0].shape.size()));
  Reduction mx;
  mx.name = c.kname("max");
  mx.rows = a.outer * a.inner;
  mx.len = a.extent;
  mx.args = {in_arg("x", c.in[0])};
  mx.setup = fmt::format("const int64_t base = {};\n", row_base(a));
  mx.element = fmt::format("  const double t = kb_ld(x, base + {});\n", imul("k", a.inner));
  mx.combine = Combine::max;
  const Val m = reduce(c.e, mx);
  Reduction sum = mx;
  sum.name = c.kname("sum");
  sum.args = {in_arg("x", c.in[0]), in_arg("mx", m)};
  sum.setup = mx.setup + "const double m = mx[r];\n";
  sum.element =
      fmt::format("  const double t = exp(kb_ld(x, base + {}) - m);\n", imul("k", a.inner));
  sum.combine = Combine::sum;
  const Val s = reduce(c.e, sum);
  c.e.map(c.kname(), c.out.numel(),
          {in_arg("x", c.in[0]), in_arg("mx", m), in_arg("sum", s), out_arg("y", c.out)},
          fmt::format("const int64_t r = {};\n"
                      "const double z = kb_ld(x, i) - mx[r];\n"
                      "kb_st(y, i, {});\n",
                      a.inner == 1
                          ? idiv("i", a.extent)
                          : fmt::format("{} + {}", imul(idiv("i", a.extent * a.inner), a.inner),
                                        imod("i", a.inner)),
                      log_form ? "z - log(sum[r])" : "exp(z) / sum[r]"));
}

// One thread per scanned row, accumulating in double.
void scan(NodeCtx& c, bool product) {
  const Axis a =
      axis_of(c.in[0].shape, dim_of(attr_int(c.node.attrs, "dim"), c.in[0].shape.size()));
  c.e.map(c.kname(), a.outer * a.inner, {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("const int64_t r = i;\n"
                      "const int64_t base = {0};\n"
                      "double acc = {1};\n"
                      "for (int64_t k = 0; k < {2}; ++k) {{\n"
                      "  acc {3}= kb_ld(x, base + k * {4});\n"
                      "  kb_st(y, base + k * {4}, acc);\n"
                      "}}\n",
                      row_base(a), product ? "1.0" : "0.0", lit(a.extent), product ? "*" : "+",
                      lit(a.inner)));
}

} // namespace

void add_reduce(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["sum"] = [](NodeCtx& c) { reduction(c, Combine::sum, false); };
  m["mean"] = [](NodeCtx& c) { reduction(c, Combine::sum, true); };
  m["max"] = [](NodeCtx& c) { reduction(c, Combine::max, false); };
  m["min"] = [](NodeCtx& c) { reduction(c, Combine::min, false); };
  m["prod"] = [](NodeCtx& c) { reduction(c, Combine::prod, false); };
  m["logsumexp"] = logsumexp;
  m["argmax"] = [](NodeCtx& c) { arg(c, true); };
  m["argmin"] = [](NodeCtx& c) { arg(c, false); };
  m["softmax"] = [](NodeCtx& c) { softmax(c, false); };
  m["log_softmax"] = [](NodeCtx& c) { softmax(c, true); };
  m["cumsum"] = [](NodeCtx& c) { scan(c, false); };
  m["cumprod"] = [](NodeCtx& c) { scan(c, true); };
}

} // namespace kb::codegen
