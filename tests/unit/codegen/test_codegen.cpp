// Unit tests of the naive candidate generator: every registered op has a naive kernel, errors
// name the node, the source is deterministic and stays within the ABI, and every shipped problem
// generates.
#include <gtest/gtest.h>

#include <sstream>

#include <fmt/format.h>

#include "catalog.hpp"
#include "codegen.hpp"
#include "codegen_test_util.hpp"
#include "op.hpp"

namespace {

kb::TensorSpec tensor(std::string name, kb::Shape shape, kb::DType t = kb::DType::f32) {
  kb::TensorSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.dtype = t;
  return s;
}

// A problem built in code, with the values the catalog would infer.
kb::Problem make_problem(std::vector<kb::TensorSpec> inputs, std::vector<kb::OpNode> graph,
                         std::vector<std::string> outputs) {
  kb::Problem p;
  p.id = "l1/test";
  p.inputs = std::move(inputs);
  p.graph = std::move(graph);
  p.outputs = std::move(outputs);
  return p;
}

kb::OpNode node(std::string op, std::vector<std::string> in, std::string out, kb::Attrs a = {}) {
  kb::OpNode n;
  n.op = std::move(op);
  n.inputs = std::move(in);
  n.output = std::move(out);
  n.attrs = std::move(a);
  return n;
}

TEST(NaiveCandidate, EveryRegisteredOpHasANaiveKernel) {
  for (const auto& op : kb::all_ops())
    EXPECT_TRUE(kb::has_naive_kernel(op.name))
        << "op " << op.name << " has no naive kernel (harness/codegen)";
}

TEST(NaiveCandidate, EveryNaiveKernelIsOfARegisteredOp) {
  for (const auto& name : kb::naive_kernel_ops())
    EXPECT_NE(kb::find_op(name), nullptr) << name;
  EXPECT_FALSE(kb::has_naive_kernel("no_such_op"));
}

TEST(NaiveCandidate, AnOpWithoutANaiveKernelIsAnErrorNamingTheNode) {
  const kb::Problem p = make_problem(
      {tensor("x", {4})}, {node("relu", {"x"}, "r"), node("no_such_op", {"r"}, "y")}, {"y"});
  try {
    kb::naive_candidate(p);
    FAIL() << "expected an error";
  } catch (const kb::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("l1/test"), std::string::npos) << msg;
    EXPECT_NE(msg.find("node 1 (no_such_op)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has no naive kernel"), std::string::npos) << msg;
  }
}

TEST(NaiveCandidate, AnInvalidNodeIsAnErrorNamingIt) {
  const kb::Problem p = make_problem({tensor("a", {4, 3}), tensor("b", {4, 3})},
                                     {node("matmul", {"a", "b"}, "y")}, {"y"});
  try {
    kb::naive_candidate(p);
    FAIL() << "expected an error";
  } catch (const kb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 0 (matmul)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("inner dimensions"), std::string::npos) << e.what();
  }
}

TEST(NaiveCandidate, MoreWorkspaceThanTheAbiAllowsIsAnError) {
  // Attention scores of 200000 x 200000 doubles: 320 GB of scratch.
  const kb::Problem p =
      make_problem({tensor("q", {200000, 8}), tensor("k", {200000, 8}), tensor("v", {200000, 8})},
                   {node("scaled_dot_product_attention", {"q", "k", "v"}, "y")}, {"y"});
  try {
    kb::naive_candidate(p);
    FAIL() << "expected an error";
  } catch (const kb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("workspace"), std::string::npos) << e.what();
  }
}

TEST(NaiveCandidate, SourceIsDeterministicAndUsesOnlyWhatTheAbiAllows) {
  for (const auto& p : kb::test::codegen_problems().problems) {
    const kb::NaiveCandidate a = kb::naive_candidate(p);
    const kb::NaiveCandidate b = kb::naive_candidate(p);
    EXPECT_EQ(a.source, b.source) << p.id;
    EXPECT_GT(a.kernels, 0) << p.id;
    EXPECT_NE(a.source.find("extern \"C\" int kb_forward("), std::string::npos) << p.id;
    EXPECT_NE(a.source.find(fmt::format("return (size_t){};", a.workspace_bytes)),
              std::string::npos)
        << p.id;
    for (const char* banned : {"cudaMalloc", "cudaFree", "cudaDeviceSynchronize",
                               "cudaStreamCreate", "cudaEventCreate", "cudaMemcpy("})
      EXPECT_EQ(a.source.find(banned), std::string::npos) << p.id << ": " << banned;
    // The only triple-chevron launch is the KB_LAUNCH macro's definition.
    std::size_t chevrons = 0;
    for (std::size_t pos = a.source.find("<<<"); pos != std::string::npos;
         pos = a.source.find("<<<", pos + 1))
      ++chevrons;
    EXPECT_EQ(chevrons, 1u) << p.id;
    // Every kernel is launched.
    std::size_t globals = 0;
    for (std::size_t pos = a.source.find("__global__ void "); pos != std::string::npos;
         pos = a.source.find("__global__ void ", pos + 1)) {
      ++globals;
      const std::size_t name_start = pos + 16;
      const std::string name =
          a.source.substr(name_start, a.source.find('(', name_start) - name_start);
      EXPECT_NE(a.source.find("KB_LAUNCH(" + name + ","), std::string::npos)
          << p.id << ": " << name;
    }
    EXPECT_EQ(globals, static_cast<std::size_t>(a.kernels)) << p.id;
  }
}

// Names from the problem file reach the source only inside comments: kernels and kb_forward use
// generated names, so no value name can collide with or inject code (problems/codegen_names.yaml
// compiles and runs such names on the host).
TEST(NaiveCandidate, ProblemNamesAppearOnlyInComments) {
  const kb::Problem p = make_problem(
      {tensor("kb_forward", {2, 3}), tensor("xyz_in", {2, 3})},
      {node("add", {"kb_forward", "xyz_in"}, "xyz_mid"), node("relu", {"xyz_mid"}, "xyz_out")},
      {"xyz_out"});
  const std::string src = kb::naive_candidate(p).source;
  std::istringstream lines(src);
  std::string line;
  int forward_mentions = 0, comment_mentions = 0;
  while (std::getline(lines, line)) {
    const std::size_t slash = line.find("//");
    const std::string code = line.substr(0, slash);
    EXPECT_EQ(code.find("xyz_"), std::string::npos) << line;
    if (code.find("kb_forward") != std::string::npos)
      ++forward_mentions;
    if (slash != std::string::npos && line.find("xyz_", slash) != std::string::npos)
      ++comment_mentions;
  }
  EXPECT_EQ(forward_mentions, 1); // its definition
  EXPECT_GT(comment_mentions, 0);
}

TEST(NaiveCandidate, LongReductionsAreSplitIntoChunksAndShortOnesAreNot) {
  kb::Attrs dim1;
  dim1["dim"] = int64_t{1};
  const kb::Problem long_rows =
      make_problem({tensor("x", {2, 100000})}, {node("sum", {"x"}, "y", dim1)}, {"y"});
  const kb::Problem short_rows =
      make_problem({tensor("x", {2, 1000})}, {node("sum", {"x"}, "y", dim1)}, {"y"});
  const std::string a = kb::naive_candidate(long_rows).source;
  const std::string b = kb::naive_candidate(short_rows).source;
  EXPECT_NE(a.find("n0_sum_part("), std::string::npos);
  EXPECT_NE(a.find("n0_sum_fin("), std::string::npos);
  EXPECT_EQ(b.find("_part("), std::string::npos);
  EXPECT_NE(b.find("__global__ void n0_sum("), std::string::npos);
}

TEST(NaiveCandidate, HalfAndBfloat16AreStoredRoundedAndInt64IndicesRead) {
  kb::Attrs dim1;
  dim1["dim"] = int64_t{1};
  const kb::Problem p =
      make_problem({tensor("x", {4, 5}, kb::DType::f16), tensor("z", {4, 5}, kb::DType::bf16),
                    tensor("t", {4}, kb::DType::i64)},
                   {node("argmax", {"x"}, "a", dim1), node("relu", {"z"}, "r")}, {"a", "r"});
  const std::string src = kb::naive_candidate(p).source;
  EXPECT_NE(src.find("const __half* v0 = (const __half*)in[0].data;"), std::string::npos) << src;
  EXPECT_NE(src.find("__nv_bfloat16* o1 = (__nv_bfloat16*)out[1].data;"), std::string::npos) << src;
  EXPECT_NE(src.find("int64_t* o0 = (int64_t*)out[0].data;"), std::string::npos) << src;
  EXPECT_NE(src.find("in[2].dtype != KB_I64"), std::string::npos) << src;
}

// Nodes that differ only in their sizes launch one kernel: a network's repeated blocks compile
// once.
TEST(NaiveCandidate, OneKernelServesEveryNodeOfTheSameCode) {
  const kb::Problem p = make_problem(
      {tensor("x", {4, 5}), tensor("z", {3, 7})},
      {node("relu", {"x"}, "a"), node("relu", {"z"}, "b"), node("relu", {"a"}, "y")}, {"y", "b"});
  const kb::NaiveCandidate c = kb::naive_candidate(p);
  EXPECT_EQ(c.kernels, 1);
  std::size_t launches = 0;
  for (std::size_t pos = c.source.find("KB_LAUNCH(n0_relu,"); pos != std::string::npos;
       pos = c.source.find("KB_LAUNCH(n0_relu,", pos + 1))
    ++launches;
  EXPECT_EQ(launches, 3u);
}

// A value's workspace is reused once its last reader has been launched: a chain of four
// element-wise ops needs two buffers of intermediates, not three.
TEST(NaiveCandidate, WorkspaceIsReusedAfterTheLastReader) {
  const kb::Problem p = make_problem({tensor("x", {1000})},
                                     {node("relu", {"x"}, "a"), node("exp", {"a"}, "b"),
                                      node("tanh", {"b"}, "c"), node("neg", {"c"}, "y")},
                                     {"y"});
  EXPECT_EQ(kb::naive_candidate(p).workspace_bytes, 2 * 4096);
}

TEST(NaiveCandidate, EveryShippedProblemGenerates) {
  const kb::Catalog c = kb::load_catalog(kb::default_levels_dir());
  ASSERT_FALSE(c.problems.empty());
  for (const auto& p : c.problems) {
    try {
      const kb::NaiveCandidate n = kb::naive_candidate(p);
      EXPECT_LE(n.workspace_bytes, int64_t{64} << 30) << p.id;
    } catch (const kb::Error& e) {
      ADD_FAILURE() << p.id << ": " << e.what();
    }
  }
}

} // namespace
