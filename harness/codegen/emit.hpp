// Internals of the naive candidate generator: the emitter that collects kernels, workspace and
// the launches of kb_forward, the reduction helper, and the per-family op emitters.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core.hpp"

namespace kb::codegen {

// Throws kb::Error with a formatted message (the generator adds the node).
template <class... A> [[noreturn]] void fail(fmt::format_string<A...> f, A&&... args) {
  throw Error(fmt::format(f, std::forward<A>(args)...));
}

// A tensor the generated code reads or writes: the kb_forward variable holding its pointer, its
// element storage type and its shape.
struct Val {
  std::string var;   // "v3" (values) or "s2" (double scratch)
  std::string ctype; // float, __half, __nv_bfloat16, int64_t, int32_t, uint8_t, double
  Shape shape;
  DType dtype = DType::f32;
  int64_t ws_offset = -1; // its block of workspace (offset, bytes); -1 outside the workspace
  int64_t ws_bytes = 0;
  int64_t numel() const { return kb::numel(shape); }
};

// One parameter of a kernel: its C type ("const float*", "int64_t"), its name in the kernel, and
// the expression kb_forward passes for it.
struct Arg {
  std::string type;
  std::string name;
  std::string value;
};

// Kernel parameters reading `v` as `name` (const __restrict__ pointer) and writing it.
Arg in_arg(const std::string& name, const Val& v);
Arg out_arg(const std::string& name, const Val& v);

// Literals: integers (with LL beyond 32 bits) and doubles that read back exactly (infinities as
// HUGE_VAL). An integer from lit() inside a kernel body becomes an argument of the kernel (see
// Emitter::map): use it for sizes, strides and offsets, never where C++ needs a constant (an
// array size).
std::string lit(int64_t v);
std::string dlit(double v);
// A literal that stays in the kernel: for the few values that shape its loops and that networks
// repeat (kernel sizes, strides, paddings, dilations), so the compiler folds them (a division by
// a constant stride is a multiplication).
std::string clit(int64_t v);
// `s` without lit()'s markers: the plain literals.
std::string unmarked(std::string_view s);

// Products, quotients and remainders of an index expression by a constant, simplified where the
// constant is 0 or 1 ("k * 1" is "k", "r % 1" is "0").
std::string imul(std::string_view e, int64_t n);
std::string idiv(std::string_view e, int64_t n);
std::string imod(std::string_view e, int64_t n);

// Expression of coordinate `d` of element `idx` (an expression) of a row-major tensor of `shape`.
std::string coord(std::string_view idx, const Shape& shape, std::size_t d);
// Expression of sum over d of coord(idx, shape, d) * strides[d], skipping dims of extent 1 and
// zero strides; "0" when nothing remains.
std::string remap(std::string_view idx, const Shape& shape, const Shape& strides);
// Strides of `in` as seen from a tensor of shape `out` it broadcasts to (0 along broadcast dims).
Shape broadcast_strides_of(const Shape& in, const Shape& out);

// Collects kernels, the workspace layout and kb_forward's body.
class Emitter {
public:
  // A kernel with one thread per element of [0, n) (grid-stride loop over `i`) and its launch on
  // `stream`, appended to kb_forward. `body` is the loop body. A kernel equal to one defined
  // before (parameters, size and body) is not defined again: the earlier one is launched.
  void map(const std::string& name, int64_t n, const std::vector<Arg>& args,
           const std::string& body);
  // The same kernel definition, returning its launch statement instead of appending it (for
  // launches inside a host loop of kb_forward).
  std::string map_def(const std::string& name, int64_t n, const std::vector<Arg>& args,
                      const std::string& body);
  // `count` doubles of workspace for the generator's own intermediates (statistics, partial sums,
  // recurrent state) of the node being emitted; returns the variable (double*). Released when the
  // node ends.
  Val scratch(int64_t count);
  // A workspace buffer holding a graph value of `dtype` and `shape`; returns its variable.
  Val workspace_value(DType dtype, const Shape& shape);
  // Returns a value's workspace block for reuse by later nodes: launches are ordered on the one
  // stream, so a kernel launched after the block's last reader may overwrite it.
  void release(const Val& v);
  // Brackets one node: its scratch is released at its end.
  void begin_node();
  void end_node();
  // Raw code in kb_forward, in launch order.
  void host(const std::string& code);
  // A fresh kernel name from a readable stem ("n3_softmax_max").
  std::string name(const std::string& stem);

  const std::string& kernels() const { return m_kernels; }
  const std::string& forward() const { return m_forward; }
  const std::string& declarations() const { return m_decls; }
  int64_t workspace_bytes() const { return m_ws_bytes; }
  int kernel_count() const { return m_kernel_count; }

  // Declares a kb_forward variable (used by the generator for inputs and outputs).
  void declare(const std::string& code) { m_decls += code; }

private:
  int64_t take_workspace(int64_t bytes);

  std::string m_kernels, m_forward, m_decls;
  int64_t m_ws_bytes = 0;
  std::map<int64_t, int64_t> m_free; // free blocks below m_ws_bytes: offset -> bytes
  std::vector<Val> m_node_scratch;
  int m_kernel_count = 0;
  int m_scratch_count = 0;
  int m_value_count = 0;
  std::map<std::string, int, std::less<>> m_names;
  std::map<std::string, std::string, std::less<>> m_defined; // parameters, size, body -> kernel
};

// ----- reductions -----------------------------------------------------------------------------

enum class Combine { sum, max, min, prod };

// `rows` independent reductions of `len` elements each. Element k of row r is computed by
// `element` (statements that set `double t`, seeing r, k and what `setup` declares); the reduced
// value `acc` becomes `finish` (an expression of acc and r). Long rows with few of them are split
// into chunks reduced in parallel and combined in chunk order, so the result is deterministic.
struct Reduction {
  std::string name; // a fresh kernel name (Emitter::name); chunked kernels append _part and _fin
  int64_t rows = 1, len = 1;
  std::vector<Arg> args;
  std::string setup; // statements per row (and chunk), before the loop over k
  std::string element;
  Combine combine = Combine::sum;
  std::string finish = "acc";
  // Where the finished values go: a tensor of `rows` elements (rounded to its type), or, when
  // unset, fresh double scratch.
  std::optional<Val> into;
};

// Emits the kernels of a reduction and returns where the finished values are.
Val reduce(Emitter& e, const Reduction& r);

// ----- op emitters ----------------------------------------------------------------------------

// What an op emitter sees: the node, its inputs and output as tensors, the emitter.
struct NodeCtx {
  Emitter& e;
  const OpNode& node;
  int index = 0;
  std::vector<Val> in;
  Val out;
  // A kernel name for this node: "n<index>_<op>[_<suffix>]".
  std::string kname(std::string_view suffix = {}) const;
};

using OpEmitter = std::function<void(NodeCtx&)>;

void add_linalg(std::map<std::string, OpEmitter, std::less<>>& m);
void add_conv_pool(std::map<std::string, OpEmitter, std::less<>>& m);
void add_norm(std::map<std::string, OpEmitter, std::less<>>& m);
void add_elementwise(std::map<std::string, OpEmitter, std::less<>>& m);
void add_reduce(std::map<std::string, OpEmitter, std::less<>>& m);
void add_loss(std::map<std::string, OpEmitter, std::less<>>& m);
void add_layout(std::map<std::string, OpEmitter, std::less<>>& m);
void add_recurrent(std::map<std::string, OpEmitter, std::less<>>& m);

// Every op emitter by op name.
const std::map<std::string, OpEmitter, std::less<>>& op_emitters();

// ----- attribute helpers ----------------------------------------------------------------------

// A per-spatial-dim attribute as PyTorch takes it (an int, a list of one, or a list of `sd`);
// `fallback` when absent.
std::vector<int64_t> spatial(const Attrs& a, std::string_view key, std::size_t sd,
                             std::vector<int64_t> fallback);
// A dim attribute normalised into [0, rank).
int64_t dim_of(int64_t dim, std::size_t rank);

} // namespace kb::codegen
