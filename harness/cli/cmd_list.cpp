// `kbench list`, `kbench render` and `kbench problem`: browse the problem catalog, print a
// problem as PyTorch, or print its JSON (what kbench-baseline and the worker read).
#include <cstdio>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "commands.hpp"
#include "core.hpp"
#include "runner.hpp"

namespace {

// Prints every load issue to stderr; returns how many there were.
std::size_t print_issues(const kb::Catalog& c) {
  for (const auto& e : c.errors)
    fmt::print(stderr, "{}\n", e.str());
  return c.errors.size();
}

// Ceilings for the floors `kbench list` and `kbench problem` print, with where they came from:
// a ceilings file; else, for --gpu-name, the calibration cached beside --db for that model or its
// datasheet entry (an unknown name is an error); else the H100 SXM datasheet, the documented
// default of a command that runs without a GPU.
struct ListCeilings {
  kb::GpuCeilings ceilings;
  std::string source;
};

ListCeilings read_ceilings(const std::string& path, const std::string& gpu_name,
                           const std::string& db) {
  if (!path.empty()) {
    auto r = kb::runner::resolve_ceilings(path, db, kb::GpuInfo{}, kb::runner::CalibrateFn{});
    return {r.ceilings, r.source};
  }
  if (!gpu_name.empty()) {
    kb::GpuInfo g;
    g.name = gpu_name;
    auto r = kb::runner::resolve_ceilings("", db, g, kb::runner::CalibrateFn{});
    if (r.origin == kb::runner::CeilingsOrigin::guess)
      throw kb::InputError("command line", 0, "--gpu-name",
                           fmt::format("'{}' is not in the datasheet table and has no calibration "
                                       "cached beside {} (docs/ceilings.md lists the names)",
                                       gpu_name, db));
    return {r.ceilings, r.source};
  }
  return {kb::datasheet_ceilings_h100(),
          "the H100 SXM datasheet (default without a GPU; pick one with --gpu-name or --ceilings)"};
}

std::string io_summary(const kb::Problem& p) {
  std::vector<std::string> parts;
  for (const auto& t : p.inputs)
    parts.push_back(
        fmt::format("{} {}{}", t.name, kb::dtype_name(t.dtype), kb::shape_str(t.shape)));
  for (const auto& o : p.outputs) {
    const auto& v = p.output_spec(o);
    parts.push_back(fmt::format("-> {} {}{}", o, kb::dtype_name(v.dtype), kb::shape_str(v.shape)));
  }
  return fmt::format("{}", fmt::join(parts, " "));
}

} // namespace

namespace kb::cli {

kb::Problem resolve_problem(const std::string& id_or_path, const std::string& levels_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (id_or_path.ends_with(".yaml") || id_or_path.ends_with(".yml")) {
    if (!fs::is_regular_file(id_or_path, ec))
      throw kb::Error(fmt::format("no such problem file: {}", id_or_path));
    const fs::path file(id_or_path);
    return kb::load_problem(id_or_path, file.parent_path().parent_path().string());
  }
  const kb::Catalog c = kb::load_catalog(levels_dir);
  if (const kb::Problem* p = c.find(id_or_path))
    return *p;
  for (const auto& e : c.errors) {
    const fs::path f(e.file);
    const std::string id =
        fmt::format("l{}/{}", f.parent_path().filename().string().substr(5), f.stem().string());
    if (id == id_or_path)
      throw kb::InputError(e.file, e.line, e.field, e.message);
  }
  throw kb::Error(fmt::format("unknown problem '{}' in {} ({} problems; see `kbench list`)",
                              id_or_path, levels_dir, c.problems.size()));
}

} // namespace kb::cli

namespace {

const kb::cli::CommandRegistrar k_list(100, [](CLI::App& app, std::function<void(int)> set_exit) {
  struct Options {
    std::optional<int> level;
    bool json = false;
    std::string levels_dir;
    std::string ceilings;
    std::string gpu_name;
    std::string db = "results/kbench.db";
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("list", "List the problems of the catalog with their costs");
  cmd->add_option("--level", opt->level, "Only this level (1, 2, 3, ...)");
  cmd->add_flag("--json", opt->json, "Print the problems as JSON (one object per problem)");
  cmd->add_option("--levels-dir", opt->levels_dir, "Root holding level1/, level2/, ...")
      ->default_str("$KB_LEVELS_DIR or the source tree's levels/");
  cmd->add_option("--ceilings", opt->ceilings,
                  "GPU ceilings JSON (from `kbench doctor --calibrate`) for the floors");
  cmd->add_option("--gpu-name", opt->gpu_name,
                  "Floors for this GPU (CUDA device name, e.g. 'NVIDIA H200'): its calibration "
                  "cached beside --db, else its datasheet entry; default: H100 SXM datasheet");
  cmd->add_option("--db", opt->db, "Results database whose calibration cache --gpu-name reads")
      ->capture_default_str();
  cmd->callback([opt, set_exit] {
    const std::string dir = opt->levels_dir.empty() ? kb::default_levels_dir() : opt->levels_dir;
    const kb::Catalog c = kb::load_catalog(dir);
    const ListCeilings chosen = read_ceilings(opt->ceilings, opt->gpu_name, opt->db);
    const kb::GpuCeilings& ceil = chosen.ceilings;
    std::vector<const kb::Problem*> shown;
    for (const auto& p : c.problems)
      if (!opt->level || p.level == *opt->level)
        shown.push_back(&p);
    if (opt->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto* p : shown) {
        nlohmann::json j = *p;
        j["floor_ms"] = kb::floor_time_ms(*p, ceil);
        j["floor_gpu"] = ceil.gpu_name;
        out.push_back(std::move(j));
      }
      fmt::print("{}\n", kb::dump_json(out, 2));
    } else {
      fmt::print("{:<44} {:>5} {:>11} {:>10} {:>10}  {}\n", "problem", "level", "GFLOP", "MB moved",
                 "floor ms", "tensors");
      for (const auto* p : shown)
        fmt::print("{:<44} {:>5} {:>11.3f} {:>10.1f} {:>10.4f}  {}\n", p->id, p->level,
                   p->flops / 1e9, p->min_bytes / 1e6, kb::floor_time_ms(*p, ceil), io_summary(*p));
      fmt::print("{} problems; floors: {} ({})\n", shown.size(), chosen.source,
                 kb::runner::ceilings_figures(ceil));
    }
    set_exit(print_issues(c) > 0 ? 1 : 0);
  });
});

const kb::cli::CommandRegistrar k_render(101, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto id = std::make_shared<std::string>();
  auto levels_dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("render", "Print a problem as an equivalent PyTorch script");
  cmd->add_option("--problem", *id, "Problem id (l1/softmax_4096x65536) or YAML path")->required();
  cmd->add_option("--levels-dir", *levels_dir, "Root holding level1/, level2/, ...");
  cmd->callback([id, levels_dir, set_exit] {
    const std::string dir = levels_dir->empty() ? kb::default_levels_dir() : *levels_dir;
    fmt::print("{}", kb::render_pytorch(kb::cli::resolve_problem(*id, dir)));
    set_exit(0);
  });
});

const kb::cli::CommandRegistrar k_problem(102, [](CLI::App& app,
                                                  std::function<void(int)> set_exit) {
  auto id = std::make_shared<std::string>();
  auto levels_dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto gpu_name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("problem", "Show one problem (its JSON with --json)");
  cmd->add_option("id", *id, "Problem id (l1/softmax_4096x65536) or YAML path")->required();
  cmd->add_flag("--json", *json, "Print the Problem JSON that kbench-baseline and workers read");
  cmd->add_option("--levels-dir", *levels_dir, "Root holding level1/, level2/, ...");
  cmd->add_option("--gpu-name", *gpu_name,
                  "Floor for this GPU (CUDA device name); default: H100 SXM datasheet");
  cmd->callback([id, levels_dir, json, gpu_name, set_exit] {
    const std::string dir = levels_dir->empty() ? kb::default_levels_dir() : *levels_dir;
    const kb::Problem p = kb::cli::resolve_problem(*id, dir);
    if (*json) {
      fmt::print("{}\n", kb::dump_json(nlohmann::json(p), 2));
    } else {
      const kb::GpuCeilings ceil = read_ceilings("", *gpu_name, "results/kbench.db").ceilings;
      fmt::print("{} ({}): {}\n{}\n", p.id, p.source_path, p.name, p.description);
      fmt::print("provenance: {} {} {}\n", p.provenance.source, p.provenance.version,
                 p.provenance.ref);
      for (const auto& t : p.inputs)
        fmt::print("input  {} {}{}\n", t.name, kb::dtype_name(t.dtype), kb::shape_str(t.shape));
      for (const auto& t : p.params)
        fmt::print("param  {} {}{}\n", t.name, kb::dtype_name(t.dtype), kb::shape_str(t.shape));
      for (const auto& n : p.graph)
        fmt::print("node   {} = {}({})\n", n.output, n.op, fmt::join(n.inputs, ", "));
      fmt::print("outputs {}; atol {} rtol {}\n", fmt::join(p.outputs, ", "), p.tolerance.atol,
                 p.tolerance.rtol);
      fmt::print("{:.3f} GFLOP, {:.1f} MB, floor {:.4f} ms on {}\n", p.flops / 1e9,
                 p.min_bytes / 1e6, kb::floor_time_ms(p, ceil), ceil.gpu_name);
    }
    set_exit(0);
  });
});

} // namespace
