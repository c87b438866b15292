// Helpers for the op library's unit tests: specs, attribute building and single-op evaluation.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "op.hpp"

namespace kb::test {

inline ValueSpec spec(Shape s, DType t = DType::f32) {
  return {std::move(s), t};
}

inline AttrValue ints(std::vector<int64_t> v) {
  return AttrValue(std::move(v));
}
inline AttrValue i(int64_t v) {
  return AttrValue(v);
}
inline AttrValue d(double v) {
  return AttrValue(v);
}

// Infers an op's output through check_node.
inline ValueSpec infer(const std::string& op, Attrs attrs, std::vector<ValueSpec> in) {
  OpNode node;
  node.op = op;
  node.attrs = std::move(attrs);
  for (std::size_t k = 0; k < in.size(); ++k)
    node.inputs.push_back("in" + std::to_string(k));
  return check_node(node, in);
}

// The message of the kb::Error thrown by fn, or "" when it throws nothing.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline std::string infer_error(const std::string& op, Attrs attrs, std::vector<ValueSpec> in) {
  return error_of([&] { infer(op, std::move(attrs), std::move(in)); });
}

// Runs one op's float64 reference: specs are f64 except the op's index inputs (i64).
inline HostTensor run(const std::string& op, Attrs attrs, std::vector<HostTensor> in) {
  const OpDef* def = find_op(op);
  EXPECT_NE(def, nullptr) << op;
  std::vector<ValueSpec> specs;
  for (std::size_t k = 0; k < in.size(); ++k) {
    bool index = false;
    for (int p : def->index_inputs)
      index = index || p == static_cast<int>(k);
    specs.push_back({in[k].shape, index ? DType::i64 : DType::f64});
  }
  const ValueSpec out_spec = infer(op, attrs, specs);
  HostTensor out(out_spec.shape);
  def->cpu(attrs, in, out);
  return out;
}

inline void expect_values(const HostTensor& t, const std::vector<double>& want,
                          double tol = 1e-12) {
  ASSERT_EQ(t.data.size(), want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    if (std::isnan(want[k]))
      EXPECT_TRUE(std::isnan(t.data[k])) << "index " << k;
    else if (std::isinf(want[k]))
      EXPECT_EQ(t.data[k], want[k]) << "index " << k;
    else
      EXPECT_NEAR(t.data[k], want[k], tol) << "index " << k;
  }
}

// 1, 2, ..., n in the given shape.
inline HostTensor iota(Shape s) {
  HostTensor t(std::move(s));
  for (std::size_t k = 0; k < t.data.size(); ++k)
    t.data[k] = static_cast<double>(k + 1);
  return t;
}

} // namespace kb::test
