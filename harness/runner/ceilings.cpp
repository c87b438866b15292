// Roofline ceilings per GPU model: an explicit calibration file, else a calibration cached beside
// the results database for this GPU model, else one measured now (and cached), else the
// datasheet of the model, else (unknown GPU) the H100 SXM datasheet, said to be a guess.
// docs/ceilings.md describes the order and the cache.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pipeline.hpp"

namespace kb::runner {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A calibration run on an idle GPU takes seconds; a watchdog of two minutes leaves room for a
// slow first CUDA initialisation without letting a hung worker stall the run for long.
constexpr double k_calibrate_timeout_s = 120.0;

// Why ceilings cannot serve as roofline figures ("" when they can).
std::string unusable(const GpuCeilings& c) {
  if (!(c.bandwidth_gbs > 0.0))
    return "no bandwidth_gbs";
  if (!(c.fp32_tflops > 0.0))
    return "no fp32_tflops";
  return "";
}

// Reads a calibration JSON file; throws kb::Error naming the file when it is not one.
GpuCeilings read_ceilings_file(const fs::path& p) {
  GpuCeilings c;
  try {
    const json j = json::parse(read_file(p.string()));
    if (!j.is_object())
      throw Error(fmt::format("{}: not a calibration JSON file: not an object", p.string()));
    c = j.get<GpuCeilings>();
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not a calibration JSON file: {}", p.string(), e.what()));
  }
  if (const std::string why = unusable(c); !why.empty())
    throw Error(fmt::format("{}: not a usable calibration: {}", p.string(), why));
  return c;
}

std::string with_notes(std::string source, const std::vector<std::string>& notes) {
  if (!notes.empty())
    source += fmt::format(" ({})", fmt::join(notes, "; "));
  return source;
}

} // namespace

GpuCeilings EvalBackend::calibrate(int gpu) {
  throw Error(fmt::format("this evaluation back end cannot calibrate GPU {}", gpu));
}

std::string_view ceilings_origin_name(CeilingsOrigin o) {
  switch (o) {
  case CeilingsOrigin::file:
    return "file";
  case CeilingsOrigin::cache:
    return "cache";
  case CeilingsOrigin::calibrated:
    return "calibrated";
  case CeilingsOrigin::datasheet:
    return "datasheet";
  case CeilingsOrigin::guess:
    break;
  }
  return "guess";
}

std::string gpu_slug(std::string_view device_name) {
  std::string out;
  for (char ch : device_name) {
    const auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u))
      out += static_cast<char>(std::tolower(u));
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "unknown-gpu" : out;
}

std::string calibration_cache_path(const std::string& db, std::string_view device_name) {
  return (fs::path(db).parent_path() / fmt::format("calibration-{}.json", gpu_slug(device_name)))
      .string();
}

std::string ceilings_figures(const GpuCeilings& c) {
  // One decimal at most: measured figures carry no more precision than that.
  auto num = [](double v) {
    std::string s = fmt::format("{:.1f}", v);
    if (s.ends_with(".0"))
      s.resize(s.size() - 2);
    return s;
  };
  return fmt::format("{:.0f} GB/s, FP32 {} / TF32 {} / FP16 {} / BF16 {} TFLOP/s", c.bandwidth_gbs,
                     num(c.fp32_tflops), num(c.tf32_tflops), num(c.fp16_tflops),
                     num(c.bf16_tflops));
}

CeilingsChoice resolve_ceilings(const std::string& calibration_file, const std::string& db,
                                const GpuInfo& gpu, const CalibrateFn& calibrate) {
  CeilingsChoice out;
  const std::string& name = gpu.name;

  // 1. An explicit file wins; it must exist and hold ceilings.
  if (!calibration_file.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(calibration_file, ec))
      throw Error(fmt::format("calibration file {} does not exist (`kbench doctor --calibrate` "
                              "writes one)",
                              calibration_file));
    out.ceilings = read_ceilings_file(calibration_file);
    out.origin = CeilingsOrigin::file;
    std::vector<std::string> notes;
    if (!name.empty() && !out.ceilings.gpu_name.empty() && out.ceilings.gpu_name != name)
      notes.push_back(fmt::format("made on {}, used for {} as asked", out.ceilings.gpu_name, name));
    out.source = with_notes(fmt::format("calibration file {}", calibration_file), notes);
    return out;
  }

  // Without a device name nothing can be matched: the stand-in, said to be one.
  if (name.empty()) {
    out.ceilings = datasheet_ceilings_h100();
    out.ceilings.gpu_name = fmt::format("NVIDIA H100 SXM (datasheet; a guess: GPU {} reported no "
                                        "name)",
                                        gpu.index);
    out.origin = CeilingsOrigin::guess;
    out.source = fmt::format("H100 SXM datasheet as a guess: the doctor reported no name for GPU "
                             "{}",
                             gpu.index);
    return out;
  }

  // 2. A calibration cached beside the database for this GPU model; legacy single files only
  // when they were made on this model.
  std::vector<std::string> notes;
  const std::string cache = calibration_cache_path(db, name);
  std::vector<fs::path> tries{cache};
  const fs::path legacy_db = fs::path(db).parent_path() / "calibration.json";
  tries.push_back(legacy_db);
  std::error_code ec;
  if (!fs::equivalent(legacy_db, "results/calibration.json", ec))
    tries.emplace_back("results/calibration.json");
  for (const auto& path : tries) {
    if (!fs::is_regular_file(path, ec))
      continue;
    GpuCeilings c;
    try {
      c = read_ceilings_file(path);
    } catch (const Error& e) {
      notes.push_back(fmt::format("ignored {}", e.what()));
      continue;
    }
    if (c.gpu_name != name) {
      notes.push_back(fmt::format("ignored {}: made on {}", path.string(),
                                  c.gpu_name.empty() ? "an unnamed GPU" : c.gpu_name));
      continue;
    }
    out.ceilings = c;
    out.origin = CeilingsOrigin::cache;
    out.source =
        with_notes(fmt::format("cached calibration {} for {}", path.string(), name), notes);
    return out;
  }

  // 3. Measure now, once, and cache it for the next run on this model.
  if (calibrate) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      GpuCeilings c = calibrate(gpu.index);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (const std::string why = unusable(c); !why.empty())
        throw Error(fmt::format("the calibration reported {}", why));
      if (c.gpu_name.empty())
        c.gpu_name = name;
      if (c.gpu_name != name)
        throw Error(fmt::format("GPU {} measured as {}, the doctor reported {}", gpu.index,
                                c.gpu_name, name));
      c.measured = true;
      std::string cached;
      try {
        const fs::path dir = fs::path(cache).parent_path();
        if (!dir.empty())
          fs::create_directories(dir);
        write_file_atomic(cache, json(c).dump(2) + "\n");
        cached = fmt::format("cached at {}", cache);
      } catch (const std::exception& e) {
        cached = fmt::format("not cached: {}", e.what());
      }
      out.ceilings = c;
      out.origin = CeilingsOrigin::calibrated;
      out.source = with_notes(fmt::format("calibrated now ({:.1f} s), {}", s, cached), notes);
      return out;
    } catch (const std::exception& e) {
      notes.push_back(fmt::format("calibration failed: {}", e.what()));
    }
  }

  // 4. The datasheet of this model.
  if (auto d = datasheet_ceilings(name)) {
    out.ceilings = *d;
    out.origin = CeilingsOrigin::datasheet;
    out.source = with_notes(fmt::format("datasheet for {}", name), notes);
    return out;
  }

  // 5. Unknown model: the H100 SXM figures, marked as a guess everywhere they appear.
  out.ceilings = datasheet_ceilings_h100();
  out.ceilings.gpu_name =
      fmt::format("NVIDIA H100 SXM (datasheet; a guess for unknown GPU {})", name);
  out.origin = CeilingsOrigin::guess;
  notes.push_back("`kbench doctor --calibrate` measures it");
  out.source = with_notes(
      fmt::format("H100 SXM datasheet as a guess: {} is not in the datasheet table", name), notes);
  return out;
}

CeilingsChoice resolve_ceilings(const std::string& calibration_file, const std::string& db,
                                const GpuInfo& gpu, const std::string& worker_path,
                                bool allow_calibrate) {
  CalibrateFn calibrate;
  if (allow_calibrate) {
#ifdef KB_RUNNER_HAS_EVALUATOR
    calibrate = [worker_path](int g) {
      return run_calibrate(worker_path.empty() ? default_worker_path() : worker_path, g,
                           k_calibrate_timeout_s);
    };
#else
    calibrate = [](int) -> GpuCeilings {
      throw Error("this kbench was built without the evaluator");
    };
#endif
  }
  return resolve_ceilings(calibration_file, db, gpu, calibrate);
}

namespace detail {

CeilingsPlan plan_ceilings(const std::vector<int>& gpus, const DoctorReport& doctor,
                           const std::string& calibration_file, const std::string& db,
                           EvalBackend& backend, bool allow_calibrate,
                           const std::function<void(const std::string&)>& log) {
  CeilingsPlan plan;
  // One resolution per GPU model (GPUs without a name each on their own).
  using Group = CeilingsPlan::Group;
  std::vector<Group> groups;
  std::map<std::string, std::size_t> by_name;
  for (int index : gpus) {
    GpuInfo info;
    info.index = index;
    for (const auto& g : doctor.gpus)
      if (g.index == index)
        info = g;
    if (!info.name.empty()) {
      auto it = by_name.find(info.name);
      if (it != by_name.end()) {
        groups[it->second].gpus.push_back(index);
        plan.by_gpu[index] = groups[it->second].choice.ceilings;
        continue;
      }
    }
    CalibrateFn calibrate;
    if (allow_calibrate)
      calibrate = [&backend, &log, &info](int g) {
        if (log)
          log(fmt::format("calibrating GPU {} ({}) for the roofline ceilings", g, info.name));
        return backend.calibrate(g);
      };
    Group grp{{index}, resolve_ceilings(calibration_file, db, info, calibrate)};
    plan.by_gpu[index] = grp.choice.ceilings;
    if (!info.name.empty())
      by_name[info.name] = groups.size();
    groups.push_back(std::move(grp));
  }
  for (auto& g : groups) {
    const std::string which =
        groups.size() == 1 ? "" : fmt::format(" of GPU {}", fmt::join(g.gpus, ","));
    plan.lines.push_back(fmt::format("ceilings{}: {} ({})", which, g.choice.source,
                                     ceilings_figures(g.choice.ceilings)));
    plan.groups.emplace_back(std::move(g.gpus), std::move(g.choice));
  }
  return plan;
}

} // namespace detail

} // namespace kb::runner
