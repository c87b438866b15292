// Merging shard databases: every run of another database not yet present here (by uuid), with
// its rows, ids remapped, in one transaction.
#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>

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
    RowCopier runs(db, path, "runs", {"origin"});
    for (int64_t id : ids_of(db, path,
                             "SELECT id FROM src.runs WHERE uuid NOT IN (SELECT uuid FROM "
                             "main.runs) ORDER BY id")) {
      run_map[id] = runs.copy(id, [&](const std::string&, Stmt& r, int col, Stmt& w, int bi) {
        std::string origin = r.text(col);
        w.bind(bi, origin.empty() ? fmt::format("{}#{}", other_path, id) : origin);
      });
      ++sum.runs_copied;
    }
    {
      Stmt n(db, path, "SELECT count(*) FROM src.runs");
      n.step();
      sum.runs_skipped = n.int64(0) - sum.runs_copied;
    }
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
    RowCopier bases(db, path, "baseline_timings", {"run_id"});
    for (int64_t id : ids_of(db, path,
                             fmt::format("SELECT id FROM src.baseline_timings WHERE run_id IN "
                                         "({}) ORDER BY id",
                                         run_list)))
      bases.copy(id, map_fk(run_map));
    Stmt cal(db, path,
             fmt::format("SELECT run_id, gpu_name, bandwidth_gbs, fp32_tflops, tf32_tflops, "
                         "fp16_tflops, bf16_tflops, measured FROM src.calibrations WHERE run_id "
                         "IN ({})",
                         run_list));
    while (cal.step())
      record_calibration(run_map.at(cal.int64(0)),
                         GpuCeilings{cal.text(1), cal.real(2), cal.real(3), cal.real(4),
                                     cal.real(5), cal.real(6), cal.int64(7) != 0});
  });
  return sum;
}

} // namespace kb::store
