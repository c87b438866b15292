// Merging shard databases: every run of another database not yet present here (by uuid), with
// its rows, ids remapped, in one transaction.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store_impl.hpp"

namespace kb::store {

// --- merge ---

namespace {

// Copies one row of src.<table> (by id) into main.<table> with some columns replaced; returns
// the new row id.
class RowCopier {
public:
  RowCopier(sqlite3* db, const std::string& path, const std::string& table,
            const std::vector<std::string>& replaced)
      : m_db(db) {
    Stmt info(db, path, fmt::format("SELECT name FROM pragma_table_info('{}', 'main')", table));
    std::vector<std::string> cols;
    while (info.step()) {
      std::string c = info.text(0);
      if (c != "id")
        cols.push_back(c);
    }
    std::string names, marks, select;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      names += (i ? ", " : "") + cols[i];
      marks += i ? ", ?" : "?";
      select += (i ? ", " : "") + cols[i];
      auto it = std::find(replaced.begin(), replaced.end(), cols[i]);
      if (it != replaced.end())
        m_replaced_index[cols[i]] = static_cast<int>(i);
    }
    m_columns = cols;
    m_read = Stmt(db, path, fmt::format("SELECT {} FROM src.{} WHERE id = ?", select, table));
    m_write =
        Stmt(db, path, fmt::format("INSERT INTO main.{}({}) VALUES ({})", table, names, marks));
  }

  // Reads the source row, lets `patch(column, value)` rewrite replaced columns (returning a
  // binding for them), and inserts.
  template <class Patch> int64_t copy(int64_t src_id, Patch&& patch) {
    m_read.reset();
    m_read.bind(1, src_id);
    if (!m_read.step())
      return 0;
    m_write.reset();
    for (std::size_t i = 0; i < m_columns.size(); ++i) {
      int bi = static_cast<int>(i) + 1;
      if (m_replaced_index.count(m_columns[i]))
        patch(m_columns[i], m_read, static_cast<int>(i), m_write, bi);
      else
        m_write.bind_value(bi, m_read.value(static_cast<int>(i)));
    }
    m_write.run();
    m_read.reset();
    return sqlite3_last_insert_rowid(m_db);
  }

private:
  sqlite3* m_db;
  std::vector<std::string> m_columns;
  std::map<std::string, int> m_replaced_index;
  Stmt m_read, m_write;
};

std::vector<int64_t> ids_of(sqlite3* db, const std::string& path, const std::string& sql) {
  Stmt s(db, path, sql);
  std::vector<int64_t> out;
  while (s.step())
    out.push_back(s.int64(0));
  return out;
}

using nlohmann::json;

// What the runner records in a shard's configuration: "shard": {"index", "count"} and "suite":
// {"id", "fingerprint", "run_budget"}.
struct ShardOf {
  std::string suite, fingerprint;
  int index = 0, count = 0;
};

std::optional<ShardOf> shard_of(const json& cfg) {
  if (!cfg.is_object() || !cfg.contains("shard") || !cfg.contains("suite") ||
      !cfg["shard"].is_object() || !cfg["suite"].is_object())
    return std::nullopt;
  ShardOf s;
  s.suite = cfg["suite"].value("id", "");
  s.fingerprint = cfg["suite"].value("fingerprint", "");
  s.index = cfg["shard"].value("index", 0);
  s.count = cfg["shard"].value("count", 0);
  if (s.suite.empty() || s.count < 1 || s.index < 1 || s.index > s.count)
    return std::nullopt;
  return s;
}

// A suite run (made by merge): a "suite" with its "shards" and no "shard" of its own.
bool is_suite_run(const json& cfg) {
  return cfg.is_object() && !cfg.contains("shard") && cfg.contains("suite") &&
         cfg["suite"].is_object() && cfg["suite"].contains("shards");
}

// The suite run's status from its shards: a failed shard fails it; a missing, running or
// interrupted one leaves it interrupted; else a budget-exhausted shard makes it
// budget_exhausted; else completed.
std::string suite_status(const json& suite) {
  const auto& shards = suite.at("shards");
  bool failed = false, open = shards.size() < suite.at("count").get<std::size_t>(), budget = false;
  for (const auto& sh : shards) {
    const std::string st = sh.value("status", "");
    failed |= st == "failed";
    open |= st == "running" || st == "interrupted";
    budget |= st == "budget_exhausted";
  }
  return failed ? "failed" : open ? "interrupted" : budget ? "budget_exhausted" : "completed";
}

// "" when every shard is in, else "1,2,4/4".
std::string suite_label(const json& suite) {
  const int count = suite.at("count").get<int>();
  if (static_cast<int>(suite.at("shards").size()) == count)
    return "";
  std::vector<int> in;
  for (const auto& sh : suite.at("shards"))
    in.push_back(sh.at("index").get<int>());
  return fmt::format("{}/{}", fmt::join(in, ","), count);
}

struct CandidateKey {
  int64_t id;
  std::string problem_id, source_hash;
};

std::vector<CandidateKey> run_candidates(sqlite3* db, const std::string& path,
                                         const std::string& schema, int64_t run_id) {
  Stmt s(db, path,
         fmt::format("SELECT id, problem_id, source_hash FROM {}.candidates WHERE run_id = ? "
                     "ORDER BY id",
                     schema));
  s.bind(1, run_id);
  std::vector<CandidateKey> out;
  while (s.step())
    out.push_back({s.int64(0), s.text(1), s.text(2)});
  return out;
}

// A run on both sides (one uuid): the evaluations and baselines it lacks here, from the other
// copy. Copies of one database evaluated slice by slice hold the same candidates in the same
// order; copies that hold other candidates are left alone with a note.
void fill_in_evaluations(sqlite3* db, const std::string& path, const std::string& other_path,
                         const std::vector<std::pair<int64_t, int64_t>>& same, MergeSummary& sum) {
  RowCopier evals(db, path, "evaluations", {"candidate_id"});
  RowCopier bases(db, path, "baseline_timings", {"run_id"});
  for (const auto& [src_run, run] : same) {
    const auto theirs = run_candidates(db, path, "src", src_run);
    const auto ours = run_candidates(db, path, "main", run);
    bool same_candidates = theirs.size() == ours.size();
    for (std::size_t i = 0; same_candidates && i < ours.size(); ++i)
      same_candidates = theirs[i].problem_id == ours[i].problem_id &&
                        theirs[i].source_hash == ours[i].source_hash;
    if (!same_candidates) {
      sum.notes.push_back(fmt::format("run {} ({}#{}): the two copies hold other candidates ({} "
                                      "here, {} there); no evaluation filled in",
                                      run, other_path, src_run, ours.size(), theirs.size()));
      continue;
    }
    std::set<int64_t> evaluated;
    {
      Stmt e(db, path,
             "SELECT e.candidate_id FROM main.evaluations e JOIN main.candidates c ON c.id = "
             "e.candidate_id WHERE c.run_id = ?");
      e.bind(1, run);
      while (e.step())
        evaluated.insert(e.int64(0));
    }
    Stmt find(db, path, "SELECT id FROM src.evaluations WHERE candidate_id = ? ORDER BY id DESC");
    int64_t filled = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
      if (evaluated.count(ours[i].id))
        continue;
      find.reset();
      find.bind(1, theirs[i].id);
      if (!find.step())
        continue;
      const int64_t eval_id = find.int64(0);
      find.reset();
      const int64_t target = ours[i].id;
      evals.copy(eval_id,
                 [target](const std::string&, Stmt&, int, Stmt& w, int bi) { w.bind(bi, target); });
      ++filled;
    }
    std::set<std::string> have;
    {
      Stmt b(db, path, "SELECT problem_id FROM main.baseline_timings WHERE run_id = ?");
      b.bind(1, run);
      while (b.step())
        have.insert(b.text(0));
    }
    Stmt b(db, path,
           "SELECT id, problem_id FROM src.baseline_timings WHERE run_id = ? ORDER BY id");
    b.bind(1, src_run);
    while (b.step())
      if (have.insert(b.text(1)).second)
        bases.copy(b.int64(0),
                   [run](const std::string&, Stmt&, int, Stmt& w, int bi) { w.bind(bi, run); });
    if (filled > 0)
      sum.notes.push_back(fmt::format("run {}: {} evaluations filled in from {}#{}", run, filled,
                                      other_path, src_run));
    sum.evaluations_filled += filled;
  }
}

} // namespace

MergeSummary Store::merge_from(const std::string& other_path) {
  namespace fs = std::filesystem;
  m_impl->require_writable();
  if (fs::equivalent(other_path, m_impl->path))
    throw Error(fmt::format("{}: cannot merge a database into itself", other_path));
  // Opening validates the file and tells its schema version; an older one is migrated in a
  // temporary copy so the source file is never modified.
  std::string attach_path = other_path;
  std::optional<fs::path> temp;
  {
    Store probe(other_path, OpenOptions{.read_only = true});
    if (probe.schema_version() < k_schema_version) {
      temp = fs::temp_directory_path() /
             fmt::format("kbench-merge-{}-{}.db", ::getpid(), std::hash<std::string>{}(other_path));
      fs::remove(*temp);
      detail::exec(probe.m_impl->db, other_path, fmt::format("VACUUM INTO '{}'", temp->string()));
      Store migrated(temp->string());
      attach_path = temp->string();
    }
  }
  struct TempGuard {
    std::optional<fs::path>& p;
    ~TempGuard() {
      std::error_code ec;
      if (p)
        fs::remove(*p, ec);
    }
  } guard{temp};

  auto& im = *m_impl;
  {
    Stmt att(im.db, im.path, "ATTACH DATABASE ? AS src");
    att.bind(1, attach_path);
    att.run();
  }
  struct Detach {
    Impl& im;
    ~Detach() {
      im.cache.clear(); // cached statements would keep the schema of src alive
      sqlite3_exec(im.db, "DETACH DATABASE src", nullptr, nullptr, nullptr);
    }
  } detach{im};

  MergeSummary sum;
  im.write([&] {
    sqlite3* db = im.db;
    const std::string& path = im.path;
    // Problems: keep ours when both have the id.
    detail::exec(db, path, "INSERT OR IGNORE INTO main.problems SELECT * FROM src.problems");
    // Models by natural key.
    std::map<int64_t, int64_t> model_map;
    {
      Stmt s(db, path, "SELECT id, provider, model_id, settings_json FROM src.models");
      while (s.step())
        model_map[s.int64(0)] = upsert_model(s.text(1), s.text(2), s.text(3));
    }
    // External baselines by natural key; keep ours on conflict.
    detail::exec(db, path,
                 "INSERT OR IGNORE INTO main.external_baselines(problem_key, source, hardware, "
                 "time_ms, std_ms, min_ms, max_ms, num_trials, file, imported_at) SELECT "
                 "problem_key, source, hardware, time_ms, std_ms, min_ms, max_ms, num_trials, "
                 "file, imported_at FROM src.external_baselines");
    sum.external_baselines = sqlite3_changes(db);

    std::map<int64_t, int64_t> run_map, call_map, cand_map;
    auto map_fk = [](const std::map<int64_t, int64_t>& m) {
      return [&m](const std::string&, Stmt& r, int col, Stmt& w, int bi) {
        if (r.is_null(col)) {
          w.bind_null(bi);
          return;
        }
        auto it = m.find(r.int64(col));
        if (it == m.end())
          w.bind_null(bi);
        else
          w.bind(bi, it->second);
      };
    };
    // The suite runs here, by suite id, with their configurations (written back at the end).
    std::map<std::string, int64_t> suite_runs;
    std::map<int64_t, json> suite_cfg;
    {
      Stmt s(db, path, "SELECT id, config_json FROM main.runs ORDER BY id");
      while (s.step()) {
        json cfg = json::parse(s.text(1), nullptr, false);
        if (is_suite_run(cfg)) {
          suite_runs.emplace(cfg["suite"].value("id", ""), s.int64(0));
          suite_cfg[s.int64(0)] = std::move(cfg);
        }
      }
    }
    std::set<int64_t> suite_targets;               // suite runs this merge adds shards to
    std::vector<std::pair<int64_t, int64_t>> same; // (source run, run here) with one uuid
    RowCopier runs(db, path, "runs", {"origin", "uuid"});
    Stmt src_runs(db, path,
                  "SELECT r.id, r.uuid, r.config_json, r.status, r.started_at, "
                  "coalesce(r.ended_at, ''), r.host, r.gpu_name, r.origin, m.id, (SELECT "
                  "count(*) FROM src.candidates c WHERE c.run_id = r.id) FROM src.runs r LEFT "
                  "JOIN main.runs m ON m.uuid = r.uuid ORDER BY r.id");
    while (src_runs.step()) {
      const int64_t id = src_runs.int64(0);
      const std::string uuid = src_runs.text(1);
      const std::string where = fmt::format("{}#{}", other_path, id);
      if (!src_runs.is_null(9)) {
        same.emplace_back(id, src_runs.int64(9));
        ++sum.runs_skipped;
        continue;
      }
      const json cfg = json::parse(src_runs.text(2), nullptr, false);
      const auto shard = shard_of(cfg);
      if (!shard) {
        run_map[id] = runs.copy(id, [&](const std::string& col, Stmt& r, int c, Stmt& w, int bi) {
          if (col == "uuid") {
            w.bind(bi, r.text(c));
            return;
          }
          std::string origin = r.text(c);
          w.bind(bi, origin.empty() ? where : origin);
        });
        ++sum.runs_copied;
        continue;
      }
      const std::string label = fmt::format("shard {}/{} of suite {} ({})", shard->index,
                                            shard->count, shard->suite, where);
      auto it = suite_runs.find(shard->suite);
      int64_t target = 0;
      if (it == suite_runs.end()) {
        // The suite's first shard here: its run row becomes the suite run's.
        target = runs.copy(id, [&](const std::string& col, Stmt&, int, Stmt& w, int bi) {
          if (col == "uuid") {
            Stmt u(db, path, "SELECT lower(hex(randomblob(16)))");
            u.step();
            w.bind(bi, u.text(0));
          } else {
            w.bind(bi, "suite " + shard->suite);
          }
        });
        json scfg = cfg;
        for (const char* k : {"shard", "environment", "placement"})
          scfg.erase(k);
        json suite{{"id", shard->suite},
                   {"fingerprint", shard->fingerprint},
                   {"count", shard->count},
                   {"shards", json::array()}};
        if (cfg["suite"].contains("run_budget")) {
          suite["run_budget"] = cfg["suite"]["run_budget"];
          scfg["run_budget"] = cfg["suite"]["run_budget"]; // the suite's, not a shard's share
        }
        scfg["suite"] = suite;
        suite_runs.emplace(shard->suite, target);
        suite_cfg[target] = std::move(scfg);
      } else {
        target = it->second;
        const json& suite = suite_cfg.at(target)["suite"];
        const std::string fp = suite.value("fingerprint", "");
        const int count = suite.value("count", 0);
        std::string why;
        if (fp != shard->fingerprint || count != shard->count)
          why = fmt::format("another configuration than run {} here (fingerprint {} of {} "
                            "shards, this shard {} of {})",
                            target, fp, count, shard->fingerprint, shard->count);
        for (const auto& sh : suite.at("shards")) {
          if (!why.empty())
            break;
          if (sh.value("uuid", "") == uuid)
            why = fmt::format("already merged into run {} (merge into a new file to take a newer "
                              "copy of a shard)",
                              target);
          else if (sh.value("index", 0) == shard->index)
            why = fmt::format("run {} holds this shard already, from {} (another run of the "
                              "same shard; merge one of them)",
                              target, sh.value("origin", "?"));
        }
        if (!why.empty()) {
          sum.notes.push_back(fmt::format("{} left out: {}", label, why));
          ++sum.runs_skipped;
          continue;
        }
      }
      std::string origin = src_runs.text(8);
      json entry{{"index", shard->index},
                 {"uuid", uuid},
                 {"origin", origin.empty() ? where : origin},
                 {"status", src_runs.text(3)},
                 {"started_at", src_runs.text(4)},
                 {"ended_at", src_runs.text(5)},
                 {"host", src_runs.text(6)},
                 {"gpu_name", src_runs.text(7)},
                 {"candidates", src_runs.int64(10)}};
      for (const char* k : {"environment", "placement"})
        if (cfg.contains(k))
          entry[k] = cfg[k];
      json& shards = suite_cfg.at(target)["suite"]["shards"];
      shards.push_back(std::move(entry));
      std::sort(shards.begin(), shards.end(), [](const json& a, const json& b) {
        return a.at("index").get<int>() < b.at("index").get<int>();
      });
      run_map[id] = target;
      suite_targets.insert(target);
      ++sum.shards_merged;
    }
    src_runs.reset();
    fill_in_evaluations(db, path, other_path, same, sum);
    if (run_map.empty())
      return;
    std::string run_list;
    for (const auto& [old_id, new_id] : run_map)
      run_list += (run_list.empty() ? "" : ",") + std::to_string(old_id);

    auto by_run_and_model = [&](const std::string& col, Stmt& r, int c, Stmt& w, int bi) {
      if (col == "run_id")
        w.bind(bi, run_map.at(r.int64(c)));
      else
        map_fk(model_map)(col, r, c, w, bi);
    };
    RowCopier calls(db, path, "llm_calls", {"run_id", "model_id"});
    for (int64_t id : ids_of(db, path,
                             fmt::format("SELECT id FROM src.llm_calls WHERE run_id IN ({}) "
                                         "ORDER BY id",
                                         run_list))) {
      call_map[id] = calls.copy(id, by_run_and_model);
      ++sum.llm_calls;
    }
    RowCopier cands(db, path, "candidates", {"run_id", "model_id", "parent_id", "llm_call_id"});
    for (int64_t id : ids_of(db, path,
                             fmt::format("SELECT id FROM src.candidates WHERE run_id IN ({}) "
                                         "ORDER BY id",
                                         run_list))) {
      cand_map[id] = cands.copy(id, [&](const std::string& col, Stmt& r, int c, Stmt& w, int bi) {
        if (col == "parent_id")
          map_fk(cand_map)(col, r, c, w, bi);
        else if (col == "llm_call_id")
          map_fk(call_map)(col, r, c, w, bi);
        else
          by_run_and_model(col, r, c, w, bi);
      });
      ++sum.candidates;
    }
    RowCopier evals(db, path, "evaluations", {"candidate_id"});
    for (int64_t id : ids_of(db, path,
                             fmt::format("SELECT e.id FROM src.evaluations e JOIN src.candidates "
                                         "c ON c.id = e.candidate_id WHERE c.run_id IN ({}) "
                                         "ORDER BY e.id",
                                         run_list))) {
      evals.copy(id, map_fk(cand_map));
      ++sum.evaluations;
    }
    // A suite run keeps one baseline per problem (as one run would) and its first calibration.
    std::set<std::pair<int64_t, std::string>> have_baseline;
    {
      Stmt b(db, path, "SELECT run_id, problem_id FROM main.baseline_timings");
      while (b.step())
        if (suite_targets.count(b.int64(0)))
          have_baseline.emplace(b.int64(0), b.text(1));
    }
    RowCopier bases(db, path, "baseline_timings", {"run_id"});
    {
      Stmt b(db, path,
             fmt::format("SELECT id, run_id, problem_id FROM src.baseline_timings WHERE run_id IN "
                         "({}) ORDER BY id",
                         run_list));
      while (b.step()) {
        const int64_t target = run_map.at(b.int64(1));
        if (suite_targets.count(target) && !have_baseline.emplace(target, b.text(2)).second)
          continue;
        bases.copy(b.int64(0), map_fk(run_map));
      }
    }
    Stmt cal(db, path,
             fmt::format("SELECT run_id, gpu_name, bandwidth_gbs, fp32_tflops, tf32_tflops, "
                         "fp16_tflops, bf16_tflops, measured FROM src.calibrations WHERE run_id "
                         "IN ({}) ORDER BY run_id",
                         run_list));
    while (cal.step()) {
      const int64_t target = run_map.at(cal.int64(0));
      if (suite_targets.count(target) && calibration(target))
        continue;
      record_calibration(target, GpuCeilings{cal.text(1), cal.real(2), cal.real(3), cal.real(4),
                                             cal.real(5), cal.real(6), cal.int64(7) != 0});
    }
    // The suite runs' record: shards merged, status, label, times, hosts.
    for (int64_t target : suite_targets) {
      json& cfg = suite_cfg.at(target);
      const json& suite = cfg["suite"];
      std::string started, ended;
      std::vector<std::string> hosts, gpus;
      for (const auto& sh : suite.at("shards")) {
        const std::string st = sh.value("started_at", ""), en = sh.value("ended_at", "");
        if (!st.empty() && (started.empty() || st < started))
          started = st;
        if (en > ended)
          ended = en;
        for (auto [list, key] : {std::pair{&hosts, "host"}, {&gpus, "gpu_name"}}) {
          const std::string v = sh.value(key, "");
          if (!v.empty() && std::find(list->begin(), list->end(), v) == list->end())
            list->push_back(v);
        }
      }
      if (gpus.size() > 1)
        sum.notes.push_back(fmt::format("suite {}: shards ran on different GPU models ({}); "
                                        "their times are not comparable with each other",
                                        suite.value("id", ""), fmt::join(gpus, ", ")));
      const std::string host =
          hosts.size() <= 4 ? fmt::format("{}", fmt::join(hosts, ","))
                            : fmt::format("{} and {} other hosts", hosts.front(), hosts.size() - 1);
      Stmt up(db, path,
              "UPDATE main.runs SET config_json = ?, status = ?, shard = ?, started_at = ?, "
              "ended_at = ?, host = ?, gpu_name = ? WHERE id = ?");
      up.bind(1, cfg.dump()).bind(2, suite_status(suite)).bind(3, suite_label(suite));
      up.bind(4, started);
      if (ended.empty())
        up.bind_null(5);
      else
        up.bind(5, ended);
      up.bind(6, host).bind(7, gpus.empty() ? std::string() : gpus.front()).bind(8, target);
      up.run();
    }
  });
  return sum;
}

void Store::snapshot_to(const std::string& to) {
  namespace fs = std::filesystem;
  const std::string& from = m_impl->path;
  std::error_code ec;
  const fs::path dst = fs::absolute(to, ec);
  if (ec)
    throw Error(fmt::format("{}: {}", to, ec.message()));
  if (fs::exists(dst, ec) && fs::exists(from, ec) && fs::equivalent(dst, from, ec))
    throw Error(fmt::format("{}: cannot copy a database onto itself", to));
  fs::create_directories(dst.parent_path(), ec);
  std::random_device rd;
  const fs::path tmp = dst.parent_path() /
                       fmt::format(".{}.{}-{:08x}.tmp", dst.filename().string(), ::getpid(), rd());
  struct Remove {
    const fs::path& p;
    bool keep = false;
    ~Remove() {
      std::error_code e;
      if (!keep)
        fs::remove(p, e);
    }
  } guard{tmp};
  // VACUUM INTO reads one snapshot (a writer may go on) and writes a single rollback-journal
  // file: no -wal or -shm beside it, so a copy on a shared file system is whole by itself.
  {
    Stmt v(m_impl->db, from, "VACUUM INTO ?");
    v.bind(1, tmp.string());
    v.run();
  }
  // A copy has no writer: the leases of the original's writers stay with the original, so a
  // process resuming from the copy (a resubmitted Slurm task) is never refused by one.
  {
    sqlite3* copy = nullptr;
    if (sqlite3_open_v2(tmp.c_str(), &copy, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      const std::string why = copy ? sqlite3_errmsg(copy) : "out of memory";
      sqlite3_close(copy);
      throw Error(fmt::format("{}: cannot open the copy of {}: {}", tmp.string(), from, why));
    }
    struct Close {
      sqlite3* db;
      ~Close() { sqlite3_close(db); }
    } close_copy{copy};
    Stmt has(copy, tmp.string(),
             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'run_leases'");
    has.step();
    const bool leases = has.int64(0) > 0;
    has.reset();
    if (leases)
      detail::exec(copy, tmp.string(), "DELETE FROM run_leases");
  }
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0)
      ::close(fd);
    throw Error(
        fmt::format("{}: cannot flush the copy of {}: {}", tmp.string(), from, std::strerror(err)));
  }
  ::close(fd);
  fs::rename(tmp, dst, ec);
  if (ec)
    throw Error(
        fmt::format("cannot rename {} to {}: {}", tmp.string(), dst.string(), ec.message()));
  guard.keep = true;
  const int dir = ::open(dst.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir); // the rename itself survives a crash of the node
    ::close(dir);
  }
}

std::vector<SuiteState> Store::suites() {
  std::vector<SuiteState> out;
  for (const auto& r : runs()) {
    const json cfg = json::parse(r.info.config_json, nullptr, false);
    if (!is_suite_run(cfg))
      continue;
    const json& suite = cfg["suite"];
    SuiteState st;
    st.run_id = r.id;
    st.suite = suite.value("id", "");
    st.status = r.status;
    st.count = suite.value("count", 0);
    std::set<int> in;
    for (const auto& sh : suite.at("shards")) {
      const int k = sh.value("index", 0);
      in.insert(k);
      st.merged.push_back(k);
      if (sh.value("status", "") != "completed")
        st.unfinished.emplace_back(k, sh.value("status", ""));
    }
    for (int k = 1; k <= st.count; ++k)
      if (!in.count(k))
        st.missing.push_back(k);
    out.push_back(std::move(st));
  }
  return out;
}

} // namespace kb::store
