// GraphRunner: a problem's graph executed op by op on the GPU with intermediates allocated once,
// optionally entirely in float64.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "gpu_internal.hpp"
#include "op.hpp"

namespace kb::gpu {

struct GraphRunner::Impl {
  struct Step {
    const OpNode* node = nullptr;
    std::vector<int> inputs; // value ids
    int output = -1;
    bool alias = false; // reshape: the output shares the input's memory
  };
  Context* ctx = nullptr;
  bool as_f64 = false;
  std::vector<std::string> names;
  std::vector<ValueSpec> specs;       // as computed (f64 in as_f64 mode)
  std::vector<DeviceBuffer> buffers;  // per value; empty for caller-provided and aliased values
  std::vector<void*> ptrs;            // per value, resolved at each run
  std::vector<ValueSpec> input_specs; // declared specs of inputs then params
  std::vector<Step> steps;
  std::vector<int> output_ids;
  std::vector<bool> is_output;
  std::vector<DeviceTensor> args;
  // Per-step timing (off unless asked for): CUDA events around each step, summed per step.
  bool timing = false;
  std::vector<cudaEvent_t> events; // two per step
  std::vector<double> step_ms;
  int timed_runs = 0;
  ~Impl() {
    for (cudaEvent_t e : events)
      cudaEventDestroy(e);
  }
};

namespace {

DType computed_dtype(DType declared, bool as_f64) {
  return as_f64 && is_floating(declared) ? DType::f64 : declared;
}

} // namespace

GraphRunner::GraphRunner(Context& ctx, const Problem& problem, bool as_f64)
    : m_impl(std::make_unique<Impl>()) {
  Impl& m = *m_impl;
  m.ctx = &ctx;
  m.as_f64 = as_f64;
  std::map<std::string, int, std::less<>> ids;
  std::map<std::string, ValueSpec, std::less<>> declared; // specs in the problem's dtypes
  auto add_value = [&](const std::string& name, const ValueSpec& spec) {
    if (ids.contains(name))
      throw Error(fmt::format("{}: value '{}' is defined twice", problem.id, name));
    ids[name] = static_cast<int>(m.names.size());
    declared[name] = spec;
    m.names.push_back(name);
    m.specs.push_back({spec.shape, computed_dtype(spec.dtype, as_f64)});
    m.buffers.emplace_back();
  };
  for (const auto* list : {&problem.inputs, &problem.params})
    for (const TensorSpec& t : *list) {
      add_value(t.name, {t.shape, t.dtype});
      m.input_specs.push_back({t.shape, t.dtype});
    }
  const int n_inputs = static_cast<int>(m.names.size());
  for (const OpNode& node : problem.graph) {
    Impl::Step step;
    step.node = &node;
    std::vector<ValueSpec> in_specs;
    for (const auto& in : node.inputs) {
      auto it = ids.find(in);
      if (it == ids.end())
        throw Error(fmt::format("{}: {} (line {}): unknown input '{}'", problem.id, node.op,
                                node.line, in));
      step.inputs.push_back(it->second);
      in_specs.push_back(declared[in]);
    }
    ValueSpec out_spec;
    if (auto it = problem.values.find(node.output); it != problem.values.end())
      out_spec = it->second;
    else
      out_spec = check_node(node, in_specs);
    add_value(node.output, out_spec);
    step.output = ids[node.output];
    m.steps.push_back(std::move(step));
  }
  m.is_output.assign(m.names.size(), false);
  for (const auto& name : problem.outputs) {
    auto it = ids.find(name);
    if (it == ids.end())
      throw Error(fmt::format("{}: unknown output '{}'", problem.id, name));
    m.output_ids.push_back(it->second);
    m.is_output[it->second] = true;
  }
  // Conversion buffers for inputs computed in another dtype than declared (as_f64).
  for (int i = 0; i < n_inputs; ++i)
    if (m.specs[i].dtype != m.input_specs[i].dtype)
      m.buffers[i] = DeviceBuffer(static_cast<std::size_t>(numel(m.specs[i].shape)) *
                                  dtype_size(m.specs[i].dtype));
  for (auto& step : m.steps) {
    const int v = step.output;
    step.alias = step.node->op == "reshape" && !m.is_output[v] && step.inputs.size() == 1 &&
                 m.specs[step.inputs[0]].dtype == m.specs[v].dtype;
    if (!step.alias && !m.is_output[v])
      m.buffers[v] = DeviceBuffer(static_cast<std::size_t>(numel(m.specs[v].shape)) *
                                  dtype_size(m.specs[v].dtype));
  }
  m.ptrs.assign(m.names.size(), nullptr);
}

GraphRunner::~GraphRunner() = default;

void GraphRunner::run(std::span<const DeviceTensor> inputs, std::span<const DeviceTensor> outputs) {
  Impl& m = *m_impl;
  cudaStream_t s = m.ctx->stream();
  if (inputs.size() != m.input_specs.size())
    throw Error(fmt::format("GraphRunner: expected {} inputs and params, got {}",
                            m.input_specs.size(), inputs.size()));
  if (outputs.size() != m.output_ids.size())
    throw Error(fmt::format("GraphRunner: expected {} outputs, got {}", m.output_ids.size(),
                            outputs.size()));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const DeviceTensor& t = inputs[i];
    if (t.shape != m.specs[i].shape)
      throw Error(fmt::format("GraphRunner: input '{}' has shape {}, expected {}", m.names[i],
                              shape_str(t.shape), shape_str(m.specs[i].shape)));
    if (t.dtype == m.specs[i].dtype) {
      m.ptrs[i] = t.data;
    } else if (t.dtype == m.input_specs[i].dtype) {
      DeviceTensor dst{m.buffers[i].get(), m.specs[i].dtype, m.specs[i].shape};
      convert(t, dst, s);
      m.ptrs[i] = dst.data;
    } else {
      throw Error(fmt::format("GraphRunner: input '{}' has dtype {}, expected {}", m.names[i],
                              dtype_name(t.dtype), dtype_name(m.specs[i].dtype)));
    }
  }
  // Outputs the graph writes straight into the caller's memory when the dtypes agree.
  std::vector<int> direct(m.names.size(), -1);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const int v = m.output_ids[k];
    const DeviceTensor& o = outputs[k];
    if (o.shape != m.specs[v].shape)
      throw Error(fmt::format("GraphRunner: output '{}' has shape {}, expected {}", m.names[v],
                              shape_str(o.shape), shape_str(m.specs[v].shape)));
    if (v >= static_cast<int>(inputs.size()) && o.dtype == m.specs[v].dtype && direct[v] < 0)
      direct[v] = static_cast<int>(k);
  }
  for (const auto& step : m.steps) {
    const int v = step.output;
    if (step.alias) {
      m.ptrs[v] = m.ptrs[step.inputs[0]];
      continue;
    }
    if (direct[v] >= 0) {
      m.ptrs[v] = outputs[direct[v]].data;
    } else if (m.buffers[v].get()) {
      m.ptrs[v] = m.buffers[v].get();
    } else {
      m.buffers[v] = DeviceBuffer(static_cast<std::size_t>(numel(m.specs[v].shape)) *
                                  dtype_size(m.specs[v].dtype));
      m.ptrs[v] = m.buffers[v].get();
    }
    const std::size_t si = static_cast<std::size_t>(&step - m.steps.data());
    if (m.timing)
      KB_CUDA_CHECK(cudaEventRecord(m.events[2 * si], s));
    m.args.clear();
    for (int in : step.inputs)
      m.args.push_back(DeviceTensor{m.ptrs[in], m.specs[in].dtype, m.specs[in].shape});
    try {
      run_op(*m.ctx, *step.node, m.args,
             DeviceTensor{m.ptrs[v], m.specs[v].dtype, m.specs[v].shape});
    } catch (const Error& e) {
      if (step.node->line > 0)
        throw Error(fmt::format("{} (line {}): {}", step.node->output, step.node->line, e.what()));
      throw Error(fmt::format("{}: {}", step.node->output, e.what()));
    }
    if (m.timing)
      KB_CUDA_CHECK(cudaEventRecord(m.events[2 * si + 1], s));
  }
  if (m.timing) {
    KB_CUDA_CHECK(cudaStreamSynchronize(s));
    for (std::size_t i = 0; i < m.steps.size(); ++i) {
      if (m.steps[i].alias)
        continue;
      float ms = 0.0f;
      KB_CUDA_CHECK(cudaEventElapsedTime(&ms, m.events[2 * i], m.events[2 * i + 1]));
      m.step_ms[i] += ms;
    }
    ++m.timed_runs;
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const int v = m.output_ids[k];
    if (direct[v] == static_cast<int>(k))
      continue;
    DeviceTensor src{m.ptrs[v], m.specs[v].dtype, m.specs[v].shape};
    convert(src, outputs[k], s);
  }
}

void GraphRunner::set_step_timing(bool on) {
  Impl& m = *m_impl;
  if (on && m.events.empty()) {
    m.events.resize(2 * m.steps.size(), nullptr);
    for (cudaEvent_t& e : m.events)
      KB_CUDA_CHECK(cudaEventCreate(&e));
  }
  m.timing = on;
  m.step_ms.assign(m.steps.size(), 0.0);
  m.timed_runs = 0;
}

std::vector<GraphRunner::StepTime> GraphRunner::step_times() const {
  const Impl& m = *m_impl;
  std::vector<StepTime> out;
  for (std::size_t i = 0; i < m.steps.size() && m.timed_runs > 0; ++i)
    if (!m.steps[i].alias)
      out.push_back({m.steps[i].node->output, m.steps[i].node->op, m.step_ms[i] / m.timed_runs});
  return out;
}

} // namespace kb::gpu
