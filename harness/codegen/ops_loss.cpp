// Naive kernels of the losses and cosine_similarity: per-row statistics and scalar means through
// the reduction helper (split into chunks when long), with the op library's formulas.
#include "emit.hpp"

namespace kb::codegen {
namespace {

// mean over all elements of f(a, b), written to the scalar output.
void mean_of_pairs(NodeCtx& c, const std::string& term, const std::string& finish) {
  Reduction r;
  r.name = c.kname();
  r.rows = 1;
  r.len = c.in[0].numel();
  r.args = {in_arg("pa", c.in[0]), in_arg("pb", c.in[1])};
  r.element = fmt::format("  const double a = kb_ld(pa, k), b = kb_ld(pb, k);\n"
                          "  const double t = {};\n",
                          term);
  r.finish = finish;
  r.into = c.out;
  reduce(c.e, r);
}

std::string mean_finish(const NodeCtx& c) {
  return fmt::format("acc / {}", dlit(static_cast<double>(c.in[0].numel())));
}

void mse(NodeCtx& c) {
  mean_of_pairs(c, "(a - b) * (a - b)", mean_finish(c));
}

// 0.5 d^2 / beta below beta, |d| - 0.5 beta above (beta = 0 is the L1 loss).
void smooth_l1(NodeCtx& c) {
  const double b = attr_double(c.node.attrs, "beta", 1.0);
  if (b == 0.0) { // the L1 loss
    mean_of_pairs(c, "fabs(a - b)", mean_finish(c));
    return;
  }
  const std::string beta = dlit(b);
  mean_of_pairs(
      c,
      fmt::format("fabs(a - b) < {0} ? 0.5 * (a - b) * (a - b) / {0} : fabs(a - b) - 0.5 * {0}",
                  beta),
      mean_finish(c));
}

void huber(NodeCtx& c) {
  const std::string delta = dlit(attr_double(c.node.attrs, "delta", 1.0));
  mean_of_pairs(
      c,
      fmt::format("fabs(a - b) < {0} ? 0.5 * (a - b) * (a - b) : {0} * (fabs(a - b) - 0.5 * {0})",
                  delta),
      mean_finish(c));
}

// target * (log(target) - input), 0 where target is 0; exp(target) * (target - input) for a
// log-space target. Reduced by "mean", "batchmean" (the first dim) or "sum".
void kl_div(NodeCtx& c) {
  const bool log_target = attr_bool(c.node.attrs, "log_target", false);
  const std::string reduction = attr_string(c.node.attrs, "reduction", "mean");
  const std::string term =
      log_target ? "exp(b) * (b - a)" : "(kb_isnan(b) ? b : b == 0.0 ? 0.0 : b * log(b)) - b * a";
  std::string finish = "acc";
  if (reduction == "mean")
    finish = mean_finish(c);
  else if (reduction == "batchmean" && !c.in[0].shape.empty())
    finish = fmt::format("acc / {}", dlit(static_cast<double>(c.in[0].shape[0])));
  else if (reduction != "sum" && reduction != "batchmean")
    fail("reduction must be \"batchmean\", \"mean\" or \"sum\", got \"{}\"", reduction);
  mean_of_pairs(c, term, finish);
}

// Row-wise log-sum-exp around the row maximum, then the mean of lse - logit[target]. A target
// outside [0, C) gives NaN instead of reading outside the row.
void cross_entropy(NodeCtx& c) {
  const int64_t n = c.in[0].shape[0], classes = c.in[0].shape[1];
  Reduction mx;
  mx.name = c.kname("max");
  mx.rows = n;
  mx.len = classes;
  mx.args = {in_arg("x", c.in[0])};
  mx.element = fmt::format("  const double t = kb_ld(x, r * {} + k);\n", lit(classes));
  mx.combine = Combine::max;
  const Val m = reduce(c.e, mx);
  Reduction se = mx;
  se.name = c.kname("sum");
  se.args = {in_arg("x", c.in[0]), in_arg("mx", m)};
  se.setup = "const double m = mx[r];\n";
  se.element = fmt::format("  const double t = exp(kb_ld(x, r * {} + k) - m);\n", lit(classes));
  se.combine = Combine::sum;
  // finish runs outside the setup in the chunked form: it reads the maximum itself.
  se.finish = "mx[r] + log(acc)";
  const Val lse = reduce(c.e, se);
  Reduction loss;
  loss.name = c.kname();
  loss.rows = 1;
  loss.len = n;
  loss.args = {in_arg("x", c.in[0]), in_arg("tg", c.in[1]), in_arg("lse", lse)};
  loss.element = fmt::format(
      "  const int64_t cls = (int64_t)kb_ld(tg, k);\n"
      "  const double t = cls >= 0 && cls < {0} ? lse[k] - kb_ld(x, k * {0} + cls) : kb_nan();\n",
      lit(classes));
  loss.finish = fmt::format("acc / {}", dlit(static_cast<double>(n)));
  loss.into = c.out;
  reduce(c.e, loss);
}

// ||a - b + eps||_p along the last dim of rows of d values, as PyTorch's pairwise_distance.
Val distance(NodeCtx& c, const std::string& stem, const Val& a, const Val& b, int64_t rows,
             int64_t d, double p, double eps) {
  Reduction r;
  r.name = c.kname(stem);
  r.rows = rows;
  r.len = d;
  r.args = {in_arg("pa", a), in_arg("pb", b)};
  const std::string pw = p == 2.0 ? "v * v" : p == 1.0 ? "v" : fmt::format("pow(v, {})", dlit(p));
  r.element = fmt::format(
      "  const double v = fabs(kb_ld(pa, r * {0} + k) - kb_ld(pb, r * {0} + k) + {1});\n"
      "  const double t = {2};\n",
      lit(d), dlit(eps), pw);
  r.finish = p == 2.0 ? "sqrt(acc)" : p == 1.0 ? "acc" : fmt::format("pow(acc, {})", dlit(1.0 / p));
  return reduce(c.e, r);
}

void triplet(NodeCtx& c) {
  const Attrs& at = c.node.attrs;
  const double margin = attr_double(at, "margin", 1.0), p = attr_double(at, "p", 2.0);
  const double eps = attr_double(at, "eps", 1e-6);
  const bool swap = attr_bool(at, "swap", false);
  const int64_t d = c.in[0].shape.back();
  const int64_t rows = c.in[0].shape.size() == 2 ? c.in[0].shape[0] : 1;
  const Val dp = distance(c, "dpos", c.in[0], c.in[1], rows, d, p, eps);
  const Val dn = distance(c, "dneg", c.in[0], c.in[2], rows, d, p, eps);
  Reduction loss;
  loss.name = c.kname();
  loss.rows = 1;
  loss.len = rows;
  loss.args = {in_arg("dp", dp), in_arg("dn", dn)};
  std::string neg = "dn[k]";
  if (swap) {
    const Val ds = distance(c, "dswap", c.in[1], c.in[2], rows, d, p, eps);
    loss.args.push_back(in_arg("ds", ds));
    neg = "(ds[k] < dn[k] ? ds[k] : dn[k])";
  }
  loss.element = fmt::format("  const double h = {} + dp[k] - {};\n"
                             "  const double t = h < 0.0 ? 0.0 : h;\n",
                             dlit(margin), neg);
  loss.finish = fmt::format("acc / {}", dlit(static_cast<double>(rows)));
  loss.into = c.out;
  reduce(c.e, loss);
}

// x1 . x2 / (max(||x1||, eps) * max(||x2||, eps)) along dim.
void cosine(NodeCtx& c) {
  const Shape& s = c.in[0].shape;
  const int64_t dim = dim_of(attr_int(c.node.attrs, "dim", 1), s.size());
  const double eps = attr_double(c.node.attrs, "eps", 1e-8);
  int64_t outer = 1, inner = 1;
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (static_cast<int64_t>(k) < dim)
      outer *= s[k];
    else if (static_cast<int64_t>(k) > dim)
      inner *= s[k];
  }
  const int64_t len = s[static_cast<std::size_t>(dim)];
  const std::string base = fmt::format("const int64_t base = (r / {0}) * {1} + r % {0};\n",
                                       lit(inner), lit(len * inner));
  const std::string at = fmt::format("base + k * {}", lit(inner));
  const auto sum_of = [&](const std::string& stem, const std::string& term) {
    Reduction r;
    r.name = c.kname(stem);
    r.rows = outer * inner;
    r.len = len;
    r.args = {in_arg("pa", c.in[0]), in_arg("pb", c.in[1])};
    r.setup = base;
    r.element = fmt::format("  const double a = kb_ld(pa, {0}), b = kb_ld(pb, {0});\n"
                            "  const double t = {1};\n",
                            at, term);
    return reduce(c.e, r);
  };
  const Val dot = sum_of("dot", "a * b");
  const Val s1 = sum_of("n1", "a * a");
  const Val s2 = sum_of("n2", "b * b");
  const std::string e = dlit(eps);
  c.e.map(c.kname(), c.out.numel(),
          {in_arg("dot", dot), in_arg("s1", s1), in_arg("s2", s2), out_arg("y", c.out)},
          fmt::format("const double n1 = sqrt(s1[i]), n2 = sqrt(s2[i]);\n"
                      "kb_st(y, i, dot[i] / ((n1 < {0} ? {0} : n1) * (n2 < {0} ? {0} : n2)));\n",
                      e));
}

} // namespace

void add_loss(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["mse_loss"] = mse;
  m["cross_entropy"] = cross_entropy;
  m["smooth_l1_loss"] = smooth_l1;
  m["huber_loss"] = huber;
  m["kl_div"] = kl_div;
  m["triplet_margin_loss"] = triplet;
  m["cosine_similarity"] = cosine;
}

} // namespace kb::codegen
