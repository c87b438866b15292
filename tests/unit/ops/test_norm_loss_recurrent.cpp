// Unit tests of batch_norm_train, the losses beyond mse/cross-entropy, cosine_similarity, lstm and
// gru: shape inference and its errors, costs, PyTorch rendering and float64 references against
// values worked out by hand or against identities of the recurrences (direction, layout, layers).
#include <cmath>

#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

OpCost cost_of(const std::string& op, Attrs a, std::vector<ValueSpec> in) {
  const ValueSpec out = infer(op, a, in);
  return find_op(op)->cost(a, in, out);
}

std::string torch_of(const std::string& op, Attrs a, std::vector<std::string> names) {
  return find_op(op)->torch(a, names);
}

double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

// ----- batch_norm_train -----------------------------------------------------------------------

TEST(BatchNormTrain, InferAndErrors) {
  EXPECT_EQ(infer("batch_norm_train", {}, {spec({4, 3}), spec({3}), spec({3})}), spec({4, 3}));
  EXPECT_EQ(infer("batch_norm_train", {}, {spec({2, 3, 5, 6, 7}, DType::bf16)}),
            spec({2, 3, 5, 6, 7}, DType::bf16));
  EXPECT_EQ(infer_error("batch_norm_train", {}, {spec({1, 3})}),
            "batch_norm_train: x [1, 3] needs more than one value per channel for batch "
            "statistics");
  EXPECT_EQ(infer_error("batch_norm_train", {}, {spec({2, 3, 4}), spec({4})}),
            "batch_norm_train: weight must have shape [3] (the channels of x [2, 3, 4]), got [4]");
  EXPECT_EQ(infer_error("batch_norm_train", {}, {spec({3})}),
            "batch_norm_train: x must have rank >= 2, got 1 [3]");
  EXPECT_EQ(infer_error("batch_norm_train", {{"eps", d(-1.0)}}, {spec({2, 3})}),
            "batch_norm_train: eps must be >= 0, got -1");
  EXPECT_EQ(infer_error("batch_norm_train", {{"momentum", d(0.1)}}, {spec({2, 3})}),
            "batch_norm_train: unknown attribute 'momentum'");
}

TEST(BatchNormTrain, BatchStatisticsPerChannel) {
  // x [2, 2, 2]: channel 0 holds {1, 3, 5, 7} (mean 4, biased variance 5), channel 1 holds
  // {10, 10, 12, 12} (mean 11, variance 1).
  const HostTensor x({2, 2, 2}, {1, 3, 10, 10, 5, 7, 12, 12});
  const double s = std::sqrt(5.0);
  const Attrs a{{"eps", d(0.0)}};
  expect_values(run("batch_norm_train", a, {x}), {-3 / s, -1 / s, -1, -1, 1 / s, 3 / s, 1, 1});
  expect_values(run("batch_norm_train", a, {x, HostTensor({2}, {2, 3}), HostTensor({2}, {1, -1})}),
                {1 - 6 / s, 1 - 2 / s, -4, -4, 1 + 2 / s, 1 + 6 / s, 2, 2});
  // A 2-D input [N, C] normalises each column; eps 1e-5 by default.
  const double e = 1.0 / std::sqrt(1.0 + 1e-5);
  expect_values(run("batch_norm_train", {}, {HostTensor({2, 2}, {1, 5, 3, 5})}), {-e, 0, e, 0});
}

TEST(BatchNormTrain, SurvivesLargeOffset) {
  const HostTensor x({2, 1}, {1e8 + 1, 1e8 + 3});
  expect_values(run("batch_norm_train", {{"eps", d(0.0)}}, {x}), {-1, 1}, 1e-9);
}

TEST(BatchNormTrain, CostAndTorch) {
  EXPECT_DOUBLE_EQ(cost_of("batch_norm_train", {}, {spec({4, 3, 5})}).flops, 8.0 * 60);
  EXPECT_EQ(torch_of("batch_norm_train", {}, {"x"}), "F.batch_norm(x, None, None, training=True)");
  EXPECT_EQ(torch_of("batch_norm_train", {{"eps", d(1e-3)}}, {"x", "w", "b"}),
            "F.batch_norm(x, None, None, weight=w, bias=b, training=True, eps=0.001)");
  EXPECT_TRUE(find_op("batch_norm_train")->cancellation_sensitive);
}

// ----- element-wise losses --------------------------------------------------------------------

TEST(Losses, InferAndErrors) {
  for (const char* op : {"smooth_l1_loss", "huber_loss", "kl_div"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(infer(op, {}, {spec({4, 5}, DType::f16), spec({4, 5}, DType::f16)}),
              spec({}, DType::f16));
    EXPECT_THAT(infer_error(op, {}, {spec({4, 5}), spec({5})}),
                HasSubstr("input [4, 5] and target [5] must have the same shape"));
    EXPECT_THAT(infer_error(op, {}, {spec({4, 5}), spec({4, 5}, DType::f16)}),
                HasSubstr("dtypes differ"));
  }
  EXPECT_EQ(infer_error("smooth_l1_loss", {{"beta", d(-0.5)}}, {spec({2}), spec({2})}),
            "smooth_l1_loss: beta must be finite and >= 0, got -0.5");
  EXPECT_EQ(infer_error("huber_loss", {{"delta", d(0.0)}}, {spec({2}), spec({2})}),
            "huber_loss: delta must be finite and > 0, got 0");
  EXPECT_EQ(infer_error("kl_div", {{"reduction", std::string("none")}}, {spec({2}), spec({2})}),
            "kl_div: reduction must be \"batchmean\", \"mean\" or \"sum\", got \"none\"");
}

TEST(Losses, SmoothL1AndHuber) {
  // Differences 0.5, -2, 0 and 4.
  const HostTensor x({2, 2}, {1.5, 0, 3, 5}), y({2, 2}, {1, 2, 3, 1});
  // beta 1: 0.125, 1.5, 0, 3.5.
  expect_values(run("smooth_l1_loss", {}, {x, y}), {(0.125 + 1.5 + 0 + 3.5) / 4});
  // beta 2: 0.0625, 1 (at the boundary: |d| - beta / 2), 0, 3.
  expect_values(run("smooth_l1_loss", {{"beta", d(2.0)}}, {x, y}), {(0.0625 + 1 + 0 + 3) / 4});
  // beta 0 is the L1 loss.
  expect_values(run("smooth_l1_loss", {{"beta", d(0.0)}}, {x, y}), {(0.5 + 2 + 0 + 4) / 4});
  // huber, delta 1 equals smooth_l1 with beta 1; delta 2: 0.125, 2, 0, 6.
  expect_values(run("huber_loss", {}, {x, y}), {(0.125 + 1.5 + 0 + 3.5) / 4});
  expect_values(run("huber_loss", {{"delta", d(2.0)}}, {x, y}), {(0.125 + 2 + 0 + 6) / 4});
}

TEST(Losses, KlDivReductionsAndZeroTargets) {
  // input is log-probabilities; target 0 contributes 0 (xlogy), whatever the input.
  const HostTensor in({2, 2}, {std::log(0.5), std::log(0.5), std::log(0.25), -1e300});
  const HostTensor tg({2, 2}, {0.25, 0.75, 1.0, 0.0});
  const double row0 = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.5);
  const double row1 = 1.0 * std::log(1.0 / 0.25);
  const double sum = row0 + row1;
  expect_values(run("kl_div", {{"reduction", std::string("sum")}}, {in, tg}), {sum});
  expect_values(run("kl_div", {{"reduction", std::string("batchmean")}}, {in, tg}), {sum / 2});
  expect_values(run("kl_div", {}, {in, tg}), {sum / 4});
  // log_target: the target is given as log-probabilities.
  const HostTensor lt({2, 2}, {std::log(0.25), std::log(0.75), 0.0, -1e300});
  expect_values(run("kl_div", {{"reduction", std::string("sum")}, {"log_target", true}},
                    {HostTensor({2, 2}, {std::log(0.5), std::log(0.5), std::log(0.25), -5}), lt}),
                {sum});
  // A scalar input is its own batch for batchmean.
  expect_values(run("kl_div", {{"reduction", std::string("batchmean")}},
                    {HostTensor({}, {std::log(0.5)}), HostTensor({}, {0.25})}),
                {0.25 * std::log(0.5)});
}

TEST(Losses, CostAndTorch) {
  EXPECT_DOUBLE_EQ(cost_of("huber_loss", {}, {spec({4, 5}), spec({4, 5})}).flops, 60.0);
  EXPECT_DOUBLE_EQ(cost_of("kl_div", {}, {spec({4, 5}), spec({4, 5})}).bytes, 4.0 * 41);
  EXPECT_EQ(torch_of("smooth_l1_loss", {}, {"a", "b"}), "F.smooth_l1_loss(a, b)");
  EXPECT_EQ(torch_of("smooth_l1_loss", {{"beta", d(0.5)}}, {"a", "b"}),
            "F.smooth_l1_loss(a, b, beta=0.5)");
  EXPECT_EQ(torch_of("huber_loss", {{"delta", d(2.0)}}, {"a", "b"}),
            "F.huber_loss(a, b, delta=2.0)");
  EXPECT_EQ(torch_of("kl_div", {}, {"a", "b"}), "F.kl_div(a, b, reduction='mean')");
  EXPECT_EQ(torch_of("kl_div", {{"reduction", std::string("batchmean")}, {"log_target", true}},
                     {"a", "b"}),
            "F.kl_div(a, b, reduction='batchmean', log_target=True)");
}

// ----- triplet_margin_loss --------------------------------------------------------------------

TEST(TripletMarginLoss, InferAndErrors) {
  EXPECT_EQ(infer("triplet_margin_loss", {}, {spec({4, 8}), spec({4, 8}), spec({4, 8})}), spec({}));
  EXPECT_EQ(infer("triplet_margin_loss", {}, {spec({8}), spec({8}), spec({8})}), spec({}));
  EXPECT_EQ(infer_error("triplet_margin_loss", {}, {spec({4, 8}), spec({4, 8}), spec({4, 7})}),
            "triplet_margin_loss: negative [4, 7] must have the shape of anchor [4, 8]");
  EXPECT_EQ(
      infer_error("triplet_margin_loss", {}, {spec({2, 4, 8}), spec({2, 4, 8}), spec({2, 4, 8})}),
      "triplet_margin_loss: anchor must have rank 1 or 2 ([D] or [N, D]), got [2, 4, 8]");
  EXPECT_EQ(infer_error("triplet_margin_loss", {{"p", d(0.0)}}, {spec({8}), spec({8}), spec({8})}),
            "triplet_margin_loss: p must be finite and > 0, got 0");
}

TEST(TripletMarginLoss, DistancesAddEpsAndClampAtZero) {
  // Row 0: a - p = [3, 4] (+ eps), a - n = [0, 1]: 1 + 5 - 1 = 5. Row 1: a - p = [0, 0],
  // a - n = [6, 8]: 1 + 0 - 10 < 0, clamped to 0.
  const HostTensor a({2, 2}, {3, 4, 6, 8}), p({2, 2}, {0, 0, 6, 8}), n({2, 2}, {3, 3, 0, 0});
  const Attrs no_eps{{"eps", d(0.0)}};
  expect_values(run("triplet_margin_loss", no_eps, {a, p, n}), {5.0 / 2});
  // With eps, every difference grows by eps before the norm.
  const double e = 1e-6;
  const double dp = std::hypot(3 + e, 4 + e), dn = std::hypot(0 + e, 1 + e);
  const double dp1 = std::hypot(e, e), dn1 = std::hypot(6 + e, 8 + e);
  expect_values(run("triplet_margin_loss", {}, {a, p, n}),
                {(1 + dp - dn + std::max(0.0, 1 + dp1 - dn1)) / 2}, 1e-12);
  // p = 1, margin 0.5.
  expect_values(
      run("triplet_margin_loss", {{"p", d(1.0)}, {"margin", d(0.5)}, {"eps", d(0.0)}}, {a, p, n}),
      {(0.5 + 7 - 1) / 2});
  // swap: a positive-negative distance smaller than the anchor-negative one replaces it.
  const HostTensor a2({1, 2}, {0, 0}), p2({1, 2}, {3, 4}), n2({1, 2}, {3, 5});
  // d(a, p) = 5, d(a, n) = sqrt(34), d(p, n) = 1: without swap 1 + 5 - 5.83, with swap 1 + 5 - 1.
  expect_values(run("triplet_margin_loss", no_eps, {a2, p2, n2}),
                {std::max(0.0, 6 - std::sqrt(34.0))});
  expect_values(run("triplet_margin_loss", {{"eps", d(0.0)}, {"swap", true}}, {a2, p2, n2}), {5});
}

TEST(TripletMarginLoss, CostAndTorch) {
  EXPECT_DOUBLE_EQ(
      cost_of("triplet_margin_loss", {}, {spec({4, 8}), spec({4, 8}), spec({4, 8})}).flops,
      4.0 * 2 * 32);
  EXPECT_EQ(torch_of("triplet_margin_loss", {}, {"a", "p", "n"}), "F.triplet_margin_loss(a, p, n)");
  EXPECT_EQ(torch_of("triplet_margin_loss", {{"margin", d(0.5)}, {"swap", true}}, {"a", "p", "n"}),
            "F.triplet_margin_loss(a, p, n, margin=0.5, swap=True)");
}

// ----- cosine_similarity ----------------------------------------------------------------------

TEST(CosineSimilarity, InferAndErrors) {
  EXPECT_EQ(infer("cosine_similarity", {}, {spec({4, 8, 3}), spec({4, 8, 3})}), spec({4, 3}));
  EXPECT_EQ(infer("cosine_similarity", {{"dim", i(-1)}}, {spec({4, 8}), spec({4, 8})}), spec({4}));
  EXPECT_EQ(infer("cosine_similarity", {{"dim", i(0)}}, {spec({8}), spec({8})}), spec({}));
  EXPECT_EQ(infer_error("cosine_similarity", {}, {spec({8}), spec({8})}),
            "cosine_similarity: dim 1 is out of range for a tensor of rank 1 (expected -1..0)");
  EXPECT_EQ(infer_error("cosine_similarity", {}, {spec({4, 8}), spec({1, 8})}),
            "cosine_similarity: x1 [4, 8] and x2 [1, 8] must have the same shape");
}

TEST(CosineSimilarity, ReducesOverDimWithEpsPerNorm) {
  // Rows [3, 4] . [4, 3] = 24 / 25; [1, 0] . [-2, 0] = -1.
  const HostTensor a({2, 2}, {3, 4, 1, 0}), b({2, 2}, {4, 3, -2, 0});
  expect_values(run("cosine_similarity", {}, {a, b}), {24.0 / 25, -1});
  // Over dim 0 of the same tensors: columns [3, 1] . [4, -2] = 10, norms sqrt(10), sqrt(20).
  expect_values(run("cosine_similarity", {{"dim", i(0)}}, {a, b}),
                {10 / std::sqrt(200.0), 12 / (4 * 3.0)});
  // Each norm is clamped to eps on its own: ||[1e-9]|| = 1e-9 -> 1e-8, so (1e-9)^2 / 1e-16.
  expect_values(
      run("cosine_similarity", {{"dim", i(0)}}, {HostTensor({1}, {1e-9}), HostTensor({1}, {1e-9})}),
      {0.01}, 1e-15);
}

TEST(CosineSimilarity, CostAndTorch) {
  EXPECT_DOUBLE_EQ(cost_of("cosine_similarity", {}, {spec({4, 8}), spec({4, 8})}).flops, 192.0);
  EXPECT_EQ(torch_of("cosine_similarity", {}, {"a", "b"}), "F.cosine_similarity(a, b)");
  EXPECT_EQ(torch_of("cosine_similarity", {{"dim", i(-1)}, {"eps", d(1e-6)}}, {"a", "b"}),
            "F.cosine_similarity(a, b, dim=-1, eps=1e-06)");
}

// ----- lstm and gru ---------------------------------------------------------------------------

// Specs of an LSTM/GRU's inputs: x [T, B, I] (or [B, T, I]), the states, then per layer and
// direction w_ih [G*H, in], w_hh [G*H, H], b_ih, b_hh.
std::vector<ValueSpec> rnn_specs(bool lstm, int64_t T, int64_t B, int64_t I, int64_t H,
                                 int64_t layers, int64_t dirs, bool batch_first = false,
                                 bool bias = true, DType t = DType::f32) {
  const int64_t G = (lstm ? 4 : 3) * H;
  std::vector<ValueSpec> s = {spec(batch_first ? Shape{B, T, I} : Shape{T, B, I}, t)};
  for (int k = 0; k < (lstm ? 2 : 1); ++k)
    s.push_back(spec({layers * dirs, B, H}, t));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t d = 0; d < dirs; ++d) {
      s.push_back(spec({G, l == 0 ? I : dirs * H}, t));
      s.push_back(spec({G, H}, t));
      if (bias) {
        s.push_back(spec({G}, t));
        s.push_back(spec({G}, t));
      }
    }
  return s;
}

// Deterministic, non-trivial values for tensors of these specs.
std::vector<HostTensor> rnn_values(const std::vector<ValueSpec>& specs) {
  std::vector<HostTensor> v;
  int k = 0;
  for (const auto& s : specs) {
    HostTensor t(s.shape);
    for (auto& x : t.data)
      x = std::sin(1.7 * ++k) * 0.8;
    v.push_back(std::move(t));
  }
  return v;
}

Attrs rnn_attrs(int64_t H, int64_t layers = 1, bool bidir = false, bool batch_first = false,
                std::string output = "out") {
  return {{"hidden_size", i(H)},
          {"num_layers", i(layers)},
          {"bidirectional", bidir},
          {"batch_first", batch_first},
          {"output", std::move(output)}};
}

TEST(Recurrent, InferShapes) {
  // The KernelBench configurations: batch_first LSTM [10, 512, 128], 6 layers of 256.
  EXPECT_EQ(
      infer("lstm", rnn_attrs(256, 6, false, true), rnn_specs(true, 512, 10, 128, 256, 6, 1, true)),
      spec({10, 512, 256}));
  EXPECT_EQ(infer("lstm", rnn_attrs(256, 6, true, true, "h_n"),
                  rnn_specs(true, 512, 10, 128, 256, 6, 2, true)),
            spec({12, 10, 256}));
  EXPECT_EQ(infer("lstm", rnn_attrs(8, 2, false, false, "c_n"), rnn_specs(true, 5, 3, 4, 8, 2, 1)),
            spec({2, 3, 8}));
  EXPECT_EQ(infer("gru", rnn_attrs(8, 3, true), rnn_specs(false, 5, 3, 4, 8, 3, 2)),
            spec({5, 3, 16}));
  EXPECT_EQ(infer("gru", rnn_attrs(8, 1, false, false, "h_n"),
                  rnn_specs(false, 5, 3, 4, 8, 1, 1, false, true, DType::f16)),
            spec({1, 3, 8}, DType::f16));
  Attrs no_bias = rnn_attrs(8, 2);
  no_bias["bias"] = false;
  EXPECT_EQ(infer("gru", no_bias, rnn_specs(false, 5, 3, 4, 8, 2, 1, false, false)),
            spec({5, 3, 8}));
}

TEST(Recurrent, InferErrors) {
  EXPECT_EQ(infer_error("lstm", rnn_attrs(8, 2), rnn_specs(true, 5, 3, 4, 8, 1, 1)),
            "lstm: expected 11 inputs (x, h0, c0, then weight_ih, weight_hh, bias_ih, bias_hh "
            "per layer and direction for 2 layer(s) and 1 direction(s)), got 7");
  EXPECT_EQ(
      infer_error("gru", rnn_attrs(8, 1, false, false, "c_n"), rnn_specs(false, 5, 3, 4, 8, 1, 1)),
      "gru: output must be \"out\" or \"h_n\", got \"c_n\"");
  EXPECT_EQ(infer_error("lstm", rnn_attrs(0), rnn_specs(true, 5, 3, 4, 8, 1, 1)),
            "lstm: hidden_size must be >= 1, got 0");
  EXPECT_EQ(infer_error("lstm", {{"num_layers", i(1)}}, rnn_specs(true, 5, 3, 4, 8, 1, 1)),
            "lstm: missing required attribute 'hidden_size'");
  // A layer-1 input weight sized for the input features instead of 2 * hidden.
  auto s = rnn_specs(true, 5, 3, 4, 8, 2, 2);
  s[3 + 4 * 2] = spec({32, 4});
  EXPECT_EQ(infer_error("lstm", rnn_attrs(8, 2, true), s),
            "lstm: weight_ih_l1 must have shape [32, 16], got [32, 4]");
  s = rnn_specs(true, 5, 3, 4, 8, 2, 2);
  s[3 + 4 + 3] = spec({31});
  EXPECT_EQ(infer_error("lstm", rnn_attrs(8, 2, true), s),
            "lstm: bias_hh_l0_reverse must have shape [32], got [31]");
  s = rnn_specs(false, 5, 3, 4, 8, 1, 1);
  s[1] = spec({1, 5, 8});
  EXPECT_EQ(infer_error("gru", rnn_attrs(8), s),
            "gru: h0 must have shape [1, 3, 8], got [1, 5, 8]");
  s = rnn_specs(false, 5, 3, 4, 8, 1, 1);
  s[2].dtype = DType::f16;
  EXPECT_EQ(infer_error("gru", rnn_attrs(8), s),
            "gru: dtypes differ: x is f32, weight_ih_l0 is f16");
  s = rnn_specs(false, 5, 3, 4, 8, 1, 1);
  s.pop_back();
  EXPECT_EQ(infer_error("gru", rnn_attrs(8), s),
            "gru: expected 6 inputs (x, h0, then weight_ih, weight_hh, bias_ih, bias_hh per layer "
            "and direction for 1 layer(s) and 1 direction(s)), got 5");
  EXPECT_EQ(infer_error("gru", rnn_attrs(8), {spec({5, 3, 4}), spec({1, 3, 8})}),
            "gru: expected 4 to 514 inputs, got 2");
}

TEST(Recurrent, SingleLstmCellByHand) {
  // T = 2, B = 1, I = 1, H = 1: gates i, f, g, o from rows 0..3 of the weights.
  const double wi[4] = {0.5, -0.3, 0.8, 0.1}, wh[4] = {0.2, 0.4, -0.6, 0.9};
  const double bi[4] = {0.1, 0.2, -0.1, 0.05}, bh[4] = {-0.2, 0.3, 0.15, 0.0};
  const double xs[2] = {0.7, -1.2};
  double h = 0.3, c = -0.4;
  std::vector<double> outs;
  for (double xv : xs) {
    double a[4];
    for (int k = 0; k < 4; ++k)
      a[k] = wi[k] * xv + bi[k] + wh[k] * h + bh[k];
    c = sigmoid(a[1]) * c + sigmoid(a[0]) * std::tanh(a[2]);
    h = sigmoid(a[3]) * std::tanh(c);
    outs.push_back(h);
  }
  const std::vector<HostTensor> in = {HostTensor({2, 1, 1}, {xs[0], xs[1]}),
                                      HostTensor({1, 1, 1}, {0.3}),
                                      HostTensor({1, 1, 1}, {-0.4}),
                                      HostTensor({4, 1}, {wi[0], wi[1], wi[2], wi[3]}),
                                      HostTensor({4, 1}, {wh[0], wh[1], wh[2], wh[3]}),
                                      HostTensor({4}, {bi[0], bi[1], bi[2], bi[3]}),
                                      HostTensor({4}, {bh[0], bh[1], bh[2], bh[3]})};
  expect_values(run("lstm", rnn_attrs(1), in), outs);
  expect_values(run("lstm", rnn_attrs(1, 1, false, false, "h_n"), in), {h});
  expect_values(run("lstm", rnn_attrs(1, 1, false, false, "c_n"), in), {c});
}

TEST(Recurrent, SingleGruCellByHand) {
  // The hidden part of n is gated by r including its bias: n = tanh(W_in x + b_in + r * (W_hn h +
  // b_hn)), so b_hn != 0 tells it apart from adding b_hn outside.
  const double wi[3] = {0.5, -0.3, 0.8}, wh[3] = {0.2, 0.4, -0.6};
  const double bi[3] = {0.1, 0.2, -0.1}, bh[3] = {-0.2, 0.3, 0.7};
  const double xs[3] = {0.7, -1.2, 0.4};
  double h = 0.3;
  std::vector<double> outs;
  for (double xv : xs) {
    const double r = sigmoid(wi[0] * xv + bi[0] + wh[0] * h + bh[0]);
    const double z = sigmoid(wi[1] * xv + bi[1] + wh[1] * h + bh[1]);
    const double n = std::tanh(wi[2] * xv + bi[2] + r * (wh[2] * h + bh[2]));
    h = (1 - z) * n + z * h;
    outs.push_back(h);
  }
  const std::vector<HostTensor> in = {
      HostTensor({3, 1, 1}, {xs[0], xs[1], xs[2]}), HostTensor({1, 1, 1}, {0.3}),
      HostTensor({3, 1}, {wi[0], wi[1], wi[2]}),    HostTensor({3, 1}, {wh[0], wh[1], wh[2]}),
      HostTensor({3}, {bi[0], bi[1], bi[2]}),       HostTensor({3}, {bh[0], bh[1], bh[2]})};
  expect_values(run("gru", rnn_attrs(1), in), outs);
  expect_values(run("gru", rnn_attrs(1, 1, false, false, "h_n"), in), {h});
  // Without biases the same cell with every bias 0.
  Attrs nb = rnn_attrs(1);
  nb["bias"] = false;
  std::vector<HostTensor> zero_bias = in;
  zero_bias[4] = HostTensor({3}, {0, 0, 0});
  zero_bias[5] = HostTensor({3}, {0, 0, 0});
  expect_values(run("gru", nb, {in[0], in[1], in[2], in[3]}),
                run("gru", rnn_attrs(1), zero_bias).data);
}

// x [T, B, I] reversed along time.
HostTensor reversed_in_time(const HostTensor& x) {
  HostTensor r(x.shape);
  const int64_t T = x.shape[0], inner = x.size() / T;
  for (int64_t t = 0; t < T; ++t)
    std::copy(x.data.begin() + t * inner, x.data.begin() + (t + 1) * inner,
              r.data.begin() + (T - 1 - t) * inner);
  return r;
}

// [A, B, C] -> [B, A, C].
HostTensor swap01(const HostTensor& x) {
  const int64_t a = x.shape[0], b = x.shape[1], c = x.shape[2];
  HostTensor r({b, a, c});
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t k = 0; k < c; ++k)
        r.data[(j * a + i) * c + k] = x.data[(i * b + j) * c + k];
  return r;
}

// The tensors of state row `row` of a [L*D, B, H] state.
HostTensor state_row(const HostTensor& s, int64_t row) {
  const int64_t n = s.shape[1] * s.shape[2];
  return HostTensor({1, s.shape[1], s.shape[2]},
                    std::vector<double>(s.data.begin() + row * n, s.data.begin() + (row + 1) * n));
}

// Columns [begin, begin + width) of the last dim of a rank-3 tensor.
HostTensor columns(const HostTensor& x, int64_t begin, int64_t width) {
  const int64_t rows = x.shape[0] * x.shape[1], cols = x.shape[2];
  HostTensor r({x.shape[0], x.shape[1], width});
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < width; ++k)
      r.data[i * width + k] = x.data[i * cols + begin + k];
  return r;
}

// Inputs of a one-layer, one-direction op taken from input set `v` (layer l, direction d).
std::vector<HostTensor> one_layer(bool lstm, const std::vector<HostTensor>& v, const HostTensor& x,
                                  int64_t l, int64_t d, int64_t dirs) {
  const int64_t states = lstm ? 2 : 1, idx = l * dirs + d;
  std::vector<HostTensor> r = {x};
  for (int64_t s = 1; s <= states; ++s)
    r.push_back(state_row(v[s], idx));
  for (int64_t k = 0; k < 4; ++k)
    r.push_back(v[1 + states + 4 * idx + k]);
  return r;
}

TEST(Recurrent, BidirectionalTwoLayerIsComposedOfSingleDirectionLayers) {
  for (bool lstm : {true, false}) {
    SCOPED_TRACE(lstm ? "lstm" : "gru");
    const int64_t T = 4, B = 2, I = 3, H = 5;
    const auto v = rnn_values(rnn_specs(lstm, T, B, I, H, 2, 2));
    const std::string op = lstm ? "lstm" : "gru";
    const HostTensor out = run(op, rnn_attrs(H, 2, true), v);
    const HostTensor h_n = run(op, rnn_attrs(H, 2, true, false, "h_n"), v);
    ASSERT_EQ(out.shape, (Shape{T, B, 2 * H}));
    // Layer 0: forward over x, reverse = forward over reversed x, reversed back.
    const HostTensor f0 = run(op, rnn_attrs(H), one_layer(lstm, v, v[0], 0, 0, 2));
    const HostTensor r0 = reversed_in_time(
        run(op, rnn_attrs(H), one_layer(lstm, v, reversed_in_time(v[0]), 0, 1, 2)));
    HostTensor l0({T, B, 2 * H});
    for (int64_t row = 0; row < T * B; ++row)
      for (int64_t k = 0; k < H; ++k) {
        l0.data[row * 2 * H + k] = f0.data[row * H + k];
        l0.data[row * 2 * H + H + k] = r0.data[row * H + k];
      }
    // Layer 1 runs on layer 0's concatenated output.
    const HostTensor f1 = run(op, rnn_attrs(H), one_layer(lstm, v, l0, 1, 0, 2));
    const HostTensor r1 =
        reversed_in_time(run(op, rnn_attrs(H), one_layer(lstm, v, reversed_in_time(l0), 1, 1, 2)));
    expect_values(columns(out, 0, H), f1.data);
    expect_values(columns(out, H, H), r1.data);
    // h_n rows: (layer 0 fwd, layer 0 reverse, layer 1 fwd, layer 1 reverse); the forward final
    // state is the output at the last step, the reverse one the output at step 0.
    ASSERT_EQ(h_n.shape, (Shape{4, B, H}));
    auto at_step = [&](const HostTensor& y, int64_t t) {
      return std::vector<double>(y.data.begin() + t * B * H, y.data.begin() + (t + 1) * B * H);
    };
    expect_values(state_row(h_n, 0), at_step(f0, T - 1));
    expect_values(state_row(h_n, 1), at_step(r0, 0));
    expect_values(state_row(h_n, 2), at_step(f1, T - 1));
    expect_values(state_row(h_n, 3), at_step(r1, 0));
    if (lstm) {
      const HostTensor c_n = run(op, rnn_attrs(H, 2, true, false, "c_n"), v);
      const HostTensor c1 =
          run(op, rnn_attrs(H, 1, false, false, "c_n"), one_layer(lstm, v, l0, 1, 0, 2));
      expect_values(state_row(c_n, 2), c1.data);
    }
  }
}

TEST(Recurrent, BatchFirstIsTheTransposedLayout) {
  for (bool lstm : {true, false}) {
    SCOPED_TRACE(lstm ? "lstm" : "gru");
    const std::string op = lstm ? "lstm" : "gru";
    auto v = rnn_values(rnn_specs(lstm, 4, 3, 2, 5, 2, 2));
    const HostTensor out = run(op, rnn_attrs(5, 2, true), v);
    const HostTensor h_n = run(op, rnn_attrs(5, 2, true, false, "h_n"), v);
    v[0] = swap01(v[0]);
    expect_values(run(op, rnn_attrs(5, 2, true, true), v), swap01(out).data);
    // The states keep [L*D, B, H] whatever the layout of x.
    expect_values(run(op, rnn_attrs(5, 2, true, true, "h_n"), v), h_n.data);
  }
}

TEST(Recurrent, CostCountsBothProjectionsPerStep) {
  // One layer, one direction, T = 5, B = 3, I = 4, H = 8: per step and batch entry 2 * 4H * (I +
  // H) for the projections and 21 per hidden unit for the LSTM gates.
  const OpCost c = cost_of("lstm", rnn_attrs(8), rnn_specs(true, 5, 3, 4, 8, 1, 1));
  EXPECT_DOUBLE_EQ(c.flops, 15.0 * (2.0 * 32 * (4 + 8) + 21.0 * 8));
  // Bidirectional GRU with 2 layers: layer 1 reads 2H features.
  const OpCost g = cost_of("gru", rnn_attrs(8, 2, true), rnn_specs(false, 5, 3, 4, 8, 2, 2));
  EXPECT_DOUBLE_EQ(g.flops, 2.0 * 15 * (2.0 * 24 * (4 + 8) + 16.0 * 8) +
                                2.0 * 15 * (2.0 * 24 * (16 + 8) + 16.0 * 8));
  // Bytes: every input once plus the output.
  double in_bytes = 0;
  for (const auto& s : rnn_specs(true, 5, 3, 4, 8, 1, 1))
    in_bytes += 4.0 * static_cast<double>(numel(s.shape));
  EXPECT_DOUBLE_EQ(c.bytes, in_bytes + 4.0 * 5 * 3 * 8);
}

TEST(Recurrent, TorchRendering) {
  EXPECT_EQ(torch_of("lstm", rnn_attrs(8, 1, false, true),
                     {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"}),
            "torch.lstm(x, [h0, c0], [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, "
            "True)[0]");
  EXPECT_EQ(
      torch_of("lstm", rnn_attrs(8, 1, false, false, "c_n"), {"x", "h0", "c0", "a", "b", "c", "d"}),
      "torch.lstm(x, [h0, c0], [a, b, c, d], True, 1, 0.0, False, False, False)[2]");
  Attrs nb = rnn_attrs(8, 1, true, false, "h_n");
  nb["bias"] = false;
  EXPECT_EQ(torch_of("gru", nb, {"x", "h0", "a", "b", "c", "d"}),
            "torch.gru(x, h0, [a, b, c, d], False, 1, 0.0, False, True, False)[1]");
  EXPECT_FALSE(find_op("lstm")->cancellation_sensitive);
  EXPECT_EQ(find_op("gru")->min_inputs, 4);
  EXPECT_EQ(find_op("lstm")->required_attrs, std::vector<std::string>{"hidden_size"});
}

} // namespace
} // namespace kb
