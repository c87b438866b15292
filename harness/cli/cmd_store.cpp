// `kbench runs`, `show`, `merge`, `import-baselines`, `export`: the results database from the
// command line.
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "commands.hpp"
#include "core.hpp"
#include "report.hpp"
#include "store.hpp"

namespace {

constexpr const char* k_default_db = "results/kbench.db";

// Opens a database for reading; an older schema is migrated in place first (migrations only add).
kb::store::Store open_existing(const std::string& path) {
  {
    kb::store::Store ro(path, {.read_only = true});
    if (ro.schema_version() == kb::store::k_schema_version)
      return ro;
  }
  return kb::store::Store(path, {.create = false});
}

void write_output(const std::string& out_path, const std::string& text) {
  if (out_path.empty() || out_path == "-")
    fmt::print("{}", text);
  else
    kb::write_file_atomic(out_path, text);
}

std::string cut(std::string s, std::size_t n) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20)
      c = ' ';
  return s.size() > n ? s.substr(0, n - 3) + "..." : s;
}

const kb::cli::CommandRegistrar k_store_commands(300, [](CLI::App& app,
                                                         std::function<void(int)> set_exit) {
  // --- runs ---
  {
    auto* cmd = app.add_subcommand("runs", "List the runs in a results database");
    auto db = std::make_shared<std::string>(k_default_db);
    cmd->add_option("--db", *db, "Results database")->capture_default_str();
    cmd->callback([db, set_exit] {
      auto s = open_existing(*db);
      auto runs = s.runs();
      fmt::print("{:>4}  {:<11}  {:<24}  {:<24}  {:<12}  {:>6}  {:>6}  {}\n", "id", "status",
                 "started", "gpu", "commit", "cands", "evals", "command");
      for (const auto& r : runs)
        fmt::print("{:>4}  {:<11}  {:<24}  {:<24}  {:<12}  {:>6}  {:>6}  {}{}\n", r.id, r.status,
                   r.started_at, cut(r.info.gpu_name, 24), cut(r.info.git_commit, 12), r.candidates,
                   r.evaluations, cut(r.info.command, 60),
                   r.origin.empty() ? "" : "  [" + r.origin + "]");
      if (runs.empty())
        fmt::print("(no runs in {})\n", *db);
      set_exit(0);
    });
  }
  // --- show ---
  {
    auto* cmd = app.add_subcommand("show", "Show one run: provenance, outcomes, spend");
    auto db = std::make_shared<std::string>(k_default_db);
    auto run_id = std::make_shared<int64_t>(0);
    cmd->add_option("run", *run_id, "Run id (see `kbench runs`)")->required();
    cmd->add_option("--db", *db, "Results database")->capture_default_str();
    cmd->callback([db, run_id, set_exit] {
      auto s = open_existing(*db);
      auto r = s.run(*run_id);
      if (!r) {
        fmt::print(stderr, "kbench: error: {}: no run {}\n", *db, *run_id);
        set_exit(2);
        return;
      }
      const auto& i = r->info;
      fmt::print("run {} ({})\n  status      {}\n  started     {}\n  ended       {}\n", r->id,
                 r->uuid, r->status, r->started_at, r->ended_at.empty() ? "-" : r->ended_at);
      // The version string names its commit already; the commit alone is shown when it does not.
      std::string version = i.kbench_version.empty() ? "unknown" : i.kbench_version;
      if (!i.git_commit.empty() && version.find(i.git_commit) == std::string::npos)
        version += fmt::format(" (commit {})", i.git_commit);
      fmt::print("  command     {}\n  kbench      {}\n  protocol    {}\n  shard       {}\n",
                 i.command, version, kb::protocol_name(i.protocol),
                 i.shard.empty() ? "-" : i.shard);
      fmt::print("  gpu         {} {}\n  driver      {}\n  cuda        {}\n  cublas      {}\n"
                 "  cudnn       {}\n  nvcc        {}\n  host        {}\n",
                 i.gpu_name, i.gpu_uuid, i.driver_version, i.cuda_version, i.cublas_version,
                 i.cudnn_version, i.nvcc_version, i.host);
      if (!r->origin.empty())
        fmt::print("  merged from {}\n", r->origin);
      if (auto c = s.calibration(r->id))
        fmt::print("  ceilings    {:.0f} GB/s, fp32 {:.1f} TFLOP/s, tf32 {:.1f}, fp16 {:.1f}, "
                   "bf16 {:.1f} ({})\n",
                   c->bandwidth_gbs, c->fp32_tflops, c->tf32_tflops, c->fp16_tflops, c->bf16_tflops,
                   c->measured ? "measured" : "datasheet");
      std::map<int64_t, std::string> label;
      for (const auto& m : s.models())
        label[m.id] = m.label;
      std::map<std::string, std::map<std::string, int64_t>> outcomes;
      for (const auto& a : s.attempts({.run_ids = {r->id}}))
        ++outcomes[label[a.model_id]]
                  [a.evaluated ? std::string(kb::outcome_name(a.eval.outcome)) : "not_evaluated"];
      // Provider failures (requests that failed after retries and were never answered since)
      // are no attempts: their own column, per model.
      const auto call_rows = s.llm_calls(r->id);
      std::set<std::string> answered;
      for (const auto& c : call_rows)
        if (c.call.status == "ok")
          answered.insert(c.call.request_hash);
      std::map<std::string, std::set<std::string>> failed;
      for (const auto& c : call_rows)
        if (c.call.status != "ok" && c.call.status != "budget" &&
            c.call.error_class != "replay_not_found" && !c.call.request_hash.empty() &&
            !answered.count(c.call.request_hash))
          failed[label[c.call.model_id]].insert(c.call.request_hash);
      for (const auto& [model, hashes] : failed)
        outcomes[model];
      fmt::print("\n  {} candidates, {} evaluations, {} baseline timings\n", r->candidates,
                 r->evaluations, s.baseline_timings({r->id}).size());
      for (const auto& [model, counts] : outcomes) {
        fmt::print("  {}:", model);
        for (const auto& [o, n] : counts)
          fmt::print(" {}={}", o, n);
        auto f = failed.find(model);
        fmt::print(" provider_failures={}\n", f == failed.end() ? 0 : f->second.size());
      }
      const kb::store::CallTally tally = s.call_tally(r->id);
      fmt::print("  LLM: {} calls ({} answered, {} provider failures), {} tokens in, {} tokens "
                 "out, ${:.2f}\n",
                 call_rows.size(), tally.answered, tally.provider_failures, tally.tokens_in,
                 tally.tokens_out, tally.cost_usd);
      set_exit(0);
    });
  }
  // --- merge ---
  {
    auto* cmd = app.add_subcommand("merge", "Merge shard databases into one (no duplicate runs)");
    auto inputs = std::make_shared<std::vector<std::string>>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("inputs", *inputs, "Databases to merge")->required();
    cmd->add_option("-o,--output", *out, "Merged database (created or extended)")->required();
    cmd->callback([inputs, out, set_exit] {
      // Validate every input before writing anything.
      for (const auto& in : *inputs)
        kb::store::Store probe(in, {.read_only = true});
      kb::store::Store dst(*out);
      for (const auto& in : *inputs) {
        auto m = dst.merge_from(in);
        fmt::print("{}: {} run(s) copied, {} already present; {} candidates, {} evaluations, "
                   "{} LLM calls, {} external baselines\n",
                   in, m.runs_copied, m.runs_skipped, m.candidates, m.evaluations, m.llm_calls,
                   m.external_baselines);
        if (m.shards_merged > 0 || m.evaluations_filled > 0)
          fmt::print(
              "  {} suite shard(s) joined into their suite's run, {} evaluations filled in\n",
              m.shards_merged, m.evaluations_filled);
        for (const auto& note : m.notes)
          fmt::print("  {}\n", note);
      }
      // Suites split into shards (docs/scale.md): what each holds and lacks.
      for (const auto& st : dst.suites())
        fmt::print(
            "suite {}: run {} ({}) holds {} of {} shards{}{}\n", st.suite, st.run_id, st.status,
            st.merged.size(), st.count,
            st.missing.empty() ? "" : fmt::format("; missing {}", fmt::join(st.missing, ",")),
            st.unfinished.empty() ? "" : fmt::format("; {} not completed", st.unfinished.size()));
      std::string check = dst.integrity_check();
      if (check != "ok") {
        fmt::print(stderr, "kbench: error: {}: integrity check failed: {}\n", *out, check);
        set_exit(2);
        return;
      }
      fmt::print("merged into {} ({} runs)\n", *out, dst.runs().size());
      set_exit(0);
    });
  }
  // --- import-baselines ---
  {
    auto* cmd = app.add_subcommand(
        "import-baselines",
        "Record KernelBench timing JSON files (PyTorch eager / torch.compile) as external "
        "baselines");
    auto files = std::make_shared<std::vector<std::string>>();
    auto db = std::make_shared<std::string>(k_default_db);
    auto source = std::make_shared<std::string>();
    cmd->add_option("files", *files, "KernelBench timing JSON files")->required();
    cmd->add_option("--db", *db, "Results database")->capture_default_str();
    cmd->add_option("--source", *source,
                    "Source name; default from the file name: 'torch-compile' when it "
                    "contains 'compile', else 'pytorch-eager'");
    cmd->callback([files, db, source, set_exit] {
      kb::store::Store s(*db);
      for (const auto& f : *files) {
        std::string src = *source;
        if (src.empty())
          src = std::filesystem::path(f).filename().string().find("compile") != std::string::npos
                    ? "torch-compile"
                    : "pytorch-eager";
        auto sum = s.import_kernelbench_timings(f, src);
        fmt::print("{}: {} baselines as '{}' ({})\n", f, sum.imported, sum.source,
                   sum.hardware.empty() ? "hardware not stated" : sum.hardware);
        if (!sum.unmeasured.empty())
          fmt::print("  {} entries have no measurement in the file (published as null) and were "
                     "skipped: {}\n",
                     sum.unmeasured.size(), fmt::join(sum.unmeasured, ", "));
        // Reports can only use entries that match a problem: say which do not.
        if (s.problems().empty()) {
          fmt::print("  {} records no problems yet: entries are matched to problems when a "
                     "report is made\n",
                     *db);
        } else if (auto unmatched = kb::report::unmatched_external_baselines(s, sum.source);
                   !unmatched.empty()) {
          std::string list;
          for (std::size_t i = 0; i < unmatched.size() && i < 5; ++i)
            list += (i ? ", " : "") + cut(unmatched[i], 60);
          fmt::print("  {} '{}' entries match no problem in {}: {}{}\n", unmatched.size(),
                     sum.source, *db, list, unmatched.size() > 5 ? ", ..." : "");
        }
      }
      set_exit(0);
    });
  }
  // --- export ---
  {
    auto* cmd =
        app.add_subcommand("export", "Export evaluations as CSV, JSON or Google Benchmark JSON");
    auto db = std::make_shared<std::string>(k_default_db);
    auto format = std::make_shared<std::string>("csv");
    auto out = std::make_shared<std::string>();
    auto runs = std::make_shared<std::vector<int64_t>>();
    cmd->add_option("--db", *db, "Results database")->capture_default_str();
    cmd->add_option("--format", *format, "csv, json or gbench")
        ->check(CLI::IsMember({"csv", "json", "gbench", "google-benchmark"}))
        ->capture_default_str();
    cmd->add_option("--run", *runs, "Only these runs (repeatable)");
    cmd->add_option("-o,--output", *out, "Output file (default: stdout)");
    cmd->callback([db, format, out, runs, set_exit] {
      auto s = open_existing(*db);
      write_output(*out,
                   kb::report::export_results(s, *kb::report::parse_export_format(*format), *runs));
      set_exit(0);
    });
  }
});

} // namespace
