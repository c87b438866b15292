// Unit tests of the op registry: contents, node checks, error messages, costs, PyTorch rendering
// and float64 graph evaluation.
#include <algorithm>
#include <set>

#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

// Every op of docs/ops.md, in the document's order.
const std::vector<std::string> k_doc_ops = {"matmul",
                                            "linear",
                                            "scaled_dot_product_attention",
                                            "conv1d",
                                            "conv2d",
                                            "conv3d",
                                            "conv_transpose1d",
                                            "conv_transpose2d",
                                            "conv_transpose3d",
                                            "max_pool1d",
                                            "max_pool2d",
                                            "max_pool3d",
                                            "avg_pool1d",
                                            "avg_pool2d",
                                            "avg_pool3d",
                                            "adaptive_avg_pool1d",
                                            "adaptive_avg_pool2d",
                                            "adaptive_avg_pool3d",
                                            "adaptive_max_pool1d",
                                            "adaptive_max_pool2d",
                                            "adaptive_max_pool3d",
                                            "layer_norm",
                                            "rms_norm",
                                            "batch_norm",
                                            "batch_norm_train",
                                            "group_norm",
                                            "instance_norm",
                                            "relu",
                                            "leaky_relu",
                                            "gelu",
                                            "sigmoid",
                                            "tanh",
                                            "swish",
                                            "elu",
                                            "selu",
                                            "hardtanh",
                                            "hardsigmoid",
                                            "hardswish",
                                            "mish",
                                            "softplus",
                                            "softsign",
                                            "abs",
                                            "exp",
                                            "log",
                                            "sqrt",
                                            "relu6",
                                            "sign",
                                            "log2",
                                            "neg",
                                            "reciprocal",
                                            "square",
                                            "rsqrt",
                                            "add",
                                            "sub",
                                            "mul",
                                            "div",
                                            "pow",
                                            "minimum",
                                            "maximum",
                                            "clamp",
                                            "sum",
                                            "mean",
                                            "max",
                                            "min",
                                            "prod",
                                            "logsumexp",
                                            "argmax",
                                            "argmin",
                                            "softmax",
                                            "log_softmax",
                                            "cumsum",
                                            "cumprod",
                                            "mse_loss",
                                            "cross_entropy",
                                            "smooth_l1_loss",
                                            "huber_loss",
                                            "kl_div",
                                            "triplet_margin_loss",
                                            "cosine_similarity",
                                            "reshape",
                                            "permute",
                                            "transpose",
                                            "slice",
                                            "masked_fill_causal",
                                            "concat",
                                            "stack",
                                            "pad",
                                            "tril",
                                            "triu",
                                            "flip",
                                            "roll",
                                            "gather",
                                            "diag",
                                            "lstm",
                                            "gru"};

TEST(OpsRegistry, HoldsEveryDocumentedOpInOrder) {
  std::vector<std::string> names;
  for (const auto& op : all_ops())
    names.push_back(op.name);
  EXPECT_EQ(names, k_doc_ops);
  for (const auto& op : all_ops()) {
    EXPECT_TRUE(op.infer && op.cost && op.cpu && op.torch) << op.name;
    EXPECT_LE(op.min_inputs, op.max_inputs) << op.name;
    for (const auto& r : op.required_attrs)
      EXPECT_NE(std::find(op.attrs.begin(), op.attrs.end(), r), op.attrs.end()) << op.name;
  }
}

TEST(OpsRegistry, FindOp) {
  ASSERT_NE(find_op("conv2d"), nullptr);
  EXPECT_EQ(find_op("conv2d")->name, "conv2d");
  EXPECT_EQ(find_op("conv2d")->min_inputs, 2);
  EXPECT_EQ(find_op("conv2d")->max_inputs, 3);
  EXPECT_EQ(find_op("batch_norm")->min_inputs, 3);
  EXPECT_EQ(find_op("batch_norm")->max_inputs, 5);
  EXPECT_EQ(find_op("conv4d"), nullptr);
  EXPECT_EQ(find_op(""), nullptr);
}

TEST(OpsRegistry, AttributeNamesAndRequired) {
  EXPECT_EQ(find_op("max_pool2d")->required_attrs, std::vector<std::string>{"kernel_size"});
  EXPECT_EQ(find_op("layer_norm")->required_attrs, std::vector<std::string>{"normalized_shape"});
  EXPECT_EQ(find_op("group_norm")->required_attrs, std::vector<std::string>{"num_groups"});
  EXPECT_EQ(find_op("transpose")->required_attrs, (std::vector<std::string>{"dim0", "dim1"}));
  EXPECT_TRUE(find_op("relu")->attrs.empty());
  EXPECT_EQ(
      find_op("conv_transpose2d")->attrs,
      (std::vector<std::string>{"stride", "padding", "output_padding", "dilation", "groups"}));
  EXPECT_EQ(find_op("cross_entropy")->index_inputs, std::vector<int>{1});
}

TEST(OpsRegistry, CancellationSensitiveSet) {
  const std::set<std::string> want = {"layer_norm",
                                      "rms_norm",
                                      "group_norm",
                                      "instance_norm",
                                      "batch_norm",
                                      "batch_norm_train",
                                      "softmax",
                                      "log_softmax",
                                      "cross_entropy",
                                      "mse_loss",
                                      "smooth_l1_loss",
                                      "huber_loss",
                                      "triplet_margin_loss",
                                      "sum",
                                      "mean",
                                      "cumsum",
                                      "scaled_dot_product_attention"};
  std::set<std::string> got;
  for (const auto& op : all_ops())
    if (op.cancellation_sensitive)
      got.insert(op.name);
  EXPECT_EQ(got, want);
}

// ----- check_node errors: one test per class --------------------------------------------------

TEST(OpsCheckNode, UnknownOpSuggestsClosest) {
  EXPECT_EQ(infer_error("conv2", {}, {spec({1})}), "unknown op 'conv2' (did you mean 'conv2d'?)");
  EXPECT_EQ(infer_error("frobnicate", {}, {spec({1})}), "unknown op 'frobnicate'");
}

TEST(OpsCheckNode, WrongArity) {
  const auto x = spec({1, 1, 4, 4});
  EXPECT_EQ(infer_error("conv2d", {}, {x, x, x, x}), "conv2d: expected 2 or 3 inputs, got 4");
  EXPECT_EQ(infer_error("relu", {}, {x, x}), "relu: expected 1 input, got 2");
  EXPECT_EQ(infer_error("batch_norm", {}, {x, x}), "batch_norm: expected 3 to 5 inputs, got 2");
  EXPECT_EQ(infer_error("matmul", {}, {x}), "matmul: expected 2 inputs, got 1");
}

TEST(OpsCheckNode, UnknownAttribute) {
  EXPECT_EQ(infer_error("conv2d", {{"strid", i(2)}}, {spec({1, 1, 4, 4}), spec({1, 1, 3, 3})}),
            "conv2d: unknown attribute 'strid'");
  // avg pools have no dilation in PyTorch.
  EXPECT_EQ(
      infer_error("avg_pool2d", {{"kernel_size", i(2)}, {"dilation", i(2)}}, {spec({1, 1, 4, 4})}),
      "avg_pool2d: unknown attribute 'dilation'");
}

TEST(OpsCheckNode, MissingRequiredAttribute) {
  EXPECT_EQ(infer_error("max_pool2d", {}, {spec({1, 1, 4, 4})}),
            "max_pool2d: missing required attribute 'kernel_size'");
  EXPECT_EQ(infer_error("slice", {{"dim", i(0)}, {"start", i(0)}}, {spec({4})}),
            "slice: missing required attribute 'end'");
}

TEST(OpsCheckNode, WrongAttributeTypeNamesOpAndAttribute) {
  EXPECT_EQ(infer_error("conv2d", {{"stride", std::string("two")}},
                        {spec({1, 1, 4, 4}), spec({1, 1, 3, 3})}),
            "conv2d: attribute 'stride' must be an integer or a list of integers");
  EXPECT_EQ(infer_error("softmax", {{"dim", ints({0, 1})}}, {spec({2, 2})}),
            "softmax: attribute 'dim' must be an integer");
}

TEST(OpsCheckNode, NegativeInputDim) {
  EXPECT_EQ(infer_error("relu", {}, {spec({2, -3})}),
            "relu: input 'in0' has a negative dim: [2, -3]");
}

// ----- costs ----------------------------------------------------------------------------------

OpCost cost_of(const std::string& op, Attrs a, std::vector<ValueSpec> in) {
  const ValueSpec out = infer(op, a, in);
  return find_op(op)->cost(a, in, out);
}

TEST(OpsCost, MatmulIsTwoMnkPerBatch) {
  const OpCost c = cost_of("matmul", {}, {spec({3, 4, 8}), spec({8, 5})});
  EXPECT_DOUBLE_EQ(c.flops, 2.0 * 3 * 4 * 5 * 8);
  EXPECT_DOUBLE_EQ(c.bytes, 4.0 * (3 * 4 * 8 + 8 * 5 + 3 * 4 * 5));
  const OpCost h = cost_of("linear", {}, {spec({6, 8}, DType::f16), spec({5, 8}, DType::f16)});
  EXPECT_DOUBLE_EQ(h.flops, 2.0 * 6 * 5 * 8);
  EXPECT_DOUBLE_EQ(h.bytes, 2.0 * (6 * 8 + 5 * 8 + 6 * 5));
}

TEST(OpsCost, Convolutions) {
  // out [1, 4, 2, 2]; Cin/groups = 1; kernel 3x3.
  const OpCost c = cost_of("conv2d", {{"groups", i(2)}}, {spec({1, 2, 4, 4}), spec({4, 1, 3, 3})});
  EXPECT_DOUBLE_EQ(c.flops, 2.0 * 16 * 1 * 9);
  // Transposed: 2 * in_elems * (Cout/groups) * prod(K) = 2 * 8 * 3 * 4.
  const OpCost t = cost_of("conv_transpose2d", {}, {spec({1, 2, 2, 2}), spec({2, 3, 2, 2})});
  EXPECT_DOUBLE_EQ(t.flops, 2.0 * 8 * 3 * 4);
}

TEST(OpsCost, ElementwiseNormsLayoutAttention) {
  EXPECT_DOUBLE_EQ(cost_of("relu", {}, {spec({10, 10})}).flops, 100.0);
  EXPECT_DOUBLE_EQ(cost_of("relu", {}, {spec({10, 10})}).bytes, 800.0);
  EXPECT_DOUBLE_EQ(cost_of("add", {}, {spec({10, 1}), spec({10})}).flops, 100.0);
  EXPECT_DOUBLE_EQ(cost_of("layer_norm", {{"normalized_shape", ints({10})}}, {spec({4, 10})}).flops,
                   8.0 * 40);
  EXPECT_DOUBLE_EQ(cost_of("sum", {{"dim", i(1)}}, {spec({4, 10})}).flops, 40.0);
  const OpCost p = cost_of("permute", {{"dims", ints({1, 0})}}, {spec({4, 10})});
  EXPECT_DOUBLE_EQ(p.flops, 0.0);
  EXPECT_DOUBLE_EQ(p.bytes, 320.0);
  // 2 batch-heads, L=3, S=5, E=Ev=4: 4*L*S*E plus one flop per score for the softmax.
  const OpCost a = cost_of("scaled_dot_product_attention", {},
                           {spec({2, 3, 4}), spec({2, 5, 4}), spec({2, 5, 4})});
  EXPECT_DOUBLE_EQ(a.flops, 2.0 * (4.0 * 3 * 5 * 4 + 3 * 5));
}

// ----- PyTorch rendering ----------------------------------------------------------------------

std::string torch_of(const std::string& op, Attrs a, std::vector<std::string> names) {
  return find_op(op)->torch(a, names);
}

TEST(OpsTorch, Renderings) {
  EXPECT_EQ(torch_of("conv2d", {{"stride", i(4)}, {"padding", i(2)}}, {"x", "w", "b"}),
            "F.conv2d(x, w, b, stride=4, padding=2)");
  EXPECT_EQ(torch_of("conv_transpose2d", {{"output_padding", ints({1, 0})}}, {"x", "w"}),
            "F.conv_transpose2d(x, w, output_padding=[1, 0])");
  EXPECT_EQ(torch_of("permute", {{"dims", ints({0, 2, 1})}}, {"x"}),
            "x.permute([0, 2, 1]).contiguous()");
  EXPECT_EQ(torch_of("swish", {}, {"x"}), "x * torch.sigmoid(x)");
  EXPECT_EQ(torch_of("mish", {}, {"x"}), "F.mish(x)");
  EXPECT_EQ(torch_of("mul", {{"scalar", d(2.0)}}, {"x"}), "x * 2.0");
  EXPECT_EQ(torch_of("div", {{"scalar", i(4)}}, {"x"}), "x / 4.0");
  EXPECT_EQ(torch_of("sub", {}, {"a", "b"}), "a - b");
  EXPECT_EQ(torch_of("max", {{"dim", i(1)}, {"keepdim", true}}, {"x"}),
            "torch.amax(x, dim=1, keepdim=True)");
  EXPECT_EQ(torch_of("sum", {{"dim", ints({1, 2})}}, {"x"}), "torch.sum(x, dim=[1, 2])");
  EXPECT_EQ(torch_of("rms_norm", {{"dims", ints({-1})}}, {"x", "w"}),
            "x / torch.sqrt(torch.mean(x * x, dim=[-1], keepdim=True) + 1e-05) * w");
  EXPECT_EQ(
      torch_of("layer_norm", {{"normalized_shape", i(64)}, {"eps", d(1e-6)}}, {"x", "w", "b"}),
      "F.layer_norm(x, [64], w, b, eps=1e-06)");
  EXPECT_EQ(torch_of("batch_norm", {}, {"x", "m", "v", "w", "b"}),
            "F.batch_norm(x, m, v, w, b, training=False)");
  EXPECT_EQ(torch_of("gelu", {{"approximate", std::string("tanh")}}, {"x"}),
            "F.gelu(x, approximate='tanh')");
  EXPECT_EQ(torch_of("matmul", {{"transpose_b", true}}, {"a", "b"}),
            "torch.matmul(a, b.transpose(-2, -1))");
  EXPECT_EQ(torch_of("scaled_dot_product_attention", {{"causal", true}, {"scale", d(0.5)}},
                     {"q", "k", "v"}),
            "F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.5)");
  EXPECT_EQ(torch_of("slice", {{"dim", i(1)}, {"start", i(2)}, {"end", i(-1)}}, {"x"}),
            "x[:, 2:-1].contiguous()");
  EXPECT_EQ(torch_of("slice", {{"dim", i(-2)}, {"start", i(0)}, {"end", i(3)}}, {"x"}),
            "x[..., 0:3, :].contiguous()");
  EXPECT_EQ(torch_of("masked_fill_causal", {}, {"s"}),
            "s.masked_fill(torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool, "
            "device=s.device).triu(1), float('-inf'))");
  EXPECT_EQ(torch_of("max_pool2d", {{"kernel_size", i(3)}, {"ceil_mode", true}}, {"x"}),
            "F.max_pool2d(x, kernel_size=3, ceil_mode=True)");
  EXPECT_EQ(torch_of("clamp", {{"min", d(0.0)}}, {"x"}), "torch.clamp(x, min=0.0)");
  EXPECT_EQ(torch_of("argmax", {{"dim", i(-1)}}, {"x"}), "torch.argmax(x, dim=-1)");
}

// ----- run_graph_cpu --------------------------------------------------------------------------

OpNode node(std::string op, std::vector<std::string> in, std::string out, Attrs a = {}) {
  OpNode n;
  n.op = std::move(op);
  n.inputs = std::move(in);
  n.output = std::move(out);
  n.attrs = std::move(a);
  return n;
}

TEST(OpsGraph, ThreeOpGraph) {
  // y = relu(x @ w + b) * 3
  const std::vector<OpNode> graph = {node("matmul", {"x", "w"}, "h"), node("add", {"h", "b"}, "z"),
                                     node("relu", {"z"}, "r"),
                                     node("mul", {"r"}, "y", {{"scalar", d(3.0)}})};
  std::map<std::string, HostTensor, std::less<>> feeds;
  feeds["x"] = HostTensor({2, 2}, {1, 2, 3, 4});
  feeds["w"] = HostTensor({2, 2}, {1, -1, 0, 1});
  feeds["b"] = HostTensor({2}, {-2, 0});
  // x @ w = [[1, 1], [3, 1]]; + b = [[-1, 1], [1, 1]]; relu = [[0, 1], [1, 1]]; * 3.
  const auto out = run_graph_cpu(graph, feeds, {"y", "h"});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape, (Shape{2, 2}));
  expect_values(out[0], {0, 3, 3, 3});
  expect_values(out[1], {1, 1, 3, 1});
}

TEST(OpsGraph, IndexFeedsAreI64) {
  const std::vector<OpNode> graph = {node("cross_entropy", {"logits", "t"}, "loss")};
  std::map<std::string, HostTensor, std::less<>> feeds;
  feeds["logits"] = HostTensor({1, 2}, {0, 0});
  feeds["t"] = HostTensor({1}, {1});
  const auto out = run_graph_cpu(graph, feeds, {"loss"});
  EXPECT_EQ(out[0].shape, Shape{});
  expect_values(out[0], {std::log(2.0)});
  // Declared dtypes are honoured: a float target is refused.
  EXPECT_THAT(error_of([&] {
                run_graph_cpu(graph, feeds, {"loss"}, {{"t", DType::f32}});
              }),
              HasSubstr("cross_entropy: target must have dtype i64"));
}

TEST(OpsGraph, Errors) {
  std::map<std::string, HostTensor, std::less<>> feeds;
  feeds["x"] = HostTensor({2}, {1, 2});
  auto graph = std::vector<OpNode>{node("relu", {"q"}, "y")};
  graph[0].line = 12;
  EXPECT_EQ(error_of([&] { run_graph_cpu(graph, feeds, {"y"}); }),
            "run_graph_cpu: node 0 (relu, line 12): unknown input 'q'");
  EXPECT_EQ(error_of([&] { run_graph_cpu({node("relu", {"x"}, "y")}, feeds, {"z"}); }),
            "run_graph_cpu: unknown output 'z'");
  EXPECT_THAT(error_of([&] { run_graph_cpu({node("softmax", {"x"}, "y")}, feeds, {"y"}); }),
              HasSubstr("node 0 (softmax): softmax: missing required attribute 'dim'"));
  EXPECT_EQ(error_of([&] { run_graph_cpu({node("relu", {"x"}, "x")}, feeds, {"x"}); }),
            "run_graph_cpu: node 0 (relu): output 'x' is already defined");
  // Errors inside an op name the node and the op.
  EXPECT_EQ(error_of([&] {
              run_graph_cpu({node("reshape", {"x"}, "y", {{"shape", ints({3})}})}, feeds, {"y"});
            }),
            "run_graph_cpu: node 0 (reshape): reshape: cannot reshape x [2] (2 elements) into [3] "
            "(3 elements)");
  feeds["bad"] = HostTensor({3}, {1, 2});
  EXPECT_EQ(error_of([&] { run_graph_cpu({}, feeds, {}); }),
            "run_graph_cpu: feed 'bad' has 2 values for shape [3]");
}

} // namespace
} // namespace kb
