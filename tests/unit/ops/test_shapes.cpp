// Unit tests of shape inference and argument checks of every op family.
#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

Shape shape_of(const std::string& op, Attrs a, std::vector<ValueSpec> in) {
  return infer(op, std::move(a), std::move(in)).shape;
}

// ----- linear algebra -------------------------------------------------------------------------

TEST(OpsShapes, MatmulBroadcastsBatchDims) {
  EXPECT_EQ(shape_of("matmul", {}, {spec({2, 1, 4, 8}), spec({3, 8, 5})}), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(shape_of("matmul", {}, {spec({2, 1, 4, 8}), spec({8, 5})}), (Shape{2, 1, 4, 5}));
  EXPECT_EQ(shape_of("matmul", {{"transpose_a", true}, {"transpose_b", true}},
                     {spec({8, 4}), spec({5, 8})}),
            (Shape{4, 5}));
  EXPECT_EQ(infer("matmul", {}, {spec({4, 8}, DType::bf16), spec({8, 2}, DType::bf16)}).dtype,
            DType::bf16);
}

TEST(OpsShapes, MatmulErrors) {
  EXPECT_EQ(infer_error("matmul", {}, {spec({4, 8}), spec({9, 2})}),
            "matmul: inner dimensions differ: a is [4, 8], b is [9, 2]");
  EXPECT_EQ(infer_error("matmul", {{"transpose_a", true}}, {spec({4, 8}), spec({8, 2})}),
            "matmul: inner dimensions differ: a is [4, 8] (transpose_a), b is [8, 2]");
  EXPECT_THAT(infer_error("matmul", {}, {spec({2, 4, 8}), spec({3, 8, 2})}),
              HasSubstr("matmul: batch dims: shapes [2] and [3] do not broadcast"));
  EXPECT_EQ(infer_error("matmul", {}, {spec({8}), spec({8, 2})}),
            "matmul: a must have rank >= 2, got 1 [8]");
  EXPECT_EQ(infer_error("matmul", {}, {spec({4, 8}), spec({8, 2}, DType::f16)}),
            "matmul: dtypes differ: a is f32, b is f16");
  EXPECT_EQ(infer_error("matmul", {}, {spec({4, 8}, DType::i32), spec({8, 2}, DType::i32)}),
            "matmul: a must have a floating dtype (f32, f16, bf16, f64), got i32");
}

TEST(OpsShapes, LinearAndAttention) {
  EXPECT_EQ(shape_of("linear", {}, {spec({4, 5, 6}), spec({7, 6}), spec({7})}), (Shape{4, 5, 7}));
  EXPECT_THAT(infer_error("linear", {}, {spec({4, 6}), spec({7, 5})}), HasSubstr("in_features"));
  EXPECT_EQ(infer_error("linear", {}, {spec({4, 6}), spec({7, 6}), spec({6})}),
            "linear: bias must have shape [7], got [6]");
  EXPECT_EQ(shape_of("scaled_dot_product_attention", {},
                     {spec({2, 8, 10, 16}), spec({2, 8, 12, 16}), spec({2, 8, 12, 32})}),
            (Shape{2, 8, 10, 32}));
  EXPECT_THAT(infer_error("scaled_dot_product_attention", {},
                          {spec({10, 16}), spec({12, 8}), spec({12, 8})}),
              HasSubstr("embedding dims differ"));
  EXPECT_THAT(infer_error("scaled_dot_product_attention", {},
                          {spec({10, 16}), spec({12, 16}), spec({11, 8})}),
              HasSubstr("sequence lengths differ"));
}

// ----- convolutions ---------------------------------------------------------------------------

TEST(OpsShapes, ConvOutputSizes) {
  // AlexNet's first layer: (224 + 4 - 11) / 4 + 1 = 55.
  EXPECT_EQ(shape_of("conv2d", {{"stride", i(4)}, {"padding", i(2)}},
                     {spec({1, 3, 224, 224}), spec({64, 3, 11, 11}), spec({64})}),
            (Shape{1, 64, 55, 55}));
  // Dilation 2 makes a 3-tap kernel span 5; per-dim stride and padding.
  EXPECT_EQ(shape_of("conv2d",
                     {{"dilation", i(2)}, {"stride", ints({2, 1})}, {"padding", ints({1, 0})}},
                     {spec({1, 1, 10, 10}), spec({1, 1, 3, 3})}),
            (Shape{1, 1, 4, 6}));
  EXPECT_EQ(shape_of("conv1d", {{"groups", i(2)}, {"stride", i(3)}},
                     {spec({2, 4, 100}), spec({8, 2, 5})}),
            (Shape{2, 8, 32}));
  EXPECT_EQ(
      shape_of("conv3d", {{"padding", i(1)}}, {spec({1, 2, 8, 9, 10}), spec({4, 2, 3, 3, 3})}),
      (Shape{1, 4, 8, 9, 10}));
  // Depthwise: groups = Cin.
  EXPECT_EQ(shape_of("conv2d", {{"groups", i(3)}}, {spec({1, 3, 5, 5}), spec({3, 1, 3, 3})}),
            (Shape{1, 3, 3, 3}));
}

TEST(OpsShapes, ConvTransposeOutputSize) {
  // (5 - 1) * 2 - 2 * 1 + (3 - 1) + 1 + 1 = 10; Cout = 3 * groups.
  EXPECT_EQ(shape_of("conv_transpose2d",
                     {{"stride", i(2)}, {"padding", i(1)}, {"output_padding", i(1)}},
                     {spec({1, 4, 5, 5}), spec({4, 3, 3, 3})}),
            (Shape{1, 3, 10, 10}));
  EXPECT_EQ(shape_of("conv_transpose2d", {{"groups", i(2)}, {"dilation", i(2)}},
                     {spec({1, 4, 5, 6}), spec({4, 3, 3, 3}), spec({6})}),
            (Shape{1, 6, 9, 10}));
  EXPECT_EQ(infer_error("conv_transpose2d", {{"stride", i(2)}, {"output_padding", i(2)}},
                        {spec({1, 4, 5, 5}), spec({4, 3, 3, 3})}),
            "conv_transpose2d: output_padding 2 must be smaller than stride 2 or dilation 1 "
            "(spatial dim 0)");
}

TEST(OpsShapes, ConvErrors) {
  EXPECT_EQ(infer_error("conv2d", {{"groups", i(2)}}, {spec({1, 3, 8, 8}), spec({4, 1, 3, 3})}),
            "conv2d: groups=2 does not divide the 3 input channels of x [1, 3, 8, 8]");
  EXPECT_THAT(infer_error("conv2d", {{"groups", i(2)}}, {spec({1, 4, 8, 8}), spec({3, 2, 3, 3})}),
              HasSubstr("groups=2 does not divide the 3 output channels"));
  EXPECT_THAT(infer_error("conv2d", {}, {spec({1, 4, 8, 8}), spec({3, 2, 3, 3})}),
              HasSubstr("must have 4 input channels per group"));
  EXPECT_EQ(infer_error("conv2d", {{"padding", i(1)}}, {spec({1, 1, 4, 4}), spec({1, 1, 7, 3})}),
            "conv2d: kernel larger than padded input in spatial dim 0: padded input 6 (input 4 + "
            "2*1), dilated kernel 7 (kernel 7, dilation 1)");
  EXPECT_EQ(infer_error("conv2d", {}, {spec({1, 4, 8}), spec({3, 4, 3, 3})}),
            "conv2d: x must have rank 4, got 3 [1, 4, 8]");
  EXPECT_EQ(infer_error("conv2d", {{"stride", i(0)}}, {spec({1, 1, 4, 4}), spec({1, 1, 3, 3})}),
            "conv2d: stride must be >= 1, got 0");
  EXPECT_EQ(infer_error("conv2d", {{"padding", ints({1, 2, 3})}},
                        {spec({1, 1, 4, 4}), spec({1, 1, 3, 3})}),
            "conv2d: attribute 'padding' must be an integer or a list of 1 or 2 integers, has 3 "
            "entries");
  EXPECT_EQ(infer_error("conv1d", {}, {spec({1, 2, 8}), spec({3, 2, 3}), spec({2})}),
            "conv1d: bias must have shape [3], got [2]");
}

// ----- pooling --------------------------------------------------------------------------------

TEST(OpsShapes, PoolOutputSizes) {
  EXPECT_EQ(shape_of("max_pool2d", {{"kernel_size", i(2)}}, {spec({1, 3, 7, 8})}),
            (Shape{1, 3, 3, 4}));
  // floor((6 + 2 - 3) / 2) + 1 = 3; ceil mode: ceil(5 / 2) + 1 = 4.
  Attrs a{{"kernel_size", i(3)}, {"stride", i(2)}, {"padding", i(1)}};
  EXPECT_EQ(shape_of("max_pool2d", a, {spec({1, 1, 6, 6})}), (Shape{1, 1, 3, 3}));
  a["ceil_mode"] = true;
  EXPECT_EQ(shape_of("max_pool2d", a, {spec({1, 1, 6, 6})}), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(shape_of("avg_pool2d", a, {spec({1, 1, 6, 6})}), (Shape{1, 1, 4, 4}));
  // Ceil mode would add a window starting at 6 >= 5 + 1 (in the right padding): dropped.
  EXPECT_EQ(
      shape_of("max_pool1d",
               {{"kernel_size", i(3)}, {"stride", i(3)}, {"padding", i(1)}, {"ceil_mode", true}},
               {spec({1, 1, 5})}),
      (Shape{1, 1, 2}));
  // Dilation 2 spans 5 with a 3-tap kernel: 10 - 5 + 1 = 6.
  EXPECT_EQ(shape_of("max_pool1d", {{"kernel_size", i(3)}, {"stride", i(1)}, {"dilation", i(2)}},
                     {spec({2, 3, 10})}),
            (Shape{2, 3, 6}));
  EXPECT_EQ(shape_of("avg_pool1d", {{"kernel_size", i(4)}}, {spec({2, 3, 10})}), (Shape{2, 3, 2}));
  EXPECT_EQ(shape_of("avg_pool2d", {{"kernel_size", ints({2, 3})}, {"stride", ints({1, 3})}},
                     {spec({1, 1, 4, 9})}),
            (Shape{1, 1, 3, 3}));
}

TEST(OpsShapes, PoolErrors) {
  EXPECT_EQ(
      infer_error("max_pool2d", {{"kernel_size", i(3)}, {"padding", i(2)}}, {spec({1, 1, 8, 8})}),
      "max_pool2d: padding 2 must be at most half of kernel_size 3 (spatial dim 0)");
  EXPECT_THAT(infer_error("max_pool2d", {{"kernel_size", i(5)}}, {spec({1, 1, 4, 8})}),
              HasSubstr("output size 0 is too small in spatial dim 0"));
  EXPECT_EQ(infer_error("avg_pool1d", {{"kernel_size", i(0)}}, {spec({1, 1, 4})}),
            "avg_pool1d: kernel_size must be >= 1, got 0");
  EXPECT_EQ(infer_error("max_pool1d", {{"kernel_size", i(2)}}, {spec({1, 4})}),
            "max_pool1d: x must have rank 3, got 2 [1, 4]");
}

// ----- normalisation ----------------------------------------------------------------------------

TEST(OpsShapes, Norms) {
  EXPECT_EQ(shape_of("layer_norm", {{"normalized_shape", ints({4, 5})}},
                     {spec({3, 4, 5}), spec({4, 5}), spec({4, 5})}),
            (Shape{3, 4, 5}));
  EXPECT_EQ(infer_error("layer_norm", {{"normalized_shape", ints({5, 4})}}, {spec({3, 4, 5})}),
            "layer_norm: normalized_shape [5, 4] must equal the last dims of x [3, 4, 5]");
  EXPECT_EQ(infer_error("layer_norm", {{"normalized_shape", i(5)}}, {spec({3, 5}), spec({4})}),
            "layer_norm: weight must have shape [5] (normalized_shape), got [4]");
  EXPECT_EQ(shape_of("rms_norm", {{"dims", ints({1})}}, {spec({2, 8, 4})}), (Shape{2, 8, 4}));
  EXPECT_EQ(infer_error("rms_norm", {{"dims", ints({1})}}, {spec({2, 8, 4}), spec({8})}),
            "rms_norm: weight [8] does not broadcast to x [2, 8, 4]");
  EXPECT_EQ(infer_error("rms_norm", {{"dims", ints({1, -2})}}, {spec({2, 8, 4})}),
            "rms_norm: dims [1, -2] names dim 1 twice");
  EXPECT_EQ(
      shape_of("batch_norm", {}, {spec({2, 3, 4}), spec({3}), spec({3}), spec({3}), spec({3})}),
      (Shape{2, 3, 4}));
  EXPECT_THAT(infer_error("batch_norm", {}, {spec({2, 3, 4}), spec({3}), spec({4})}),
              HasSubstr("running_var must have shape [3]"));
  EXPECT_EQ(infer_error("group_norm", {{"num_groups", i(4)}}, {spec({2, 6, 4})}),
            "group_norm: num_groups=4 does not divide the 6 channels of x [2, 6, 4]");
  EXPECT_EQ(shape_of("group_norm", {{"num_groups", i(3)}}, {spec({2, 6, 4})}), (Shape{2, 6, 4}));
  EXPECT_THAT(infer_error("instance_norm", {}, {spec({2, 3, 1})}),
              HasSubstr("more than one spatial element"));
  EXPECT_EQ(infer_error("layer_norm", {{"normalized_shape", i(5)}, {"eps", d(-1.0)}}, {spec({5})}),
            "layer_norm: eps must be >= 0, got -1");
}

// ----- element-wise ---------------------------------------------------------------------------

TEST(OpsShapes, Broadcasting) {
  EXPECT_EQ(shape_of("add", {}, {spec({4, 1, 3}), spec({5, 1})}), (Shape{4, 5, 3}));
  EXPECT_EQ(shape_of("mul", {}, {spec({}), spec({2, 3})}), (Shape{2, 3}));
  EXPECT_EQ(shape_of("div", {{"scalar", d(2.0)}}, {spec({2, 3})}), (Shape{2, 3}));
  EXPECT_EQ(infer_error("add", {}, {spec({2, 3}), spec({4})}),
            "add: shapes [2, 3] and [4] do not broadcast (dim 1: 3 vs 4)");
  EXPECT_EQ(infer_error("add", {}, {spec({2}), spec({2}, DType::f16)}),
            "add: dtypes differ: a is f32, b is f16");
  EXPECT_EQ(infer_error("sub", {}, {spec({2})}),
            "sub: with one input the attribute 'scalar' is required");
  EXPECT_EQ(infer_error("sub", {{"scalar", d(1.0)}}, {spec({2}), spec({2})}),
            "sub: attribute 'scalar' is only allowed with one input, got 2");
}

TEST(OpsShapes, ActivationAttributes) {
  EXPECT_EQ(infer("gelu", {}, {spec({3}, DType::f16)}), spec({3}, DType::f16));
  EXPECT_EQ(infer_error("gelu", {{"approximate", std::string("fast")}}, {spec({3})}),
            "gelu: approximate must be 'none' or 'tanh', got 'fast'");
  EXPECT_EQ(infer_error("hardtanh", {{"min_val", d(2.0)}}, {spec({3})}),
            "hardtanh: min_val 2 must not exceed max_val 1");
  EXPECT_EQ(infer_error("clamp", {}, {spec({3})}),
            "clamp: needs attribute 'min' or 'max' (or both)");
  EXPECT_EQ(infer_error("relu", {}, {spec({3}, DType::i64)}),
            "relu: x must have a floating dtype (f32, f16, bf16, f64), got i64");
}

// ----- reductions, losses ---------------------------------------------------------------------

TEST(OpsShapes, Reductions) {
  EXPECT_EQ(shape_of("sum", {{"dim", i(1)}}, {spec({2, 3, 4})}), (Shape{2, 4}));
  EXPECT_EQ(shape_of("mean", {{"dim", ints({0, -1})}, {"keepdim", true}}, {spec({2, 3, 4})}),
            (Shape{1, 3, 1}));
  EXPECT_EQ(shape_of("max", {{"dim", ints({0, 1})}}, {spec({2, 3})}), Shape{});
  const ValueSpec am = infer("argmax", {{"dim", i(-1)}, {"keepdim", true}}, {spec({2, 3})});
  EXPECT_EQ(am, spec({2, 1}, DType::i64));
  EXPECT_EQ(shape_of("cumsum", {{"dim", i(0)}}, {spec({2, 3})}), (Shape{2, 3}));
  EXPECT_EQ(infer_error("softmax", {{"dim", i(2)}}, {spec({2, 3})}),
            "softmax: dim 2 is out of range for a tensor of rank 2 (expected -2..1)");
  EXPECT_EQ(infer_error("sum", {{"dim", ints({})}}, {spec({2, 3})}),
            "sum: dim must name at least one dim");
  EXPECT_EQ(infer_error("argmin", {{"dim", i(0)}}, {spec({0, 3})}),
            "argmin: dim 0 of x [0, 3] is empty");
}

TEST(OpsShapes, Losses) {
  EXPECT_EQ(infer("mse_loss", {}, {spec({4, 5}), spec({4, 5})}), spec({}));
  EXPECT_EQ(infer_error("mse_loss", {}, {spec({4, 5}), spec({5})}),
            "mse_loss: input [4, 5] and target [5] must have the same shape");
  EXPECT_EQ(infer("cross_entropy", {}, {spec({4, 5}, DType::bf16), spec({4}, DType::i64)}),
            spec({}, DType::bf16));
  EXPECT_EQ(infer_error("cross_entropy", {}, {spec({4, 5}), spec({4})}),
            "cross_entropy: target must have dtype i64 (class indices), got f32");
  EXPECT_EQ(infer_error("cross_entropy", {}, {spec({4, 5}), spec({3}, DType::i64)}),
            "cross_entropy: target [3] must have one class index per row of logits [4, 5]");
}

// ----- layout ---------------------------------------------------------------------------------

TEST(OpsShapes, ReshapeInfersMinusOne) {
  EXPECT_EQ(shape_of("reshape", {{"shape", ints({-1, 4})}}, {spec({2, 3, 4})}), (Shape{6, 4}));
  EXPECT_EQ(shape_of("reshape", {{"shape", ints({4, -1, 3})}}, {spec({2, 3, 4})}),
            (Shape{4, 2, 3}));
  EXPECT_EQ(shape_of("reshape", {{"shape", ints({24})}}, {spec({2, 3, 4})}), (Shape{24}));
  EXPECT_EQ(infer("reshape", {{"shape", ints({6})}}, {spec({2, 3}, DType::i64)}).dtype, DType::i64);
  EXPECT_EQ(infer_error("reshape", {{"shape", ints({5, -1})}}, {spec({2, 3, 4})}),
            "reshape: cannot reshape x [2, 3, 4] (24 elements) into [5, -1]");
  EXPECT_EQ(infer_error("reshape", {{"shape", ints({-1, -1})}}, {spec({2, 3})}),
            "reshape: shape [-1, -1] has more than one -1");
  EXPECT_EQ(infer_error("reshape", {{"shape", ints({5, 5})}}, {spec({2, 3})}),
            "reshape: cannot reshape x [2, 3] (6 elements) into [5, 5] (25 elements)");
  EXPECT_EQ(infer_error("reshape", {{"shape", ints({-2, 3})}}, {spec({2, 3})}),
            "reshape: shape [-2, 3] has a negative entry -2 (only -1 is allowed)");
}

TEST(OpsShapes, PermuteTransposeSlice) {
  EXPECT_EQ(shape_of("permute", {{"dims", ints({2, 0, -2})}}, {spec({2, 3, 4})}), (Shape{4, 2, 3}));
  EXPECT_EQ(infer_error("permute", {{"dims", ints({0, 0, 1})}}, {spec({2, 3, 4})}),
            "permute: dims [0, 0, 1] names dim 0 twice");
  EXPECT_EQ(infer_error("permute", {{"dims", ints({1, 0})}}, {spec({2, 3, 4})}),
            "permute: dims [1, 0] must list each of the 3 dims of x [2, 3, 4] once");
  EXPECT_EQ(shape_of("transpose", {{"dim0", i(0)}, {"dim1", i(-1)}}, {spec({2, 3, 4})}),
            (Shape{4, 3, 2}));
  EXPECT_EQ(infer_error("transpose", {{"dim0", i(0)}, {"dim1", i(-4)}}, {spec({2, 3, 4})}),
            "transpose: dim1 -4 is out of range for a tensor of rank 3 (expected -3..2)");
  EXPECT_EQ(shape_of("slice", {{"dim", i(1)}, {"start", i(1)}, {"end", i(-1)}}, {spec({2, 5})}),
            (Shape{2, 3}));
  EXPECT_EQ(infer_error("slice", {{"dim", i(1)}, {"start", i(3)}, {"end", i(2)}}, {spec({2, 5})}),
            "slice: end 2 must lie after start 3 and within dim 1 of size 5");
  EXPECT_EQ(infer_error("slice", {{"dim", i(0)}, {"start", i(-3)}, {"end", i(1)}}, {spec({2, 5})}),
            "slice: start -3 is outside dim 0 of size 2");
  EXPECT_EQ(shape_of("masked_fill_causal", {}, {spec({2, 4, 4})}), (Shape{2, 4, 4}));
  EXPECT_EQ(infer_error("masked_fill_causal", {}, {spec({4})}),
            "masked_fill_causal: x must have rank >= 2, got 1 [4]");
}

} // namespace
} // namespace kb
