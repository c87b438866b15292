// Element-wise ops: activations and other one-input maps, broadcasting arithmetic (add, sub, mul,
// div, pow, minimum, maximum; a bool mask may stand for either operand) and clamp.
#include <cmath>
#include <limits>
#include <numbers>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

using UnaryFn = double (*)(double, const Attrs&);

double softplus(double x, double beta, double threshold) {
  // Linear above the threshold, as PyTorch, which also avoids overflow of exp.
  return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}
double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
double relu6(double x) {
  return std::min(std::max(x, 0.0), 6.0);
}

constexpr double k_selu_alpha = 1.6732632423543772848170429916717;
constexpr double k_selu_scale = 1.0507009873554804934193349852946;

struct Activation {
  const char* name;
  std::vector<std::string> attrs;
  UnaryFn fn;
  // PyTorch rendering; `x` is the input's name.
  std::string (*torch)(const Attrs&, const std::string& x);
};

std::string gelu_mode(const Attrs& at) {
  std::string mode = attr_string(at, "approximate", "none");
  if (mode != "none" && mode != "tanh")
    fail("approximate must be 'none' or 'tanh', got '{}'", mode);
  return mode;
}

std::vector<Activation> activations() {
  return {
      {"relu",
       {},
       [](double x, const Attrs&) { return x > 0.0 ? x : (std::isnan(x) ? x : 0.0); },
       [](const Attrs&, const std::string& x) { return "torch.relu(" + x + ")"; }},
      {"leaky_relu",
       {"negative_slope"},
       [](double x, const Attrs& a) {
         return x > 0.0 ? x : x * attr_double(a, "negative_slope", 0.01);
       },
       [](const Attrs& a, const std::string& x) {
         return fmt::format("F.leaky_relu({}{})", x, py_kwargs(a, {"negative_slope"}));
       }},
      {"gelu",
       {"approximate"},
       [](double x, const Attrs& a) {
         if (gelu_mode(a) == "tanh") {
           const double k = std::sqrt(2.0 / std::numbers::pi);
           return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
         }
         return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
       },
       [](const Attrs& a, const std::string& x) {
         return fmt::format("F.gelu({}{})", x, py_kwargs(a, {"approximate"}));
       }},
      {"sigmoid",
       {},
       [](double x, const Attrs&) { return sigmoid(x); },
       [](const Attrs&, const std::string& x) { return "torch.sigmoid(" + x + ")"; }},
      {"tanh",
       {},
       [](double x, const Attrs&) { return std::tanh(x); },
       [](const Attrs&, const std::string& x) { return "torch.tanh(" + x + ")"; }},
      {"swish",
       {},
       [](double x, const Attrs&) { return x * sigmoid(x); },
       [](const Attrs&, const std::string& x) { return x + " * torch.sigmoid(" + x + ")"; }},
      {"elu",
       {"alpha"},
       [](double x, const Attrs& a) {
         return x > 0.0 ? x : attr_double(a, "alpha", 1.0) * std::expm1(x);
       },
       [](const Attrs& a, const std::string& x) {
         return fmt::format("F.elu({}{})", x, py_kwargs(a, {"alpha"}));
       }},
      {"selu",
       {},
       [](double x, const Attrs&) {
         return k_selu_scale * (x > 0.0 ? x : k_selu_alpha * std::expm1(x));
       },
       [](const Attrs&, const std::string& x) { return "F.selu(" + x + ")"; }},
      {"hardtanh",
       {"min_val", "max_val"},
       [](double x, const Attrs& a) {
         const double lo = attr_double(a, "min_val", -1.0), hi = attr_double(a, "max_val", 1.0);
         return std::isnan(x) ? x : std::min(std::max(x, lo), hi);
       },
       [](const Attrs& a, const std::string& x) {
         return fmt::format("F.hardtanh({}{})", x, py_kwargs(a, {"min_val", "max_val"}));
       }},
      {"hardsigmoid",
       {},
       [](double x, const Attrs&) { return relu6(x + 3.0) / 6.0; },
       [](const Attrs&, const std::string& x) { return "F.hardsigmoid(" + x + ")"; }},
      {"hardswish",
       {},
       [](double x, const Attrs&) { return x * relu6(x + 3.0) / 6.0; },
       [](const Attrs&, const std::string& x) { return "F.hardswish(" + x + ")"; }},
      {"mish",
       {},
       [](double x, const Attrs&) { return x * std::tanh(softplus(x, 1.0, 20.0)); },
       [](const Attrs&, const std::string& x) { return "F.mish(" + x + ")"; }},
      {"softplus",
       {"beta", "threshold"},
       [](double x, const Attrs& a) {
         return softplus(x, attr_double(a, "beta", 1.0), attr_double(a, "threshold", 20.0));
       },
       [](const Attrs& a, const std::string& x) {
         return fmt::format("F.softplus({}{})", x, py_kwargs(a, {"beta", "threshold"}));
       }},
      {"softsign",
       {},
       [](double x, const Attrs&) { return x / (1.0 + std::abs(x)); },
       [](const Attrs&, const std::string& x) { return "F.softsign(" + x + ")"; }},
      {"abs",
       {},
       [](double x, const Attrs&) { return std::abs(x); },
       [](const Attrs&, const std::string& x) { return "torch.abs(" + x + ")"; }},
      {"exp",
       {},
       [](double x, const Attrs&) { return std::exp(x); },
       [](const Attrs&, const std::string& x) { return "torch.exp(" + x + ")"; }},
      {"log",
       {},
       [](double x, const Attrs&) { return std::log(x); },
       [](const Attrs&, const std::string& x) { return "torch.log(" + x + ")"; }},
      {"sqrt",
       {},
       [](double x, const Attrs&) { return std::sqrt(x); },
       [](const Attrs&, const std::string& x) { return "torch.sqrt(" + x + ")"; }},
      {"relu6",
       {},
       [](double x, const Attrs&) { return std::isnan(x) ? x : relu6(x); },
       [](const Attrs&, const std::string& x) { return "F.relu6(" + x + ")"; }},
      // (x > 0) - (x < 0), so NaN gives 0 as PyTorch's sign does.
      {"sign",
       {},
       [](double x, const Attrs&) { return static_cast<double>((x > 0.0) - (x < 0.0)); },
       [](const Attrs&, const std::string& x) { return "torch.sign(" + x + ")"; }},
      {"log2",
       {},
       [](double x, const Attrs&) { return std::log2(x); },
       [](const Attrs&, const std::string& x) { return "torch.log2(" + x + ")"; }},
      {"neg",
       {},
       [](double x, const Attrs&) { return -x; },
       [](const Attrs&, const std::string& x) { return "torch.neg(" + x + ")"; }},
      {"reciprocal",
       {},
       [](double x, const Attrs&) { return 1.0 / x; },
       [](const Attrs&, const std::string& x) { return "torch.reciprocal(" + x + ")"; }},
      {"square",
       {},
       [](double x, const Attrs&) { return x * x; },
       [](const Attrs&, const std::string& x) { return "torch.square(" + x + ")"; }},
      {"rsqrt",
       {},
       [](double x, const Attrs&) { return 1.0 / std::sqrt(x); },
       [](const Attrs&, const std::string& x) { return "torch.rsqrt(" + x + ")"; }},
  };
}

// Checks the types and ranges of an activation's attributes.
void check_activation_attrs(const std::string& name, const Attrs& at) {
  if (name == "leaky_relu")
    attr_double(at, "negative_slope", 0.01);
  else if (name == "gelu")
    gelu_mode(at);
  else if (name == "elu")
    attr_double(at, "alpha", 1.0);
  else if (name == "hardtanh") {
    const double lo = attr_double(at, "min_val", -1.0), hi = attr_double(at, "max_val", 1.0);
    if (lo > hi)
      fail("min_val {} must not exceed max_val {}", lo, hi);
  } else if (name == "softplus") {
    if (attr_double(at, "beta", 1.0) == 0.0)
      fail("beta must not be 0");
    attr_double(at, "threshold", 20.0);
  }
}

OpCost elementwise_cost(const Attrs&, std::span<const ValueSpec> in, const ValueSpec& out) {
  return io_cost(in, out, static_cast<double>(numel(out.shape)));
}

OpDef activation_def(const Activation& act) {
  OpDef d = make_op(act.name, 1, 1, act.attrs);
  const std::string name = act.name;
  d.infer = [name](const Attrs& at, std::span<const ValueSpec> in) {
    require_floating(in[0], "x");
    check_activation_attrs(name, at);
    return in[0];
  };
  d.cost = elementwise_cost;
  d.cpu = [fn = act.fn](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    for (int64_t i = 0; i < in[0].size(); ++i)
      out.data[i] = fn(in[0].data[i], at);
  };
  d.torch = [r = act.torch](const Attrs& at, std::span<const std::string> n) {
    return r(at, n[0]);
  };
  return d;
}

// ----- arithmetic ---------------------------------------------------------------------------

ValueSpec arith_infer(bool mask_allowed, const Attrs& at, std::span<const ValueSpec> in) {
  static constexpr const char* k_names[] = {"a", "b"};
  if (in.size() == 1) {
    require_floating(in[0], "a");
    if (!at.contains("scalar"))
      fail("with one input the attribute 'scalar' is required");
    attr_double(at, "scalar");
    return in[0];
  }
  if (at.contains("scalar"))
    fail("attribute 'scalar' is only allowed with one input, got 2");
  const Shape out = broadcast_shapes(in[0].shape, in[1].shape);
  // A bool operand (a mask) takes the other operand's floating dtype, as PyTorch promotes it.
  const bool a_mask = in[0].dtype == DType::b8, b_mask = in[1].dtype == DType::b8;
  if (a_mask && b_mask)
    fail("a and b are both bool; one must have a floating dtype");
  if ((a_mask || b_mask) && !mask_allowed)
    fail("{} is bool, which this op does not take (PyTorch refuses it too)", a_mask ? "a" : "b");
  if (a_mask || b_mask) {
    require_floating(in[a_mask ? 1 : 0], a_mask ? "b" : "a");
    return {out, in[a_mask ? 1 : 0].dtype};
  }
  require_floating(in[0], "a");
  require_same_dtype(in, k_names);
  return {out, in[0].dtype};
}

OpDef arith_def(const char* name, const char* symbol, double (*fn)(double, double),
                int min_inputs = 1) {
  OpDef d =
      make_op(name, min_inputs, 2,
              min_inputs == 1 ? std::vector<std::string>{"scalar"} : std::vector<std::string>{});
  // PyTorch subtracts no bool tensor; every other arithmetic op promotes a bool mask.
  d.infer = [mask_allowed = std::string_view(name) != "sub"](const Attrs& at,
                                                             std::span<const ValueSpec> in) {
    return arith_infer(mask_allowed, at, in);
  };
  d.cost = elementwise_cost;
  d.cpu = [fn](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    if (in.size() == 1) {
      const double s = attr_double(at, "scalar");
      for (int64_t i = 0; i < in[0].size(); ++i)
        out.data[i] = fn(in[0].data[i], s);
      return;
    }
    for_each_broadcast(in[0].shape, in[1].shape, out.shape,
                       [&](int64_t ia, int64_t ib, int64_t io) {
                         out.data[io] = fn(in[0].data[ia], in[1].data[ib]);
                       });
  };
  d.torch = [symbol](const Attrs& at, std::span<const std::string> n) {
    const std::string b =
        n.size() == 1 ? attr_to_python(attr_double(at, "scalar")) : std::string(n[1]);
    // A symbol renders as an infix operator, a name as a call of that torch function.
    if (std::string_view(symbol).find_first_of("+-*/") == 0)
      return fmt::format("{} {} {}", n[0], symbol, b);
    return fmt::format("torch.{}({}, {})", symbol, n[0], b);
  };
  return d;
}

// NaN in either operand gives NaN, as torch.minimum / torch.maximum.
double minimum(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? std::numeric_limits<double>::quiet_NaN() : std::min(a, b);
}
double maximum(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? std::numeric_limits<double>::quiet_NaN() : std::max(a, b);
}

} // namespace

void add_elementwise_ops(std::vector<OpDef>& ops) {
  for (const auto& act : activations())
    ops.push_back(activation_def(act));

  ops.push_back(arith_def("add", "+", [](double a, double b) { return a + b; }));
  ops.push_back(arith_def("sub", "-", [](double a, double b) { return a - b; }));
  ops.push_back(arith_def("mul", "*", [](double a, double b) { return a * b; }));
  ops.push_back(arith_def("div", "/", [](double a, double b) { return a / b; }));
  ops.push_back(arith_def("pow", "pow", [](double a, double b) { return std::pow(a, b); }));
  ops.push_back(arith_def("minimum", "minimum", minimum, 2));
  ops.push_back(arith_def("maximum", "maximum", maximum, 2));

  OpDef clamp = make_op("clamp", 1, 1, {"min", "max"});
  clamp.infer = [](const Attrs& at, std::span<const ValueSpec> in) {
    require_floating(in[0], "x");
    if (!at.contains("min") && !at.contains("max"))
      fail("needs attribute 'min' or 'max' (or both)");
    attr_double(at, "min", 0.0);
    attr_double(at, "max", 0.0);
    return in[0];
  };
  clamp.cost = elementwise_cost;
  clamp.cpu = [](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    const bool has_lo = at.contains("min"), has_hi = at.contains("max");
    const double lo = attr_double(at, "min", 0.0), hi = attr_double(at, "max", 0.0);
    // torch.clamp applies min then max, so max wins when min > max; NaN passes through.
    for (int64_t i = 0; i < in[0].size(); ++i) {
      double v = in[0].data[i];
      if (!std::isnan(v)) {
        if (has_lo)
          v = std::max(v, lo);
        if (has_hi)
          v = std::min(v, hi);
      }
      out.data[i] = v;
    }
  };
  clamp.torch = [](const Attrs& at, std::span<const std::string> n) {
    return fmt::format("torch.clamp({}{})", n[0], py_kwargs(at, {"min", "max"}));
  };
  ops.push_back(std::move(clamp));
}

} // namespace kb::ops
