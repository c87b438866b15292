// Naive kernels of lstm and gru: the sequence and the state stay in double scratch for the whole
// op; one kernel launch per time step, layer and direction (kb_forward loops over the steps), in
// which each thread computes one (batch, hidden) element of every gate and the new h (and c).
// The hidden state is double-buffered between steps: a step reads one buffer and writes the other.
#include <algorithm>

#include "emit.hpp"

namespace kb::codegen {
namespace {

void rnn(NodeCtx& c, bool lstm) {
  const Attrs& a = c.node.attrs;
  const int64_t hidden = attr_int(a, "hidden_size");
  const int64_t layers = attr_int(a, "num_layers", 1);
  const int64_t dirs = attr_bool(a, "bidirectional", false) ? 2 : 1;
  const bool batch_first = attr_bool(a, "batch_first", false);
  const bool bias = attr_bool(a, "bias", true);
  const std::string output = attr_string(a, "output", "out");
  const int64_t gates = lstm ? 4 : 3;
  const int64_t states = lstm ? 2 : 1;
  const int64_t per_layer = bias ? 4 : 2;
  const Shape& xs = c.in[0].shape;
  const int64_t steps = batch_first ? xs[1] : xs[0], batch = batch_first ? xs[0] : xs[1];
  const int64_t input = xs[2];
  const int64_t dh = dirs * hidden, bh = batch * hidden;
  Emitter& e = c.e;

  // The layer sequences, time-major [T, B, features].
  const int64_t seq_len = steps * batch * std::max(input, dh);
  const Val seq[2] = {e.scratch(seq_len), e.scratch(seq_len)};
  const Val h[2] = {e.scratch(bh), e.scratch(bh)};
  const Val cell = e.scratch(bh);
  const bool want_state = output != "out";
  const Val hn = want_state ? e.scratch(layers * dirs * bh) : Val{};

  e.map(c.kname("input"), steps * batch * input, {in_arg("x", c.in[0]), out_arg("sq", seq[0])},
        batch_first ? fmt::format("const int64_t t = i / {0}, b = (i / {1}) % {2}, k = i % {1};\n"
                                  "sq[i] = kb_ld(x, (b * {3} + t) * {1} + k);\n",
                                  lit(batch * input), lit(input), lit(batch), lit(steps))
                    : std::string("sq[i] = kb_ld(x, i);\n"));

  for (int64_t l = 0; l < layers; ++l) {
    const Val& lin = seq[l % 2];
    const Val& lout = seq[(l + 1) % 2];
    const int64_t in_size = l == 0 ? input : dh;
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const int64_t idx = l * dirs + dir;
      const auto k0 = static_cast<std::size_t>(1 + states + per_layer * idx);
      const std::string tag = fmt::format("l{}{}", l, dir == 1 ? "r" : "");
      std::vector<Arg> init = {in_arg("h0", c.in[1]), out_arg("hs", h[0]), out_arg("cs", cell)};
      std::string init_body = fmt::format("hs[i] = kb_ld(h0, {} + i);\n", lit(idx * bh));
      if (lstm) {
        init.insert(init.begin() + 1, in_arg("c0", c.in[2]));
        init_body += fmt::format("cs[i] = kb_ld(c0, {} + i);\n", lit(idx * bh));
      } else {
        init_body += "cs[i] = 0.0;\n";
      }
      e.map(c.kname(tag + "_init"), bh, init, init_body);

      std::vector<Arg> args = {in_arg("sq", lin),           {"double*", "ha", h[0].var},
                               {"double*", "hb", h[1].var}, out_arg("cs", cell),
                               out_arg("out", lout),        in_arg("wih", c.in[k0]),
                               in_arg("whh", c.in[k0 + 1])};
      if (bias) {
        args.push_back(in_arg("bih", c.in[k0 + 2]));
        args.push_back(in_arg("bhh", c.in[k0 + 3]));
      }
      args.push_back({"int64_t", "s", "s"});
      std::string body = fmt::format(
          "const int64_t b = i / {0}, j = i % {0};\n"
          "const int64_t t = {1};\n"
          "const double* hp = s % 2 == 0 ? ha : hb;\n"
          "double* hq = s % 2 == 0 ? hb : ha;\n"
          "double gi[{2}], gh[{2}];\n"
          "for (int64_t g = 0; g < {2}; ++g) {{\n"
          "  const int64_t row = g * {0} + j;\n"
          "  double ai = {3}, ah = {4};\n"
          "  for (int64_t k = 0; k < {5}; ++k) ai += kb_ld(wih, row * {5} + k) * sq[(t * {6} + b) "
          "* {5} + k];\n"
          "  for (int64_t k = 0; k < {0}; ++k) ah += kb_ld(whh, row * {0} + k) * hp[b * {0} + k];\n"
          "  gi[g] = ai;\n"
          "  gh[g] = ah;\n"
          "}}\n",
          lit(hidden), dir == 0 ? "s" : fmt::format("{} - s", lit(steps - 1)), gates,
          bias ? "kb_ld(bih, row)" : "0.0", bias ? "kb_ld(bhh, row)" : "0.0", lit(in_size),
          lit(batch));
      if (lstm)
        body += "const double ig = kb_sigmoid(gi[0] + gh[0]);\n"
                "const double fg = kb_sigmoid(gi[1] + gh[1]);\n"
                "const double gg = tanh(gi[2] + gh[2]);\n"
                "const double og = kb_sigmoid(gi[3] + gh[3]);\n"
                "const double cn = fg * cs[i] + ig * gg;\n"
                "cs[i] = cn;\n"
                "const double hv = og * tanh(cn);\n";
      else
        body += "const double rg = kb_sigmoid(gi[0] + gh[0]);\n"
                "const double zg = kb_sigmoid(gi[1] + gh[1]);\n"
                "const double ng = tanh(gi[2] + rg * gh[2]);\n"
                "const double hv = (1.0 - zg) * ng + zg * hp[i];\n";
      body += fmt::format("hq[i] = hv;\n"
                          "out[(t * {} + b) * {} + {} + j] = hv;\n",
                          lit(batch), lit(dh), lit(dir * hidden));
      const std::string launch = e.map_def(c.kname(tag + "_step"), bh, args, body);
      e.host(
          fmt::format("  for (int64_t s = 0; s < {}; ++s) {{\n    {}  }}\n", lit(steps), launch));
      if (want_state) {
        // After T steps the state is in buffer T % 2.
        const Val& last = h[steps % 2];
        e.map(
            c.kname(tag + "_state"), bh,
            {in_arg("hs", last), in_arg("cs", cell), out_arg("st", hn)},
            fmt::format("st[{} + i] = {};\n", lit(idx * bh), output == "c_n" ? "cs[i]" : "hs[i]"));
      }
    }
  }
  if (want_state) {
    e.map(c.kname(), c.out.numel(), {in_arg("st", hn), out_arg("y", c.out)},
          "kb_st(y, i, st[i]);\n");
    return;
  }
  const Val& last = seq[layers % 2];
  e.map(c.kname(), c.out.numel(), {in_arg("sq", last), out_arg("y", c.out)},
        batch_first ? fmt::format("const int64_t b = i / {0}, t = (i / {1}) % {2}, f = i % {1};\n"
                                  "kb_st(y, i, sq[(t * {3} + b) * {1} + f]);\n",
                                  lit(steps * dh), lit(dh), lit(steps), lit(batch))
                    : std::string("kb_st(y, i, sq[i]);\n"));
}

} // namespace

void add_recurrent(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["lstm"] = [](NodeCtx& c) { rnn(c, true); };
  m["gru"] = [](NodeCtx& c) { rnn(c, false); };
}

} // namespace kb::codegen
