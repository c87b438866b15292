// Float64 references of linear algebra, convolution and pooling against values worked out by hand.
#include <cmath>
#include <limits>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;

TEST(OpsCpu, Matmul) {
  const HostTensor a({2, 3}, {1, 2, 3, 4, 5, 6});
  const HostTensor b({3, 2}, {7, 8, 9, 10, 11, 12});
  expect_values(run("matmul", {}, {a, b}), {58, 64, 139, 154});
  // The same product from transposed storage.
  const HostTensor at({3, 2}, {1, 4, 2, 5, 3, 6});
  const HostTensor bt({2, 3}, {7, 9, 11, 8, 10, 12});
  expect_values(run("matmul", {{"transpose_a", true}, {"transpose_b", true}}, {at, bt}),
                {58, 64, 139, 154});
}

TEST(OpsCpu, MatmulBroadcastsBatch) {
  // Two batches of a 1x2 row times one shared swap matrix.
  const HostTensor a({2, 1, 2}, {1, 2, 3, 4});
  const HostTensor swap({2, 2}, {0, 1, 1, 0});
  const HostTensor out = run("matmul", {}, {a, swap});
  EXPECT_EQ(out.shape, (Shape{2, 1, 2}));
  expect_values(out, {2, 1, 4, 3});
  // a [1, 1, 2] against b [2, 2, 1]: the batch of b selects the column.
  const HostTensor b2({2, 2, 1}, {1, 0, 0, 1});
  expect_values(run("matmul", {}, {HostTensor({1, 1, 2}, {5, 7}), b2}), {5, 7});
}

TEST(OpsCpu, Linear) {
  const HostTensor x({1, 2}, {1, 2});
  const HostTensor w({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_values(run("linear", {}, {x, w, HostTensor({3}, {10, 20, 30})}), {11, 22, 33});
  expect_values(run("linear", {}, {x, w}), {1, 2, 3});
}

TEST(OpsCpu, AttentionUniformAndCausal) {
  // Zero queries give equal scores: the output averages the values.
  const HostTensor q({2, 1}, {0, 0});
  const HostTensor k({2, 1}, {1, 2});
  const HostTensor v({2, 1}, {1, 3});
  expect_values(run("scaled_dot_product_attention", {}, {q, k, v}), {2, 2});
  // Causal: row 0 sees key 0 only.
  expect_values(run("scaled_dot_product_attention", {{"causal", true}}, {q, k, v}), {1, 2});
}

TEST(OpsCpu, AttentionWeightsAndScale) {
  // E = 1, default scale 1: scores [0, ln 3] give weights [1/4, 3/4] on values [0, 4].
  const HostTensor v({2, 1}, {0, 4});
  expect_values(run("scaled_dot_product_attention", {},
                    {HostTensor({1, 1}, {1}), HostTensor({2, 1}, {0, std::log(3.0)}), v}),
                {3.0}, 1e-12);
  // Scale 0.5 on a query of 2 gives the same scores.
  expect_values(run("scaled_dot_product_attention", {{"scale", d(0.5)}},
                    {HostTensor({1, 1}, {2}), HostTensor({2, 1}, {0, std::log(3.0)}), v}),
                {3.0}, 1e-12);
  // E = 4, default scale 1/2: q.k = 2 ln 3 scaled to ln 3.
  const double h = std::log(3.0) / 2.0;
  expect_values(
      run("scaled_dot_product_attention", {},
          {HostTensor({1, 4}, {1, 1, 1, 1}), HostTensor({2, 4}, {0, 0, 0, 0, h, h, h, h}), v}),
      {3.0}, 1e-12);
}

TEST(OpsCpu, AttentionBroadcastsSharedKeys) {
  // Two query batches against one 2-D key/value set: scores [0, ln 3] and [0, -ln 3].
  const HostTensor q({2, 1, 1}, {1, -1});
  const HostTensor k({2, 1}, {0, std::log(3.0)});
  const HostTensor v({2, 1}, {0, 4});
  const HostTensor out = run("scaled_dot_product_attention", {}, {q, k, v});
  EXPECT_EQ(out.shape, (Shape{2, 1, 1}));
  expect_values(out, {3, 1}, 1e-12);
}

TEST(OpsCpu, Conv1dStridePaddingDilation) {
  const HostTensor x({1, 1, 5}, {1, 2, 3, 4, 5});
  const HostTensor w({1, 1, 3}, {1, 0, -1});
  expect_values(run("conv1d", {}, {x, w}), {-2, -2, -2});
  expect_values(run("conv1d", {{"padding", i(1)}}, {x, w}), {-2, -2, -2, -2, 4});
  // Dilation 2 spans all five inputs: x0 - x4.
  expect_values(run("conv1d", {{"dilation", i(2)}, {"stride", i(2)}}, {x, w}), {-4});
  expect_values(run("conv1d", {{"stride", i(2)}}, {x, w, HostTensor({1}, {10})}), {8, 8});
}

TEST(OpsCpu, Conv2dWithBias) {
  const HostTensor x = iota({1, 1, 3, 3});
  const HostTensor w({1, 1, 2, 2}, {1, 1, 1, 1});
  expect_values(run("conv2d", {}, {x, w, HostTensor({1}, {1})}), {13, 17, 25, 29});
}

TEST(OpsCpu, Conv2dGroupsAndChannels) {
  const HostTensor x({1, 2, 1, 1}, {2, 3});
  // Depthwise: each channel its own weight.
  expect_values(run("conv2d", {{"groups", i(2)}}, {x, HostTensor({2, 1, 1, 1}, {10, 100})}),
                {20, 300});
  // Dense: one output summing both channels.
  expect_values(run("conv2d", {}, {x, HostTensor({1, 2, 1, 1}, {1, 1})}), {5});
  // Two groups of two input channels, one output each: [1*1 + 2*2, 3*1 + 4*(-1)].
  const HostTensor x4({1, 4, 1, 1}, {1, 2, 3, 4});
  expect_values(run("conv2d", {{"groups", i(2)}}, {x4, HostTensor({2, 2, 1, 1}, {1, 2, 1, -1})}),
                {5, -1});
}

TEST(OpsCpu, Conv3d) {
  const HostTensor x = iota({1, 1, 2, 2, 2});
  const HostTensor ones({1, 1, 2, 2, 2}, std::vector<double>(8, 1.0));
  expect_values(run("conv3d", {}, {x, ones}), {36});
  const HostTensor out = run("conv3d", {}, {x, HostTensor({2, 1, 1, 1, 1}, {1, -1})});
  EXPECT_EQ(out.shape, (Shape{1, 2, 2, 2, 2}));
  expect_values(out, {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, -5, -6, -7, -8});
}

TEST(OpsCpu, ConvTranspose2d) {
  const HostTensor x({1, 1, 2, 2}, {1, 2, 3, 4});
  const HostTensor ones({1, 1, 2, 2}, {1, 1, 1, 1});
  // Stride 1: the 2x2 blocks of each input overlap.
  expect_values(run("conv_transpose2d", {}, {x, ones}), {1, 3, 2, 4, 10, 6, 3, 7, 4});
  // Stride 2: disjoint blocks.
  expect_values(run("conv_transpose2d", {{"stride", i(2)}}, {x, ones}),
                {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Padding 1 crops one border from each side.
  expect_values(run("conv_transpose2d", {{"stride", i(2)}, {"padding", i(1)}}, {x, ones}),
                {1, 2, 3, 4});
  // output_padding adds a last row and column that only the bias reaches.
  expect_values(run("conv_transpose2d", {{"stride", i(2)}, {"output_padding", i(1)}},
                    {x, ones, HostTensor({1}, {0.5})}),
                {1.5, 1.5, 2.5, 2.5, 0.5, 1.5, 1.5, 2.5, 2.5, 0.5, 3.5, 3.5, 4.5,
                 4.5, 0.5, 3.5, 3.5, 4.5, 4.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  // Weight [Cin, Cout, 1, 1]: one input channel feeding two outputs.
  expect_values(run("conv_transpose2d", {},
                    {HostTensor({1, 1, 1, 1}, {2}), HostTensor({1, 2, 1, 1}, {3, 5})}),
                {6, 10});
  // Dilation 2 places the taps two apart: x = [1] with weights [1, 2] -> [1, 0, 2].
  expect_values(run("conv_transpose2d", {{"dilation", i(2)}},
                    {HostTensor({1, 1, 1, 1}, {1}), HostTensor({1, 1, 1, 2}, {1, 2})}),
                {1, 0, 2});
}

TEST(OpsCpu, MaxPool1d) {
  const HostTensor x({1, 1, 5}, {1, 3, 2, 5, 4});
  expect_values(run("max_pool1d", {{"kernel_size", i(2)}}, {x}), {3, 5});
  expect_values(run("max_pool1d", {{"kernel_size", i(2)}, {"ceil_mode", true}}, {x}), {3, 5, 4});
  expect_values(
      run("max_pool1d", {{"kernel_size", i(3)}, {"stride", i(2)}, {"padding", i(1)}}, {x}),
      {3, 5, 5});
  expect_values(
      run("max_pool1d", {{"kernel_size", i(2)}, {"stride", i(1)}, {"dilation", i(2)}}, {x}),
      {2, 5, 4});
}

TEST(OpsCpu, MaxPool2dPaddingIsNotZero) {
  expect_values(run("max_pool2d", {{"kernel_size", i(2)}}, {iota({1, 1, 4, 4})}), {6, 8, 14, 16});
  // All negative: a zero-valued padding would win; PyTorch pads with -inf.
  const HostTensor x({1, 1, 2, 2}, {-1, -2, -3, -4});
  expect_values(
      run("max_pool2d", {{"kernel_size", i(2)}, {"stride", i(1)}, {"padding", i(1)}}, {x}),
      {-1, -1, -2, -1, -1, -2, -3, -3, -4});
}

TEST(OpsCpu, MaxPoolPropagatesNan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_values(run("max_pool1d", {{"kernel_size", i(2)}}, {HostTensor({1, 1, 4}, {1, nan, 5, 2})}),
                {nan, 5});
}

TEST(OpsCpu, AvgPool1d) {
  const HostTensor x({1, 1, 4}, {1, 2, 3, 4});
  expect_values(run("avg_pool1d", {{"kernel_size", i(2)}}, {x}), {1.5, 3.5});
  expect_values(run("avg_pool1d", {{"kernel_size", i(2)}, {"padding", i(1)}}, {x}), {0.5, 2.5, 2});
  expect_values(run("avg_pool1d",
                    {{"kernel_size", i(2)}, {"padding", i(1)}, {"count_include_pad", false}}, {x}),
                {1, 2.5, 4});
  // Ceil mode: the last window holds only x4 and divides by 1.
  expect_values(run("avg_pool1d", {{"kernel_size", i(2)}, {"ceil_mode", true}}, {iota({1, 1, 5})}),
                {1.5, 3.5, 5});
}

TEST(OpsCpu, AvgPoolCeilModeWithPadding) {
  // x = 1..6, kernel 3, stride 2, padding 1, ceil: windows [-1,1], [1,3], [3,5], [5,7].
  // Counting padding, the first divides by 3 and the last (clipped at 6 + 1) by 2.
  const Attrs a{{"kernel_size", i(3)}, {"stride", i(2)}, {"padding", i(1)}, {"ceil_mode", true}};
  expect_values(run("avg_pool1d", a, {iota({1, 1, 6})}), {1, 3, 5, 3});
  Attrs no_pad = a;
  no_pad["count_include_pad"] = false;
  expect_values(run("avg_pool1d", no_pad, {iota({1, 1, 6})}), {1.5, 3, 5, 6});
}

TEST(OpsCpu, AvgPool2d) {
  expect_values(run("avg_pool2d", {{"kernel_size", i(2)}}, {iota({1, 1, 4, 4})}),
                {3.5, 5.5, 11.5, 13.5});
  const HostTensor x({1, 1, 2, 2}, {1, 2, 3, 4});
  const Attrs a{{"kernel_size", i(2)}, {"stride", i(1)}, {"padding", i(1)}};
  expect_values(run("avg_pool2d", a, {x}), {0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0});
  Attrs no_pad = a;
  no_pad["count_include_pad"] = false;
  expect_values(run("avg_pool2d", no_pad, {x}), {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
}

} // namespace
} // namespace kb
