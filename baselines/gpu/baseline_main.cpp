// kbench-baseline: runs a problem's GPU baseline and float64 reference from a seed and dumps every
// tensor as raw little-endian bytes with a manifest.json, for cross-checks against PyTorch.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core.hpp"
#include "gpu_ops.hpp"

namespace {

namespace fs = std::filesystem;
using kb::gpu::DeviceBuffer;
using kb::gpu::DeviceTensor;

struct Dumped {
  std::string name, role;
  DeviceTensor tensor;
};

void write_tensor(const fs::path& path, const DeviceTensor& t, cudaStream_t s) {
  std::vector<char> host(t.bytes());
  KB_CUDA_CHECK(cudaStreamSynchronize(s));
  if (!host.empty())
    KB_CUDA_CHECK(cudaMemcpy(host.data(), t.data, host.size(), cudaMemcpyDeviceToHost));
  std::ofstream f(path, std::ios::binary);
  f.write(host.data(), static_cast<std::streamsize>(host.size()));
  if (!f)
    throw kb::Error(fmt::format("cannot write {}", path.string()));
}

int dump(const std::string& problem_path, uint64_t seed, const std::string& out_dir) {
  kb::Problem p = nlohmann::json::parse(kb::read_file(problem_path)).get<kb::Problem>();
  fs::create_directories(out_dir);
  cudaStream_t s = nullptr;
  KB_CUDA_CHECK(cudaStreamCreate(&s));
  std::vector<DeviceBuffer> buffers;
  std::vector<Dumped> dumped;
  auto alloc = [&](const kb::Shape& shape, kb::DType t) {
    buffers.emplace_back(std::max<std::size_t>(8, kb::numel(shape) * kb::dtype_size(t)));
    return DeviceTensor{buffers.back().get(), t, shape};
  };
  std::vector<DeviceTensor> inputs;
  uint64_t stream_id = 0;
  for (const auto* list : {&p.inputs, &p.params})
    for (const kb::TensorSpec& spec : *list) {
      DeviceTensor t = alloc(spec.shape, spec.dtype);
      kb::gpu::fill(t, spec.dist, seed, stream_id++, s);
      inputs.push_back(t);
      dumped.push_back({spec.name, list == &p.inputs ? "input" : "param", t});
    }
  std::vector<DeviceTensor> baseline, reference;
  for (const auto& name : p.outputs) {
    const kb::ValueSpec& v = p.output_spec(name);
    baseline.push_back(alloc(v.shape, v.dtype));
    reference.push_back(alloc(v.shape, kb::DType::f64));
    kb::gpu::poison(baseline.back(), s);
    kb::gpu::poison(reference.back(), s);
  }
  {
    kb::gpu::Context ctx(s, p.precision.allow_tf32);
    kb::gpu::GraphRunner fast(ctx, p, false);
    fast.run(inputs, baseline);
    kb::gpu::GraphRunner exact(ctx, p, true);
    exact.run(inputs, reference);
    KB_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  for (std::size_t i = 0; i < p.outputs.size(); ++i) {
    dumped.push_back({p.outputs[i], "baseline", baseline[i]});
    dumped.push_back({p.outputs[i], "reference", reference[i]});
  }
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& d : dumped) {
    const std::string file = fmt::format("{}.{}.bin", d.role, d.name);
    write_tensor(fs::path(out_dir) / file, d.tensor, s);
    tensors.push_back({{"name", d.name},
                       {"role", d.role},
                       {"dtype", std::string(kb::dtype_name(d.tensor.dtype))},
                       {"shape", d.tensor.shape},
                       {"file", file}});
  }
  nlohmann::json manifest = {{"problem", p.id},
                             {"seed", seed},
                             {"allow_tf32", p.precision.allow_tf32},
                             {"tensors", tensors}};
  kb::write_file_atomic((fs::path(out_dir) / "manifest.json").string(), manifest.dump(2) + "\n");
  cudaStreamDestroy(s);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kbench-baseline: GPU baseline and float64 reference of one problem"};
  app.require_subcommand(1);
  auto* cmd = app.add_subcommand("dump", "fill inputs from a seed, run baseline and reference, "
                                         "write raw tensors and manifest.json");
  std::string problem, out;
  uint64_t seed = 0;
  cmd->add_option("--problem", problem, "problem as JSON (kb::Problem)")->required();
  cmd->add_option("--seed", seed, "input seed")->required();
  cmd->add_option("--out", out, "output directory")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    return dump(problem, seed, out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kbench-baseline: error: %s\n", e.what());
    return 1;
  }
}
