// Naive kernels of the element-wise ops: activations and other one-input maps, broadcasting
// arithmetic (a bool mask standing for either operand) and clamp. One thread per output element.
#include <cmath>
#include <numbers>

#include "emit.hpp"

namespace kb::codegen {
namespace {

// relu6 of a double expression, NaN passing through.
std::string relu6(const std::string& x) {
  return fmt::format("({0} < 0.0 ? 0.0 : ({0} > 6.0 ? 6.0 : {0}))", x);
}

// The double expression of each activation of `v`, as the op library's float64 reference
// computes it.
std::string activation(const std::string& op, const Attrs& a) {
  if (op == "relu")
    return "(v > 0.0 ? v : (kb_isnan(v) ? v : 0.0))";
  if (op == "leaky_relu")
    return fmt::format("(v > 0.0 ? v : v * {})", dlit(attr_double(a, "negative_slope", 0.01)));
  if (op == "gelu") {
    if (attr_string(a, "approximate", "none") == "tanh")
      return fmt::format("(0.5 * v * (1.0 + tanh({} * (v + 0.044715 * v * v * v))))",
                         dlit(std::sqrt(2.0 / std::numbers::pi)));
    return fmt::format("(0.5 * v * (1.0 + erf(v / {})))", dlit(std::numbers::sqrt2));
  }
  if (op == "sigmoid")
    return "kb_sigmoid(v)";
  if (op == "tanh")
    return "tanh(v)";
  if (op == "swish")
    return "(v * kb_sigmoid(v))";
  if (op == "elu")
    return fmt::format("(v > 0.0 ? v : {} * expm1(v))", dlit(attr_double(a, "alpha", 1.0)));
  if (op == "selu")
    return "(1.0507009873554804934193349852946 * (v > 0.0 ? v : "
           "1.6732632423543772848170429916717 * expm1(v)))";
  if (op == "hardtanh") {
    const std::string lo = dlit(attr_double(a, "min_val", -1.0));
    const std::string hi = dlit(attr_double(a, "max_val", 1.0));
    return fmt::format("(v < {0} ? {0} : (v > {1} ? {1} : v))", lo, hi);
  }
  if (op == "hardsigmoid")
    return fmt::format("({} / 6.0)", relu6("(v + 3.0)"));
  if (op == "hardswish")
    return fmt::format("(v * {} / 6.0)", relu6("(v + 3.0)"));
  if (op == "mish")
    return "(v * tanh(v > 20.0 ? v : log1p(exp(v))))";
  if (op == "softplus") {
    const std::string beta = dlit(attr_double(a, "beta", 1.0));
    const std::string thr = dlit(attr_double(a, "threshold", 20.0));
    return fmt::format("({0} * v > {1} ? v : log1p(exp({0} * v)) / {0})", beta, thr);
  }
  if (op == "softsign")
    return "(v / (1.0 + fabs(v)))";
  if (op == "abs")
    return "fabs(v)";
  if (op == "exp")
    return "exp(v)";
  if (op == "log")
    return "log(v)";
  if (op == "sqrt")
    return "sqrt(v)";
  if (op == "relu6")
    return relu6("v");
  if (op == "sign")
    return "(double)((v > 0.0) - (v < 0.0))";
  if (op == "log2")
    return "log2(v)";
  if (op == "neg")
    return "(-v)";
  if (op == "reciprocal")
    return "(1.0 / v)";
  if (op == "square")
    return "(v * v)";
  if (op == "rsqrt")
    return "(1.0 / sqrt(v))";
  fail("no naive kernel for activation '{}'", op);
}

const char* const k_activations[] = {
    "relu", "leaky_relu", "gelu",        "sigmoid",   "tanh",  "swish",    "elu",
    "selu", "hardtanh",   "hardsigmoid", "hardswish", "mish",  "softplus", "softsign",
    "abs",  "exp",        "log",         "sqrt",      "relu6", "sign",     "log2",
    "neg",  "reciprocal", "square",      "rsqrt"};

void unary(NodeCtx& c) {
  const std::string expr = activation(c.node.op, c.node.attrs);
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("const double v = kb_ld(x, i);\nkb_st(y, i, {});\n", expr));
}

// The double expression of a binary op of a and b.
std::string binary(const std::string& op) {
  if (op == "add")
    return "a + b";
  if (op == "sub")
    return "a - b";
  if (op == "mul")
    return "a * b";
  if (op == "div")
    return "a / b";
  if (op == "pow")
    return "pow(a, b)";
  if (op == "minimum")
    return "kb_min(a, b)";
  if (op == "maximum")
    return "kb_max(a, b)";
  fail("no naive kernel for '{}'", op);
}

void arith(NodeCtx& c) {
  const std::string expr = binary(c.node.op);
  if (c.in.size() == 1) {
    c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
            fmt::format("const double a = kb_ld(x, i), b = {};\nkb_st(y, i, {});\n",
                        dlit(attr_double(c.node.attrs, "scalar")), expr));
    return;
  }
  const Shape& o = c.out.shape;
  const std::string ia = remap("i", o, broadcast_strides_of(c.in[0].shape, o));
  const std::string ib = remap("i", o, broadcast_strides_of(c.in[1].shape, o));
  c.e.map(c.kname(), c.out.numel(),
          {in_arg("pa", c.in[0]), in_arg("pb", c.in[1]), out_arg("y", c.out)},
          fmt::format("const double a = kb_ld(pa, {}), b = kb_ld(pb, {});\nkb_st(y, i, {});\n", ia,
                      ib, expr));
}

// torch.clamp: min then max (so max wins when min > max); NaN passes through.
void clamp(NodeCtx& c) {
  const Attrs& a = c.node.attrs;
  std::string body = "double v = kb_ld(x, i);\nif (!kb_isnan(v)) {\n";
  if (a.contains("min"))
    body += fmt::format("  v = v < {0} ? {0} : v;\n", dlit(attr_double(a, "min")));
  if (a.contains("max"))
    body += fmt::format("  v = {0} < v ? {0} : v;\n", dlit(attr_double(a, "max")));
  body += "}\nkb_st(y, i, v);\n";
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)}, body);
}

} // namespace

void add_elementwise(std::map<std::string, OpEmitter, std::less<>>& m) {
  for (const char* op : k_activations)
    m[op] = unary;
  for (const char* op : {"add", "sub", "mul", "div", "pow", "minimum", "maximum"})
    m[op] = arith;
  m["clamp"] = clamp;
}

} // namespace kb::codegen
