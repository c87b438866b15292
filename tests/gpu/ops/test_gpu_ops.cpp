// GPU op library: every op's GPU reference (f32, f16, bf16 and f64) against the float64 CPU
// reference on small shapes, and GraphRunner against run_graph_cpu.
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "gpu_ops.hpp"
#include "gpu_test.hpp"
#include "op.hpp"

namespace kb::gpu {
namespace {

using test::GpuTest;

struct Case {
  std::string op;
  Attrs attrs;
  std::vector<Shape> shapes;
  std::vector<Distribution> dists; // per input; default U[-1, 1)
  std::vector<int> index_inputs;   // inputs holding i64 class indices
  std::vector<DType> dtypes = {DType::f64, DType::f32, DType::f16, DType::bf16};
  std::string label;
};

Distribution uni(double a, double b) {
  return {DistKind::uniform, a, b};
}

std::vector<Case> cases() {
  std::vector<Case> c;
  auto add = [&](std::string op, Attrs at, std::vector<Shape> shapes,
                 std::vector<Distribution> dists = {}, std::string label = "") {
    Case k;
    k.op = std::move(op);
    k.attrs = std::move(at);
    k.shapes = std::move(shapes);
    k.dists = std::move(dists);
    k.label = std::move(label);
    c.push_back(std::move(k));
    return &c.back();
  };
  using V = std::vector<int64_t>;
  // Linear algebra.
  add("matmul", {}, {{3, 17, 33}, {3, 33, 9}}, {}, "batched");
  add("matmul", {}, {{4, 5}, {5, 7}}, {}, "2d");
  add("matmul", {{"transpose_a", true}}, {{2, 33, 17}, {2, 33, 9}}, {}, "ta");
  add("matmul", {{"transpose_b", true}}, {{2, 17, 33}, {2, 9, 33}}, {}, "tb");
  add("matmul", {{"transpose_a", true}, {"transpose_b", true}}, {{33, 17}, {9, 33}}, {}, "ta_tb");
  add("matmul", {}, {{2, 3, 8, 16}, {16, 4}}, {}, "shared_b");
  add("matmul", {}, {{2, 1, 8, 16}, {1, 3, 16, 4}}, {}, "partial_broadcast");
  add("matmul", {}, {{1, 8, 16}, {3, 16, 4}}, {}, "broadcast_a");
  add("linear", {}, {{4, 6, 32}, {24, 32}, {24}}, {}, "bias");
  add("linear", {}, {{5, 31}, {7, 31}}, {}, "no_bias");
  add("scaled_dot_product_attention", {}, {{2, 3, 8, 16}, {2, 3, 10, 16}, {2, 3, 10, 12}}, {},
      "plain");
  add("scaled_dot_product_attention", {{"causal", true}, {"scale", 0.3}},
      {{2, 9, 16}, {2, 9, 16}, {2, 9, 8}}, {}, "causal");
  add("scaled_dot_product_attention", {{"causal", true}}, {{2, 6, 8}, {2, 11, 8}, {2, 11, 8}}, {},
      "causal_rect");
  // Shapes for the fused f16/bf16 kernel (head dim 64 or 128): partial query and key tiles,
  // causal diagonal tiles next to unmasked ones, L != S both ways, and k/v without batch dims.
  add("scaled_dot_product_attention", {}, {{2, 3, 70, 64}, {2, 3, 130, 64}, {2, 3, 130, 64}}, {},
      "fused_partial_tiles");
  add("scaled_dot_product_attention", {{"causal", true}},
      {{2, 2, 100, 64}, {2, 2, 100, 64}, {2, 2, 100, 64}}, {}, "fused_causal");
  add("scaled_dot_product_attention", {{"causal", true}},
      {{1, 2, 40, 128}, {1, 2, 90, 128}, {1, 2, 90, 128}}, {}, "fused_causal_short_q_d128");
  add("scaled_dot_product_attention", {{"causal", true}, {"scale", 0.2}},
      {{1, 2, 150, 64}, {1, 2, 70, 64}, {1, 2, 70, 64}}, {}, "fused_causal_long_q");
  add("scaled_dot_product_attention", {}, {{1, 2, 130, 128}, {1, 2, 130, 128}, {1, 2, 130, 128}},
      {}, "fused_d128");
  add("scaled_dot_product_attention", {}, {{2, 3, 50, 64}, {50, 64}, {50, 64}}, {},
      "fused_broadcast_kv");
  // Convolution and pooling.
  add("conv1d", {{"stride", int64_t{2}}, {"padding", int64_t{1}}, {"dilation", int64_t{2}}},
      {{2, 4, 20}, {6, 4, 3}, {6}});
  add("conv2d", {{"stride", V{2, 1}}, {"padding", V{1, 2}}, {"groups", int64_t{2}}},
      {{2, 4, 9, 11}, {8, 2, 3, 3}, {8}}, {}, "groups");
  add("conv2d", {{"padding", int64_t{1}}, {"groups", int64_t{6}}}, {{1, 6, 8, 8}, {6, 1, 3, 3}}, {},
      "depthwise");
  add("conv2d", {{"stride", int64_t{4}}, {"padding", int64_t{2}}},
      {{2, 3, 23, 23}, {5, 3, 11, 11}, {5}}, {}, "alexnet_like");
  add("conv3d", {{"padding", int64_t{1}}, {"dilation", V{1, 2, 1}}},
      {{1, 3, 5, 6, 7}, {4, 3, 2, 3, 2}, {4}});
  add("conv_transpose2d",
      {{"stride", int64_t{2}}, {"padding", int64_t{1}}, {"output_padding", int64_t{1}}},
      {{2, 4, 5, 6}, {4, 3, 3, 3}, {3}}, {}, "stride");
  add("conv_transpose2d", {{"groups", int64_t{2}}, {"dilation", int64_t{2}}},
      {{1, 4, 5, 5}, {4, 3, 3, 3}}, {}, "groups");
  add("conv_transpose2d", {{"padding", V{1, 1}}}, {{2, 3, 6, 7}, {3, 4, 3, 2}, {4}}, {},
      "stride1_padded");
  add("max_pool2d", {{"kernel_size", int64_t{4}}, {"stride", int64_t{1}}, {"padding", int64_t{1}}},
      {{2, 3, 41, 150}}, {}, "tiles");
  add("avg_pool2d", {{"kernel_size", int64_t{3}}, {"stride", int64_t{2}}, {"padding", int64_t{1}}},
      {{2, 2, 75, 140}}, {}, "tiles");
  add("max_pool2d", {{"kernel_size", int64_t{2}}, {"stride", int64_t{2}}}, {{1, 2, 20, 90}}, {},
      "narrow_tiles");
  add("max_pool2d",
      {{"kernel_size", int64_t{3}},
       {"stride", int64_t{2}},
       {"padding", int64_t{1}},
       {"dilation", int64_t{2}},
       {"ceil_mode", true}},
      {{2, 3, 9, 10}});
  add("max_pool1d", {{"kernel_size", int64_t{4}}, {"stride", int64_t{3}}, {"ceil_mode", true}},
      {{2, 3, 17}});
  add("avg_pool2d",
      {{"kernel_size", int64_t{3}},
       {"stride", int64_t{2}},
       {"padding", int64_t{1}},
       {"ceil_mode", true},
       {"count_include_pad", false}},
      {{2, 3, 9, 10}}, {}, "exclude_pad");
  add("avg_pool2d", {{"kernel_size", V{2, 3}}, {"padding", V{1, 1}}}, {{1, 2, 7, 8}}, {},
      "include_pad");
  add("avg_pool1d", {{"kernel_size", int64_t{3}}, {"stride", int64_t{1}}, {"padding", int64_t{1}}},
      {{2, 3, 11}});
  // Transposed convolutions of every rank: cuDNN backward-data (strided), the stride-1 forward
  // equivalent, and the direct kernel where output_padding reaches the stride (below the dilation),
  // which cuDNN's backward-data sizes cannot express.
  add("conv_transpose1d",
      {{"stride", int64_t{2}},
       {"padding", int64_t{1}},
       {"output_padding", int64_t{1}},
       {"dilation", int64_t{2}},
       {"groups", int64_t{2}}},
      {{2, 4, 20}, {4, 3, 3}, {6}}, {}, "strided_groups");
  add("conv_transpose1d", {{"padding", int64_t{2}}}, {{2, 3, 17}, {3, 5, 4}, {5}}, {},
      "stride1_padded");
  add("conv_transpose1d", {{"dilation", int64_t{3}}, {"output_padding", int64_t{2}}},
      {{1, 2, 9}, {2, 3, 3}}, {}, "output_padding_past_stride");
  add("conv_transpose3d",
      {{"stride", int64_t{2}},
       {"padding", V{1, 2, 3}},
       {"output_padding", int64_t{1}},
       {"groups", int64_t{4}}},
      {{1, 8, 3, 4, 5}, {8, 2, 3, 5, 7}, {8}}, {}, "asymmetric_grouped");
  add("conv_transpose3d", {{"padding", int64_t{1}}}, {{2, 4, 5, 6, 7}, {4, 3, 3, 3, 3}, {3}}, {},
      "stride1_padded");
  add("conv_transpose3d",
      {{"stride", int64_t{2}}, {"padding", int64_t{1}}, {"dilation", int64_t{2}}},
      {{1, 3, 4, 4, 4}, {3, 2, 3, 3, 3}}, {}, "dilated");
  add("conv_transpose2d", {{"stride", V{2}}, {"dilation", V{1, 2}}, {"output_padding", V{1, 0}}},
      {{1, 2, 5, 6}, {2, 3, 2, 3}}, {}, "one_entry_list");
  // 3-D pools: per-output kernels (dilation, ceil mode, padding), cuDNN for non-overlapping
  // windows (with prefer_cudnn), a depth-trivial window run as tiled 2-D pools, and divisors.
  add("max_pool3d",
      {{"kernel_size", int64_t{3}},
       {"stride", int64_t{2}},
       {"padding", int64_t{1}},
       {"dilation", int64_t{3}}},
      {{2, 3, 9, 10, 11}}, {}, "dilated");
  add("max_pool3d", {{"kernel_size", int64_t{2}}}, {{2, 3, 8, 6, 10}}, {}, "non_overlapping");
  add("max_pool3d", {{"kernel_size", int64_t{3}}, {"stride", int64_t{2}}, {"ceil_mode", true}},
      {{1, 2, 7, 8, 9}}, {}, "ceil");
  add("max_pool3d", {{"kernel_size", V{1, 3, 3}}, {"stride", V{1, 2, 2}}, {"padding", V{0, 1, 1}}},
      {{1, 2, 3, 20, 70}}, {}, "flat_tiles");
  add("avg_pool3d", {{"kernel_size", int64_t{3}}, {"stride", int64_t{2}}, {"padding", int64_t{1}}},
      {{2, 3, 9, 10, 11}}, {}, "include_pad");
  add("avg_pool3d",
      {{"kernel_size", V{2, 3, 3}},
       {"stride", int64_t{2}},
       {"padding", int64_t{1}},
       {"ceil_mode", true},
       {"count_include_pad", false}},
      {{1, 2, 7, 8, 9}}, {}, "exclude_pad_ceil");
  add("avg_pool3d", {{"kernel_size", int64_t{2}}, {"divisor_override", int64_t{5}}},
      {{2, 2, 6, 6, 8}}, {}, "divisor_override");
  add("avg_pool3d", {{"kernel_size", V{1, 3, 3}}, {"stride", V{1, 1, 1}}, {"padding", V{0, 1, 1}}},
      {{1, 2, 2, 20, 40}}, {}, "flat_tiles");
  add("avg_pool2d",
      {{"kernel_size", int64_t{3}},
       {"stride", int64_t{1}},
       {"padding", int64_t{1}},
       {"divisor_override", int64_t{4}}},
      {{1, 2, 40, 80}}, {}, "divisor_override_tiles");
  // Adaptive pools with one thread (small windows), one warp and one block per output.
  add("adaptive_avg_pool1d", {{"output_size", int64_t{8}}}, {{2, 3, 5}}, {}, "upsampling");
  add("adaptive_avg_pool2d", {{"output_size", V{4, 3}}}, {{2, 3, 9, 10}}, {}, "thread");
  add("adaptive_avg_pool2d", {{"output_size", V{2, 2}}}, {{2, 3, 20, 21}}, {}, "warp");
  add("adaptive_avg_pool3d", {{"output_size", int64_t{1}}}, {{2, 3, 16, 16, 20}}, {}, "block");
  add("adaptive_max_pool1d", {{"output_size", int64_t{7}}}, {{2, 3, 1000}}, {}, "warp");
  add("adaptive_max_pool2d", {{"output_size", V{1, 1}}}, {{2, 5, 70, 70}}, {}, "block");
  add("adaptive_max_pool3d", {{"output_size", V{2, 3, 4}}}, {{1, 2, 5, 6, 7}}, {}, "thread");
  // Normalisation.
  add("layer_norm", {{"normalized_shape", V{5, 16}}}, {{4, 5, 16}, {5, 16}, {5, 16}}, {}, "affine");
  add("layer_norm", {{"normalized_shape", V{300}}, {"eps", 1e-3}}, {{3, 300}}, {}, "plain");
  add("rms_norm", {{"dims", V{1}}}, {{2, 8, 4, 5}}, {}, "middle_dim");
  add("rms_norm", {{"dims", V{-1}}}, {{3, 7, 32}, {32}}, {}, "last_dim_weight");
  add("batch_norm", {}, {{2, 5, 4, 4}, {5}, {5}, {5}, {5}},
      {uni(-1, 1), uni(-0.5, 0.5), uni(0.5, 2), uni(-1, 1), uni(-1, 1)});
  add("group_norm", {{"num_groups", int64_t{3}}}, {{2, 6, 4, 5}, {6}, {6}});
  add("instance_norm", {}, {{2, 3, 6, 7}, {3}, {3}}, {}, "affine");
  add("instance_norm", {}, {{2, 3, 40}}, {}, "plain");
  // Shapes that steer the norm kernels onto each of their paths: rows split over several blocks
  // (partials merged per row), rows not a multiple of the 16-byte pack (packs straddling rows and
  // channels), a single spatial element per channel, more than 65535 rows, packed per-column and
  // per-channel affine, rms over a middle dim with a weight.
  add("layer_norm", {{"normalized_shape", V{37}}}, {{5, 37}, {37}, {37}}, {}, "odd_cols");
  add("layer_norm", {{"normalized_shape", V{3, 4099}}}, {{2, 3, 4099}, {3, 4099}, {3, 4099}}, {},
      "split_rows");
  add("layer_norm", {{"normalized_shape", V{5}}}, {{2, 33000, 5}, {5}, {5}}, {}, "many_rows");
  add("layer_norm", {{"normalized_shape", V{8, 64}}}, {{3, 8, 64}, {8, 64}}, {}, "weight_only");
  add("rms_norm", {{"dims", V{1}}}, {{2, 6, 8, 8}, {6, 1, 1}}, {}, "middle_dim_weight");
  add("rms_norm", {{"dims", V{1}}}, {{3, 5, 7}}, {}, "middle_dim_odd");
  add("rms_norm", {{"dims", V{-1}}}, {{2, 20001}, {20001}}, {}, "split_rows");
  add("batch_norm", {}, {{2, 3, 5, 7}, {3}, {3}}, {uni(-1, 1), uni(-0.5, 0.5), uni(0.5, 2)},
      "odd_spatial_no_affine");
  add("batch_norm", {}, {{2, 4, 8, 8}, {4}, {4}, {4}, {4}},
      {uni(-1, 1), uni(-0.5, 0.5), uni(0.5, 2), uni(-1, 1), uni(-1, 1)}, "packed");
  add("group_norm", {{"num_groups", int64_t{2}}}, {{2, 4, 95, 97}, {4}, {4}}, {},
      "split_rows_odd_spatial");
  add("group_norm", {{"num_groups", int64_t{2}}}, {{2, 4, 64, 64}, {4}, {4}}, {},
      "split_rows_packed");
  add("group_norm", {{"num_groups", int64_t{3}}}, {{4, 12}, {12}, {12}}, {}, "no_spatial");
  add("group_norm", {{"num_groups", int64_t{4}}}, {{3, 8, 16, 16}}, {}, "no_affine");
  add("instance_norm", {}, {{2, 3, 8, 8}, {3}, {3}}, {}, "packed_affine");
  // Over 4M elements, so that each apply block visits several tiles (grid-stride) in every dtype,
  // and rows split into more than 32 partials.
  add("group_norm", {{"num_groups", int64_t{3}}}, {{2, 6, 700, 701}, {6}, {6}}, {}, "grid_stride");
  add("layer_norm", {{"normalized_shape", V{1200, 1250}}},
      {{4, 1200, 1250}, {1200, 1250}, {1200, 1250}}, {}, "grid_stride");
  add("rms_norm", {{"dims", V{1}}}, {{3, 8, 320, 800}, {8, 1, 1}}, {}, "middle_dim_grid_stride");
  // batch_norm_train on both statistics paths: a thread per column (few spatial elements, one
  // chunk or several chunks of rows) and a block per (n, c) row (one or several splits per row).
  add("batch_norm_train", {}, {{2, 5, 4, 4}, {5}, {5}}, {}, "columns_affine");
  add("batch_norm_train", {{"eps", 1e-3}}, {{7, 6}}, {}, "no_spatial");
  add("batch_norm_train", {}, {{200, 12}, {12}}, {}, "column_chunks_weight_only");
  add("batch_norm_train", {}, {{3, 4, 5, 7, 3}}, {}, "columns_3d_no_affine");
  add("batch_norm_train", {}, {{2, 3, 40, 41}, {3}, {3}}, {}, "rows");
  add("batch_norm_train", {}, {{2, 3, 100, 100}, {3}, {3}}, {}, "row_splits");
  // Activations.
  for (const char* a : {"relu", "gelu", "sigmoid", "tanh", "swish", "selu", "hardsigmoid",
                        "hardswish", "mish", "softsign", "abs", "exp"})
    add(a, {}, {{3, 257}}, {uni(-3, 3)});
  add("gelu", {{"approximate", std::string("tanh")}}, {{3, 257}}, {uni(-3, 3)}, "tanh");
  add("leaky_relu", {{"negative_slope", 0.2}}, {{3, 257}}, {uni(-3, 3)});
  add("elu", {{"alpha", 0.5}}, {{3, 257}}, {uni(-3, 3)});
  add("hardtanh", {{"min_val", -0.5}, {"max_val", 0.7}}, {{3, 257}}, {uni(-3, 3)});
  add("softplus", {{"beta", 2.0}, {"threshold", 3.0}}, {{3, 257}}, {uni(-3, 3)});
  add("log", {}, {{3, 257}}, {uni(0.1, 3)});
  add("sqrt", {}, {{3, 257}}, {uni(0.1, 3)});
  for (const char* a : {"sign", "neg", "square"})
    add(a, {}, {{3, 257}}, {uni(-3, 3)});
  // Away from 0, where 1/x would leave f16's range.
  add("reciprocal", {}, {{3, 257}}, {uni(0.2, 3)});
  add("reciprocal", {}, {{3, 257}}, {uni(-3, -0.2)}, "negative");
  add("relu6", {}, {{3, 257}}, {uni(-8, 8)});
  add("log2", {}, {{3, 257}}, {uni(0.1, 3)});
  add("rsqrt", {}, {{3, 257}}, {uni(0.1, 3)});
  // Arithmetic.
  for (const char* a : {"add", "sub", "mul"}) {
    add(a, {}, {{4, 1, 6}, {3, 1}}, {}, "broadcast");
    add(a, {}, {{5, 7}, {5, 7}}, {}, "same");
    add(a, {{"scalar", 0.75}}, {{5, 7}}, {}, "scalar");
    add(a, {}, {{2, 3, 16}, {3, 1}}, {}, "broadcast_packed_channel");
    add(a, {}, {{2, 3, 16}, {16}}, {}, "broadcast_packed_row");
    add(a, {}, {{3, 1}, {2, 3, 16}}, {}, "broadcast_packed_first");
  }
  add("div", {}, {{2, 3, 4, 5}, {3, 1, 5}}, {uni(-1, 1), uni(0.5, 2)}, "broadcast");
  add("div", {{"scalar", 3.0}}, {{5, 7}}, {}, "scalar");
  add("pow", {}, {{4, 1, 6}, {3, 1}}, {uni(0.1, 3), uni(-2, 2)}, "broadcast");
  add("pow", {{"scalar", 3.0}}, {{5, 7}}, {uni(-2, 2)}, "scalar_cube");
  add("pow", {{"scalar", 0.5}}, {{5, 7}}, {uni(0, 4)}, "scalar_sqrt");
  for (const char* a : {"minimum", "maximum"}) {
    add(a, {}, {{4, 1, 6}, {3, 1}}, {}, "broadcast");
    add(a, {}, {{5, 7}, {5, 7}}, {}, "same");
    add(a, {}, {{2, 3, 16}, {16}}, {}, "broadcast_packed_row");
  }
  add("clamp", {{"min", -0.3}, {"max", 0.4}}, {{4, 50}}, {}, "both");
  add("clamp", {{"min", 0.1}}, {{4, 50}}, {}, "min");
  // Reductions and scans.
  add("sum", {{"dim", V{1}}, {"keepdim", true}}, {{4, 7, 9}}, {}, "middle");
  add("sum", {{"dim", V{-1}}}, {{3, 1000}}, {}, "last");
  add("mean", {{"dim", V{0, 2}}}, {{4, 7, 9}}, {}, "non_adjacent");
  add("mean", {{"dim", V{1, 2}}}, {{3, 4, 5, 6}}, {}, "adjacent");
  add("max", {{"dim", int64_t{-1}}}, {{4, 7, 9}});
  add("min", {{"dim", int64_t{1}}, {"keepdim", true}}, {{4, 7, 9}});
  add("argmax", {{"dim", int64_t{1}}}, {{4, 70, 3}}, {}, "middle");
  add("argmax", {{"dim", int64_t{1}}}, {{3, 45, 37}}, {}, "middle_wide");
  add("sum", {{"dim", V{1}}}, {{3, 45, 37}}, {}, "middle_wide");
  add("argmax", {{"dim", int64_t{-1}}}, {{5, 300}}, {}, "last");
  add("argmin", {{"dim", int64_t{-1}}, {"keepdim", true}}, {{5, 33}});
  add("softmax", {{"dim", int64_t{-1}}}, {{5, 37}}, {uni(-5, 5)}, "last");
  add("softmax", {{"dim", int64_t{1}}}, {{3, 6, 7}}, {uni(-5, 5)}, "middle");
  add("log_softmax", {{"dim", int64_t{-1}}}, {{4, 1500}}, {uni(-5, 5)}, "last");
  add("softmax", {{"dim", int64_t{-1}}}, {{70, 700}}, {uni(-5, 5)}, "warp_rows_32");
  add("log_softmax", {{"dim", int64_t{-1}}}, {{9, 200}}, {uni(-5, 5)}, "warp_rows_8");
  add("log_softmax", {{"dim", int64_t{0}}}, {{6, 5}}, {uni(-5, 5)}, "first");
  // Float rows of whole 16-byte packs (f32 takes the packed long-row kernel): more rows than
  // the grid has blocks, and a long row in log form.
  add("softmax", {{"dim", int64_t{-1}}}, {{300, 2048}}, {uni(-8, 8)}, "packed_rows");
  add("log_softmax", {{"dim", int64_t{-1}}}, {{3, 16384}}, {uni(-8, 8)}, "packed_long_rows");
  add("cumsum", {{"dim", int64_t{-1}}}, {{3, 2500}}, {}, "last");
  add("cumsum", {{"dim", int64_t{1}}}, {{3, 5, 7}}, {}, "middle");
  add("prod", {{"dim", int64_t{1}}}, {{4, 7, 9}}, {uni(0.5, 1.5)}, "middle");
  add("prod", {{"dim", int64_t{-1}}, {"keepdim", true}}, {{3, 300}}, {uni(0.9, 1.1)}, "last");
  add("logsumexp", {{"dim", V{-1}}}, {{5, 300}}, {uni(-5, 5)}, "last");
  add("logsumexp", {{"dim", V{1}}, {"keepdim", true}}, {{3, 45, 37}}, {uni(-5, 5)}, "middle");
  add("logsumexp", {{"dim", V{0, 2}}}, {{4, 7, 9}}, {uni(-5, 5)}, "non_adjacent");
  add("logsumexp", {{"dim", V{1, 2}}}, {{3, 4, 5, 6}}, {uni(50, 80)}, "large_values");
  // Over one scan tile (1024), so the running prefix carries the product between tiles.
  add("cumprod", {{"dim", int64_t{-1}}}, {{3, 1500}}, {uni(0.9995, 1.0005)}, "last");
  add("cumprod", {{"dim", int64_t{1}}}, {{3, 5, 7}}, {uni(-1.5, 1.5)}, "middle");
  // Losses.
  add("mse_loss", {}, {{4, 33}, {4, 33}});
  Case* ce = add("cross_entropy", {}, {{8, 10}, {8}}, {uni(-3, 3), {DistKind::randint, 0, 10}});
  ce->index_inputs = {1};
  add("smooth_l1_loss", {}, {{4, 33}, {4, 33}}, {uni(-2, 2), uni(-2, 2)});
  add("smooth_l1_loss", {{"beta", 0.5}}, {{5, 70}, {5, 70}}, {uni(-2, 2), uni(-2, 2)}, "beta");
  add("smooth_l1_loss", {{"beta", 0.0}}, {{300}, {300}}, {}, "l1");
  add("huber_loss", {}, {{4, 33}, {4, 33}}, {uni(-2, 2), uni(-2, 2)});
  add("huber_loss", {{"delta", 0.5}}, {{3, 7, 11}, {3, 7, 11}}, {uni(-2, 2), uni(-2, 2)}, "delta");
  add("kl_div", {}, {{6, 40}, {6, 40}}, {uni(-4, 0), uni(0, 1)}, "mean");
  add("kl_div", {{"reduction", std::string("batchmean")}}, {{6, 40}, {6, 40}},
      {uni(-4, 0), uni(0, 1)}, "batchmean");
  add("kl_div", {{"reduction", std::string("sum")}, {"log_target", true}}, {{3, 5, 8}, {3, 5, 8}},
      {uni(-4, 0), uni(-4, 0)}, "sum_log_target");
  add("triplet_margin_loss", {}, {{8, 300}, {8, 300}, {8, 300}});
  add("triplet_margin_loss", {{"margin", 2.0}, {"swap", true}, {"p", 1.0}},
      {{5, 37}, {5, 37}, {5, 37}}, {}, "swap_p1");
  add("triplet_margin_loss", {{"p", 3.0}, {"eps", 0.0}}, {{3000}, {3000}, {3000}}, {}, "p3_1d");
  add("cosine_similarity", {}, {{4, 8, 3}, {4, 8, 3}}, {}, "middle");
  add("cosine_similarity", {{"dim", int64_t{-1}}}, {{5, 300}, {5, 300}}, {}, "rows");
  add("cosine_similarity", {{"dim", int64_t{-1}}, {"eps", 1e-3}}, {{6, 20}, {6, 20}}, {},
      "short_rows");
  add("cosine_similarity", {{"dim", int64_t{0}}}, {{7}, {7}}, {}, "vector");
  // Layout.
  add("reshape", {{"shape", V{3, -1}}}, {{4, 6}});
  add("permute", {{"dims", V{0, 2, 3, 1}}}, {{2, 3, 4, 5}});
  add("transpose", {{"dim0", int64_t{1}}, {"dim1", int64_t{-1}}}, {{2, 3, 4, 5}});
  add("slice", {{"dim", int64_t{1}}, {"start", int64_t{2}}, {"end", int64_t{-1}}}, {{3, 7, 4}});
  add("masked_fill_causal", {}, {{2, 5, 7}});
  add("masked_fill_causal", {{"value", -3.0}}, {{4, 6}}, {}, "value");
  add("masked_fill_causal", {}, {{2, 3, 9, 300}}, {}, "long_rows");
  add("slice",
      {{"dim", int64_t{1}}, {"start", int64_t{1}}, {"end", int64_t{7}}, {"step", int64_t{2}}},
      {{3, 8, 4}}, {}, "step");
  add("slice",
      {{"dim", int64_t{-1}}, {"start", int64_t{0}}, {"end", int64_t{-1}}, {"step", int64_t{3}}},
      {{2, 3, 50}}, {}, "step_last");
  add("concat", {{"dim", int64_t{1}}}, {{2, 3, 5}, {2, 1, 5}, {2, 4, 5}}, {}, "middle");
  add("concat", {{"dim", int64_t{-1}}}, {{3, 4}, {3, 8}}, {}, "last_packed");
  add("concat", {{"dim", int64_t{0}}}, {{2, 3}, {1, 3}, {2, 3}, {1, 3}, {3, 3}}, {}, "first");
  {
    std::vector<Shape> many;
    for (int j = 0; j < 40; ++j) // more than one launch's batch of inputs
      many.push_back({2, 1 + j % 3, 8});
    add("concat", {{"dim", int64_t{1}}}, many, {}, "forty_inputs");
  }
  add("stack", {{"dim", int64_t{0}}}, {{3, 4}, {3, 4}, {3, 4}}, {}, "first");
  add("stack", {{"dim", int64_t{-1}}}, {{2, 5}, {2, 5}}, {}, "last");
  add("pad", {{"pad", V{1, 2, 0, 1}}}, {{2, 3, 4}}, {}, "zeros");
  add("pad", {{"pad", V{-1, 2, 3, 0}}, {"value", -0.5}}, {{2, 3, 40}}, {}, "value_crop");
  add("tril", {}, {{2, 4, 5}}, {}, "plain");
  add("tril", {{"diagonal", int64_t{-1}}}, {{5, 300}}, {}, "long_rows");
  add("triu", {{"diagonal", int64_t{2}}}, {{2, 3, 6}}, {}, "offset");
  add("flip", {{"dims", V{1}}}, {{2, 5, 3}}, {}, "middle");
  add("flip", {{"dims", V{0, -1}}}, {{2, 5, 3}}, {}, "two");
  add("roll", {{"shifts", V{2, -1}}, {"dims", V{1, 2}}}, {{2, 5, 4}}, {}, "two");
  add("roll", {{"shifts", int64_t{3}}}, {{3, 4}}, {}, "flat");
  Case* ga = add("gather", {{"dim", int64_t{1}}}, {{3, 5}, {3, 4}},
                 {uni(-1, 1), {DistKind::randint, 0, 5}});
  ga->index_inputs = {1};
  Case* gb = add("gather", {{"dim", int64_t{0}}}, {{4, 3, 2}, {2, 3, 1}},
                 {uni(-1, 1), {DistKind::randint, 0, 4}}, "dim0");
  gb->index_inputs = {1};
  add("diag", {}, {{5}}, {}, "build");
  add("diag", {{"diagonal", int64_t{2}}}, {{3}}, {}, "build_offset");
  add("diag", {{"diagonal", int64_t{-1}}}, {{4, 3}}, {}, "take");
  // Recurrent: inputs x, states, then per layer and direction w_ih, w_hh[, b_ih, b_hh]; weights
  // U(-1/sqrt(H), 1/sqrt(H)) as nn.LSTM initialises them, so that f16/bf16 rounding of the hidden
  // state is damped from step to step as in real use.
  auto rnn = [&](bool lstm, int64_t T, int64_t B, int64_t I, int64_t H, int64_t layers, bool bidir,
                 bool batch_first, bool bias, std::string output, std::string label) {
    const int64_t G = (lstm ? 4 : 3) * H, dirs = bidir ? 2 : 1;
    const double k = 1.0 / std::sqrt(static_cast<double>(H));
    std::vector<Shape> shapes = {batch_first ? Shape{B, T, I} : Shape{T, B, I}};
    for (int s = 0; s < (lstm ? 2 : 1); ++s)
      shapes.push_back({layers * dirs, B, H});
    std::vector<Distribution> dists(shapes.size(), uni(-1, 1));
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t d = 0; d < dirs; ++d) {
        shapes.push_back({G, l == 0 ? I : dirs * H});
        shapes.push_back({G, H});
        if (bias) {
          shapes.push_back({G});
          shapes.push_back({G});
        }
      }
    dists.resize(shapes.size(), uni(-k, k));
    add(lstm ? "lstm" : "gru",
        {{"hidden_size", H},
         {"num_layers", layers},
         {"bidirectional", bidir},
         {"batch_first", batch_first},
         {"bias", bias},
         {"output", std::move(output)}},
        std::move(shapes), std::move(dists), std::move(label));
  };
  for (bool lstm : {true, false}) {
    rnn(lstm, 5, 3, 4, 8, 1, false, false, true, "out", "one_layer");
    rnn(lstm, 6, 3, 5, 7, 2, true, true, true, "out", "bidirectional_2_layers_batch_first");
    rnn(lstm, 6, 2, 5, 7, 2, true, false, true, "h_n", "bidirectional_h_n");
    rnn(lstm, 4, 5, 3, 6, 3, false, true, false, "h_n", "3_layers_no_bias_h_n");
    rnn(lstm, 40, 10, 16, 32, 2, false, false, true, "out", "long_sequence");
  }
  rnn(true, 6, 2, 5, 7, 2, true, true, true, "c_n", "bidirectional_c_n");
  return c;
}

struct Tol {
  double atol, rtol;
};

Tol tolerance_for(DType t) {
  switch (t) {
  case DType::f64:
    return {1e-10, 1e-9};
  case DType::f32:
    return {1e-4, 1e-4};
  case DType::f16:
    return {1e-2, 1e-2};
  default:
    return {2e-2, 2e-2};
  }
}

std::vector<double> download_f64(const DeviceTensor& t, cudaStream_t s) {
  DeviceBuffer buf(std::max<std::size_t>(8, numel(t.shape) * sizeof(double)));
  DeviceTensor d{buf.get(), DType::f64, t.shape};
  convert(t, d, s);
  std::vector<double> h(numel(t.shape));
  KB_CUDA_CHECK(cudaStreamSynchronize(s));
  KB_CUDA_CHECK(cudaMemcpy(h.data(), buf.get(), h.size() * sizeof(double), cudaMemcpyDeviceToHost));
  return h;
}

class Stream {
public:
  Stream() { KB_CUDA_CHECK(cudaStreamCreate(&m_s)); }
  ~Stream() { cudaStreamDestroy(m_s); }
  cudaStream_t get() const { return m_s; }

private:
  cudaStream_t m_s = nullptr;
};

class GpuOpsTest : public GpuTest {};

// Runs one case in one dtype; returns a description of the first mismatch, or "".
std::string run_case(Context& ctx, const Case& k, DType dt) {
  cudaStream_t s = ctx.stream();
  OpNode node{k.op, {}, "out", k.attrs, 0};
  std::vector<DeviceBuffer> bufs;
  std::vector<DeviceTensor> ins;
  std::vector<ValueSpec> specs;
  std::vector<HostTensor> host;
  for (std::size_t i = 0; i < k.shapes.size(); ++i) {
    const bool index = std::find(k.index_inputs.begin(), k.index_inputs.end(),
                                 static_cast<int>(i)) != k.index_inputs.end();
    const DType t = index ? DType::i64 : dt;
    node.inputs.push_back(fmt::format("in{}", i));
    bufs.emplace_back(std::max<std::size_t>(8, numel(k.shapes[i]) * dtype_size(t)));
    DeviceTensor d{bufs.back().get(), t, k.shapes[i]};
    const Distribution dist = i < k.dists.size() ? k.dists[i] : uni(-1, 1);
    fill(d, dist, 20240601, i, s);
    ins.push_back(d);
    specs.push_back({k.shapes[i], t});
    host.emplace_back(k.shapes[i], download_f64(d, s));
  }
  const ValueSpec out_spec = check_node(node, specs);
  DeviceBuffer out_buf(
      std::max<std::size_t>(8, numel(out_spec.shape) * dtype_size(out_spec.dtype)));
  DeviceTensor out{out_buf.get(), out_spec.dtype, out_spec.shape};
  poison(out, s);
  run_op(ctx, node, ins, out);
  const std::vector<double> got = download_f64(out, s);
  HostTensor want(out_spec.shape);
  find_op(k.op)->cpu(k.attrs, host, want);
  const Tol tol = out_spec.dtype == DType::i64 ? Tol{0, 0} : tolerance_for(dt);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double w = want.data[i], g = got[i];
    const bool both_nan = std::isnan(w) && std::isnan(g);
    const bool same_inf = std::isinf(w) && g == w;
    if (both_nan || same_inf)
      continue;
    if (!(std::abs(g - w) <= tol.atol + tol.rtol * std::abs(w)))
      return fmt::format("element {} of {}: got {}, want {} (atol {}, rtol {})", i,
                         shape_str(out_spec.shape), g, w, tol.atol, tol.rtol);
  }
  return "";
}

TEST_F(GpuOpsTest, EveryOpMatchesCpuReferenceInEveryDtype) {
  Stream stream;
  Context ctx(stream.get());
  int checked = 0;
  for (const Case& k : cases()) {
    for (DType dt : k.dtypes) {
      SCOPED_TRACE(fmt::format("{} {} {}", k.op, k.label, dtype_name(dt)));
      std::string err;
      try {
        err = run_case(ctx, k, dt);
      } catch (const Error& e) {
        err = std::string("threw: ") + e.what();
      }
      EXPECT_EQ(err, "");
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

// The cuDNN alternatives for pooling, softmax and layer/RMS norm against the same float64 CPU
// references (cases cuDNN does not support, such as dilation, ceil_mode sizes or norms without
// weights, fall back to the own kernels).
TEST_F(GpuOpsTest, CudnnAlternativesMatchCpuReference) {
  Stream stream;
  Context ctx(stream.get());
  ctx.set_prefer_cudnn(true);
  int checked = 0;
  for (const Case& k : cases()) {
    if (!k.op.ends_with("pool1d") && !k.op.ends_with("pool2d") && !k.op.ends_with("pool3d") &&
        !k.op.ends_with("softmax") && k.op != "layer_norm" && k.op != "rms_norm")
      continue;
    for (DType dt : k.dtypes) {
      SCOPED_TRACE(fmt::format("cudnn {} {} {}", k.op, k.label, dtype_name(dt)));
      std::string err;
      try {
        err = run_case(ctx, k, dt);
      } catch (const Error& e) {
        err = std::string("threw: ") + e.what();
      }
      EXPECT_EQ(err, "");
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(GpuOpsCoverage, EveryOpHasAGpuReferenceAndATestCase) {
  std::set<std::string> tested;
  for (const Case& k : cases())
    tested.insert(k.op);
  for (const OpDef& op : all_ops()) {
    EXPECT_TRUE(has_gpu_op(op.name)) << op.name;
    EXPECT_TRUE(tested.contains(op.name)) << op.name << " has no GPU test case";
  }
}

TEST_F(GpuOpsTest, Fp32GemmIsStrictUnlessTf32IsAllowed) {
  // Values with low mantissa bits set: TF32 (10-bit mantissa) would lose them.
  Stream stream;
  cudaStream_t s = stream.get();
  const int64_t n = 64;
  std::vector<float> a(n * n, 0.0f), b(n * n, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    a[i * n + i] = 1.0f + std::ldexp(1.0f, -20);
    b[i * n + i] = 1.0f + std::ldexp(1.0f, -21);
  }
  DeviceBuffer da(a.size() * 4), db(b.size() * 4), dc(a.size() * 4);
  KB_CUDA_CHECK(cudaMemcpy(da.get(), a.data(), a.size() * 4, cudaMemcpyHostToDevice));
  KB_CUDA_CHECK(cudaMemcpy(db.get(), b.data(), b.size() * 4, cudaMemcpyHostToDevice));
  OpNode node{"matmul", {"a", "b"}, "c", {}, 0};
  std::vector<DeviceTensor> in = {{da.get(), DType::f32, {n, n}}, {db.get(), DType::f32, {n, n}}};
  DeviceTensor out{dc.get(), DType::f32, {n, n}};
  Context strict(s, false);
  run_op(strict, node, in, out);
  std::vector<float> c(n * n);
  KB_CUDA_CHECK(cudaStreamSynchronize(s));
  KB_CUDA_CHECK(cudaMemcpy(c.data(), dc.get(), c.size() * 4, cudaMemcpyDeviceToHost));
  const float want = (1.0f + std::ldexp(1.0f, -20)) * (1.0f + std::ldexp(1.0f, -21));
  EXPECT_EQ(c[0], want);
  EXPECT_EQ(c[n + 1], want);
}

TEST_F(GpuOpsTest, LayerNormIsStableOnIllConditionedInputsInF64AndF32) {
  Stream stream;
  Context ctx(stream.get());
  Case k;
  k.op = "layer_norm";
  k.attrs = {{"normalized_shape", std::vector<int64_t>{4096}}};
  k.shapes = {{4, 4096}};
  k.dists = {{DistKind::ill_conditioned, 1000.0, 0.1}};
  EXPECT_EQ(run_case(ctx, k, DType::f64), "");
  // fp32: a stable kernel stays within a few 1e-2 of the exact answer for these rows (an
  // unstable one-pass variance is off by orders of magnitude).
  OpNode node{"layer_norm", {"x"}, "y", k.attrs, 0};
  DeviceBuffer xb(4 * 4096 * 4), yb(4 * 4096 * 4);
  DeviceTensor x{xb.get(), DType::f32, {4, 4096}}, y{yb.get(), DType::f32, {4, 4096}};
  fill(x, k.dists[0], 7, 0, ctx.stream());
  run_op(ctx, node, std::vector<DeviceTensor>{x}, y);
  HostTensor hx({4, 4096}, download_f64(x, ctx.stream()));
  HostTensor want({4, 4096});
  find_op("layer_norm")->cpu(k.attrs, std::vector<HostTensor>{hx}, want);
  const auto got = download_f64(y, ctx.stream());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want.data[i]));
  EXPECT_LT(worst, 0.05);
}

// run_case for norm ops on views: input i starts in_offsets[i] elements and the output
// out_offset elements past a 256-byte aligned allocation.
std::string run_norm_case_at(Context& ctx, const Case& k, DType dt,
                             const std::vector<int64_t>& in_offsets, int64_t out_offset) {
  cudaStream_t s = ctx.stream();
  OpNode node{k.op, {}, "out", k.attrs, 0};
  const std::size_t es = dtype_size(dt);
  std::vector<DeviceBuffer> bufs;
  std::vector<DeviceTensor> ins;
  std::vector<ValueSpec> specs;
  std::vector<HostTensor> host;
  for (std::size_t i = 0; i < k.shapes.size(); ++i) {
    const int64_t off = i < in_offsets.size() ? in_offsets[i] : 0;
    node.inputs.push_back(fmt::format("in{}", i));
    bufs.emplace_back((numel(k.shapes[i]) + off + 1) * es);
    DeviceTensor d{static_cast<char*>(bufs.back().get()) + off * es, dt, k.shapes[i]};
    fill(d, i < k.dists.size() ? k.dists[i] : uni(-1, 1), 20240602, i, s);
    ins.push_back(d);
    specs.push_back({k.shapes[i], dt});
    host.emplace_back(k.shapes[i], download_f64(d, s));
  }
  const ValueSpec out_spec = check_node(node, specs);
  DeviceBuffer out_buf((numel(out_spec.shape) + out_offset + 1) * es);
  DeviceTensor out{static_cast<char*>(out_buf.get()) + out_offset * es, dt, out_spec.shape};
  poison(out, s);
  run_op(ctx, node, ins, out);
  const std::vector<double> got = download_f64(out, s);
  HostTensor want(out_spec.shape);
  find_op(k.op)->cpu(k.attrs, host, want);
  const Tol tol = tolerance_for(dt);
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want.data[i]) <= tol.atol + tol.rtol * std::abs(want.data[i])))
      return fmt::format("element {} of {}: got {}, want {}", i, shape_str(out_spec.shape), got[i],
                         want.data[i]);
  return "";
}

TEST_F(GpuOpsTest, NormsMatchCpuReferenceOnUnalignedViews) {
  Stream stream;
  Context ctx(stream.get());
  using V = std::vector<int64_t>;
  auto make = [](std::string op, Attrs at, std::vector<Shape> shapes,
                 std::vector<Distribution> dists = {}) {
    Case k;
    k.op = std::move(op);
    k.attrs = std::move(at);
    k.shapes = std::move(shapes);
    k.dists = std::move(dists);
    return k;
  };
  const std::vector<Case> norms = {
      make("layer_norm", {{"normalized_shape", V{64}}}, {{5, 64}, {64}, {64}}),
      make("layer_norm", {{"normalized_shape", V{3, 4099}}}, {{2, 3, 4099}, {3, 4099}, {3, 4099}}),
      make("group_norm", {{"num_groups", int64_t{2}}}, {{2, 4, 32, 32}, {4}, {4}}),
      make("group_norm", {{"num_groups", int64_t{2}}}, {{2, 4, 64, 65}, {4}, {4}}),
      make("instance_norm", {}, {{2, 3, 8, 8}, {3}, {3}}),
      make("batch_norm", {}, {{2, 3, 8, 8}, {3}, {3}, {3}, {3}},
           {uni(-1, 1), uni(-0.5, 0.5), uni(0.5, 2), uni(-1, 1), uni(-1, 1)}),
      make("rms_norm", {{"dims", V{1}}}, {{2, 6, 8, 8}, {6, 1, 1}}),
      make("rms_norm", {{"dims", V{-1}}}, {{3, 64}, {64}}),
      make("batch_norm_train", {}, {{4, 3, 5, 5}, {3}, {3}}),
      make("batch_norm_train", {}, {{2, 3, 40, 40}, {3}, {3}}),
      // Large enough for several tiles per block on the element-by-element path.
      make("instance_norm", {}, {{2, 4, 300, 301}, {4}, {4}}),
  };
  // (input offsets, output offset): x and y equally misaligned (packed with a scalar head), x and
  // y misaligned differently (element by element), aligned x with misaligned weight and bias.
  const std::vector<std::pair<V, int64_t>> views = {
      {{1}, 1}, {{3, 1, 2, 1, 1}, 3}, {{1}, 0}, {{2}, 5}, {{0, 1, 3, 1, 2}, 0}};
  for (const Case& k : norms)
    for (const auto& [in_off, out_off] : views)
      for (DType dt : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
        SCOPED_TRACE(fmt::format("{} {} x+{} y+{} {}", k.op, shape_str(k.shapes[0]), in_off[0],
                                 out_off, dtype_name(dt)));
        std::string err;
        try {
          err = run_norm_case_at(ctx, k, dt, in_off, out_off);
        } catch (const Error& e) {
          err = std::string("threw: ") + e.what();
        }
        EXPECT_EQ(err, "");
      }
}

// Group and instance norm rows long enough to be split over several blocks, and batch_norm_train
// channels merged from several rows or column chunks: the merged statistics stay exact in f64 and
// stable in f32 for a large common offset.
TEST_F(GpuOpsTest, SplitRowNormsAreStableOnIllConditionedInputs) {
  Stream stream;
  Context ctx(stream.get());
  const Distribution ill{DistKind::ill_conditioned, 1000.0, 0.1};
  Case gn;
  gn.op = "group_norm";
  gn.attrs = {{"num_groups", int64_t{2}}};
  gn.shapes = {{2, 4, 96, 97}};
  gn.dists = {ill};
  Case in;
  in.op = "instance_norm";
  in.shapes = {{2, 2, 128, 130}};
  in.dists = {ill};
  // batch_norm_train merges partials of several rows (row path) or column chunks per channel.
  Case bn_rows;
  bn_rows.op = "batch_norm_train";
  bn_rows.shapes = {{3, 2, 100, 100}};
  bn_rows.dists = {ill};
  Case bn_cols;
  bn_cols.op = "batch_norm_train";
  bn_cols.shapes = {{300, 4, 3}};
  bn_cols.dists = {ill};
  for (const Case& k : {gn, in, bn_rows, bn_cols}) {
    SCOPED_TRACE(k.op);
    EXPECT_EQ(run_case(ctx, k, DType::f64), "");
    OpNode node{k.op, {"x"}, "y", k.attrs, 0};
    const int64_t n = numel(k.shapes[0]);
    DeviceBuffer xb(n * 4), yb(n * 4);
    DeviceTensor x{xb.get(), DType::f32, k.shapes[0]}, y{yb.get(), DType::f32, k.shapes[0]};
    fill(x, ill, 11, 0, ctx.stream());
    run_op(ctx, node, std::vector<DeviceTensor>{x}, y);
    HostTensor hx(k.shapes[0], download_f64(x, ctx.stream()));
    HostTensor want(k.shapes[0]);
    find_op(k.op)->cpu(k.attrs, std::vector<HostTensor>{hx}, want);
    const auto got = download_f64(y, ctx.stream());
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::abs(got[i] - want.data[i]));
    EXPECT_LT(worst, 0.05);
  }
}

TEST_F(GpuOpsTest, GraphRunnerMatchesCpuGraphInF32AndF64) {
  Problem p;
  p.id = "test/graph";
  p.inputs = {{"x", {6, 32}, DType::f32, {DistKind::uniform, -1, 1}, {}}};
  p.params = {{"w", {16, 32}, DType::f32, {DistKind::normal, 0, 0.2}, {}},
              {"b", {16}, DType::f32, {DistKind::uniform, -0.1, 0.1}, {}}};
  p.graph = {{"linear", {"x", "w", "b"}, "h", {}, 1},
             {"relu", {"h"}, "r", {}, 2},
             {"reshape", {"r"}, "r2", {{"shape", std::vector<int64_t>{6, 4, 4}}}, 3},
             {"sum", {"r2"}, "s", {{"dim", std::vector<int64_t>{2}}}, 4},
             {"softmax", {"s"}, "y", {{"dim", int64_t{-1}}}, 5}};
  p.outputs = {"y", "h"};
  Stream stream;
  cudaStream_t s = stream.get();
  Context ctx(s);
  std::vector<DeviceBuffer> bufs;
  std::vector<DeviceTensor> ins;
  std::map<std::string, HostTensor, std::less<>> feeds;
  uint64_t sid = 0;
  for (const auto* list : {&p.inputs, &p.params})
    for (const TensorSpec& t : *list) {
      bufs.emplace_back(numel(t.shape) * 4);
      DeviceTensor d{bufs.back().get(), t.dtype, t.shape};
      fill(d, t.dist, 99, sid++, s);
      ins.push_back(d);
      feeds[t.name] = HostTensor(t.shape, download_f64(d, s));
    }
  const auto want = run_graph_cpu(p.graph, feeds, p.outputs);
  for (bool as_f64 : {false, true}) {
    SCOPED_TRACE(as_f64 ? "f64" : "f32");
    const DType dt = as_f64 ? DType::f64 : DType::f32;
    DeviceBuffer y(6 * 4 * dtype_size(dt)), h(6 * 16 * dtype_size(dt));
    std::vector<DeviceTensor> outs = {{y.get(), dt, {6, 4}}, {h.get(), dt, {6, 16}}};
    GraphRunner runner(ctx, p, as_f64);
    for (int rep = 0; rep < 2; ++rep) {
      poison(outs[0], s);
      poison(outs[1], s);
      runner.run(ins, outs);
      for (std::size_t o = 0; o < outs.size(); ++o) {
        const auto got = download_f64(outs[o], s);
        ASSERT_EQ(got.size(), want[o].data.size());
        for (std::size_t i = 0; i < got.size(); ++i)
          EXPECT_NEAR(got[i], want[o].data[i], as_f64 ? 1e-12 : 1e-5)
              << "output " << o << " @" << i;
      }
    }
    // Per-step timing: one entry per op that runs (the reshape aliases), results unchanged.
    EXPECT_TRUE(runner.step_times().empty());
    runner.set_step_timing(true);
    for (int rep = 0; rep < 3; ++rep)
      runner.run(ins, outs);
    const auto steps = runner.step_times();
    ASSERT_EQ(steps.size(), 4u);
    const char* ops[] = {"linear", "relu", "sum", "softmax"};
    for (std::size_t i = 0; i < steps.size(); ++i) {
      EXPECT_EQ(steps[i].op, ops[i]);
      EXPECT_GT(steps[i].mean_ms, 0.0) << steps[i].output;
    }
    const auto got = download_f64(outs[0], s);
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[0].data[i], as_f64 ? 1e-12 : 1e-5) << "timed run @" << i;
    runner.set_step_timing(false);
  }
}

TEST_F(GpuOpsTest, GraphRunnerRejectsWrongShapes) {
  Problem p;
  p.id = "test/shapes";
  p.inputs = {{"x", {4, 8}, DType::f32, {}, {}}};
  p.graph = {{"relu", {"x"}, "y", {}, 1}};
  p.outputs = {"y"};
  Stream stream;
  Context ctx(stream.get());
  GraphRunner runner(ctx, p);
  DeviceBuffer x(4 * 8 * 4), y(4 * 8 * 4);
  std::vector<DeviceTensor> ins = {{x.get(), DType::f32, {8, 4}}};
  std::vector<DeviceTensor> outs = {{y.get(), DType::f32, {4, 8}}};
  EXPECT_THROW(runner.run(ins, outs), Error);
}

} // namespace
} // namespace kb::gpu
