// The op registry: lookup, node checks (arity, attribute names) and float64 graph evaluation.
#include <algorithm>

#include "ops_internal.hpp"

namespace kb {
namespace {

// Prefixes errors of an op's callbacks with "<op>: " so every message names the op.
template <class R, class... Args>
std::function<R(Args...)> prefixed(const std::string& name, std::function<R(Args...)> fn) {
  if (!fn)
    return fn;
  return [name, fn = std::move(fn)](Args... args) -> R {
    try {
      return fn(std::forward<Args>(args)...);
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      std::string_view msg = e.what();
      if (msg.starts_with(name + ": "))
        throw;
      throw Error(name + ": " + std::string(msg));
    }
  };
}

std::vector<OpDef> build_registry() {
  std::vector<OpDef> ops;
  ops::add_linalg_ops(ops);
  ops::add_conv_ops(ops);
  ops::add_pool_ops(ops);
  ops::add_norm_ops(ops);
  ops::add_elementwise_ops(ops);
  ops::add_reduce_ops(ops);
  ops::add_loss_ops(ops);
  ops::add_layout_ops(ops);
  ops::add_recurrent_ops(ops);
  for (auto& op : ops) {
    op.infer = prefixed(op.name, std::move(op.infer));
    op.cost = prefixed(op.name, std::move(op.cost));
    op.cpu = prefixed(op.name, std::move(op.cpu));
    op.torch = prefixed(op.name, std::move(op.torch));
  }
  return ops;
}

std::string arity_text(const OpDef& op) {
  if (op.min_inputs == op.max_inputs)
    return fmt::format("{} input{}", op.min_inputs, op.min_inputs == 1 ? "" : "s");
  if (op.max_inputs == op.min_inputs + 1)
    return fmt::format("{} or {} inputs", op.min_inputs, op.max_inputs);
  return fmt::format("{} to {} inputs", op.min_inputs, op.max_inputs);
}

} // namespace

const std::vector<OpDef>& all_ops() {
  static const std::vector<OpDef> ops = build_registry();
  return ops;
}

const OpDef* find_op(std::string_view name) {
  for (const auto& op : all_ops())
    if (op.name == name)
      return &op;
  return nullptr;
}

ValueSpec check_node(const OpNode& node, std::span<const ValueSpec> inputs) {
  const OpDef* op = find_op(node.op);
  if (!op) {
    // Suggest the closest name when the typo is small.
    std::string best;
    std::size_t best_d = 3;
    for (const auto& o : all_ops()) {
      const std::size_t d = edit_distance(node.op, o.name);
      if (d < best_d) {
        best_d = d;
        best = o.name;
      }
    }
    if (best.empty())
      throw Error(fmt::format("unknown op '{}'", node.op));
    throw Error(fmt::format("unknown op '{}' (did you mean '{}'?)", node.op, best));
  }
  const int n = static_cast<int>(inputs.size());
  if (n < op->min_inputs || n > op->max_inputs)
    throw Error(fmt::format("{}: expected {}, got {}", op->name, arity_text(*op), n));
  for (const auto& [key, value] : node.attrs)
    if (std::find(op->attrs.begin(), op->attrs.end(), key) == op->attrs.end())
      throw Error(fmt::format("{}: unknown attribute '{}'", op->name, key));
  for (const auto& key : op->required_attrs)
    if (!node.attrs.contains(key))
      throw Error(fmt::format("{}: missing required attribute '{}'", op->name, key));
  for (std::size_t i = 0; i < inputs.size(); ++i)
    for (int64_t d : inputs[i].shape)
      if (d < 0)
        throw Error(
            fmt::format("{}: input {} has a negative dim: {}", op->name,
                        i < node.inputs.size() ? "'" + node.inputs[i] + "'" : std::to_string(i),
                        shape_str(inputs[i].shape)));
  return op->infer(node.attrs, inputs);
}

namespace {

std::string node_where(const OpNode& node, std::size_t index) {
  if (node.line > 0)
    return fmt::format("node {} ({}, line {})", index, node.op, node.line);
  return fmt::format("node {} ({})", index, node.op);
}

} // namespace

std::vector<HostTensor>
run_graph_cpu(const std::vector<OpNode>& graph,
              const std::map<std::string, HostTensor, std::less<>>& feeds,
              const std::vector<std::string>& outputs,
              const std::map<std::string, DType, std::less<>>& feed_dtypes) {
  struct Value {
    const HostTensor* tensor;
    ValueSpec spec;
  };
  std::map<std::string, Value, std::less<>> values;
  std::map<std::string, HostTensor, std::less<>> computed;

  // Feeds not given a dtype are f64, or i64 where some op takes them as class indices.
  std::map<std::string, DType, std::less<>> dtypes(feed_dtypes.begin(), feed_dtypes.end());
  for (const auto& node : graph)
    if (const OpDef* op = find_op(node.op))
      for (int pos : op->index_inputs)
        if (pos < static_cast<int>(node.inputs.size()) && feeds.contains(node.inputs[pos]))
          dtypes.try_emplace(node.inputs[pos], DType::i64);

  for (const auto& [name, t] : feeds) {
    if (t.size() != numel(t.shape))
      throw Error(fmt::format("run_graph_cpu: feed '{}' has {} values for shape {}", name, t.size(),
                              shape_str(t.shape)));
    auto it = dtypes.find(name);
    values.emplace(name, Value{&t, {t.shape, it == dtypes.end() ? DType::f64 : it->second}});
  }

  for (std::size_t i = 0; i < graph.size(); ++i) {
    const OpNode& node = graph[i];
    std::vector<ValueSpec> specs;
    std::vector<HostTensor> args;
    for (const auto& in : node.inputs) {
      auto it = values.find(in);
      if (it == values.end())
        throw Error(fmt::format("run_graph_cpu: {}: unknown input '{}'", node_where(node, i), in));
      specs.push_back(it->second.spec);
      args.push_back(*it->second.tensor);
    }
    if (values.contains(node.output))
      throw Error(fmt::format("run_graph_cpu: {}: output '{}' is already defined",
                              node_where(node, i), node.output));
    try {
      const ValueSpec out_spec = check_node(node, specs);
      HostTensor out(out_spec.shape);
      find_op(node.op)->cpu(node.attrs, args, out);
      auto [pos, ok] = computed.insert_or_assign(node.output, std::move(out));
      values.emplace(node.output, Value{&pos->second, out_spec});
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      throw Error(fmt::format("run_graph_cpu: {}: {}", node_where(node, i), e.what()));
    }
  }

  std::vector<HostTensor> result;
  for (const auto& name : outputs) {
    auto it = values.find(name);
    if (it == values.end())
      throw Error(fmt::format("run_graph_cpu: unknown output '{}'", name));
    result.push_back(*it->second.tensor);
  }
  return result;
}

std::vector<HostTensor> run_graph_cpu(const std::vector<OpNode>& graph,
                                      const std::map<std::string, HostTensor, std::less<>>& feeds,
                                      const std::vector<std::string>& outputs) {
  return run_graph_cpu(graph, feeds, outputs, {});
}

} // namespace kb
