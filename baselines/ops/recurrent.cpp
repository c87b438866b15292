// Recurrent ops: lstm and gru, the forward pass of nn.LSTM / nn.GRU (several layers, optionally
// bidirectional and batch-first), each returning one of the module's outputs.
#include <cmath>

#include "ops_internal.hpp"

namespace kb::ops {
namespace {

// More layers than any real network stacks; bounds the op's arity.
constexpr int64_t k_max_layers = 64;

struct RnnConfig {
  bool lstm = true;
  int64_t gates = 4; // LSTM: i, f, g, o; GRU: r, z, n (PyTorch's row blocks of the weights)
  int64_t hidden = 0, layers = 1, dirs = 1;
  bool batch_first = false, bias = true;
  std::string output;    // "out", "h_n" or "c_n"
  int64_t states = 2;    // initial-state inputs after x: h0, c0 (LSTM) or h0 (GRU)
  int64_t per_layer = 4; // tensors per layer and direction: w_ih, w_hh[, b_ih, b_hh]
  int64_t first_weight() const { return 1 + states; }
  int64_t inputs() const { return first_weight() + per_layer * layers * dirs; }
};

RnnConfig rnn_config(bool lstm, const Attrs& at) {
  RnnConfig c;
  c.lstm = lstm;
  c.gates = lstm ? 4 : 3;
  c.hidden = attr_int(at, "hidden_size");
  c.layers = attr_int(at, "num_layers", 1);
  c.dirs = attr_bool(at, "bidirectional", false) ? 2 : 1;
  c.batch_first = attr_bool(at, "batch_first", false);
  c.bias = attr_bool(at, "bias", true);
  c.output = attr_string(at, "output", "out");
  c.states = lstm ? 2 : 1;
  c.per_layer = c.bias ? 4 : 2;
  if (c.hidden < 1)
    fail("hidden_size must be >= 1, got {}", c.hidden);
  if (c.layers < 1 || c.layers > k_max_layers)
    fail("num_layers must be in [1, {}], got {}", k_max_layers, c.layers);
  if (lstm && c.output != "out" && c.output != "h_n" && c.output != "c_n")
    fail("output must be \"out\", \"h_n\" or \"c_n\", got \"{}\"", c.output);
  if (!lstm && c.output != "out" && c.output != "h_n")
    fail("output must be \"out\" or \"h_n\", got \"{}\"", c.output);
  return c;
}

// Input names as PyTorch's module calls them: x, h0, c0, weight_ih_l0, ..., bias_hh_l1_reverse.
std::vector<std::string> input_names(const RnnConfig& c) {
  std::vector<std::string> n = {"x", "h0"};
  if (c.lstm)
    n.push_back("c0");
  for (int64_t l = 0; l < c.layers; ++l)
    for (int64_t d = 0; d < c.dirs; ++d) {
      const std::string suffix = fmt::format("_l{}{}", l, d == 1 ? "_reverse" : "");
      n.push_back("weight_ih" + suffix);
      n.push_back("weight_hh" + suffix);
      if (c.bias) {
        n.push_back("bias_ih" + suffix);
        n.push_back("bias_hh" + suffix);
      }
    }
  return n;
}

// Sequence length, batch and input size of x [T, B, I] (or [B, T, I] when batch_first).
struct RnnDims {
  int64_t steps, batch, input;
};

RnnDims rnn_dims(const RnnConfig& c, const Shape& x) {
  return {c.batch_first ? x[1] : x[0], c.batch_first ? x[0] : x[1], x[2]};
}

Shape rnn_output_shape(const RnnConfig& c, const RnnDims& d) {
  if (c.output == "out")
    return c.batch_first ? Shape{d.batch, d.steps, c.dirs * c.hidden}
                         : Shape{d.steps, d.batch, c.dirs * c.hidden};
  return {c.layers * c.dirs, d.batch, c.hidden};
}

ValueSpec rnn_infer(bool lstm, const Attrs& at, std::span<const ValueSpec> in) {
  const RnnConfig c = rnn_config(lstm, at);
  if (static_cast<int64_t>(in.size()) != c.inputs())
    fail("expected {} inputs (x, {}, then {} per layer and direction for {} layer(s) and {} "
         "direction(s)), got {}",
         c.inputs(), lstm ? "h0, c0" : "h0",
         c.bias ? "weight_ih, weight_hh, bias_ih, bias_hh" : "weight_ih, weight_hh", c.layers,
         c.dirs, in.size());
  const std::vector<std::string> names = input_names(c);
  std::vector<const char*> cnames;
  for (const auto& n : names)
    cnames.push_back(n.c_str());
  require_rank(in[0], "x", 3);
  require_floating(in[0], "x");
  require_same_dtype(in, cnames);
  const RnnDims d = rnn_dims(c, in[0].shape);
  if (d.steps < 1 || d.batch < 1 || d.input < 1)
    fail("x {} must have at least one time step, batch entry and feature", shape_str(in[0].shape));
  auto expect = [&](std::size_t i, const Shape& want) {
    if (in[i].shape != want)
      fail("{} must have shape {}, got {}", names[i], shape_str(want), shape_str(in[i].shape));
  };
  const Shape state = {c.layers * c.dirs, d.batch, c.hidden};
  for (int64_t s = 1; s <= c.states; ++s)
    expect(static_cast<std::size_t>(s), state);
  const int64_t rows = checked_mul(c.gates, c.hidden);
  for (int64_t l = 0; l < c.layers; ++l)
    for (int64_t dir = 0; dir < c.dirs; ++dir) {
      const auto k = static_cast<std::size_t>(c.first_weight() + c.per_layer * (l * c.dirs + dir));
      expect(k, {rows, l == 0 ? d.input : c.dirs * c.hidden});
      expect(k + 1, {rows, c.hidden});
      if (c.bias) {
        expect(k + 2, {rows});
        expect(k + 3, {rows});
      }
    }
  return {rnn_output_shape(c, d), in[0].dtype};
}

// Two GEMMs per step (input and hidden projections) plus the gate arithmetic per hidden unit.
OpCost rnn_cost(bool lstm, const Attrs& at, std::span<const ValueSpec> in, const ValueSpec& out) {
  const RnnConfig c = rnn_config(lstm, at);
  const RnnDims d = rnn_dims(c, in[0].shape);
  const double steps_batch = static_cast<double>(d.steps) * static_cast<double>(d.batch);
  const double g = static_cast<double>(c.gates * c.hidden), h = static_cast<double>(c.hidden);
  // LSTM: 4 gates of (2 bias adds, 1 sum, 1 activation) + c = f*c + i*g and h = o*tanh(c).
  // GRU: 3 gates likewise + r * hidden part and h = (1 - z) * n + z * h.
  const double per_unit = lstm ? 21.0 : 16.0;
  double flops = 0.0;
  for (int64_t l = 0; l < c.layers; ++l) {
    const double in_size = static_cast<double>(l == 0 ? d.input : c.dirs * c.hidden);
    flops += static_cast<double>(c.dirs) * steps_batch * (2.0 * g * (in_size + h) + per_unit * h);
  }
  return io_cost(in, out, flops);
}

double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

void rnn_cpu(bool lstm, const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
  const RnnConfig c = rnn_config(lstm, at);
  const RnnDims d = rnn_dims(c, in[0].shape);
  const int64_t T = d.steps, B = d.batch, H = c.hidden, G = c.gates * H;
  // Layer inputs and outputs time-major: [T, B, features].
  int64_t in_size = d.input;
  std::vector<double> layer_in(static_cast<std::size_t>(T * B * in_size));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < in_size; ++k)
        layer_in[(t * B + b) * in_size + k] =
            in[0].data[((c.batch_first ? b * T + t : t * B + b) * in_size) + k];
  std::vector<double> layer_out;
  std::vector<double> h_n(static_cast<std::size_t>(c.layers * c.dirs * B * H));
  std::vector<double> c_n(h_n.size());
  std::vector<double> gi(static_cast<std::size_t>(G)), gh(static_cast<std::size_t>(G));
  for (int64_t l = 0; l < c.layers; ++l) {
    layer_out.assign(static_cast<std::size_t>(T * B * c.dirs * H), 0.0);
    for (int64_t dir = 0; dir < c.dirs; ++dir) {
      const int64_t idx = l * c.dirs + dir;
      const int64_t k0 = c.first_weight() + c.per_layer * idx;
      const std::vector<double>& w_ih = in[k0].data;
      const std::vector<double>& w_hh = in[k0 + 1].data;
      const double* b_ih = c.bias ? in[k0 + 2].data.data() : nullptr;
      const double* b_hh = c.bias ? in[k0 + 3].data.data() : nullptr;
      std::vector<double> h(in[1].data.begin() + idx * B * H,
                            in[1].data.begin() + (idx + 1) * B * H);
      std::vector<double> cell(static_cast<std::size_t>(B * H), 0.0);
      if (lstm)
        std::copy(in[2].data.begin() + idx * B * H, in[2].data.begin() + (idx + 1) * B * H,
                  cell.begin());
      for (int64_t s = 0; s < T; ++s) {
        const int64_t t = dir == 0 ? s : T - 1 - s;
        for (int64_t b = 0; b < B; ++b) {
          const double* xr = layer_in.data() + (t * B + b) * in_size;
          double* hr = h.data() + b * H;
          for (int64_t g = 0; g < G; ++g) {
            double ai = b_ih ? b_ih[g] : 0.0, ah = b_hh ? b_hh[g] : 0.0;
            for (int64_t k = 0; k < in_size; ++k)
              ai += w_ih[g * in_size + k] * xr[k];
            for (int64_t k = 0; k < H; ++k)
              ah += w_hh[g * H + k] * hr[k];
            gi[g] = ai;
            gh[g] = ah;
          }
          for (int64_t j = 0; j < H; ++j) {
            if (lstm) {
              const double i_g = sigmoid(gi[j] + gh[j]);
              const double f_g = sigmoid(gi[H + j] + gh[H + j]);
              const double g_g = std::tanh(gi[2 * H + j] + gh[2 * H + j]);
              const double o_g = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
              double& cj = cell[b * H + j];
              cj = f_g * cj + i_g * g_g;
              hr[j] = o_g * std::tanh(cj);
            } else {
              const double r = sigmoid(gi[j] + gh[j]);
              const double z = sigmoid(gi[H + j] + gh[H + j]);
              const double n = std::tanh(gi[2 * H + j] + r * gh[2 * H + j]);
              hr[j] = (1.0 - z) * n + z * hr[j];
            }
            layer_out[(t * B + b) * c.dirs * H + dir * H + j] = hr[j];
          }
        }
      }
      std::copy(h.begin(), h.end(), h_n.begin() + idx * B * H);
      std::copy(cell.begin(), cell.end(), c_n.begin() + idx * B * H);
    }
    layer_in.swap(layer_out);
    in_size = c.dirs * H;
  }
  if (c.output == "h_n") {
    out.data = h_n;
  } else if (c.output == "c_n") {
    out.data = c_n;
  } else {
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < in_size; ++k)
          out.data[((c.batch_first ? b * T + t : t * B + b) * in_size) + k] =
              layer_in[(t * B + b) * in_size + k];
  }
}

// torch.lstm / torch.gru are the functions nn.LSTM and nn.GRU call with their flat weight list.
std::string rnn_torch(bool lstm, const Attrs& at, std::span<const std::string> n) {
  const RnnConfig c = rnn_config(lstm, at);
  const auto py_bool = [](bool b) { return b ? "True" : "False"; };
  const std::string states = lstm ? fmt::format("[{}, {}]", n[1], n[2]) : n[1];
  const std::vector<std::string> weights(n.begin() + c.first_weight(), n.end());
  const int index = c.output == "out" ? 0 : c.output == "h_n" ? 1 : 2;
  return fmt::format("torch.{}({}, {}, [{}], {}, {}, 0.0, False, {}, {})[{}]",
                     lstm ? "lstm" : "gru", n[0], states, join_names(weights), py_bool(c.bias),
                     c.layers, py_bool(c.dirs == 2), py_bool(c.batch_first), index);
}

OpDef rnn_def(bool lstm) {
  // Fewest inputs: x, the states and one layer without biases; most: k_max_layers bidirectional
  // layers with biases.
  const int states = lstm ? 2 : 1;
  OpDef d = make_op(lstm ? "lstm" : "gru", 1 + states + 2,
                    static_cast<int>(1 + states + 4 * 2 * k_max_layers),
                    {"hidden_size", "num_layers", "bidirectional", "batch_first", "bias", "output"},
                    {"hidden_size"});
  d.infer = [lstm](const Attrs& at, std::span<const ValueSpec> in) {
    return rnn_infer(lstm, at, in);
  };
  d.cost = [lstm](const Attrs& at, std::span<const ValueSpec> in, const ValueSpec& out) {
    return rnn_cost(lstm, at, in, out);
  };
  d.cpu = [lstm](const Attrs& at, std::span<const HostTensor> in, HostTensor& out) {
    rnn_cpu(lstm, at, in, out);
  };
  d.torch = [lstm](const Attrs& at, std::span<const std::string> n) {
    return rnn_torch(lstm, at, n);
  };
  return d;
}

} // namespace

void add_recurrent_ops(std::vector<OpDef>& ops) {
  ops.push_back(rnn_def(true));
  ops.push_back(rnn_def(false));
}

} // namespace kb::ops
