// Naive kernels of matmul and linear (one dot product per output element, split along K when
// few outputs have long rows) and scaled_dot_product_attention (scores, row statistics, then one
// thread per output element).
#include <cmath>

#include "emit.hpp"

namespace kb::codegen {
namespace {

Shape batch_of(const Shape& s) {
  return Shape(s.begin(), s.end() - 2);
}

// Element offset expression of the batch of output row-major index `idx` (an expression indexing
// the output's batch dims) inside an operand whose batch dims broadcast to `out_batch`.
std::string batch_offset(std::string_view idx, const Shape& operand, const Shape& out_batch,
                         int64_t matrix_elems) {
  const Shape st = broadcast_strides_of(batch_of(operand), out_batch);
  Shape scaled = st;
  for (auto& v : scaled)
    v *= matrix_elems;
  return remap(idx, out_batch, scaled);
}

void matmul(NodeCtx& c) {
  const bool ta = attr_bool(c.node.attrs, "transpose_a", false);
  const bool tb = attr_bool(c.node.attrs, "transpose_b", false);
  const Shape &as = c.in[0].shape, &bs = c.in[1].shape, &os = c.out.shape;
  const int64_t m = os[os.size() - 2], n = os.back();
  const int64_t k = ta ? as[as.size() - 2] : as.back();
  const Shape ob = batch_of(os);
  Reduction r;
  r.name = c.kname();
  r.rows = c.out.numel();
  r.len = k;
  r.args = {in_arg("a", c.in[0]), in_arg("b", c.in[1])};
  const std::string bi = fmt::format("(r / {})", lit(m * n));
  r.setup =
      fmt::format("const int64_t row = (r / {0}) % {1}, col = r % {0};\n"
                  "const int64_t abase = {2}, bbase = {3};\n",
                  lit(n), lit(m), batch_offset(bi, as, ob, m * k), batch_offset(bi, bs, ob, k * n));
  const std::string ai = ta ? fmt::format("abase + k * {} + row", lit(m))
                            : fmt::format("abase + row * {} + k", lit(k));
  const std::string bk = tb ? fmt::format("bbase + col * {} + k", lit(k))
                            : fmt::format("bbase + k * {} + col", lit(n));
  r.element = fmt::format("  const double t = kb_ld(a, {}) * kb_ld(b, {});\n", ai, bk);
  r.into = c.out;
  reduce(c.e, r);
}

void linear(NodeCtx& c) {
  const int64_t k = c.in[0].shape.back(), n = c.in[1].shape[0];
  Reduction r;
  r.name = c.kname();
  r.rows = c.out.numel();
  r.len = k;
  r.args = {in_arg("x", c.in[0]), in_arg("w", c.in[1])};
  r.setup = fmt::format("const int64_t row = r / {0}, col = r % {0};\n", lit(n));
  r.element = fmt::format("  const double t = kb_ld(x, row * {0} + k) * kb_ld(w, col * {0} + k);\n",
                          lit(k));
  if (c.in.size() == 3) {
    r.args.push_back(in_arg("bias", c.in[2]));
    r.finish = fmt::format("acc + kb_ld(bias, r % {})", lit(n));
  }
  r.into = c.out;
  reduce(c.e, r);
}

// Scores P = q k^T * scale (masked above the diagonal when causal) in double scratch, their row
// maximum, P = exp(P - max) in place, row sums, then out = P v / sum.
void sdpa(NodeCtx& c) {
  const Shape &qs = c.in[0].shape, &ks = c.in[1].shape, &vs = c.in[2].shape, &os = c.out.shape;
  const int64_t l = qs[qs.size() - 2], e = qs.back(), s = ks[ks.size() - 2], ev = vs.back();
  const bool causal = attr_bool(c.node.attrs, "causal", false);
  const double scale = attr_double(c.node.attrs, "scale", 1.0 / std::sqrt(static_cast<double>(e)));
  const Shape ob = batch_of(os);
  const int64_t batch = numel(ob);
  const Val p = c.e.scratch(checked_mul(checked_mul(batch, l), s));
  const std::string bis = fmt::format("(i / {})", lit(l * s));
  // Scores: thread per (batch, i, j).
  c.e.map(
      c.kname("scores"), p.numel(), {in_arg("q", c.in[0]), in_arg("kk", c.in[1]), out_arg("p", p)},
      fmt::format("const int64_t row = (i / {1}) % {2}, j = i % {1};\n"
                  "const int64_t qb = {3} + row * {4}, kb = {5} + j * {4};\n"
                  "double acc = 0.0;\n"
                  "for (int64_t k = 0; k < {4}; ++k) acc += kb_ld(q, qb + k) * kb_ld(kk, kb + k);\n"
                  "p[i] = {6}acc * {7};\n",
                  lit(l * s), lit(s), lit(l), batch_offset(bis, qs, ob, l * e), lit(e),
                  batch_offset(bis, ks, ob, s * e), causal ? "j > row ? (-HUGE_VAL) : " : "",
                  dlit(scale)));
  Reduction mx;
  mx.name = c.kname("max");
  mx.rows = batch * l;
  mx.len = s;
  mx.args = {in_arg("p", p)};
  mx.element = fmt::format("  const double t = p[r * {} + k];\n", lit(s));
  mx.combine = Combine::max;
  const Val m = reduce(c.e, mx);
  c.e.map(c.kname("exp"), p.numel(), {in_arg("mx", m), {"double* __restrict__", "p", p.var}},
          fmt::format("p[i] = exp(p[i] - mx[i / {}]);\n", lit(s)));
  Reduction sum = mx;
  sum.name = c.kname("sum");
  sum.combine = Combine::sum;
  const Val sm = reduce(c.e, sum);
  c.e.map(c.kname(), c.out.numel(),
          {in_arg("p", p), in_arg("sum", sm), in_arg("v", c.in[2]), out_arg("y", c.out)},
          fmt::format("const int64_t rowi = i / {1}, col = i % {1};\n"
                      "const int64_t vb = {2};\n"
                      "double acc = 0.0;\n"
                      "for (int64_t j = 0; j < {3}; ++j) acc += p[rowi * {3} + j] * kb_ld(v, vb + "
                      "j * {1} + col);\n"
                      "kb_st(y, i, acc / sum[rowi]);\n",
                      lit(l * ev), lit(ev),
                      batch_offset(fmt::format("(i / {})", lit(l * ev)), vs, ob, s * ev), lit(s)));
}

} // namespace

void add_linalg(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["matmul"] = matmul;
  m["linear"] = linear;
  m["scaled_dot_product_attention"] = sdpa;
}

} // namespace kb::codegen
