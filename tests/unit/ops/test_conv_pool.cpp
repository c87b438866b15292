// Convolution and pooling ops of every rank: shapes, PyTorch's attribute forms, float64 references
// against hand-worked values and against each other (adjoint identity, rank embeddings), costs
// and PyTorch renderings.
#include <cstdint>
#include <limits>
#include <random>

#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

Shape shape_of(const std::string& op, Attrs a, std::vector<ValueSpec> in) {
  return infer(op, std::move(a), std::move(in)).shape;
}

HostTensor random_tensor(Shape s, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  HostTensor t(std::move(s));
  for (double& v : t.data)
    v = dist(gen);
  return t;
}

double dot(const HostTensor& a, const HostTensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  double s = 0.0;
  for (std::size_t k = 0; k < a.data.size(); ++k)
    s += a.data[k] * b.data[k];
  return s;
}

// `t` with a unit dim inserted at `pos`.
HostTensor unsqueeze(HostTensor t, std::size_t pos) {
  t.shape.insert(t.shape.begin() + static_cast<std::ptrdiff_t>(pos), 1);
  return t;
}

// ----- transposed convolution -------------------------------------------------------------------

TEST(OpsConvTranspose, OneDimensionalValues) {
  const HostTensor x({1, 1, 3}, {1, 2, 3});
  const HostTensor w({1, 1, 2}, {1, 10});
  expect_values(run("conv_transpose1d", {}, {x, w}), {1, 12, 23, 30});
  expect_values(run("conv_transpose1d", {{"stride", i(2)}}, {x, w}), {1, 10, 2, 20, 3, 30});
  expect_values(run("conv_transpose1d", {{"stride", i(2)}, {"padding", i(1)}}, {x, w}),
                {10, 2, 20, 3});
  // Dilation 2: input i reaches outputs i and i + 2.
  expect_values(run("conv_transpose1d", {{"dilation", i(2)}}, {x, w}), {1, 2, 13, 20, 30});
  // output_padding appends a position only the bias reaches.
  expect_values(run("conv_transpose1d", {{"stride", i(2)}, {"output_padding", i(1)}},
                    {x, w, HostTensor({1}, {0.5})}),
                {1.5, 10.5, 2.5, 20.5, 3.5, 30.5, 0.5});
  // output_padding may reach the stride when it stays below the dilation (PyTorch's rule).
  expect_values(run("conv_transpose1d", {{"dilation", i(2)}, {"output_padding", i(1)}},
                    {HostTensor({1, 1, 2}, {1, 2}), HostTensor({1, 1, 2}, {1, 1})}),
                {1, 2, 1, 2, 0});
  // Two groups, one channel each: [Cin, Cout/groups, k] = [2, 1, 1].
  expect_values(run("conv_transpose1d", {{"groups", i(2)}},
                    {HostTensor({1, 2, 2}, {1, 2, 3, 4}), HostTensor({2, 1, 1}, {10, 100})}),
                {10, 20, 300, 400});
}

TEST(OpsConvTranspose, ThreeDimensionalValues) {
  // One input voxel scatters the kernel scaled by its value.
  const HostTensor w = iota({1, 1, 2, 1, 2});
  expect_values(run("conv_transpose3d", {}, {HostTensor({1, 1, 1, 1, 1}, {2}), w}), {2, 4, 6, 8});
  // Two voxels along depth with stride 3 along depth: disjoint copies with a zero gap.
  const HostTensor out = run("conv_transpose3d", {{"stride", ints({3, 1, 1})}},
                             {HostTensor({1, 1, 2, 1, 1}, {1, -1}), w});
  EXPECT_EQ(out.shape, (Shape{1, 1, 5, 1, 2}));
  expect_values(out, {1, 2, 3, 4, 0, 0, -1, -2, -3, -4});
}

// Transposed convolution is the adjoint of the forward one with the same weight, stride, padding,
// dilation and groups: <conv(y), x> = <y, conv_transpose(x)> when the sizes correspond.
void expect_adjoint(const std::string& fwd, const std::string& tr, Shape y_shape, Shape w_shape,
                    Attrs fwd_attrs, std::vector<int64_t> output_padding) {
  const HostTensor y = random_tensor(y_shape, 1);
  const HostTensor w = random_tensor(w_shape, 2);
  const HostTensor cy = run(fwd, fwd_attrs, {y, w});
  const HostTensor x = random_tensor(cy.shape, 3);
  Attrs tr_attrs = fwd_attrs;
  tr_attrs["output_padding"] = ints(std::move(output_padding));
  const HostTensor tx = run(tr, tr_attrs, {x, w});
  ASSERT_EQ(tx.shape, y.shape);
  EXPECT_NEAR(dot(cy, x), dot(y, tx), 1e-9 * (1 + std::abs(dot(cy, x))));
}

TEST(OpsConvTranspose, IsTheAdjointOfTheForwardConvolution) {
  // 1-D: stride 3, padding 2, dilation 2, groups 2; (11 + 4 - 5) = 10 = 3 * 3 + 1 needs output
  // padding 1 to give back 11.
  expect_adjoint("conv1d", "conv_transpose1d", {2, 4, 11}, {6, 2, 3},
                 {{"stride", i(3)}, {"padding", i(2)}, {"dilation", i(2)}, {"groups", i(2)}}, {1});
  // 2-D, asymmetric everything.
  expect_adjoint("conv2d", "conv_transpose2d", {1, 4, 9, 10}, {4, 2, 3, 2},
                 {{"stride", ints({2, 3})},
                  {"padding", ints({1, 0})},
                  {"dilation", ints({1, 2})},
                  {"groups", i(2)}},
                 {0, 1});
  // 3-D like KernelBench L1/72 (kernel 3x5x7, stride 2, padding (1, 2, 3), groups 4), small.
  expect_adjoint("conv3d", "conv_transpose3d", {1, 8, 5, 7, 9}, {8, 2, 3, 5, 7},
                 {{"stride", i(2)}, {"padding", ints({1, 2, 3})}, {"groups", i(4)}}, {0, 0, 0});
  expect_adjoint("conv3d", "conv_transpose3d", {2, 2, 6, 5, 4}, {3, 2, 2, 2, 3},
                 {{"stride", ints({2, 1, 2})}, {"dilation", ints({2, 1, 1})}}, {1, 0, 1});
}

TEST(OpsConvTranspose, HigherRankWithUnitDimsEqualsLowerRank) {
  const HostTensor x = random_tensor({2, 4, 5, 6}, 4);
  const HostTensor w = random_tensor({4, 3, 3, 2}, 5);
  const HostTensor b = random_tensor({6}, 6);
  const Attrs a2{{"stride", ints({2, 1})},
                 {"padding", ints({1, 1})},
                 {"output_padding", ints({1, 0})},
                 {"dilation", ints({1, 2})},
                 {"groups", i(2)}};
  const HostTensor want = run("conv_transpose2d", a2, {x, w, b});
  const Attrs a3{{"stride", ints({1, 2, 1})},
                 {"padding", ints({0, 1, 1})},
                 {"output_padding", ints({0, 1, 0})},
                 {"dilation", ints({1, 1, 2})},
                 {"groups", i(2)}};
  const HostTensor got = run("conv_transpose3d", a3, {unsqueeze(x, 2), unsqueeze(w, 2), b});
  EXPECT_EQ(got.shape, unsqueeze(want, 2).shape);
  expect_values(got, want.data);
  // 1-D as 2-D of height 1.
  const HostTensor x1 = random_tensor({2, 4, 7}, 7);
  const HostTensor w1 = random_tensor({4, 1, 3}, 8);
  const Attrs a1{{"stride", i(2)}, {"padding", i(1)}, {"groups", i(4)}};
  const HostTensor want1 = run("conv_transpose1d", a1, {x1, w1});
  const Attrs a12{{"stride", ints({1, 2})}, {"padding", ints({0, 1})}, {"groups", i(4)}};
  expect_values(run("conv_transpose2d", a12, {unsqueeze(x1, 2), unsqueeze(w1, 2)}), want1.data);
}

TEST(OpsConvTranspose, Shapes) {
  // KernelBench L1/72: 12x24x48, kernel 3x5x7, stride 2, padding (1, 2, 3), output_padding 1,
  // groups 4: (12 - 1) * 2 - 2 + 3 + 1 = 24, (24 - 1) * 2 - 4 + 5 + 1 = 48, 47 * 2 - 6 + 7 + 1
  // = 96.
  EXPECT_EQ(shape_of("conv_transpose3d",
                     {{"stride", ints({2, 2, 2})},
                      {"padding", ints({1, 2, 3})},
                      {"output_padding", ints({1, 1, 1})},
                      {"groups", i(4)}},
                     {spec({8, 32, 12, 24, 48}), spec({32, 8, 3, 5, 7})}),
            (Shape{8, 32, 24, 48, 96}));
  // KernelBench L1/79: length 131072, kernel 3, stride 2, padding 1, dilation 2:
  // 131071 * 2 - 2 + 5 = 262145.
  EXPECT_EQ(shape_of("conv_transpose1d", {{"stride", i(2)}, {"padding", i(1)}, {"dilation", i(2)}},
                     {spec({16, 32, 131072}), spec({32, 64, 3})}),
            (Shape{16, 64, 262145}));
  EXPECT_EQ(infer_error("conv_transpose1d", {{"stride", i(2)}, {"output_padding", i(2)}},
                        {spec({1, 4, 5}), spec({4, 3, 3})}),
            "conv_transpose1d: output_padding 2 must be smaller than stride 2 or dilation 1 "
            "(spatial dim 0)");
  EXPECT_EQ(infer_error("conv_transpose3d", {}, {spec({1, 4, 5, 5, 5}), spec({3, 3, 3, 3, 3})}),
            "conv_transpose3d: weight [3, 3, 3, 3, 3] must have 4 input channels in dim 0 (x is "
            "[1, 4, 5, 5, 5])");
  EXPECT_EQ(infer_error("conv_transpose3d", {{"padding", i(3)}},
                        {spec({1, 1, 1, 1, 1}), spec({1, 1, 3, 3, 3})}),
            "conv_transpose3d: output size -3 is too small (spatial dim 0: input 1, kernel 3, "
            "stride 1, padding 3, dilation 1)");
  EXPECT_EQ(infer_error("conv_transpose1d", {}, {spec({1, 2, 8}), spec({2, 3, 3}), spec({2})}),
            "conv_transpose1d: bias must have shape [3], got [2]");
  EXPECT_EQ(infer_error("conv_transpose3d", {}, {spec({1, 2, 8, 8}), spec({2, 3, 3, 3})}),
            "conv_transpose3d: x must have rank 5, got 4 [1, 2, 8, 8]");
  EXPECT_THAT(infer_error("conv_transpose3d", {{"stride", i(int64_t{1} << 62)}},
                          {spec({1, 1, 4, 4, 4}), spec({1, 1, 3, 3, 3})}),
              HasSubstr("integer overflow"));
}

// ----- attribute forms
// ----------------------------------------------------------------------------

TEST(OpsConvPoolAttributes, OneEntryListsActLikeInts) {
  // PyTorch expands stride=[2] (like stride=2) to every spatial dim.
  const ValueSpec x = spec({1, 2, 9, 9}), w = spec({4, 2, 3, 3});
  EXPECT_EQ(shape_of("conv2d", {{"stride", ints({2})}, {"padding", ints({1})}}, {x, w}),
            shape_of("conv2d", {{"stride", i(2)}, {"padding", i(1)}}, {x, w}));
  EXPECT_EQ(shape_of("conv_transpose3d", {{"dilation", ints({2})}},
                     {spec({1, 2, 3, 3, 3}), spec({2, 1, 2, 2, 2})}),
            (Shape{1, 1, 5, 5, 5}));
  EXPECT_EQ(shape_of("max_pool3d", {{"kernel_size", ints({2})}}, {spec({1, 1, 4, 6, 8})}),
            (Shape{1, 1, 2, 3, 4}));
  // Except adaptive pools, whose output_size PyTorch takes as an int or one entry per dim.
  EXPECT_EQ(infer_error("adaptive_avg_pool2d", {{"output_size", ints({1})}}, {spec({2, 3, 7, 7})}),
            "adaptive_avg_pool2d: attribute 'output_size' must have 2 entries, has 1");
  EXPECT_EQ(shape_of("adaptive_max_pool1d", {{"output_size", ints({3})}}, {spec({2, 3, 7})}),
            (Shape{2, 3, 3}));
  // An empty stride list is the kernel size, as F.max_pool2d(x, 2, stride=[]) is.
  EXPECT_EQ(
      shape_of("avg_pool2d", {{"kernel_size", i(2)}, {"stride", ints({})}}, {spec({1, 1, 6, 6})}),
      (Shape{1, 1, 3, 3}));
  EXPECT_EQ(infer_error("conv2d", {{"padding", ints({1, 2, 3})}},
                        {spec({1, 1, 4, 4}), spec({1, 1, 3, 3})}),
            "conv2d: attribute 'padding' must be an integer or a list of 1 or 2 integers, has 3 "
            "entries");
  EXPECT_EQ(infer_error("conv1d", {{"stride", ints({1, 1})}}, {spec({1, 1, 4}), spec({1, 1, 3})}),
            "conv1d: attribute 'stride' must be an integer or a list of 1 integer, has 2 entries");
  EXPECT_EQ(infer_error("max_pool3d", {{"kernel_size", d(2.0)}}, {spec({1, 1, 4, 4, 4})}),
            "max_pool3d: attribute 'kernel_size' must be an integer or a list of integers");
  EXPECT_EQ(infer_error("conv3d", {{"groups", ints({2})}},
                        {spec({1, 2, 4, 4, 4}), spec({2, 1, 3, 3, 3})}),
            "conv3d: attribute 'groups' must be an integer");
}

TEST(OpsConvPoolAttributes, KernelBenchForms) {
  // L1/80: conv2d kernel 5x9, padding (2, 4), dilation (2, 3): 512 + 4 - 9 + 1 = 508,
  // 512 + 8 - 25 + 1 = 496.
  EXPECT_EQ(shape_of("conv2d", {{"padding", ints({2, 4})}, {"dilation", ints({2, 3})}},
                     {spec({8, 32, 512, 512}), spec({64, 32, 5, 9})}),
            (Shape{8, 64, 508, 496}));
  // L1/85: depthwise with per-dim stride, padding and dilation.
  EXPECT_EQ(shape_of("conv2d",
                     {{"stride", ints({1, 1})},
                      {"padding", ints({0, 0})},
                      {"dilation", ints({1, 1})},
                      {"groups", i(32)}},
                     {spec({32, 32, 128, 256}), spec({32, 1, 3, 7})}),
            (Shape{32, 32, 126, 250}));
  // L3/18 SqueezeNet: max_pool2d k3 s2 ceil_mode on 111: ceil(108 / 2) + 1 = 55.
  EXPECT_EQ(shape_of("max_pool2d", {{"kernel_size", i(3)}, {"stride", i(2)}, {"ceil_mode", true}},
                     {spec({1, 96, 111, 111})}),
            (Shape{1, 96, 55, 55}));
  // L1/43: max_pool3d k3 s2 p1 dilation 3 on 128: (128 + 2 - 7) / 2 + 1 = 62.
  EXPECT_EQ(
      shape_of("max_pool3d",
               {{"kernel_size", i(3)}, {"stride", i(2)}, {"padding", i(1)}, {"dilation", i(3)}},
               {spec({16, 32, 128, 128, 128})}),
      (Shape{16, 32, 62, 62, 62}));
  // L1/46: avg_pool3d k3 s2 p1: (128 + 2 - 3) / 2 + 1 = 64, (256 - 1) / 2 + 1 = 128.
  EXPECT_EQ(shape_of("avg_pool3d", {{"kernel_size", i(3)}, {"stride", i(2)}, {"padding", i(1)}},
                     {spec({16, 32, 128, 128, 256})}),
            (Shape{16, 32, 64, 64, 128}));
  // L1/41: max_pool1d k8 s1 p4 dilation 3: 65536 + 8 - 22 + 1 = 65523.
  EXPECT_EQ(
      shape_of("max_pool1d",
               {{"kernel_size", i(8)}, {"stride", i(1)}, {"padding", i(4)}, {"dilation", i(3)}},
               {spec({64, 192, 65536})}),
      (Shape{64, 192, 65523}));
}

// ----- 3-D pooling
// ----------------------------------------------------------------------------------

TEST(OpsPool3d, MaxValues) {
  const HostTensor x = iota({1, 1, 3, 3, 3});
  // Each 2x2x2 window's maximum is its far corner, value 9 (d + 1) + 3 (h + 1) + (w + 1) + 1.
  expect_values(run("max_pool3d", {{"kernel_size", i(2)}, {"stride", i(1)}}, {x}),
                {14, 15, 17, 18, 23, 24, 26, 27});
  // Dilation 2: one window over the eight corners.
  expect_values(run("max_pool3d", {{"kernel_size", i(2)}, {"dilation", i(2)}}, {x}), {27});
  // Padding reads as -inf, never as 0: all-negative input.
  HostTensor neg = iota({1, 1, 2, 2, 2});
  for (double& v : neg.data)
    v = -v;
  const HostTensor padded =
      run("max_pool3d", {{"kernel_size", i(2)}, {"stride", i(2)}, {"padding", i(1)}}, {neg});
  EXPECT_EQ(padded.shape, (Shape{1, 1, 2, 2, 2}));
  expect_values(padded, {-1, -2, -3, -4, -5, -6, -7, -8});
  // Ceil mode keeps a last window that starts inside the input: ceil((3 - 2) / 2) + 1 = 2.
  const HostTensor ceil = run("max_pool3d", {{"kernel_size", i(2)}, {"ceil_mode", true}}, {x});
  EXPECT_EQ(ceil.shape, (Shape{1, 1, 2, 2, 2}));
  expect_values(ceil, {14, 15, 17, 18, 23, 24, 26, 27});
  // NaN wins, as in PyTorch.
  HostTensor with_nan = iota({1, 1, 2, 2, 2});
  with_nan.data[5] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(run("max_pool3d", {{"kernel_size", i(2)}}, {with_nan}).data[0]));
}

TEST(OpsPool3d, AvgValues) {
  expect_values(run("avg_pool3d", {{"kernel_size", i(2)}}, {iota({1, 1, 2, 2, 2})}), {4.5});
  // Padding 1, stride 2: every window holds one input corner and seven padding cells.
  const Attrs pad{{"kernel_size", i(2)}, {"stride", i(2)}, {"padding", i(1)}};
  expect_values(run("avg_pool3d", pad, {iota({1, 1, 2, 2, 2})}),
                {1 / 8.0, 2 / 8.0, 3 / 8.0, 4 / 8.0, 5 / 8.0, 6 / 8.0, 7 / 8.0, 1.0});
  Attrs no_pad = pad;
  no_pad["count_include_pad"] = false;
  expect_values(run("avg_pool3d", no_pad, {iota({1, 1, 2, 2, 2})}), {1, 2, 3, 4, 5, 6, 7, 8});
  Attrs over = pad;
  over["divisor_override"] = i(2);
  expect_values(run("avg_pool3d", over, {iota({1, 1, 2, 2, 2})}), {0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4});
  // Ceil mode: the last window along W is [4, 6) clipped to the input: divisor 1 even when
  // padding counts, since it hangs past the (zero) padding.
  expect_values(run("avg_pool3d", {{"kernel_size", ints({1, 1, 2})}, {"ceil_mode", true}},
                    {iota({1, 1, 1, 1, 5})}),
                {1.5, 3.5, 5});
  // divisor_override applies to avg_pool2d as well.
  expect_values(
      run("avg_pool2d", {{"kernel_size", i(2)}, {"divisor_override", i(1)}}, {iota({1, 1, 2, 2})}),
      {10});
}

TEST(OpsPool3d, UnitDepthEqualsTwoDimensionalPool) {
  const HostTensor x = random_tensor({2, 3, 9, 11}, 9);
  for (bool is_max : {true, false}) {
    Attrs a2{{"kernel_size", ints({3, 2})},
             {"stride", ints({2, 1})},
             {"padding", ints({1, 1})},
             {"ceil_mode", true}};
    Attrs a3{{"kernel_size", ints({1, 3, 2})},
             {"stride", ints({1, 2, 1})},
             {"padding", ints({0, 1, 1})},
             {"ceil_mode", true}};
    if (is_max) {
      a2["dilation"] = ints({1, 2});
      a3["dilation"] = ints({1, 1, 2});
    } else {
      a2["count_include_pad"] = a3["count_include_pad"] = false;
    }
    const HostTensor want = run(is_max ? "max_pool2d" : "avg_pool2d", a2, {x});
    const HostTensor got = run(is_max ? "max_pool3d" : "avg_pool3d", a3, {unsqueeze(x, 2)});
    EXPECT_EQ(got.shape, unsqueeze(want, 2).shape);
    expect_values(got, want.data);
  }
}

TEST(OpsPool3d, Errors) {
  EXPECT_EQ(infer_error("avg_pool3d", {{"kernel_size", i(2)}, {"divisor_override", i(0)}},
                        {spec({1, 1, 4, 4, 4})}),
            "avg_pool3d: divisor_override must not be zero");
  EXPECT_EQ(infer_error("avg_pool1d", {{"kernel_size", i(2)}, {"divisor_override", i(2)}},
                        {spec({1, 1, 4})}),
            "avg_pool1d: unknown attribute 'divisor_override'");
  EXPECT_EQ(infer_error("avg_pool3d", {{"kernel_size", i(2)}, {"dilation", i(2)}},
                        {spec({1, 1, 4, 4, 4})}),
            "avg_pool3d: unknown attribute 'dilation'");
  EXPECT_EQ(infer_error("max_pool3d", {{"kernel_size", ints({3, 3, 1})}, {"padding", i(1)}},
                        {spec({1, 1, 4, 4, 4})}),
            "max_pool3d: padding 1 must be at most half of kernel_size 1 (spatial dim 2)");
  EXPECT_EQ(infer_error("max_pool3d", {{"kernel_size", i(2)}}, {spec({1, 1, 4, 4})}),
            "max_pool3d: x must have rank 5, got 4 [1, 1, 4, 4]");
  EXPECT_THAT(infer_error("avg_pool3d", {{"kernel_size", i(5)}}, {spec({1, 1, 8, 4, 8})}),
              HasSubstr("output size 0 is too small in spatial dim 1"));
}

// ----- adaptive pooling -------------------------------------------------------------------------

TEST(OpsAdaptivePool, WindowsArePyTorchs) {
  const HostTensor x = iota({1, 1, 5});
  // Windows [0, 2), [1, 4), [3, 5).
  expect_values(run("adaptive_avg_pool1d", {{"output_size", i(3)}}, {x}), {1.5, 3, 4.5});
  expect_values(run("adaptive_max_pool1d", {{"output_size", i(3)}}, {x}), {2, 4, 5});
  expect_values(run("adaptive_avg_pool1d", {{"output_size", i(1)}}, {x}), {3});
  // More outputs than inputs: windows [0, 1), [0, 2), [1, 2).
  expect_values(run("adaptive_avg_pool1d", {{"output_size", i(3)}}, {iota({1, 1, 2})}),
                {1, 1.5, 2});
  // An output size that divides the input is a plain pool with kernel = stride = in / out.
  const HostTensor y = random_tensor({2, 3, 6, 8}, 10);
  expect_values(run("adaptive_avg_pool2d", {{"output_size", ints({3, 2})}}, {y}),
                run("avg_pool2d", {{"kernel_size", ints({2, 4})}}, {y}).data);
  expect_values(run("adaptive_max_pool2d", {{"output_size", ints({3, 2})}}, {y}),
                run("max_pool2d", {{"kernel_size", ints({2, 4})}}, {y}).data);
  // Global pooling over 3-D.
  const HostTensor z = iota({1, 2, 2, 2, 2});
  expect_values(run("adaptive_avg_pool3d", {{"output_size", i(1)}}, {z}), {4.5, 12.5});
  expect_values(run("adaptive_max_pool3d", {{"output_size", ints({1, 1, 1})}}, {z}), {8, 16});
  // Per-dim windows in 2-D: H 3 -> 2 ([0, 2), [1, 3)), W 2 -> 1.
  expect_values(run("adaptive_avg_pool2d", {{"output_size", ints({2, 1})}}, {iota({1, 1, 3, 2})}),
                {2.5, 4.5});
  // NaN wins in adaptive max pooling too.
  HostTensor with_nan = iota({1, 1, 4});
  with_nan.data[1] = std::numeric_limits<double>::quiet_NaN();
  const HostTensor m = run("adaptive_max_pool1d", {{"output_size", i(2)}}, {with_nan});
  EXPECT_TRUE(std::isnan(m.data[0]));
  EXPECT_EQ(m.data[1], 4);
}

TEST(OpsAdaptivePool, ShapesAndErrors) {
  EXPECT_EQ(
      shape_of("adaptive_avg_pool2d", {{"output_size", ints({1, 1})}}, {spec({10, 1280, 7, 7})}),
      (Shape{10, 1280, 1, 1}));
  EXPECT_EQ(shape_of("adaptive_max_pool3d", {{"output_size", ints({2, 3, 4})}},
                     {spec({1, 2, 5, 5, 5}, DType::bf16)}),
            (Shape{1, 2, 2, 3, 4}));
  EXPECT_EQ(
      infer("adaptive_max_pool1d", {{"output_size", i(4)}}, {spec({1, 2, 5}, DType::f16)}).dtype,
      DType::f16);
  EXPECT_EQ(infer_error("adaptive_avg_pool2d", {}, {spec({1, 1, 4, 4})}),
            "adaptive_avg_pool2d: missing required attribute 'output_size'");
  EXPECT_EQ(infer_error("adaptive_avg_pool2d", {{"output_size", i(0)}}, {spec({1, 1, 4, 4})}),
            "adaptive_avg_pool2d: output_size must be >= 1, got 0");
  EXPECT_EQ(
      infer_error("adaptive_max_pool3d", {{"output_size", ints({1, 1})}}, {spec({1, 1, 4, 4, 4})}),
      "adaptive_max_pool3d: attribute 'output_size' must have 3 entries, has 2");
  EXPECT_EQ(infer_error("adaptive_avg_pool1d", {{"output_size", i(2)}}, {spec({4, 4})}),
            "adaptive_avg_pool1d: x must have rank 3, got 2 [4, 4]");
  EXPECT_THAT(infer_error("adaptive_avg_pool1d", {{"output_size", i(int64_t{1} << 40)}},
                          {spec({1, 1, int64_t{1} << 30})}),
              HasSubstr("integer overflow"));
  EXPECT_THAT(
      infer_error("adaptive_avg_pool1d", {{"output_size", i(2)}}, {spec({1, 1, 4}, DType::i64)}),
      HasSubstr("x must have a floating dtype"));
}

// ----- costs and renderings ---------------------------------------------------------------------

OpCost cost_of(const std::string& op, Attrs a, std::vector<ValueSpec> in) {
  const ValueSpec out = infer(op, a, in);
  return find_op(op)->cost(a, in, out);
}

TEST(OpsConvPoolCost, FlopsAndBytes) {
  // Transposed: 2 * in_elems * (Cout / groups) * prod(K).
  const OpCost t1 =
      cost_of("conv_transpose1d", {{"groups", i(2)}}, {spec({2, 4, 5}), spec({4, 3, 3})});
  EXPECT_DOUBLE_EQ(t1.flops, 2.0 * 40 * 3 * 3);
  EXPECT_DOUBLE_EQ(t1.bytes, 4.0 * (40 + 36 + 2 * 6 * 7));
  const OpCost t3 =
      cost_of("conv_transpose3d", {}, {spec({1, 2, 2, 2, 2}), spec({2, 3, 2, 2, 2}), spec({3})});
  EXPECT_DOUBLE_EQ(t3.flops, 2.0 * 16 * 3 * 8);
  // Pools: one operation per window element.
  EXPECT_DOUBLE_EQ(cost_of("max_pool3d", {{"kernel_size", i(2)}}, {spec({1, 1, 4, 4, 4})}).flops,
                   8.0 * 8);
  EXPECT_DOUBLE_EQ(
      cost_of("avg_pool3d", {{"kernel_size", ints({1, 2, 3})}}, {spec({1, 2, 3, 4, 6})}).flops,
      (2.0 * 3 * 2 * 2) * 6);
  // Adaptive: windows along a dim cover in + out - gcd(in, out) elements: 5 -> 3 reads 7, 4 -> 2
  // reads 4, so 2 channels read 2 * 7 * 4.
  const OpCost a = cost_of("adaptive_avg_pool2d", {{"output_size", ints({3, 2})}},
                           {spec({1, 2, 5, 4}, DType::f16)});
  EXPECT_DOUBLE_EQ(a.flops, 2.0 * 7 * 4);
  EXPECT_DOUBLE_EQ(a.bytes, 2.0 * (40 + 12));
  EXPECT_DOUBLE_EQ(cost_of("adaptive_max_pool1d", {{"output_size", i(3)}}, {spec({1, 1, 2})}).flops,
                   4.0);
}

std::string torch_of(const std::string& op, Attrs a, std::vector<std::string> names) {
  return find_op(op)->torch(a, names);
}

TEST(OpsConvPoolTorch, Renderings) {
  EXPECT_EQ(torch_of("conv_transpose1d", {{"stride", i(2)}, {"dilation", i(3)}}, {"x", "w", "b"}),
            "F.conv_transpose1d(x, w, b, stride=2, dilation=3)");
  EXPECT_EQ(torch_of("conv_transpose3d",
                     {{"stride", ints({2, 2, 2})},
                      {"padding", ints({1, 2, 3})},
                      {"output_padding", i(1)},
                      {"groups", i(4)}},
                     {"x", "w"}),
            "F.conv_transpose3d(x, w, stride=[2, 2, 2], padding=[1, 2, 3], output_padding=1, "
            "groups=4)");
  EXPECT_EQ(
      torch_of("max_pool3d", {{"kernel_size", i(3)}, {"dilation", i(3)}, {"stride", i(2)}}, {"x"}),
      "F.max_pool3d(x, kernel_size=3, stride=2, dilation=3)");
  EXPECT_EQ(
      torch_of("avg_pool3d",
               {{"kernel_size", i(2)}, {"count_include_pad", false}, {"divisor_override", i(3)}},
               {"x"}),
      "F.avg_pool3d(x, kernel_size=2, count_include_pad=False, divisor_override=3)");
  EXPECT_EQ(torch_of("adaptive_avg_pool2d", {{"output_size", ints({1, 1})}}, {"x"}),
            "F.adaptive_avg_pool2d(x, output_size=[1, 1])");
  EXPECT_EQ(torch_of("adaptive_max_pool1d", {{"output_size", i(4)}}, {"x"}),
            "F.adaptive_max_pool1d(x, output_size=4)");
}

} // namespace
} // namespace kb
