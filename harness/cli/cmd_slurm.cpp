// `kbench slurm`: one suite as a Slurm job array (one shard per array task, each on its node's
// local disk, copied to a shared results folder), then a merge job that joins what finished and
// says what did not; `kbench slurm merge` and `kbench slurm copy` are the steps the job scripts
// call (docs/scale.md).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "core.hpp"
#include "process.hpp"
#include "runner.hpp"
#include "store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum class SlurmMode { run, generate, split };

struct SlurmCli {
  int shards = 0;
  std::string mode = "run", results, suite, partition, cpu_partition, time, merge_time;
  std::string local_dir, kbench, sbatch = "sbatch";
  int gpus_per_task = 1, cpus_per_task = 0, snapshot_minutes = 10;
  std::vector<std::string> sbatch_options, evaluate_options, flags;
  bool dry_run = false;
};

// A word for bash: single-quoted unless it is plainly safe.
std::string quote(std::string_view s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("_-./,:=@%+").find(c) != std::string_view::npos;
  });
  if (plain)
    return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string join_quoted(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words)
    out += (out.empty() ? "" : " ") + quote(w);
  return out;
}

// The option a flag token names ("--db" of "--db=x").
std::string flag_name(const std::string& token) {
  return token.rfind("--", 0) == 0 ? token.substr(0, token.find('=')) : "";
}

void refuse_flags(const std::vector<std::string>& tokens, const std::set<std::string>& refused,
                  const char* where) {
  for (const auto& t : tokens)
    if (refused.count(flag_name(t)))
      throw kb::InputError(
          "command line", 0, where,
          fmt::format("{} is set by kbench slurm for each shard; leave it out", flag_name(t)));
}

std::string self_path() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec)
    throw kb::Error("cannot find the kbench executable (/proc/self/exe); give --kbench");
  return p.string();
}

struct Script {
  std::string name;                     // file name in <results>/slurm
  std::string step;                     // "run", "generate", "evaluate", "merge"
  std::vector<std::string> sbatch_args; // given at submission (dependencies)
  std::string text;
};

// Everything the scripts need, resolved.
struct Plan {
  SlurmMode mode = SlurmMode::run;
  int shards = 0;
  std::string suite, results, kbench, cwd, local_dir;
  SlurmCli cli;
  std::vector<std::string> flags;            // the suite's flags (for run or generate)
  std::vector<std::string> evaluate_options; // split: the flags of kbench evaluate
};

std::string header(const Plan& p, const std::string& step, bool array, bool gpus,
                   const std::string& partition, const std::string& time) {
  std::string h = "#!/bin/bash\n";
  auto line = [&](const std::string& opt) { h += "#SBATCH " + opt + "\n"; };
  line(fmt::format("--job-name=kbench-{}-{}", step, p.suite));
  line(fmt::format("--output={}/slurm/logs/{}-{}.out", p.results, step, array ? "%A_%a" : "%j"));
  line(fmt::format("--chdir={}", p.cwd));
  if (array) {
    line(fmt::format("--array=1-{}", p.shards));
    // The batch shell hears of the time limit 2 minutes ahead: it stops kbench (in-flight work
    // finishes and is recorded) and copies the shard's database out.
    line("--signal=B:TERM@120");
  }
  if (!partition.empty())
    line("--partition=" + partition);
  if (gpus)
    line(fmt::format("--gres=gpu:{}", p.cli.gpus_per_task));
  if (p.cli.cpus_per_task > 0)
    line(fmt::format("--cpus-per-task={}", p.cli.cpus_per_task));
  if (!time.empty())
    line("--time=" + time);
  for (const auto& o : p.cli.sbatch_options)
    line(o);
  return h;
}

// One array task: the shard's database on local disk (copied in from the results folder when an
// earlier try left one), the kbench command in the background with TERM forwarded to it,
// periodic copies out, and a last copy out when it ends. A resubmitted task resumes from the
// last copy: nothing already paid for is asked again.
std::string task_body(const Plan& p, const std::string& command) {
  const std::string local =
      p.local_dir.empty() ? "${KB_LOCAL_DIR:-${TMPDIR:-/tmp}}" : quote(p.local_dir);
  std::string b;
  b += "set -u\n";
  b += fmt::format("kbench={}\n", quote(p.kbench));
  b += fmt::format("k=\"${{SLURM_ARRAY_TASK_ID:?run this file with sbatch --array=1-{}}}\"\n",
                   p.shards);
  b += fmt::format("shared={}/shards/shard-$k.db\n", quote(p.results));
  b += fmt::format("work={}/kbench-{}-$k-${{SLURM_JOB_ID:-$$}}\n", local, p.suite);
  b += "db=$work/shard-$k.db\n";
  b += fmt::format("mkdir -p \"$work\" {}/shards || exit 1\n", quote(p.results));
  b += "trap 'rm -rf \"$work\"' EXIT\n";
  b += "if [ -f \"$shared\" ]; then\n"
       "  \"$kbench\" slurm copy \"$shared\" \"$db\" || exit 1\n"
       "fi\n";
  b += command + " &\n";
  b += "pid=$!\n";
  b += "trap 'kill -TERM \"$pid\" 2>/dev/null' TERM INT\n";
  b += "snap=\n";
  if (p.cli.snapshot_minutes > 0)
    b += fmt::format("(\n"
                     "  s=\n"
                     "  trap 'kill \"$s\" 2>/dev/null; exit 0' TERM\n"
                     "  while :; do\n"
                     "    sleep {} & s=$!; wait \"$s\"\n"
                     "    [ -f \"$db\" ] && \"$kbench\" slurm copy \"$db\" \"$shared\"\n"
                     "  done\n"
                     ") &\n"
                     "snap=$!\n",
                     p.cli.snapshot_minutes * 60);
  b += "while :; do wait \"$pid\"; status=$?; kill -0 \"$pid\" 2>/dev/null || break; done\n";
  b += "if [ -n \"$snap\" ]; then kill -TERM \"$snap\" 2>/dev/null; wait \"$snap\"; fi\n";
  b += "if [ -f \"$db\" ]; then \"$kbench\" slurm copy \"$db\" \"$shared\" || status=1; fi\n";
  b += "exit \"$status\"\n";
  return b;
}

std::vector<Script> make_scripts(const Plan& p) {
  std::vector<Script> out;
  const std::string shard_flags =
      fmt::format("--shard \"$k/{}\" --suite {} --db \"$db\"", p.shards, p.suite);
  const std::string about =
      fmt::format("# Written by `kbench slurm` for suite {} ({} shards, results in {}).\n", p.suite,
                  p.shards, p.results);
  auto resubmit = [&](const std::string& name) {
    return fmt::format("# A failed or preempted shard K continues where it stopped with:\n"
                       "#   sbatch --array=K {}/slurm/{}\n",
                       p.results, name);
  };
  const std::string cpu_partition =
      p.cli.cpu_partition.empty() ? p.cli.partition : p.cli.cpu_partition;
  if (p.mode == SlurmMode::run) {
    Script s{"run.sbatch", "run", {}, ""};
    s.text = header(p, "run", true, true, p.cli.partition, p.cli.time) + about + resubmit(s.name) +
             task_body(p, fmt::format("\"$kbench\" run {} {}", join_quoted(p.flags), shard_flags));
    out.push_back(std::move(s));
  } else {
    Script g{"generate.sbatch", "generate", {}, ""};
    g.text =
        header(p, "generate", true, false, cpu_partition, p.cli.time) + about + resubmit(g.name) +
        task_body(p, fmt::format("\"$kbench\" generate {} {}", join_quoted(p.flags), shard_flags));
    out.push_back(std::move(g));
  }
  if (p.mode == SlurmMode::split) {
    // Task K evaluates shard K once its generate task ended well; a generate task that failed
    // cancels its evaluate task, and the merge says so.
    Script e{"evaluate.sbatch", "evaluate", {"--kill-on-invalid-dep=yes"}, ""};
    std::string body = task_body(
        p, fmt::format("\"$kbench\" evaluate {}{}--suite {} --shard \"$k/{}\" --db \"$db\"",
                       join_quoted(p.evaluate_options), p.evaluate_options.empty() ? "" : " ",
                       p.suite, p.shards));
    // Nothing to evaluate without the generated database.
    const std::string check =
        "if [ ! -f \"$db\" ]; then\n"
        "  echo \"kbench slurm: shard $k has no generated database ($shared): its generate task "
        "did not finish\" >&2\n"
        "  exit 1\n"
        "fi\n";
    const auto at = body.find("\"$kbench\" evaluate");
    body.insert(at, check);
    e.text = header(p, "evaluate", true, true, p.cli.partition, p.cli.time) + about +
             resubmit(e.name) + body;
    out.push_back(std::move(e));
  }
  Script m{"merge.sbatch", "merge", {}, ""};
  m.text = header(p, "merge", false, false, cpu_partition, p.cli.merge_time) + about +
           "# Joins the shards that finished into one run (results/suite.db) and names those that\n"
           "# did not; it can run again at any time (sbatch this file, or run it with bash).\n" +
           fmt::format("exec {} slurm merge --results {}\n", quote(p.kbench), quote(p.results));
  out.push_back(std::move(m));
  return out;
}

// Submits with sbatch --parsable; returns the job id.
std::string submit(const std::string& sbatch, const std::vector<std::string>& args,
                   const std::string& script) {
  kb::ProcessSpec spec;
  spec.argv = {sbatch, "--parsable"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.argv.push_back(script);
  const kb::ProcessResult r = kb::run_process(spec, 120.0);
  if (!r.status.exited || r.status.exit_code != 0)
    throw kb::Error(fmt::format("{} {} failed ({}): {}", sbatch, script, r.status.describe(),
                                r.err.text.empty() ? r.out.text : r.err.text));
  std::string id = r.out.text.substr(0, r.out.text.find_first_of(";\n"));
  if (id.empty() || !std::all_of(id.begin(), id.end(), ::isdigit))
    throw kb::Error(fmt::format("{} {}: no job id in its answer '{}'", sbatch, script, r.out.text));
  return id;
}

std::string absolute(const std::string& p) {
  return fs::absolute(p).lexically_normal().string();
}

void slurm_submit(const SlurmCli& c, std::function<void(int)> set_exit) {
  auto refuse = [](const char* flag, const std::string& why) {
    throw kb::InputError("command line", 0, flag, why);
  };
  Plan p;
  p.cli = c;
  if (c.mode == "run")
    p.mode = SlurmMode::run;
  else if (c.mode == "generate")
    p.mode = SlurmMode::generate;
  else if (c.mode == "split")
    p.mode = SlurmMode::split;
  else
    refuse("--mode", fmt::format("'{}' is not run, generate or split", c.mode));
  if (c.shards < 1 || c.shards > 100000)
    refuse("--shards", fmt::format("must be 1..100000, not {}", c.shards));
  if (c.gpus_per_task < 1)
    refuse("--gpus-per-task", fmt::format("must be a positive count, not {}", c.gpus_per_task));
  if (c.cpus_per_task < 0)
    refuse("--cpus-per-task", fmt::format("must be a positive count, not {}", c.cpus_per_task));
  if (c.snapshot_minutes < 0)
    refuse("--snapshot-minutes", "must be 0 (none) or more");
  for (const auto& o : c.sbatch_options)
    if (o.rfind("-", 0) != 0 || o.find_first_of("\n\r") != std::string::npos)
      refuse("--sbatch-option", fmt::format("'{}' is not one sbatch option (like --account=x)", o));
  for (const auto& o : c.evaluate_options)
    if (o.rfind("--", 0) != 0)
      refuse("--evaluate-option", fmt::format("'{}' is not a flag of kbench evaluate", o));
  if (p.mode != SlurmMode::split && !c.evaluate_options.empty())
    refuse("--evaluate-option", "applies to --mode split only");
  p.suite = c.suite.empty() ? kb::runner::new_suite_id() : c.suite;
  kb::runner::check_suite_id(p.suite);
  refuse_flags(c.flags, {"--db", "--resume", "--shard", "--suite"}, "suite flags");
  refuse_flags(c.evaluate_options, {"--db", "--run", "--suite", "--shard", "--slice"},
               "--evaluate-option");
  p.flags = c.flags;
  p.evaluate_options = c.evaluate_options;
  // The suite's flags, checked as `kbench run` / `kbench generate` check them; the plan says
  // how many searches the shards share.
  const auto mode = p.mode == SlurmMode::run ? kb::runner::Mode::run : kb::runner::Mode::generate;
  kb::runner::RunOptions o = kb::cli::parse_suite_flags(mode, c.flags);
  o.suite = p.suite;
  const kb::runner::SuitePlan plan = kb::runner::plan_suite(o);
  // Evaluation reads the problems where generation did (levels the suite names, not the build's).
  if (p.mode == SlurmMode::split && !o.levels_dir.empty() &&
      std::none_of(c.evaluate_options.begin(), c.evaluate_options.end(),
                   [](const std::string& f) { return flag_name(f) == "--levels-dir"; }))
    p.evaluate_options.push_back("--levels-dir=" + absolute(o.levels_dir));
  const int tasks = static_cast<int>(plan.tasks.size());
  if (c.shards > tasks)
    refuse("--shards", fmt::format("{} shards for {} (problem, model) searches would leave {} "
                                   "shards with nothing to do",
                                   c.shards, tasks, c.shards - tasks));
  p.shards = c.shards;
  p.cwd = fs::current_path().string();
  p.results = absolute(c.results.empty() ? "results/slurm-" + p.suite : c.results);
  p.kbench = absolute(c.kbench.empty() ? self_path() : c.kbench);
  p.local_dir = c.local_dir;
  const auto scripts = make_scripts(p);
  const fs::path dir = fs::path(p.results) / "slurm";
  fmt::print("suite {}: {} (problem, model) searches in {} shards of {}-{}, fingerprint {}\n",
             p.suite, tasks, p.shards, tasks / p.shards, (tasks + p.shards - 1) / p.shards,
             plan.fingerprint);
  if (c.dry_run) {
    for (const auto& s : scripts)
      fmt::print("\n# ===== {} =====\n{}", (dir / s.name).string(), s.text);
    fmt::print("\n# would submit:\n");
    std::string prev;
    for (const auto& s : scripts) {
      std::vector<std::string> args = s.sbatch_args;
      if (s.step == "evaluate")
        args.insert(args.begin(), "--dependency=aftercorr:<generate job>");
      else if (s.step == "merge")
        args.insert(args.begin(), fmt::format("--dependency=afterany:<{} job>", prev));
      fmt::print("{} --parsable {}{}{}\n", c.sbatch, join_quoted(args), args.empty() ? "" : " ",
                 (dir / s.name).string());
      prev = s.step;
    }
    set_exit(0);
    return;
  }
  // A results folder belongs to one suite.
  const fs::path manifest = dir / "suite.json";
  if (fs::exists(manifest)) {
    const json m = json::parse(kb::read_file(manifest.string()), nullptr, false);
    if (!m.is_object() || m.value("suite", "") != p.suite || m.value("shards", 0) != p.shards)
      refuse("--results", fmt::format("{} holds suite {} ({} shards); give this suite another "
                                      "folder, or --suite {} --shards {} to resubmit that one",
                                      p.results, m.value("suite", "?"), m.value("shards", 0),
                                      m.value("suite", "?"), m.value("shards", 0)));
  }
  fs::create_directories(dir / "logs");
  fs::create_directories(fs::path(p.results) / "shards");
  json m{{"suite", p.suite},   {"shards", p.shards},
         {"mode", c.mode},     {"fingerprint", plan.fingerprint},
         {"searches", tasks},  {"flags", p.flags},
         {"kbench", p.kbench}, {"cwd", p.cwd}};
  for (const auto& s : scripts) {
    const fs::path path = dir / s.name;
    kb::write_file_atomic(path.string(), s.text);
    fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  }
  json jobs = json::object();
  std::string previous;
  for (const auto& s : scripts) {
    std::vector<std::string> args = s.sbatch_args;
    if (s.step == "evaluate")
      args.insert(args.begin(), "--dependency=aftercorr:" + previous);
    else if (s.step == "merge")
      args.insert(args.begin(), "--dependency=afterany:" + previous);
    previous = submit(c.sbatch, args, (dir / s.name).string());
    jobs[s.step] = previous;
    fmt::print("submitted {} as job {}\n", (dir / s.name).string(), previous);
  }
  m["jobs"] = jobs;
  kb::write_file_atomic(manifest.string(), m.dump(2) + "\n");
  fmt::print("shard databases: {}/shards/shard-K.db; the merged run: {}/suite.db\n", p.results,
             p.results);
  fmt::print("a failed or preempted shard K: sbatch --array=K {}/slurm/{}, then sbatch {}\n",
             p.results, scripts.front().name, (dir / "merge.sbatch").string());
  set_exit(0);
}

// Merges every shard database of a results folder into <results>/suite.db: the shards are
// copied to local disk first, merged into a fresh database there and copied back in one rename.
void slurm_merge(const std::string& results_arg, std::function<void(int)> set_exit) {
  const fs::path results = absolute(results_arg);
  const fs::path manifest = results / "slurm" / "suite.json";
  if (!fs::exists(manifest))
    throw kb::Error(fmt::format("{}: no suite here (written by kbench slurm)", manifest.string()));
  const json m = json::parse(kb::read_file(manifest.string()), nullptr, false);
  if (!m.is_object() || !m.contains("suite") || !m.contains("shards"))
    throw kb::Error(fmt::format("{}: not a suite manifest of kbench slurm", manifest.string()));
  const std::string suite = m["suite"].get<std::string>();
  const int count = m["shards"].get<int>();
  const std::string mode = m.value("mode", "run");
  const char* tmp_env = std::getenv("TMPDIR");
  const fs::path work = fs::path(tmp_env && *tmp_env ? tmp_env : "/tmp") /
                        fmt::format("kbench-merge-{}-{}", suite, ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{work};
  std::vector<int> absent;
  const std::string out = (work / "suite.db").string();
  {
    kb::store::Store dst(out);
    for (int k = 1; k <= count; ++k) {
      const fs::path shard = results / "shards" / fmt::format("shard-{}.db", k);
      if (!fs::exists(shard)) {
        absent.push_back(k);
        continue;
      }
      // A local copy: the shared file may be replaced (renamed over) by a task meanwhile.
      const fs::path local = work / fmt::format("shard-{}.db", k);
      fs::copy_file(shard, local, fs::copy_options::overwrite_existing);
      const auto sum = dst.merge_from(local.string());
      for (const auto& note : sum.notes)
        fmt::print("shard {}: {}\n", k, note);
    }
    if (dst.integrity_check() != "ok")
      throw kb::Error(fmt::format("{}: the merged database fails its integrity check", out));
    dst.snapshot_to((results / "suite.db").string());
  }
  kb::store::Store s((results / "suite.db").string(), {.read_only = true});
  const auto suites = s.suites();
  const auto it = std::find_if(suites.begin(), suites.end(),
                               [&](const kb::store::SuiteState& st) { return st.suite == suite; });
  const std::string step = mode == "run" ? "run" : "generate";
  std::map<int, std::string> trouble; // shard -> why it is not done
  for (int k : absent)
    trouble[k] = "no database (the task never copied one out)";
  if (it == suites.end()) {
    for (int k = 1; k <= count; ++k)
      trouble.emplace(k, "not merged");
  } else {
    for (int k : it->missing)
      trouble.emplace(k, "not merged (another configuration, or a second run of a shard)");
    for (const auto& [k, status] : it->unfinished)
      trouble.emplace(k, "ended " + status);
  }
  int64_t unevaluated = 0;
  if (it != suites.end()) {
    for (const auto& a : s.attempts({.run_ids = {it->run_id}}))
      unevaluated += !a.evaluated;
    fmt::print("suite {}: run {} of {} holds {} of {} shards ({})\n", suite, it->run_id,
               (results / "suite.db").string(), it->merged.size(), count, it->status);
  }
  for (const auto& [k, why] : trouble)
    fmt::print("  shard {}: {}; resubmit it with: sbatch --array={} {}\n", k, why, k,
               (results / "slurm" / (step + ".sbatch")).string());
  if (mode == "split" && unevaluated > 0)
    fmt::print("  {} candidates are not evaluated yet: resubmit their shards with sbatch "
               "--array=K {}\n",
               unevaluated, (results / "slurm" / "evaluate.sbatch").string());
  if (!trouble.empty() || (mode == "split" && unevaluated > 0)) {
    fmt::print("  then merge again: sbatch {} (or kbench slurm merge --results {})\n",
               (results / "slurm" / "merge.sbatch").string(), results.string());
    set_exit(1);
    return;
  }
  fmt::print("  every shard is in: kbench report --db {}\n", (results / "suite.db").string());
  set_exit(0);
}

const kb::cli::CommandRegistrar k_slurm(250, [](CLI::App& app, std::function<void(int)> set_exit) {
  auto c = std::make_shared<SlurmCli>();
  auto* cmd = app.add_subcommand(
      "slurm", "Split a suite into shards and submit them as a Slurm job array, then a merge job "
               "(docs/scale.md); suite flags follow `--`");
  cmd->add_option("--shards", c->shards, "Shards (array tasks) to split the suite into");
  cmd->add_option("--mode", c->mode,
                  "run: `kbench run` per shard on GPU nodes; generate: `kbench generate` per "
                  "shard; split: generate on --cpu-partition, then evaluate on --partition")
      ->capture_default_str();
  cmd->add_option("--results", c->results,
                  "Shared folder for the shard databases, scripts, logs and the merged suite.db "
                  "(default results/slurm-<suite>)");
  cmd->add_option("--suite", c->suite, "Suite id (default: date, time and random bits)");
  cmd->add_option("--partition", c->partition, "Partition of the GPU tasks (run, evaluate)");
  cmd->add_option("--cpu-partition", c->cpu_partition,
                  "Partition of generate tasks and the merge job (default --partition)");
  cmd->add_option("--gpus-per-task", c->gpus_per_task, "GPUs per array task (--gres=gpu:N)")
      ->capture_default_str();
  cmd->add_option("--cpus-per-task", c->cpus_per_task,
                  "CPUs per array task (default: the partition's); kbench compiles on them");
  cmd->add_option("--time", c->time, "Time limit of each array task (sbatch --time)");
  cmd->add_option("--merge-time", c->merge_time, "Time limit of the merge job");
  cmd->add_option("--sbatch-option", c->sbatch_options,
                  "Another #SBATCH line for every script, e.g. --sbatch-option=--account=abc "
                  "(repeatable)")
      ->allow_extra_args(false); // one value each: a `--` after it still starts the suite flags
  cmd->add_option("--evaluate-option", c->evaluate_options,
                  "--mode split: a flag for `kbench evaluate`, e.g. --evaluate-option=--timeout=60 "
                  "(repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--local-dir", c->local_dir,
                  "Node-local folder of each task's database (default: $KB_LOCAL_DIR, else "
                  "$TMPDIR, else /tmp, on the node)");
  cmd->add_option("--snapshot-minutes", c->snapshot_minutes,
                  "Copy each shard's database to the results folder this often while it runs "
                  "(0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--kbench", c->kbench, "kbench executable the tasks run (default: this one)");
  cmd->add_option("--sbatch", c->sbatch, "sbatch command")->capture_default_str();
  cmd->add_flag("--dry-run", c->dry_run, "Print the scripts and sbatch commands; submit nothing");
  cmd->add_option("flags", c->flags, "After `--`: the suite's flags of `kbench run` (or generate)");

  auto results = std::make_shared<std::string>();
  auto* mcmd = cmd->add_subcommand(
      "merge", "Merge the shard databases of a results folder into <results>/suite.db and name "
               "the shards that are missing or unfinished (exit 1 when any is)");
  mcmd->add_option("--results", *results, "The suite's results folder")->required();
  mcmd->callback([results, set_exit] { slurm_merge(*results, set_exit); });

  auto from = std::make_shared<std::string>(), to = std::make_shared<std::string>();
  auto* ccmd = cmd->add_subcommand(
      "copy", "Copy a database consistently (even while it is written) as one file, replacing "
              "the target in one rename");
  ccmd->add_option("from", *from, "Database to copy")->required();
  ccmd->add_option("to", *to, "Where the copy goes")->required();
  ccmd->callback([from, to, set_exit] {
    kb::store::Store s(*from, {.read_only = true});
    s.snapshot_to(*to);
    set_exit(0);
  });

  cmd->callback([c, cmd, mcmd, ccmd, set_exit] {
    if (mcmd->parsed() || ccmd->parsed())
      return;
    if (cmd->count("--shards") == 0)
      throw kb::InputError("command line", 0, "--shards", "is required (shards to split into)");
    slurm_submit(*c, set_exit);
  });
});

} // namespace
