// Float64 references of norms, activations, arithmetic, reductions, losses and layout ops against
// values worked out by hand.
#include <cmath>
#include <limits>

#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

const double k_inf = std::numeric_limits<double>::infinity();
const double k_ln2 = std::log(2.0), k_ln3 = std::log(3.0);

// ----- norms ----------------------------------------------------------------------------------

TEST(OpsCpu, LayerNorm) {
  // Rows [1, 3] and [0, 4]: means 2, biased variances 1 and 4.
  const HostTensor x({2, 2}, {1, 3, 0, 4});
  const Attrs a{{"normalized_shape", ints({2})}, {"eps", d(0.0)}};
  expect_values(run("layer_norm", a, {x}), {-1, 1, -1, 1});
  expect_values(run("layer_norm", a, {x, HostTensor({2}, {2, 3}), HostTensor({2}, {1, 1})}),
                {-1, 4, -1, 4});
  // Default eps 1e-5 enters the denominator.
  const double s = 1.0 / std::sqrt(1.0 + 1e-5);
  expect_values(run("layer_norm", {{"normalized_shape", i(2)}}, {HostTensor({1, 2}, {1, 3})}),
                {-s, s});
}

TEST(OpsCpu, LayerNormSurvivesLargeOffset) {
  // A naive E[x^2] - E[x]^2 loses the variance of [1e8 + 1, 1e8 + 3] entirely.
  const HostTensor x({1, 2}, {1e8 + 1, 1e8 + 3});
  expect_values(run("layer_norm", {{"normalized_shape", i(2)}, {"eps", d(0.0)}}, {x}), {-1, 1},
                1e-9);
}

TEST(OpsCpu, RmsNorm) {
  const double r = std::sqrt(12.5); // sqrt((9 + 16) / 2)
  const Attrs a{{"dims", ints({-1})}, {"eps", d(0.0)}};
  expect_values(run("rms_norm", a, {HostTensor({1, 2}, {3, 4})}), {3 / r, 4 / r});
  expect_values(run("rms_norm", a, {HostTensor({1, 2}, {3, 4}), HostTensor({2}, {2, 0.5})}),
                {6 / r, 2 / r});
  // Over dim 1 of [1, 2, 2]: column 0 is [3, 4], column 1 is [1, 1].
  expect_values(
      run("rms_norm", {{"dims", i(1)}, {"eps", d(0.0)}}, {HostTensor({1, 2, 2}, {3, 1, 4, 1})}),
      {3 / r, 1, 4 / r, 1});
  // eps = 7 turns a mean square of 9 into 16.
  expect_values(run("rms_norm", {{"dims", i(0)}, {"eps", d(7.0)}}, {HostTensor({1}, {3})}), {0.75});
}

TEST(OpsCpu, BatchNormInference) {
  const HostTensor x({1, 2, 1, 2}, {1, 2, 3, 4});
  const HostTensor mean({2}, {1, 3}), var({2}, {4, 1});
  const Attrs a{{"eps", d(0.0)}};
  expect_values(run("batch_norm", a, {x, mean, var}), {0, 0.5, 0, 1});
  expect_values(
      run("batch_norm", a, {x, mean, var, HostTensor({2}, {2, 1}), HostTensor({2}, {0, 10})}),
      {0, 1, 10, 11});
}

TEST(OpsCpu, GroupNorm) {
  // Groups [1, 3] and [10, 20]: both normalise to [-1, 1].
  const HostTensor x({1, 4, 1}, {1, 3, 10, 20});
  const Attrs a{{"num_groups", i(2)}, {"eps", d(0.0)}};
  expect_values(run("group_norm", a, {x}), {-1, 1, -1, 1});
  expect_values(
      run("group_norm", a, {x, HostTensor({4}, {1, 2, 3, 4}), HostTensor({4}, {0, 0, 0, 1})}),
      {-1, 2, -3, 5});
  // One group over everything: mean 8.5, variance 221 / 4 = 55.25.
  const double sd = std::sqrt(55.25);
  expect_values(run("group_norm", {{"num_groups", i(1)}, {"eps", d(0.0)}}, {x}),
                {-7.5 / sd, -5.5 / sd, 1.5 / sd, 11.5 / sd});
}

TEST(OpsCpu, InstanceNorm) {
  const HostTensor x({1, 2, 2}, {1, 3, 5, 9});
  const Attrs a{{"eps", d(0.0)}};
  expect_values(run("instance_norm", a, {x}), {-1, 1, -1, 1});
  expect_values(run("instance_norm", a, {x, HostTensor({2}, {2, 3}), HostTensor({2}, {1, 0})}),
                {-1, 3, -3, 3});
}

// ----- activations ----------------------------------------------------------------------------

TEST(OpsCpu, Activations) {
  expect_values(run("relu", {}, {HostTensor({3}, {-1, 0, 2})}), {0, 0, 2});
  expect_values(run("leaky_relu", {}, {HostTensor({2}, {-2, 3})}), {-0.02, 3});
  expect_values(run("leaky_relu", {{"negative_slope", d(0.5)}}, {HostTensor({2}, {-2, 3})}),
                {-1, 3});
  expect_values(run("sigmoid", {}, {HostTensor({2}, {0, k_ln3})}), {0.5, 0.75});
  expect_values(run("tanh", {}, {HostTensor({2}, {0, k_ln2})}), {0, 0.6});
  expect_values(run("swish", {}, {HostTensor({2}, {0, k_ln3})}), {0, 0.75 * k_ln3});
  expect_values(run("elu", {}, {HostTensor({2}, {-k_ln2, 2})}), {-0.5, 2});
  expect_values(run("elu", {{"alpha", d(2.0)}}, {HostTensor({2}, {-k_ln2, 2})}), {-1, 2});
  expect_values(run("selu", {}, {HostTensor({2}, {1, -k_ln2})}),
                {1.0507009873554805, -0.8790496704236883}, 1e-12);
  expect_values(run("hardtanh", {}, {HostTensor({3}, {-2, 0.5, 3})}), {-1, 0.5, 1});
  expect_values(
      run("hardtanh", {{"min_val", d(0.0)}, {"max_val", d(2.0)}}, {HostTensor({3}, {-2, 0.5, 3})}),
      {0, 0.5, 2});
  expect_values(run("hardsigmoid", {}, {HostTensor({4}, {-4, 0, 1.5, 4})}), {0, 0.5, 0.75, 1});
  expect_values(run("hardswish", {}, {HostTensor({4}, {-4, 0, 1.5, 4})}), {0, 0, 1.125, 4});
  expect_values(run("softsign", {}, {HostTensor({2}, {1, -3})}), {0.5, -0.75});
  expect_values(run("abs", {}, {HostTensor({2}, {-2.5, 3})}), {2.5, 3});
  expect_values(run("exp", {}, {HostTensor({2}, {0, std::log(5.0)})}), {1, 5});
  expect_values(run("log", {}, {HostTensor({2}, {1, 8})}), {0, 3 * k_ln2});
  expect_values(run("sqrt", {}, {HostTensor({2}, {9, 0.25})}), {3, 0.5});
}

TEST(OpsCpu, GeluBothForms) {
  // erf form: 0.5 x (1 + erf(x / sqrt 2)); Phi(1) = 0.8413447460685429.
  expect_values(run("gelu", {}, {HostTensor({3}, {0, 1, -1})}),
                {0, 0.8413447460685429, -0.15865525393145707}, 1e-12);
  // tanh form at 1: 0.5 (1 + tanh(0.7978845608 * 1.044715)) = 0.8411920.
  expect_values(run("gelu", {{"approximate", std::string("tanh")}}, {HostTensor({2}, {0, 1})}),
                {0, 0.841192}, 1e-6);
}

TEST(OpsCpu, SoftplusAndMish) {
  expect_values(run("softplus", {}, {HostTensor({2}, {k_ln3, 30})}), {2 * k_ln2, 30});
  // beta 2 at ln(3)/2: ln(1 + 3) / 2 = ln 2.
  expect_values(run("softplus", {{"beta", d(2.0)}}, {HostTensor({1}, {k_ln3 / 2})}), {k_ln2});
  // Above the threshold softplus is the identity.
  expect_values(run("softplus", {{"threshold", d(1.0)}}, {HostTensor({1}, {2})}), {2});
  // softplus(ln 2) = ln 3 and tanh(ln 3) = 0.8.
  expect_values(run("mish", {}, {HostTensor({2}, {0, k_ln2})}), {0, 0.8 * k_ln2});
}

// ----- arithmetic -----------------------------------------------------------------------------

TEST(OpsCpu, BroadcastArithmetic) {
  const HostTensor col({2, 1}, {1, 2});
  const HostTensor row({3}, {10, 20, 30});
  const HostTensor sum = run("add", {}, {col, row});
  EXPECT_EQ(sum.shape, (Shape{2, 3}));
  expect_values(sum, {11, 21, 31, 12, 22, 32});
  expect_values(run("sub", {}, {col, row}), {-9, -19, -29, -8, -18, -28});
  expect_values(run("mul", {}, {row, col}), {10, 20, 30, 20, 40, 60});
  expect_values(run("div", {}, {row, col}), {10, 20, 30, 5, 10, 15});
  expect_values(run("div", {}, {HostTensor({}, {1}), HostTensor({2}, {4, 8})}), {0.25, 0.125});
}

TEST(OpsCpu, ScalarArithmetic) {
  const HostTensor x({2}, {1, 4});
  expect_values(run("add", {{"scalar", d(0.5)}}, {x}), {1.5, 4.5});
  expect_values(run("sub", {{"scalar", i(1)}}, {x}), {0, 3});
  expect_values(run("mul", {{"scalar", d(2.0)}}, {x}), {2, 8});
  expect_values(run("div", {{"scalar", d(4.0)}}, {x}), {0.25, 1});
}

TEST(OpsCpu, Clamp) {
  const HostTensor x({3}, {-2, 0.5, 3});
  expect_values(run("clamp", {{"min", d(-1.0)}, {"max", d(1.0)}}, {x}), {-1, 0.5, 1});
  expect_values(run("clamp", {{"min", d(0.0)}}, {x}), {0, 0.5, 3});
  expect_values(run("clamp", {{"max", i(0)}}, {x}), {-2, 0, 0});
  // min > max: torch.clamp yields max everywhere.
  expect_values(run("clamp", {{"min", d(2.0)}, {"max", d(1.0)}}, {x}), {1, 1, 1});
}

// ----- reductions and scans -------------------------------------------------------------------

TEST(OpsCpu, Reductions) {
  const HostTensor x = iota({2, 3});
  expect_values(run("sum", {{"dim", i(1)}}, {x}), {6, 15});
  const HostTensor all = run("sum", {{"dim", ints({0, 1})}}, {x});
  EXPECT_EQ(all.shape, Shape{});
  expect_values(all, {21});
  EXPECT_EQ(run("sum", {{"dim", ints({0, 1})}, {"keepdim", true}}, {x}).shape, (Shape{1, 1}));
  expect_values(run("mean", {{"dim", i(0)}}, {x}), {2.5, 3.5, 4.5});
  expect_values(run("max", {{"dim", i(-1)}}, {x}), {3, 6});
  expect_values(run("min", {{"dim", i(0)}}, {x}), {1, 2, 3});
  // Over the outer and inner dims of [2, 2, 2]: 1+2+5+6 and 3+4+7+8.
  expect_values(run("sum", {{"dim", ints({0, 2})}}, {iota({2, 2, 2})}), {14, 22});
  expect_values(run("mean", {{"dim", ints({2, 0})}, {"keepdim", true}}, {iota({2, 2, 2})}),
                {3.5, 5.5});
}

TEST(OpsCpu, ArgmaxArgminFirstIndexOnTies) {
  const HostTensor x({2, 4}, {1, 3, 3, 2, 5, 5, 1, 1});
  expect_values(run("argmax", {{"dim", i(1)}}, {x}), {1, 0});
  expect_values(run("argmin", {{"dim", i(1)}}, {x}), {0, 2});
  expect_values(run("argmax", {{"dim", i(0)}}, {x}), {1, 1, 0, 0});
  expect_values(run("argmin", {{"dim", i(0)}, {"keepdim", true}}, {x}), {0, 0, 1, 1});
}

TEST(OpsCpu, SoftmaxIsStable) {
  expect_values(run("softmax", {{"dim", i(1)}}, {HostTensor({1, 3}, {0, k_ln2, k_ln3})}),
                {1.0 / 6, 2.0 / 6, 3.0 / 6});
  // exp(1000) overflows without the max shift.
  expect_values(run("softmax", {{"dim", i(-1)}}, {HostTensor({1, 2}, {1000, 1000 + k_ln3})}),
                {0.25, 0.75});
  expect_values(run("softmax", {{"dim", i(0)}}, {HostTensor({2, 1}, {0, k_ln3})}), {0.25, 0.75});
  expect_values(run("log_softmax", {{"dim", i(1)}}, {HostTensor({1, 2}, {-1000, -1000 + k_ln3})}),
                {std::log(0.25), std::log(0.75)});
}

TEST(OpsCpu, MiddleDimOpsWalkTheInnerStride) {
  // x[b][j][k]; along j: (b0,k0) = [0, ln 3], (b0,k1) = [0, 0], (b1,k0) = [0, 0], (b1,k1) = [ln 3,
  // 0].
  const HostTensor x({2, 2, 2}, {0, 0, k_ln3, 0, 0, k_ln3, 0, 0});
  expect_values(run("softmax", {{"dim", i(1)}}, {x}), {0.25, 0.5, 0.75, 0.5, 0.5, 0.75, 0.5, 0.25});
  expect_values(run("cumsum", {{"dim", i(1)}}, {iota({2, 2, 2})}), {1, 2, 4, 6, 5, 6, 12, 14});
  // Columns [1, 5, 5] and [9, 2, 7].
  const HostTensor y({1, 3, 2}, {1, 9, 5, 2, 5, 7});
  expect_values(run("argmax", {{"dim", i(1)}}, {y}), {1, 0});
  expect_values(run("argmin", {{"dim", i(-2)}}, {y}), {0, 1});
}

TEST(OpsCpu, NanPropagatesThroughMaxAndArgmax) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_values(run("max", {{"dim", i(0)}}, {HostTensor({2}, {nan, 1})}), {nan});
  expect_values(run("min", {{"dim", i(0)}}, {HostTensor({2}, {1, nan})}), {nan});
  expect_values(run("argmax", {{"dim", i(0)}}, {HostTensor({3}, {1, nan, 3})}), {1});
}

TEST(OpsCpu, LayerNormOverTwoDims) {
  // Mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
  const double s = std::sqrt(1.25);
  expect_values(
      run("layer_norm", {{"normalized_shape", ints({2, 2})}, {"eps", d(0.0)}}, {iota({1, 2, 2})}),
      {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s});
}

TEST(OpsCpu, Cumsum) {
  expect_values(run("cumsum", {{"dim", i(1)}}, {iota({2, 3})}), {1, 3, 6, 4, 9, 15});
  expect_values(run("cumsum", {{"dim", i(0)}}, {iota({2, 3})}), {1, 2, 3, 5, 7, 9});
}

// ----- losses ---------------------------------------------------------------------------------

TEST(OpsCpu, MseLoss) {
  const HostTensor out =
      run("mse_loss", {}, {HostTensor({2, 2}, {1, 2, 3, 4}), HostTensor({2, 2}, {1, 0, 3, 0})});
  EXPECT_EQ(out.shape, Shape{});
  expect_values(out, {5});
}

TEST(OpsCpu, CrossEntropy) {
  // Row 0: log(2) - 0; row 1: log(3 + 1) - log 3. Mean of the two.
  const HostTensor logits({2, 2}, {0, 0, k_ln3, 0});
  expect_values(run("cross_entropy", {}, {logits, HostTensor({2}, {0, 0})}),
                {(k_ln2 + std::log(4.0 / 3.0)) / 2});
  // Large logits stay finite through log-sum-exp.
  expect_values(run("cross_entropy", {}, {HostTensor({1, 2}, {1000, 1000}), HostTensor({1}, {1})}),
                {k_ln2}, 1e-9);
  EXPECT_EQ(error_of([&] {
              run("cross_entropy", {}, {logits, HostTensor({2}, {0, 2})});
            }),
            "cross_entropy: target value 2 at index 1 is not a class index in [0, 2)");
}

// ----- layout ---------------------------------------------------------------------------------

TEST(OpsCpu, ReshapeKeepsOrder) {
  const HostTensor out = run("reshape", {{"shape", ints({3, -1})}}, {iota({2, 3})});
  EXPECT_EQ(out.shape, (Shape{3, 2}));
  expect_values(out, {1, 2, 3, 4, 5, 6});
}

TEST(OpsCpu, PermuteAndTranspose) {
  expect_values(run("permute", {{"dims", ints({1, 0})}}, {iota({2, 3})}), {1, 4, 2, 5, 3, 6});
  // out[k][0][i] = x[0][i][k].
  const HostTensor p = run("permute", {{"dims", ints({2, 0, 1})}}, {iota({1, 2, 3})});
  EXPECT_EQ(p.shape, (Shape{3, 1, 2}));
  expect_values(p, {1, 4, 2, 5, 3, 6});
  expect_values(run("transpose", {{"dim0", i(0)}, {"dim1", i(-1)}}, {iota({2, 3})}),
                {1, 4, 2, 5, 3, 6});
  // Swapping the last two of [2, 2, 2] transposes each 2x2 block.
  expect_values(run("transpose", {{"dim0", i(1)}, {"dim1", i(2)}}, {iota({2, 2, 2})}),
                {1, 3, 2, 4, 5, 7, 6, 8});
}

TEST(OpsCpu, Slice) {
  const HostTensor x = iota({2, 3});
  expect_values(run("slice", {{"dim", i(1)}, {"start", i(1)}, {"end", i(3)}}, {x}), {2, 3, 5, 6});
  expect_values(run("slice", {{"dim", i(-1)}, {"start", i(-2)}, {"end", i(-1)}}, {x}), {2, 5});
  expect_values(run("slice", {{"dim", i(0)}, {"start", i(1)}, {"end", i(2)}}, {x}), {4, 5, 6});
}

TEST(OpsCpu, MaskedFillCausal) {
  const HostTensor zeros({2, 3}, std::vector<double>(6, 0.0));
  expect_values(run("masked_fill_causal", {}, {zeros}), {0, -k_inf, -k_inf, 0, 0, -k_inf});
  expect_values(run("masked_fill_causal", {{"value", d(-1e9)}}, {iota({2, 2, 2})}),
                {1, -1e9, 3, 4, 5, -1e9, 7, 8});
}

} // namespace
} // namespace kb
