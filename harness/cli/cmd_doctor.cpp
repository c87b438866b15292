// `kbench doctor [--json] [--calibrate]`: what GPUs, driver and libraries this machine offers
// (asked of a worker process; kbench itself never touches the GPU), the roofline ceilings a run
// would use on each GPU, and optionally the measured bandwidth and GEMM rates, cached per GPU
// model beside the results database (docs/ceilings.md).
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "core.hpp"
#include "eval.hpp"
#include "runner.hpp"

namespace {

std::string version_str(int v, int major_div, int minor_div) {
  if (v <= 0)
    return "missing";
  return fmt::format("{}.{}", v / major_div, (v % major_div) / minor_div);
}

struct DoctorArgs {
  bool json = false;
  bool calibrate = false;
  std::string output; // empty: the GPU model's cache beside db
  std::string db = "results/kbench.db";
  int gpu = 0;
  std::string worker;
};

const kb::cli::CommandRegistrar k_doctor(30, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto args = std::make_shared<DoctorArgs>();
  auto* cmd = app.add_subcommand("doctor", "Check GPUs, driver, CUDA, cuBLAS, cuDNN and nvcc");
  cmd->add_flag("--json", args->json, "Print the report as JSON");
  cmd->add_flag("--calibrate", args->calibrate,
                "Measure copy bandwidth and GEMM rates of --gpu and cache them for the roofline "
                "figures of later runs on this GPU model");
  cmd->add_option("--output", args->output,
                  "Where --calibrate writes (default: calibration-<GPU model>.json beside --db, "
                  "the cache `kbench run` reads)");
  cmd->add_option("--db", args->db, "Results database whose calibration cache is meant")
      ->capture_default_str();
  cmd->add_option("--gpu", args->gpu, "GPU to calibrate");
  cmd->add_option("--worker", args->worker, "kbench-worker to use (default: beside kbench)");
  cmd->callback([args, set_exit] {
    const std::string worker = args->worker.empty() ? kb::default_worker_path() : args->worker;
    const kb::DoctorReport d = kb::run_doctor(worker);
    nlohmann::json j = d;
    const bool have_gpu = d.worker_ran && !d.gpus.empty();
    std::string output = args->output;
    if (have_gpu && args->calibrate) {
      const kb::GpuCeilings c = kb::run_calibrate(worker, args->gpu);
      if (output.empty())
        output = kb::runner::calibration_cache_path(args->db, c.gpu_name);
      const std::filesystem::path out(output);
      if (out.has_parent_path())
        std::filesystem::create_directories(out.parent_path());
      kb::write_file_atomic(output, nlohmann::json(c).dump(2) + "\n");
      j["calibration"] = c;
      j["calibration_file"] = output;
    }
    // The ceilings a `kbench run --db DB` would use on each GPU (without measuring anything).
    std::vector<std::string> ceilings;
    nlohmann::json jc = nlohmann::json::array();
    for (const auto& g : d.gpus) {
      const auto r = kb::runner::resolve_ceilings("", args->db, g, kb::runner::CalibrateFn{});
      ceilings.push_back(fmt::format("GPU {}: {} ({})", g.index, r.source,
                                     kb::runner::ceilings_figures(r.ceilings)));
      jc.push_back({{"gpu", g.index}, {"source", r.source}, {"ceilings", r.ceilings}});
    }
    j["ceilings"] = jc;
    if (args->json) {
      fmt::print("{}\n", j.dump(2));
    } else {
      for (const auto& g : d.gpus)
        fmt::print("GPU {}      {} (compute {}.{}, {}, {} SMs, {:.1f} GiB, L2 {:.0f} MiB, "
                   "SM clock {} MHz, memory clock {} MHz)\n",
                   g.index, g.name, g.cc_major, g.cc_minor, g.arch(), g.sm_count,
                   static_cast<double>(g.memory_bytes) / (1ull << 30),
                   static_cast<double>(g.l2_bytes) / (1ull << 20), g.sm_clock_mhz,
                   g.memory_clock_mhz);
      fmt::print("driver     {}\n", version_str(d.driver_version, 1000, 10));
      fmt::print("runtime    {}\n", version_str(d.runtime_version, 1000, 10));
      fmt::print("cuBLAS     {}\n", version_str(d.cublas_version, 10000, 100));
      fmt::print("cuDNN      {}\n", version_str(d.cudnn_version, 10000, 100));
      fmt::print("nvcc       {}\n", d.nvcc_release.empty() ? "missing" : d.nvcc_release);
      if (j.contains("calibration")) {
        const auto c = j["calibration"].get<kb::GpuCeilings>();
        fmt::print("calibrated {}: copy {:.0f} GB/s, FP32 {:.1f}, TF32 {:.1f}, FP16 {:.1f}, "
                   "BF16 {:.1f} TFLOP/s -> {}\n",
                   c.gpu_name, c.bandwidth_gbs, c.fp32_tflops, c.tf32_tflops, c.fp16_tflops,
                   c.bf16_tflops, output);
      }
      for (const auto& line : ceilings)
        fmt::print("ceilings   {}\n", line);
      if (!d.missing.empty())
        fmt::print("missing    {}\n", fmt::join(d.missing, "; "));
    }
    if (!have_gpu) {
      fmt::print(stderr, "kbench: error: no usable GPU: {}\n",
                 d.error.empty() ? "the worker found no CUDA device" : d.error);
      set_exit(1);
      return;
    }
    set_exit(0);
  });
});

} // namespace
