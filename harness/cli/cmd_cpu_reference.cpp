// `kbench cpu-reference` (hidden): a problem's inputs and parameters for one seed, drawn on the
// host as the harness draws them, and its float64 CPU reference outputs, written in the dump
// format of `kbench-baseline dump` (raw little-endian tensors and manifest.json) so that
// tools/torch_crosscheck.py --cpu can run the PyTorch rendering on the same tensors without a GPU.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "commands.hpp"
#include "core.hpp"
#include "op.hpp"

namespace {

namespace fs = std::filesystem;

void write_bytes(const fs::path& path, std::span<const unsigned char> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f)
    throw kb::Error(fmt::format("cannot write {}", path.string()));
}

nlohmann::json tensor_entry(const std::string& name, const std::string& role, kb::DType t,
                            const kb::Shape& shape, const std::string& file) {
  return {{"name", name},
          {"role", role},
          {"dtype", std::string(kb::dtype_name(t))},
          {"shape", shape},
          {"file", file}};
}

// Draws every input and parameter (stream ids 0, 1, ... over inputs then parameters, as the
// worker and kbench-baseline number them), runs run_graph_cpu and writes the dump.
void write_cpu_reference(const kb::Problem& p, uint64_t seed, const fs::path& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec)
    throw kb::Error(fmt::format("cannot create {}: {}", out.string(), ec.message()));
  std::map<std::string, kb::HostTensor, std::less<>> feeds;
  std::map<std::string, kb::DType, std::less<>> dtypes;
  nlohmann::json tensors = nlohmann::json::array();
  nlohmann::json input_names = nlohmann::json::array(), param_names = nlohmann::json::array();
  uint64_t stream_id = 0;
  for (const auto* list : {&p.inputs, &p.params}) {
    const std::string role = list == &p.inputs ? "input" : "param";
    for (const kb::TensorSpec& spec : *list) {
      std::vector<double> values =
          kb::draw_host(spec.dist, spec.dtype, kb::numel(spec.shape), seed, stream_id++);
      const std::string file = fmt::format("{}.{}.bin", role, spec.name);
      write_bytes(out / file, kb::encode_dtype(values, spec.dtype));
      tensors.push_back(tensor_entry(spec.name, role, spec.dtype, spec.shape, file));
      (list == &p.inputs ? input_names : param_names).push_back(spec.name);
      feeds[spec.name] = kb::HostTensor(spec.shape, std::move(values));
      dtypes[spec.name] = spec.dtype;
    }
  }
  const std::vector<kb::HostTensor> results = kb::run_graph_cpu(p.graph, feeds, p.outputs, dtypes);
  for (std::size_t i = 0; i < p.outputs.size(); ++i) {
    const std::string file = fmt::format("reference.{}.bin", p.outputs[i]);
    write_bytes(out / file, kb::encode_dtype(results[i].data, kb::DType::f64));
    tensors.push_back(
        tensor_entry(p.outputs[i], "reference", kb::DType::f64, results[i].shape, file));
  }
  const nlohmann::json manifest = {
      {"problem", p.id},
      {"source_path", p.source_path},
      {"seed", seed},
      {"allow_tf32", p.precision.allow_tf32},
      {"generator", "host Philox4x32-10 (kb::draw_host, the host twin of kb::gpu::fill)"},
      {"inputs", input_names},
      {"params", param_names},
      {"outputs", p.outputs},
      {"tensors", tensors}};
  kb::write_file_atomic((out / "manifest.json").string(), kb::dump_json(manifest, 2) + "\n");
}

const kb::cli::CommandRegistrar k_cpu_reference(950, [](CLI::App& app,
                                                        std::function<void(int)> set_exit) {
  struct Options {
    std::string problem, levels_dir, out;
    uint64_t seed = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "cpu-reference", "Draw a problem's inputs for a seed on the host and write them with "
                       "its float64 CPU reference outputs (kbench-baseline's dump format)");
  cmd->group(""); // hidden: a tool for tools/torch_crosscheck.py --cpu
  cmd->add_option("problem", opt->problem, "Problem id (l1/softmax_4096x65536) or YAML path")
      ->required();
  cmd->add_option("--seed", opt->seed, "Input seed")->capture_default_str();
  cmd->add_option("--out", opt->out, "Output folder (created)")->required();
  cmd->add_option("--levels-dir", opt->levels_dir, "Root holding level1/, level2/, ...");
  cmd->callback([opt, set_exit] {
    const std::string dir = opt->levels_dir.empty() ? kb::default_levels_dir() : opt->levels_dir;
    write_cpu_reference(kb::cli::resolve_problem(opt->problem, dir), opt->seed, opt->out);
    set_exit(0);
  });
});

} // namespace
