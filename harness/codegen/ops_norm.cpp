// Naive kernels of the normalisations: the mean and the biased variance (two passes, so that a
// large common offset does not cancel the variance away) through the reduction helper, then one
// thread per element applying them and the affine parameters.
#include <algorithm>

#include "emit.hpp"

namespace kb::codegen {
namespace {

double eps_of(const Attrs& a) {
  return attr_double(a, "eps", 1e-5);
}

// Mean and 1/sqrt(var + eps) of `rows` groups of `len` elements; element k of row r is at the
// offset expression `at` (of r and k, after `setup`). Returns {mean, inv}.
std::pair<Val, Val> moments(NodeCtx& c, int64_t rows, int64_t len, const std::string& setup,
                            const std::string& at, double eps) {
  Reduction mean;
  mean.name = c.kname("mean");
  mean.rows = rows;
  mean.len = len;
  mean.args = {in_arg("x", c.in[0])};
  mean.setup = setup;
  mean.element = fmt::format("  const double t = kb_ld(x, {});\n", at);
  mean.finish = fmt::format("acc / {}", dlit(static_cast<double>(len)));
  const Val mu = reduce(c.e, mean);
  Reduction var = mean;
  var.name = c.kname("var");
  var.args = {in_arg("x", c.in[0]), in_arg("mu", mu)};
  var.setup = setup + "const double m = mu[r];\n";
  var.element =
      fmt::format("  const double dv = kb_ld(x, {}) - m;\n  const double t = dv * dv;\n", at);
  var.finish = fmt::format("1.0 / sqrt(acc / {} + {})", dlit(static_cast<double>(len)), dlit(eps));
  const Val inv = reduce(c.e, var);
  return {mu, inv};
}

// out = (x - mean[row]) * inv[row] * weight + bias with the row and parameter index expressions.
void apply(NodeCtx& c, const Val& mu, const Val& inv, const std::string& row,
           const std::string& param, std::size_t first_param) {
  std::vector<Arg> args = {in_arg("x", c.in[0]), in_arg("mu", mu), in_arg("inv", inv)};
  std::string expr = "(kb_ld(x, i) - mu[r]) * inv[r]";
  if (c.in.size() > first_param) {
    args.push_back(in_arg("wt", c.in[first_param]));
    expr = fmt::format("{} * kb_ld(wt, {})", expr, param);
  }
  if (c.in.size() > first_param + 1) {
    args.push_back(in_arg("bs", c.in[first_param + 1]));
    expr = fmt::format("{} + kb_ld(bs, {})", expr, param);
  }
  args.push_back(out_arg("y", c.out));
  c.e.map(c.kname(), c.out.numel(), args,
          fmt::format("const int64_t r = {};\nkb_st(y, i, {});\n", row, expr));
}

void layer_norm(NodeCtx& c) {
  const int64_t inner = numel(attr_ints(c.node.attrs, "normalized_shape", 0, {}));
  const int64_t rows = c.out.numel() / inner;
  const auto [mu, inv] =
      moments(c, rows, inner, "", fmt::format("r * {} + k", lit(inner)), eps_of(c.node.attrs));
  apply(c, mu, inv, fmt::format("i / {}", lit(inner)), fmt::format("i % {}", lit(inner)), 1);
}

// Channel statistics over [N, C, rest]: rows are (n, channel) pairs or groups of channels.
void instance_norm(NodeCtx& c) {
  const Shape& x = c.out.shape;
  const int64_t ch = x[1], rest = c.out.numel() / (x[0] * ch);
  const auto [mu, inv] =
      moments(c, x[0] * ch, rest, "", fmt::format("r * {} + k", lit(rest)), eps_of(c.node.attrs));
  apply(c, mu, inv, fmt::format("i / {}", lit(rest)),
        fmt::format("(i / {}) % {}", lit(rest), lit(ch)), 1);
}

void group_norm(NodeCtx& c) {
  const Shape& x = c.out.shape;
  const int64_t groups = attr_int(c.node.attrs, "num_groups");
  const int64_t ch = x[1], rest = c.out.numel() / (x[0] * ch);
  const int64_t per_group = c.out.numel() / (x[0] * groups);
  const auto [mu, inv] = moments(c, x[0] * groups, per_group, "",
                                 fmt::format("r * {} + k", lit(per_group)), eps_of(c.node.attrs));
  apply(c, mu, inv, fmt::format("i / {}", lit(per_group)),
        fmt::format("(i / {}) % {}", lit(rest), lit(ch)), 1);
}

// Statistics per channel over the batch and every spatial position.
void batch_norm_train(NodeCtx& c) {
  const Shape& x = c.out.shape;
  const int64_t n = x[0], ch = x[1], rest = c.out.numel() / (n * ch);
  const auto [mu, inv] = moments(
      c, ch, n * rest, "", fmt::format("((k / {0}) * {1} + r) * {0} + k % {0}", lit(rest), lit(ch)),
      eps_of(c.node.attrs));
  apply(c, mu, inv, fmt::format("(i / {}) % {}", lit(rest), lit(ch)),
        fmt::format("(i / {}) % {}", lit(rest), lit(ch)), 1);
}

// Inference: the running statistics are inputs 1 and 2.
void batch_norm(NodeCtx& c) {
  const Shape& x = c.out.shape;
  const int64_t ch = x[1], rest = c.out.numel() / (x[0] * ch);
  const std::string chan = fmt::format("(i / {}) % {}", lit(rest), lit(ch));
  std::vector<Arg> args = {in_arg("x", c.in[0]), in_arg("rm", c.in[1]), in_arg("rv", c.in[2])};
  std::string expr = fmt::format("(kb_ld(x, i) - kb_ld(rm, ch)) * (1.0 / sqrt(kb_ld(rv, ch) + {}))",
                                 dlit(eps_of(c.node.attrs)));
  if (c.in.size() > 3) {
    args.push_back(in_arg("wt", c.in[3]));
    expr += " * kb_ld(wt, ch)";
  }
  if (c.in.size() > 4) {
    args.push_back(in_arg("bs", c.in[4]));
    expr += " + kb_ld(bs, ch)";
  }
  args.push_back(out_arg("y", c.out));
  c.e.map(c.kname(), c.out.numel(), args,
          fmt::format("const int64_t ch = {};\nkb_st(y, i, {});\n", chan, expr));
}

// x / sqrt(mean(x^2 over dims) + eps) * weight (weight broadcasting to x).
void rms_norm(NodeCtx& c) {
  const Shape& x = c.in[0].shape;
  std::vector<int64_t> dims;
  for (int64_t d : attr_ints(c.node.attrs, "dims", 0, {}))
    dims.push_back(dim_of(d, x.size()));
  const Shape st = contiguous_strides(x);
  Shape kept, kept_st, red, red_st, kept_of_x(x.size(), 0);
  int64_t rows = 1;
  for (std::size_t d = x.size(); d-- > 0;) {
    const bool reduced = std::find(dims.begin(), dims.end(), static_cast<int64_t>(d)) != dims.end();
    if (!reduced) {
      kept_of_x[d] = rows; // stride of this dim in the row index
      rows *= x[d];
    }
  }
  for (std::size_t d = 0; d < x.size(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), static_cast<int64_t>(d)) != dims.end();
    (reduced ? red : kept).push_back(x[d]);
    (reduced ? red_st : kept_st).push_back(st[d]);
  }
  const int64_t len = numel(red);
  Reduction ms;
  ms.name = c.kname("ms");
  ms.rows = rows;
  ms.len = len;
  ms.args = {in_arg("x", c.in[0])};
  ms.setup = fmt::format("const int64_t base = {};\n", remap("r", kept, kept_st));
  ms.element = fmt::format("  const double v = kb_ld(x, base + {});\n  const double t = v * v;\n",
                           remap("k", red, red_st));
  ms.finish = fmt::format("1.0 / sqrt(acc / {} + {})", dlit(static_cast<double>(len)),
                          dlit(eps_of(c.node.attrs)));
  const Val inv = reduce(c.e, ms);
  std::vector<Arg> args = {in_arg("x", c.in[0]), in_arg("inv", inv)};
  std::string expr = fmt::format("kb_ld(x, i) * inv[{}]", remap("i", x, kept_of_x));
  if (c.in.size() == 2) {
    args.push_back(in_arg("wt", c.in[1]));
    expr += fmt::format(" * kb_ld(wt, {})", remap("i", x, broadcast_strides_of(c.in[1].shape, x)));
  }
  args.push_back(out_arg("y", c.out));
  c.e.map(c.kname(), c.out.numel(), args, fmt::format("kb_st(y, i, {});\n", expr));
}

} // namespace

void add_norm(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["layer_norm"] = layer_norm;
  m["rms_norm"] = rms_norm;
  m["batch_norm"] = batch_norm;
  m["batch_norm_train"] = batch_norm_train;
  m["group_norm"] = group_norm;
  m["instance_norm"] = instance_norm;
}

} // namespace kb::codegen
