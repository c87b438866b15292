// `kbench ops` (hidden): the op registry as JSON (name, arity, accepted and required attributes,
// index inputs), so that tools/kernelbench_import.py emits only ops this binary knows.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "core.hpp"
#include "op.hpp"

namespace {

nlohmann::json ops_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const kb::OpDef& op : kb::all_ops())
    out.push_back({{"name", op.name},
                   {"min_inputs", op.min_inputs},
                   {"max_inputs", op.max_inputs},
                   {"attrs", op.attrs},
                   {"required_attrs", op.required_attrs},
                   {"index_inputs", op.index_inputs},
                   {"cancellation_sensitive", op.cancellation_sensitive}});
  return out;
}

const kb::cli::CommandRegistrar k_ops(960, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto* cmd = app.add_subcommand("ops", "Print the op registry as JSON (one object per op)");
  cmd->group(""); // hidden: a tool for tools/kernelbench_import.py
  cmd->callback([set_exit] {
    fmt::print("{}\n", kb::dump_json(ops_json(), 2));
    set_exit(0);
  });
});

} // namespace
