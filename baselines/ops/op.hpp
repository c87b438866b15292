// The op library's host side: every op's argument checks, shape inference, cost model, float64
// CPU reference and PyTorch rendering. No CUDA here: the parent process and the catalog use it.
#pragma once

#include <array>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"

namespace kb {

// A dense row-major float64 tensor on the host, the currency of CPU references. Integer and
// boolean values are held exactly as doubles.
struct HostTensor {
  Shape shape;
  std::vector<double> data;

  HostTensor() = default;
  explicit HostTensor(Shape s)
      : shape(std::move(s)), data(static_cast<std::size_t>(numel(shape))) {}
  HostTensor(Shape s, std::vector<double> d) : shape(std::move(s)), data(std::move(d)) {}
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};

// Arithmetic and memory cost of one op application.
struct OpCost {
  double flops = 0.0;
  double bytes = 0.0; // minimum bytes read + written by a perfect implementation of this op alone
};

// One op of the library. All callbacks throw kb::Error with a precise message on bad arguments.
struct OpDef {
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;
  // Attribute names this op accepts (anything else is an error) and those it requires.
  std::vector<std::string> attrs;
  std::vector<std::string> required_attrs;
  // Output spec from input specs; checks arity-independent argument rules (ranks, matching dims,
  // attribute ranges). Arity and attribute names are checked by check_node() before this runs.
  std::function<ValueSpec(const Attrs&, std::span<const ValueSpec>)> infer;
  // Cost of the op on these inputs producing `out`.
  std::function<OpCost(const Attrs&, std::span<const ValueSpec>, const ValueSpec& out)> cost;
  // Float64 reference: computes `out` (already shaped by infer) from the inputs.
  std::function<void(const Attrs&, std::span<const HostTensor>, HostTensor& out)> cpu;
  // PyTorch expression for the op, given the Python names of its inputs, using only `torch` and
  // `F` (= torch.nn.functional), e.g. "F.conv2d(x, w, b, stride=4, padding=2)".
  std::function<std::string(const Attrs&, std::span<const std::string>)> torch;
  // True when the op's output is very sensitive to cancellation in its inputs (norms, softmax,
  // variance): problems with such ops get an ill-conditioned input distribution in checks.
  bool cancellation_sensitive = false;
  // Positions of inputs that hold integer class indices (i64), e.g. cross_entropy's target.
  std::vector<int> index_inputs;
};

// The registry of all ops, in a stable order.
const std::vector<OpDef>& all_ops();
// Finds an op by name; nullptr when unknown.
const OpDef* find_op(std::string_view name);

// Checks a node against its op: known op, arity, attribute names; then runs infer. Throws
// kb::Error (without file/line; the catalog adds them).
ValueSpec check_node(const OpNode& node, std::span<const ValueSpec> inputs);

// Evaluates a whole graph on the host in float64. `feeds` holds every input and parameter by
// name; returns the requested outputs in order. Throws kb::Error on unknown names.
std::vector<HostTensor> run_graph_cpu(const std::vector<OpNode>& graph,
                                      const std::map<std::string, HostTensor, std::less<>>& feeds,
                                      const std::vector<std::string>& outputs);
// As above with the dtype of each feed given (feeds not listed are f64, or i64 where an op takes
// them as class indices), so that dtype rules are checked as the problem declares them.
std::vector<HostTensor> run_graph_cpu(const std::vector<OpNode>& graph,
                                      const std::map<std::string, HostTensor, std::less<>>& feeds,
                                      const std::vector<std::string>& outputs,
                                      const std::map<std::string, DType, std::less<>>& feed_dtypes);

// ----- inputs on the host ---------------------------------------------------------------------

// Host twin of kb::gpu::fill: the n values of a tensor of `dtype` drawn from `dist` for (seed,
// stream_id), element i from the same Philox4x32-10 counter (i, stream_id) keyed by the seed and
// the same map to the distribution, rounded to `dtype` as the GPU stores them. Uniform, randint
// and constant draws equal the GPU's; normal draws may differ in the last bit of the double before
// rounding (cos(2 pi u) on the host, cospi(2 u) on the GPU). Throws kb::Error on a bad
// distribution (uniform/randint with b <= a, negative std).
std::vector<double> draw_host(const Distribution& dist, DType dtype, int64_t n, uint64_t seed,
                              uint64_t stream_id);
// One Philox4x32-10 block (Random123's definition) as the generator above uses it.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);
// v rounded to the nearest value of `t`: f32/f16/bf16 to nearest, ties to even (overflow to
// infinity), integers truncated toward zero (kb::Error when out of range), b8 as v != 0.
double round_to_dtype(double v, DType t);
// The values as raw little-endian elements of `t` (what kbench-baseline dump writes), each rounded
// as round_to_dtype does.
std::vector<unsigned char> encode_dtype(std::span<const double> values, DType t);

} // namespace kb
