// Layout ops (concat, stack, pad, tril, triu, flip, slice with a step, roll, gather, diag), the
// scans and reductions cumprod, prod and logsumexp, the element-wise maps relu6 .. rsqrt, pow,
// minimum, maximum and bool masks in arithmetic: shape inference, errors, float64 references
// against values worked out by hand, costs and PyTorch renderings.
#include <cmath>
#include <limits>

#include <gmock/gmock.h>

#include "ops_test_util.hpp"

namespace kb {
namespace {

using namespace kb::test;
using ::testing::HasSubstr;

const double k_inf = std::numeric_limits<double>::infinity();
const double k_nan = std::numeric_limits<double>::quiet_NaN();

std::string render(const std::string& op, const Attrs& at, std::vector<std::string> names) {
  return find_op(op)->torch(at, names);
}

HostTensor values(Shape s, std::vector<double> v) {
  return HostTensor(std::move(s), std::move(v));
}

// ----- concat, stack --------------------------------------------------------------------------

TEST(OpsLayout, ConcatShapesAndErrors) {
  EXPECT_EQ(infer("concat", {{"dim", i(1)}}, {spec({2, 3, 4}), spec({2, 5, 4}), spec({2, 1, 4})}),
            spec({2, 9, 4}));
  EXPECT_EQ(infer("concat", {{"dim", i(-1)}}, {spec({2, 3}, DType::bf16)}),
            spec({2, 3}, DType::bf16));
  EXPECT_EQ(infer("concat", {{"dim", i(0)}}, {spec({2}, DType::i64), spec({3}, DType::i64)}),
            spec({5}, DType::i64));
  EXPECT_THAT(infer_error("concat", {{"dim", i(1)}}, {spec({2, 3, 4}), spec({3, 3, 4})}),
              HasSubstr("differs from input 0 [2, 3, 4] in dim 0 (only dim 1 may differ)"));
  EXPECT_THAT(infer_error("concat", {{"dim", i(0)}}, {spec({2, 3}), spec({2})}),
              HasSubstr("has rank 1"));
  EXPECT_THAT(infer_error("concat", {{"dim", i(0)}}, {spec({2}), spec({2}, DType::f16)}),
              HasSubstr("dtypes differ: input 0 is f32, input 1 is f16"));
  EXPECT_THAT(infer_error("concat", {{"dim", i(2)}}, {spec({2, 3})}), HasSubstr("dim 2"));
  EXPECT_THAT(infer_error("concat", {{"dim", i(0)}}, {spec({})}), HasSubstr("scalar"));
  EXPECT_THAT(infer_error("concat", {}, {spec({2})}), HasSubstr("missing required attribute"));
  EXPECT_THAT(infer_error("concat", {{"dim", i(0)}}, {}), HasSubstr("expected 1 to 256 inputs"));
  // Many inputs are fine.
  std::vector<ValueSpec> many(40, spec({1, 2}));
  EXPECT_EQ(infer("concat", {{"dim", i(0)}}, many), spec({40, 2}));
}

TEST(OpsLayout, ConcatValues) {
  const HostTensor a = values({2, 1}, {1, 2}), b = values({2, 2}, {3, 4, 5, 6});
  expect_values(run("concat", {{"dim", i(1)}}, {a, b}), {1, 3, 4, 2, 5, 6});
  expect_values(run("concat", {{"dim", i(0)}}, {b, b}), {3, 4, 5, 6, 3, 4, 5, 6});
  expect_values(run("concat", {{"dim", i(0)}}, {a}), {1, 2});
}

TEST(OpsLayout, StackShapesValuesAndErrors) {
  EXPECT_EQ(infer("stack", {{"dim", i(0)}}, {spec({2, 3}), spec({2, 3})}), spec({2, 2, 3}));
  EXPECT_EQ(infer("stack", {{"dim", i(2)}}, {spec({2, 3}), spec({2, 3}), spec({2, 3})}),
            spec({2, 3, 3}));
  EXPECT_EQ(infer("stack", {{"dim", i(-1)}}, {spec({2, 3})}), spec({2, 3, 1}));
  EXPECT_THAT(infer_error("stack", {{"dim", i(3)}}, {spec({2, 3})}), HasSubstr("dim 3"));
  EXPECT_THAT(infer_error("stack", {{"dim", i(0)}}, {spec({2, 3}), spec({3, 2})}),
              HasSubstr("stack needs equal shapes"));
  const HostTensor a = values({2}, {1, 2}), b = values({2}, {3, 4});
  expect_values(run("stack", {{"dim", i(0)}}, {a, b}), {1, 2, 3, 4});
  expect_values(run("stack", {{"dim", i(1)}}, {a, b}), {1, 3, 2, 4});
  expect_values(run("stack", {{"dim", i(-1)}}, {a, b}), {1, 3, 2, 4});
}

// ----- pad ------------------------------------------------------------------------------------

TEST(OpsLayout, PadShapesAndErrors) {
  // Last dim first: (1, 2) pads dim 2, (0, 3) dim 1.
  EXPECT_EQ(infer("pad", {{"pad", ints({1, 2, 0, 3})}}, {spec({2, 3, 4})}), spec({2, 6, 7}));
  EXPECT_EQ(infer("pad", {{"pad", ints({-1, 0})}, {"value", d(2.5)}}, {spec({2, 3})}),
            spec({2, 2}));
  EXPECT_THAT(infer_error("pad", {{"pad", ints({1})}}, {spec({2, 3})}), HasSubstr("pairs"));
  EXPECT_THAT(infer_error("pad", {{"pad", ints({1, 1, 1, 1, 1, 1})}}, {spec({2, 3})}),
              HasSubstr("3 pairs for x [2, 3] of rank 2"));
  EXPECT_THAT(infer_error("pad", {{"pad", ints({-2, -1})}}, {spec({2, 3})}),
              HasSubstr("leaves dim 1 of x [2, 3] with 0 elements"));
  EXPECT_EQ(infer("pad", {{"pad", ints({1, 1})}, {"value", d(3.0)}}, {spec({2}, DType::i64)}),
            spec({4}, DType::i64));
  EXPECT_THAT(
      infer_error("pad", {{"pad", ints({1, 1})}, {"value", d(0.5)}}, {spec({2}, DType::i64)}),
      HasSubstr("value 0.5 is not a whole number, which x of dtype i64 needs"));
  EXPECT_THAT(
      infer_error("pad", {{"pad", ints({1, 1})}, {"value", d(-k_inf)}}, {spec({2}, DType::b8)}),
      HasSubstr("not a whole number"));
}

TEST(OpsLayout, PadValues) {
  const HostTensor x = values({2, 2}, {1, 2, 3, 4});
  expect_values(run("pad", {{"pad", ints({1, 0, 0, 1})}, {"value", d(9.0)}}, {x}),
                {9, 1, 2, 9, 3, 4, 9, 9, 9});
  // Negative padding crops, as F.pad does.
  expect_values(run("pad", {{"pad", ints({-1, 1})}}, {x}), {2, 0, 4, 0});
  expect_values(run("pad", {{"pad", ints({0, 0, 1, 0})}, {"value", d(-k_inf)}}, {x}),
                {-k_inf, -k_inf, 1, 2, 3, 4});
}

// ----- tril, triu, flip, slice step, roll -----------------------------------------------------

TEST(OpsLayout, TrilTriu) {
  const HostTensor x = iota({2, 2, 3}); // two 2 x 3 matrices
  expect_values(run("tril", {}, {x}), {1, 0, 0, 4, 5, 0, 7, 0, 0, 10, 11, 0});
  expect_values(run("triu", {}, {x}), {1, 2, 3, 0, 5, 6, 7, 8, 9, 0, 11, 12});
  expect_values(run("tril", {{"diagonal", i(1)}}, {x}), {1, 2, 0, 4, 5, 6, 7, 8, 0, 10, 11, 12});
  expect_values(run("triu", {{"diagonal", i(-1)}}, {x}), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  expect_values(run("triu", {{"diagonal", i(2)}}, {x}), {0, 0, 3, 0, 0, 0, 0, 0, 9, 0, 0, 0});
  EXPECT_THAT(infer_error("tril", {}, {spec({4})}), HasSubstr("rank >= 2"));
  EXPECT_EQ(infer("triu", {}, {spec({3, 3}, DType::f16)}), spec({3, 3}, DType::f16));
}

TEST(OpsLayout, Flip) {
  const HostTensor x = iota({2, 3});
  expect_values(run("flip", {{"dims", ints({1})}}, {x}), {3, 2, 1, 6, 5, 4});
  expect_values(run("flip", {{"dims", ints({0, -1})}}, {x}), {6, 5, 4, 3, 2, 1});
  expect_values(run("flip", {{"dims", i(0)}}, {x}), {4, 5, 6, 1, 2, 3});
  EXPECT_THAT(infer_error("flip", {{"dims", ints({0, -2})}}, {spec({2, 3})}),
              HasSubstr("names dim 0 twice"));
  EXPECT_THAT(infer_error("flip", {{"dims", ints({})}}, {spec({2, 3})}),
              HasSubstr("at least one dim"));
}

TEST(OpsLayout, SliceWithStep) {
  const Attrs a{{"dim", i(1)}, {"start", i(1)}, {"end", i(6)}, {"step", i(2)}};
  EXPECT_EQ(infer("slice", a, {spec({2, 7})}), spec({2, 3}));
  expect_values(run("slice", a, {iota({2, 7})}), {2, 4, 6, 9, 11, 13});
  // A step beyond the range keeps the first element only.
  const Attrs b{{"dim", i(0)}, {"start", i(0)}, {"end", i(3)}, {"step", i(5)}};
  expect_values(run("slice", b, {iota({3, 1})}), {1});
  EXPECT_THAT(infer_error("slice", {{"dim", i(0)}, {"start", i(0)}, {"end", i(2)}, {"step", i(0)}},
                          {spec({4})}),
              HasSubstr("step must be >= 1, got 0"));
  EXPECT_EQ(render("slice", a, {"x"}), "x[:, 1:6:2].contiguous()");
  EXPECT_EQ(
      render("slice", {{"dim", i(-2)}, {"start", i(0)}, {"end", i(4)}, {"step", i(3)}}, {"x"}),
      "x[..., 0:4:3, :].contiguous()");
  EXPECT_EQ(render("slice", {{"dim", i(0)}, {"start", i(1)}, {"end", i(3)}}, {"x"}),
            "x[1:3].contiguous()");
}

TEST(OpsLayout, Roll) {
  const HostTensor x = iota({2, 3});
  expect_values(run("roll", {{"shifts", i(1)}, {"dims", i(1)}}, {x}), {3, 1, 2, 6, 4, 5});
  expect_values(run("roll", {{"shifts", ints({-1, 1})}, {"dims", ints({1, 0})}}, {x}),
                {5, 6, 4, 2, 3, 1});
  // Shifts larger than the dim wrap; a dim named twice rolls by the sum.
  expect_values(run("roll", {{"shifts", ints({4, 3})}, {"dims", ints({1, 1})}}, {x}),
                {3, 1, 2, 6, 4, 5});
  // Without dims the tensor rolls flat.
  expect_values(run("roll", {{"shifts", i(1)}}, {x}), {6, 1, 2, 3, 4, 5});
  EXPECT_THAT(infer_error("roll", {{"shifts", ints({1, 2})}, {"dims", i(0)}}, {spec({2, 3})}),
              HasSubstr("same, non-zero length"));
  EXPECT_THAT(infer_error("roll", {{"shifts", ints({1, 2})}}, {spec({2, 3})}),
              HasSubstr("without dims, shifts must be one int"));
  EXPECT_THAT(infer_error("roll", {{"shifts", i(1)}, {"dims", i(2)}}, {spec({2, 3})}),
              HasSubstr("dims 2 is out of range"));
  EXPECT_EQ(render("roll", {{"shifts", ints({-3, -3})}, {"dims", ints({1, 2})}}, {"x"}),
            "torch.roll(x, shifts=[-3, -3], dims=[1, 2])");
  EXPECT_EQ(render("roll", {{"shifts", i(2)}}, {"x"}), "torch.roll(x, shifts=2)");
}

// ----- gather, diag ---------------------------------------------------------------------------

TEST(OpsLayout, Gather) {
  EXPECT_EQ(infer("gather", {{"dim", i(1)}}, {spec({3, 4}), spec({2, 6}, DType::i64)}),
            spec({2, 6}));
  EXPECT_THAT(infer_error("gather", {{"dim", i(1)}}, {spec({3, 4}), spec({4, 2}, DType::i64)}),
              HasSubstr("exceeds x [3, 4] in dim 0"));
  EXPECT_THAT(infer_error("gather", {{"dim", i(1)}}, {spec({3, 4}), spec({3, 2})}),
              HasSubstr("index must have dtype i64, got f32"));
  EXPECT_THAT(infer_error("gather", {{"dim", i(0)}}, {spec({3, 4}), spec({3}, DType::i64)}),
              HasSubstr("must have the rank of x"));
  EXPECT_EQ(find_op("gather")->index_inputs, std::vector<int>{1});
  const HostTensor x = iota({2, 3});
  expect_values(run("gather", {{"dim", i(1)}}, {x, values({2, 2}, {2, 0, 1, 1})}), {3, 1, 5, 5});
  expect_values(run("gather", {{"dim", i(0)}}, {x, values({1, 3}, {1, 0, 1})}), {4, 2, 6});
  EXPECT_THAT(error_of([&] {
                run("gather", {{"dim", i(1)}}, {x, values({2, 1}, {0, 3})});
              }),
              HasSubstr("index value 3 at element 1 is outside [0, 3)"));
  EXPECT_EQ(render("gather", {{"dim", i(-1)}}, {"x", "idx"}), "torch.gather(x, -1, idx)");
}

TEST(OpsLayout, Diag) {
  EXPECT_EQ(infer("diag", {}, {spec({3})}), spec({3, 3}));
  EXPECT_EQ(infer("diag", {{"diagonal", i(-2)}}, {spec({3})}), spec({5, 5}));
  EXPECT_EQ(infer("diag", {{"diagonal", i(1)}}, {spec({3, 4})}), spec({3}));
  EXPECT_EQ(infer("diag", {{"diagonal", i(-1)}}, {spec({3, 4})}), spec({2}));
  EXPECT_THAT(infer_error("diag", {{"diagonal", i(4)}}, {spec({3, 4})}),
              HasSubstr("diagonal 4 lies outside x [3, 4]"));
  EXPECT_THAT(infer_error("diag", {}, {spec({2, 2, 2})}), HasSubstr("rank 1"));
  expect_values(run("diag", {}, {values({2}, {5, 6})}), {5, 0, 0, 6});
  expect_values(run("diag", {{"diagonal", i(1)}}, {values({2}, {5, 6})}),
                {0, 5, 0, 0, 0, 6, 0, 0, 0});
  expect_values(run("diag", {{"diagonal", i(-1)}}, {values({1}, {7})}), {0, 0, 7, 0});
  expect_values(run("diag", {}, {iota({3, 4})}), {1, 6, 11});
  expect_values(run("diag", {{"diagonal", i(-1)}}, {iota({3, 4})}), {5, 10});
  EXPECT_EQ(render("diag", {{"diagonal", i(1)}}, {"v"}), "torch.diag(v, diagonal=1)");
}

TEST(OpsLayout, RenderingsAndCosts) {
  EXPECT_EQ(render("concat", {{"dim", i(1)}}, {"a", "b", "c"}), "torch.cat([a, b, c], dim=1)");
  EXPECT_EQ(render("stack", {{"dim", i(0)}}, {"a"}), "torch.stack([a], dim=0)");
  EXPECT_EQ(render("pad", {{"pad", ints({0, 1})}}, {"x"}), "F.pad(x, [0, 1])");
  EXPECT_EQ(render("pad", {{"pad", ints({1, 1})}, {"value", d(-k_inf)}}, {"x"}),
            "F.pad(x, [1, 1], value=float('-inf'))");
  EXPECT_EQ(render("tril", {}, {"x"}), "torch.tril(x)");
  EXPECT_EQ(render("triu", {{"diagonal", i(1)}}, {"x"}), "torch.triu(x, diagonal=1)");
  EXPECT_EQ(render("flip", {{"dims", i(2)}}, {"x"}), "torch.flip(x, dims=[2])");
  // Layout ops move bytes: every input read once, the output written once, no flops.
  const std::vector<ValueSpec> in = {spec({2, 3}), spec({2, 5})};
  const OpCost c = find_op("concat")->cost({{"dim", i(1)}}, in, spec({2, 8}));
  EXPECT_EQ(c.flops, 0.0);
  EXPECT_EQ(c.bytes, (6 + 10 + 16) * 4.0);
  const OpCost g = find_op("gather")->cost(
      {{"dim", i(0)}}, std::vector<ValueSpec>{spec({4, 3}), spec({2, 3}, DType::i64)},
      spec({2, 3}));
  EXPECT_EQ(g.bytes, 12 * 4.0 + 6 * 8.0 + 6 * 4.0);
}

// ----- scans and reductions -------------------------------------------------------------------

TEST(OpsReduce, Cumprod) {
  expect_values(run("cumprod", {{"dim", i(1)}}, {values({2, 3}, {1, 2, 3, 4, 5, 0.5})}),
                {1, 2, 6, 4, 20, 10});
  expect_values(run("cumprod", {{"dim", i(0)}}, {values({2, 2}, {2, 3, 4, 5})}), {2, 3, 8, 15});
  EXPECT_EQ(render("cumprod", {{"dim", i(-1)}}, {"x"}), "torch.cumprod(x, dim=-1)");
  EXPECT_FALSE(find_op("cumprod")->cancellation_sensitive);
}

TEST(OpsReduce, Prod) {
  EXPECT_EQ(infer("prod", {{"dim", i(1)}}, {spec({2, 3, 4})}), spec({2, 4}));
  EXPECT_EQ(infer("prod", {{"dim", i(-1)}, {"keepdim", true}}, {spec({2, 3})}), spec({2, 1}));
  EXPECT_THAT(infer_error("prod", {{"dim", ints({0, 1})}}, {spec({2, 3})}),
              HasSubstr("must be an integer"));
  expect_values(run("prod", {{"dim", i(1)}}, {values({2, 3}, {1, 2, 3, 4, 5, -1})}), {6, -20});
  expect_values(run("prod", {{"dim", i(0)}, {"keepdim", true}}, {values({2, 2}, {2, 3, 4, 5})}),
                {8, 15});
  EXPECT_EQ(render("prod", {{"dim", i(1)}, {"keepdim", true}}, {"x"}),
            "torch.prod(x, dim=1, keepdim=True)");
}

TEST(OpsReduce, LogsumexpIsStable) {
  EXPECT_EQ(infer("logsumexp", {{"dim", ints({0, 2})}}, {spec({2, 3, 4})}), spec({3}));
  const double l2 = std::log(2.0);
  // Rows [0, 0], [1000, 1000] (exp would overflow), [-inf, -inf], [+inf, 1], [NaN, 1].
  const HostTensor x = values({5, 2}, {0, 0, 1000, 1000, -k_inf, -k_inf, k_inf, 1, k_nan, 1});
  expect_values(run("logsumexp", {{"dim", i(1)}}, {x}), {l2, 1000 + l2, -k_inf, k_inf, k_nan});
  expect_values(
      run("logsumexp", {{"dim", i(0)}, {"keepdim", true}}, {values({2, 1}, {-1000, -1000})}),
      {-1000 + l2});
  expect_values(run("logsumexp", {{"dim", ints({0, 1})}}, {values({2, 2}, {1, 2, 3, 4})}),
                {std::log(std::exp(1) + std::exp(2) + std::exp(3) + std::exp(4))});
  EXPECT_EQ(render("logsumexp", {{"dim", ints({1, 2})}, {"keepdim", true}}, {"x"}),
            "torch.logsumexp(x, dim=[1, 2], keepdim=True)");
}

// ----- element-wise ---------------------------------------------------------------------------

TEST(OpsElementwise, NewUnaryMaps) {
  const HostTensor x = values({6}, {-2, -0.5, 0, 0.25, 4, 7});
  expect_values(run("relu6", {}, {x}), {0, 0, 0, 0.25, 4, 6});
  expect_values(run("sign", {}, {x}), {-1, -1, 0, 1, 1, 1});
  expect_values(run("neg", {}, {x}), {2, 0.5, 0, -0.25, -4, -7});
  expect_values(run("square", {}, {x}), {4, 0.25, 0, 0.0625, 16, 49});
  expect_values(run("reciprocal", {}, {x}), {-0.5, -2, k_inf, 4, 0.25, 1.0 / 7});
  const HostTensor p = values({3}, {0.25, 4, 8});
  expect_values(run("log2", {}, {p}), {-2, 2, 3});
  expect_values(run("rsqrt", {}, {p}), {2, 0.5, 1 / std::sqrt(8.0)});
  // NaN: relu6 keeps it, sign gives 0 as PyTorch's (x > 0) - (x < 0).
  expect_values(run("relu6", {}, {values({1}, {k_nan})}), {k_nan});
  expect_values(run("sign", {}, {values({1}, {k_nan})}), {0});
  EXPECT_EQ(render("relu6", {}, {"x"}), "F.relu6(x)");
  EXPECT_EQ(render("rsqrt", {}, {"x"}), "torch.rsqrt(x)");
  EXPECT_THAT(infer_error("neg", {}, {spec({2}, DType::i64)}), HasSubstr("floating dtype"));
}

TEST(OpsElementwise, PowMinimumMaximum) {
  const HostTensor a = values({2, 2}, {1, 2, 3, 4}), b = values({2}, {2, 0.5});
  expect_values(run("pow", {}, {a, b}), {1, std::sqrt(2.0), 9, 2});
  expect_values(run("pow", {{"scalar", d(2.0)}}, {a}), {1, 4, 9, 16});
  expect_values(run("pow", {{"scalar", d(3.0)}}, {values({1}, {-2})}), {-8});
  expect_values(run("minimum", {}, {a, values({1}, {2.5})}), {1, 2, 2.5, 2.5});
  expect_values(run("maximum", {}, {a, values({2, 1}, {2.5, 3.5})}), {2.5, 2.5, 3.5, 4});
  expect_values(run("minimum", {}, {values({2}, {1, k_nan}), values({2}, {k_nan, 0})}),
                {k_nan, k_nan});
  expect_values(run("maximum", {}, {values({1}, {k_nan}), values({1}, {1})}), {k_nan});
  EXPECT_EQ(infer("pow", {}, {spec({4, 1, 3}), spec({2, 1})}), spec({4, 2, 3}));
  EXPECT_THAT(infer_error("minimum", {{"scalar", d(1.0)}}, {spec({2})}),
              HasSubstr("expected 2 inputs, got 1"));
  EXPECT_EQ(render("pow", {{"scalar", d(3.0)}}, {"x"}), "torch.pow(x, 3.0)");
  EXPECT_EQ(render("pow", {}, {"x", "e"}), "torch.pow(x, e)");
  EXPECT_EQ(render("minimum", {}, {"a", "b"}), "torch.minimum(a, b)");
  EXPECT_EQ(render("maximum", {}, {"a", "b"}), "torch.maximum(a, b)");
  EXPECT_EQ(render("mul", {}, {"a", "b"}), "a * b");
}

TEST(OpsElementwise, BoolMaskTakesTheOtherOperandsDtype) {
  EXPECT_EQ(infer("mul", {}, {spec({2, 3}), spec({2, 3}, DType::b8)}), spec({2, 3}));
  EXPECT_EQ(infer("mul", {}, {spec({3}, DType::b8), spec({2, 3}, DType::bf16)}),
            spec({2, 3}, DType::bf16));
  EXPECT_EQ(infer("div", {}, {spec({2, 3}, DType::f16), spec({3}, DType::b8)}),
            spec({2, 3}, DType::f16));
  EXPECT_EQ(infer("maximum", {}, {spec({3}, DType::b8), spec({3})}), spec({3}));
  EXPECT_THAT(infer_error("sub", {}, {spec({2}), spec({2}, DType::b8)}),
              HasSubstr("b is bool, which this op does not take"));
  EXPECT_THAT(infer_error("mul", {}, {spec({2}, DType::b8), spec({2}, DType::b8)}),
              HasSubstr("both bool"));
  EXPECT_THAT(infer_error("mul", {}, {spec({2}, DType::i64), spec({2}, DType::b8)}),
              HasSubstr("a must have a floating dtype"));
  EXPECT_THAT(infer_error("mul", {{"scalar", d(2.0)}}, {spec({2}, DType::b8)}),
              HasSubstr("floating dtype"));
  EXPECT_THAT(infer_error("add", {}, {spec({2}), spec({2}, DType::f16)}),
              HasSubstr("dtypes differ"));
  // The float64 graph evaluation takes a bool feed as 0/1 values.
  OpNode node{"mul", {"x", "mask"}, "y", {}, 1};
  const std::map<std::string, HostTensor, std::less<>> feeds = {
      {"x", values({4}, {1, 2, 3, 4})}, {"mask", values({4}, {1, 0, 0, 1})}};
  const auto out = run_graph_cpu({node}, feeds, {"y"}, {{"x", DType::f32}, {"mask", DType::b8}});
  expect_values(out[0], {1, 0, 0, 4});
}

} // namespace
} // namespace kb
