// `kbench eval --problem ID FILE.cu`: compiles, screens, runs, checks and times one candidate and
// prints the verdict. Exit 0 whenever the evaluation ran, whatever the verdict.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "commands.hpp"
#include "core.hpp"
#include "eval.hpp"
#include "runner.hpp"

namespace {

namespace fs = std::filesystem;

// A problem by id ("l1/softmax_4096x65536") or by the path of its YAML file.
kb::Problem find_problem(const std::string& id_or_path, const std::string& levels_dir) {
  std::error_code ec;
  if (id_or_path.ends_with(".yaml") || id_or_path.ends_with(".yml")) {
    if (!fs::is_regular_file(id_or_path, ec))
      throw kb::Error(fmt::format("no such problem file: {}", id_or_path));
    return kb::load_problem(id_or_path, fs::path(id_or_path).parent_path().parent_path().string());
  }
  const kb::Catalog c = kb::load_catalog(levels_dir);
  if (const kb::Problem* p = c.find(id_or_path))
    return *p;
  for (const auto& e : c.errors)
    if (fs::path(e.file).stem().string() == fs::path(id_or_path).filename().string())
      throw kb::InputError(e.file, e.line, e.field, e.message);
  throw kb::Error(
      fmt::format("unknown problem '{}' in {} (see `kbench list`)", id_or_path, levels_dir));
}

// Roofline ceilings of `kbench eval` (docs/ceilings.md): an explicit --calibration file; else a
// calibration cached beside the database for this GPU's model (the doctor is asked for the GPU's
// name only when some calibration file exists there), else the model's datasheet entry. When
// neither the GPU nor its model is known, the ceilings stay empty and the evaluator takes the
// datasheet of the GPU its reference worker reports.
struct EvalCeilings {
  kb::GpuCeilings ceilings; // empty gpu_name: the evaluator's choice
  std::string source;
};

bool any_calibration_file(const std::string& db) {
  std::error_code ec;
  const fs::path dir = fs::path(db).parent_path();
  if (fs::is_regular_file("results/calibration.json", ec) ||
      fs::is_regular_file(dir / "calibration.json", ec))
    return true;
  for (const auto& e : fs::directory_iterator(dir.empty() ? fs::path(".") : dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("calibration-") && name.ends_with(".json"))
      return true;
  }
  return false;
}

EvalCeilings load_ceilings(const std::string& explicit_file, const std::string& db, int gpu) {
  const std::string evaluators =
      "datasheet of the GPU the reference worker reports (chosen by the evaluator)";
  if (!explicit_file.empty()) {
    kb::GpuInfo unnamed;
    unnamed.index = gpu;
    auto r = kb::runner::resolve_ceilings(explicit_file, db, unnamed, kb::runner::CalibrateFn{});
    return {r.ceilings, r.source};
  }
  if (!any_calibration_file(db))
    return {{}, evaluators};
  const kb::DoctorReport d = kb::run_doctor(kb::default_worker_path());
  for (const auto& g : d.gpus) {
    if (g.index != gpu)
      continue;
    auto r = kb::runner::resolve_ceilings("", db, g, kb::runner::CalibrateFn{});
    if (r.origin == kb::runner::CeilingsOrigin::guess)
      break;
    return {r.ceilings, r.source};
  }
  return {{}, evaluators};
}

std::string format_time(const kb::TimingStats& t, bool mean) {
  return fmt::format("{:.4f} ms {} (stderr {:.4f} ms, min {:.4f} ms, {} samples, {})",
                     mean ? t.mean_ms : t.median_ms, mean ? "mean" : "median",
                     mean ? t.stderr_ms : t.median_stderr_ms, t.min_ms, t.samples, t.stop_reason);
}

void print_result(const kb::Problem& p, const std::string& file, const kb::EvalResult& r,
                  const EvalCeilings& ceilings) {
  const bool mean = kb::is_kernelbench(r.protocol);
  fmt::print("problem    {} ({})\n", p.id, p.name);
  fmt::print("candidate  {}\n", file);
  fmt::print("protocol   {}\n", kb::protocol_name(r.protocol));
  fmt::print("outcome    {}\n", kb::outcome_name(r.outcome));
  if (!r.message.empty())
    fmt::print("message    {}\n", r.message);
  if (r.candidate_time)
    fmt::print("time       {}\n", format_time(*r.candidate_time, mean));
  if (r.baseline_time)
    fmt::print("baseline   {}\n", format_time(*r.baseline_time, mean));
  if (r.outcome == kb::Outcome::correct)
    fmt::print("speedup    {:.3f}x   roofline {:.1f}%\n", r.speedup, r.roofline_pct);
  fmt::print("ceilings   {}{}\n", ceilings.source,
             ceilings.ceilings.gpu_name.empty()
                 ? ""
                 : fmt::format(" ({})", kb::runner::ceilings_figures(ceilings.ceilings)));
  const auto flags = kb::flag_names(r.flags);
  fmt::print("flags      {}\n", flags.empty() ? "-" : fmt::format("{}", fmt::join(flags, ", ")));
  if (!r.library_calls.empty())
    fmt::print("libraries  {}\n", fmt::join(r.library_calls, ", "));
  fmt::print("phases     compile {:.2f} s{}, start {:.2f} s, check {:.2f} s, time {:.2f} s\n",
             r.compile_s, r.compile_cached ? " (cached)" : "", r.start_s, r.check_s, r.time_s);
  if (r.outcome == kb::Outcome::compile_error && !r.compile_log.empty())
    fmt::print("\ncompile log:\n{}\n", r.compile_log);
}

struct EvalArgs {
  std::string problem;
  std::string file;
  bool json = false;
  int gpu = 0;
  std::string protocol = "kbench";
  std::string levels_dir;
  std::string cache_dir;
  bool no_cache = false;
  std::string arch; // empty: the GPU's
  double timeout_s = 180.0;
  double timeout_floor_s = 5.0;
  double timeout_factor = 500.0;
  double compile_timeout_s = 120.0;
  bool allow_library_calls = false;
  double speedup_threshold = 10.0;
  std::string calibration;
  std::string db = "results/kbench.db";
  int seeds = 5;
  double time_cap_s = 5.0;
  bool hold_launch = false;
};

const kb::cli::CommandRegistrar k_eval(20, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Compile, check and time one candidate kernel");
  cmd->add_option("--problem", args->problem, "Problem id (see `kbench list`) or YAML path")
      ->required();
  cmd->add_option("file", args->file, "Candidate CUDA source implementing kbench/kb_abi.h")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", args->json, "Print the full result as JSON");
  cmd->add_option("--gpu", args->gpu, "GPU index (CUDA_VISIBLE_DEVICES of the workers)");
  cmd->add_option("--protocol", args->protocol,
                  "kbench (default), kernelbench-v0.1 or kernelbench (docs/evaluation.md)")
      ->check(CLI::IsMember({"kbench", "kernelbench-v0.1", "kernelbench"}));
  cmd->add_option("--levels-dir", args->levels_dir, "Problem root (default: $KB_LEVELS_DIR)");
  cmd->add_option("--cache-dir", args->cache_dir, "Compile cache (default ~/.cache/kbench)");
  cmd->add_flag("--no-cache", args->no_cache, "Compile without the cache");
  cmd->add_option("--arch", args->arch,
                  "nvcc architecture(s) for the candidate, e.g. sm_89 or sm_80,sm_90a (default: "
                  "the GPU's)");
  cmd->add_option("--timeout", args->timeout_s,
                  "Watchdog ceiling: no candidate command waits longer, seconds")
      ->capture_default_str();
  cmd->add_option("--timeout-floor", args->timeout_floor_s,
                  "Watchdog floor: every candidate command may take this long, seconds")
      ->capture_default_str();
  cmd->add_option("--timeout-factor", args->timeout_factor,
                  "Watchdog: times the baseline's time a candidate may take before it is hung")
      ->capture_default_str();
  cmd->add_option("--compile-timeout", args->compile_timeout_s, "nvcc timeout, seconds");
  cmd->add_flag("--hold-launch", args->hold_launch,
                "Hold the stream until the call is enqueued, so events time the GPU's work without "
                "the host's launch path (kbench protocol; docs/evaluation.md)");
  cmd->add_flag("--allow-library-calls", args->allow_library_calls,
                "Let candidates call cuBLAS/cuDNN (always recorded)");
  cmd->add_option("--speedup-threshold", args->speedup_threshold,
                  "Flag speedups above this for review (default 10)");
  cmd->add_option("--calibration", args->calibration,
                  "Roofline ceilings JSON (default: the calibration cached beside --db for this "
                  "GPU model, else its datasheet)");
  cmd->add_option("--db", args->db, "Results database whose calibration cache is read")
      ->capture_default_str();
  cmd->add_option("--seeds", args->seeds, "Seeds per input distribution (default 5)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--time-cap", args->time_cap_s, "Cap on each timing series, seconds");
  cmd->callback([args, set_exit] {
    const std::string levels =
        args->levels_dir.empty() ? kb::default_levels_dir() : args->levels_dir;
    const kb::Problem problem = find_problem(args->problem, levels);
    const std::string source = kb::read_file(args->file);
    kb::EvalOptions opts;
    const auto protocol = kb::parse_protocol(args->protocol);
    if (!protocol)
      throw kb::InputError(
          "command line", 0, "--protocol",
          fmt::format("'{}' is not one of {}", args->protocol, kb::protocol_names()));
    opts.protocol = *protocol;
    opts.gpu = args->gpu;
    opts.compile.arch = args->arch;
    opts.compile.cache_dir = args->cache_dir;
    opts.compile.use_cache = !args->no_cache;
    opts.compile.timeout_s = args->compile_timeout_s;
    opts.compile.allow_library_calls = args->allow_library_calls;
    opts.timeout_s = args->timeout_s;
    opts.timeout_floor_s = args->timeout_floor_s;
    opts.timeout_factor = args->timeout_factor;
    opts.speedup_threshold = args->speedup_threshold;
    opts.seeds = args->seeds;
    opts.timing.time_cap_s = args->time_cap_s;
    opts.timing.hold_launch = args->hold_launch;
    EvalCeilings ceilings = load_ceilings(args->calibration, args->db, args->gpu);
    opts.ceilings = ceilings.ceilings;
    kb::Evaluator evaluator(opts);
    const kb::EvalResult r = evaluator.evaluate(problem, source);
    if (ceilings.ceilings.gpu_name.empty() && !evaluator.ceilings().gpu_name.empty()) {
      // The evaluator chose once it knew the GPU: say which figures it used.
      ceilings.ceilings = evaluator.ceilings();
      ceilings.source =
          "chosen by the evaluator for the GPU that ran it: " + ceilings.ceilings.gpu_name;
    }
    if (args->json) {
      nlohmann::json j = r;
      j["problem"] = problem.id;
      j["candidate"] = args->file;
      j["flag_names"] = kb::flag_names(r.flags);
      j["ceilings_source"] = ceilings.source;
      fmt::print("{}\n", kb::dump_json(j, 2));
    } else {
      print_result(problem, args->file, r, ceilings);
    }
    set_exit(0);
  });
});

} // namespace
