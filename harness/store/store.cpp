// The results store over SQLite: opening and migrating, transactional writes, queries, merge.
#include "store.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "schema.hpp"
#include "sqlite_util.hpp"

namespace kb::store {

using detail::Stmt;
using nlohmann::json;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string json_or_empty_object(std::string_view text) {
  return text.empty() ? std::string("{}") : std::string(text);
}

} // namespace

std::string encode_samples(const std::vector<double>& samples_ms) {
  std::string out(samples_ms.size() * sizeof(double), '\0');
  for (std::size_t i = 0; i < samples_ms.size(); ++i) {
    uint64_t bits = std::bit_cast<uint64_t>(samples_ms[i]);
    if constexpr (std::endian::native == std::endian::big)
      bits = __builtin_bswap64(bits);
    std::memcpy(out.data() + i * sizeof(double), &bits, sizeof(bits));
  }
  return out;
}

std::vector<double> decode_samples(std::string_view bytes) {
  std::vector<double> out(bytes.size() / sizeof(double));
  for (std::size_t i = 0; i < out.size(); ++i) {
    uint64_t bits;
    std::memcpy(&bits, bytes.data() + i * sizeof(double), sizeof(bits));
    if constexpr (std::endian::native == std::endian::big)
      bits = __builtin_bswap64(bits);
    out[i] = std::bit_cast<double>(bits);
  }
  return out;
}

std::vector<std::string> ProblemRow::baseline_keys() const {
  std::vector<std::string> keys{lower(id)};
  if (lower(provenance_source) == "kernelbench" && !provenance_ref.empty()) {
    // "L1/1 1_Square_matrix_multiplication_" or "L1/1_Square_matrix_multiplication_".
    std::string ref = provenance_ref;
    auto sp = ref.find(' ');
    std::string stem = sp == std::string::npos ? ref.substr(ref.find('/') + 1) : ref.substr(sp + 1);
    if (stem.ends_with(".py"))
      stem.resize(stem.size() - 3);
    keys.push_back(fmt::format("l{}/{}", level, lower(stem)));
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Impl
// ---------------------------------------------------------------------------------------------

struct Store::Impl {
  std::string path;
  sqlite3* db = nullptr;
  bool read_only = false;
  int version = 0;
  int tx_depth = 0; // 1 while a Transaction is open
  std::unordered_map<std::string, Stmt> cache;

  ~Impl() {
    cache.clear();
    if (db)
      sqlite3_close_v2(db);
  }

  // A cached prepared statement, reset and ready to bind.
  Stmt& stmt(std::string_view sql) {
    auto it = cache.find(std::string(sql));
    if (it == cache.end())
      it = cache.emplace(std::string(sql), Stmt(db, path, sql, true)).first;
    it->second.reset();
    return it->second;
  }
  void exec(std::string_view sql) { detail::exec(db, path, sql); }

  void require_writable() const {
    if (read_only)
      throw Error(fmt::format("{}: database opened read-only", path));
  }

  // Runs f inside a write transaction unless the caller already holds one.
  template <class F> auto write(F&& f) -> decltype(f()) {
    require_writable();
    if (tx_depth > 0)
      return f();
    exec("BEGIN IMMEDIATE");
    tx_depth = 1;
    try {
      if constexpr (std::is_void_v<decltype(f())>) {
        f();
        tx_depth = 0;
        exec("COMMIT");
      } else {
        auto r = f();
        tx_depth = 0;
        exec("COMMIT");
        return r;
      }
    } catch (...) {
      tx_depth = 0;
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  int64_t last_id() const { return sqlite3_last_insert_rowid(db); }

  int pragma_int(std::string_view name) {
    Stmt s(db, path, fmt::format("PRAGMA {}", name));
    if (!s.step())
      return 0;
    return static_cast<int>(s.int64(0));
  }

  void open(const OpenOptions& o);
  void migrate(int target);
  int64_t insert_candidate(const Candidate& c);
  int64_t insert_llm_call(const LlmCall& c);
  int64_t insert_evaluation(int64_t candidate_id, const EvalResult& r);
};

void Store::Impl::open(const OpenOptions& o) {
  namespace fs = std::filesystem;
  read_only = o.read_only;
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (!exists && (read_only || !o.create))
    throw Error(fmt::format("{}: no such database file", path));
  if (exists && fs::is_directory(path, ec))
    throw Error(fmt::format("{}: is a directory, not a database file", path));
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK)
    detail::throw_sqlite(db, path, "cannot open database");
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, o.busy_timeout_ms);

  // The first read tells a non-database file apart ("file is not a database").
  int app_id = 0, user_version = 0, objects = 0;
  try {
    app_id = pragma_int("application_id");
    user_version = pragma_int("user_version");
    Stmt s(db, path, "SELECT count(*) FROM sqlite_master");
    s.step();
    objects = static_cast<int>(s.int64(0));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: not a readable SQLite database ({})", path, sqlite3_errmsg(db)));
  }
  if (objects > 0 && app_id != detail::k_application_id)
    throw Error(fmt::format("{}: a SQLite database, but not a kbench results database", path));
  if (user_version > k_schema_version)
    throw Error(fmt::format("{}: schema version {} is newer than this kbench supports ({}); "
                            "use a newer kbench",
                            path, user_version, k_schema_version));
  version = user_version;

  if (!read_only) {
    exec("PRAGMA journal_mode=WAL");
    // NORMAL in WAL mode is durable against a killed process (not against power loss).
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
    int target = o.max_schema_version > 0 ? std::min(o.max_schema_version, k_schema_version)
                                          : k_schema_version;
    migrate(target);
  } else if (version == 0) {
    throw Error(fmt::format("{}: empty file, not a kbench results database", path));
  }
}

void Store::Impl::migrate(int target) {
  for (const auto& m : detail::migrations()) {
    if (m.version <= version || m.version > target)
      continue;
    exec("BEGIN IMMEDIATE");
    try {
      // Another process may have migrated while we waited for the lock.
      int now = pragma_int("user_version");
      if (now < m.version) {
        exec(m.sql);
        exec(fmt::format("PRAGMA user_version={}", m.version));
        exec(fmt::format("PRAGMA application_id={}", detail::k_application_id));
      }
      exec("COMMIT");
    } catch (const Error& e) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw Error(
          fmt::format("{}: migration to schema version {} failed: {}", path, m.version, e.what()));
    }
    version = m.version;
  }
}

int64_t Store::Impl::insert_llm_call(const LlmCall& c) {
  auto& s = stmt("INSERT INTO llm_calls(run_id, model_id, problem_id, request_hash, tokens_in, "
                 "tokens_out, latency_s, status, error_class, cost_usd, response_text, seed, "
                 "response_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, c.run_id)
      .bind(2, c.model_id)
      .bind(3, c.problem_id)
      .bind(4, c.request_hash)
      .bind(5, c.tokens_in)
      .bind(6, c.tokens_out)
      .bind(7, c.latency_s)
      .bind(8, c.status)
      .bind(9, c.error_class)
      .bind(10, c.cost_usd)
      .bind(11, c.response_text)
      .bind(12, c.seed)
      .bind(13, c.response_bytes);
  s.run();
  return last_id();
}

int64_t Store::Impl::insert_candidate(const Candidate& c) {
  auto& s =
      stmt("INSERT INTO candidates(run_id, problem_id, problem_hash, model_id, strategy, "
           "round, parent_id, idea, source, source_hash, llm_call_id) VALUES (?,?,"
           "coalesce((SELECT content_hash FROM problems WHERE id = ?2), ''),?,?,?,?,?,?,?,?)");
  s.bind(1, c.run_id)
      .bind(2, c.problem_id)
      .bind(3, c.model_id)
      .bind(4, c.strategy)
      .bind(5, c.round)
      .bind(6, c.parent_id)
      .bind(7, c.idea)
      .bind(8, c.source)
      .bind(9, c.source_hash.empty() ? content_hash(c.source) : c.source_hash)
      .bind(10, c.llm_call_id);
  s.run();
  return last_id();
}

namespace {
// Binds a TimingStats (or NULLs) into 9 consecutive parameters starting at `i`.
void bind_timing(Stmt& s, int i, const std::optional<TimingStats>& t) {
  if (!t) {
    for (int k = 0; k < 9; ++k)
      s.bind_null(i + k);
    return;
  }
  s.bind(i, t->median_ms)
      .bind(i + 1, t->mean_ms)
      .bind(i + 2, t->stderr_ms)
      .bind(i + 3, t->median_stderr_ms)
      .bind(i + 4, t->min_ms)
      .bind(i + 5, t->host_median_ms)
      .bind(i + 6, t->samples)
      .bind(i + 7, t->stop_reason)
      .bind_blob(i + 8, encode_samples(t->samples_ms));
}
std::optional<TimingStats> read_timing(const Stmt& s, int i, bool with_samples) {
  if (s.is_null(i))
    return std::nullopt;
  TimingStats t;
  t.median_ms = s.real(i);
  t.mean_ms = s.real(i + 1);
  t.stderr_ms = s.real(i + 2);
  t.median_stderr_ms = s.real(i + 3);
  t.min_ms = s.real(i + 4);
  t.host_median_ms = s.real(i + 5);
  t.samples = static_cast<int>(s.int64(i + 6));
  t.stop_reason = s.text(i + 7);
  if (with_samples)
    t.samples_ms = decode_samples(s.blob(i + 8));
  return t;
}
} // namespace

int64_t Store::Impl::insert_evaluation(int64_t candidate_id, const EvalResult& r) {
  auto& s = stmt(
      "INSERT OR REPLACE INTO evaluations(candidate_id, outcome, message, flags, protocol, "
      "speedup, cand_median_ms, cand_mean_ms, cand_stderr_ms, cand_median_stderr_ms, "
      "cand_min_ms, cand_host_median_ms, cand_samples, cand_stop_reason, cand_samples_ms, "
      "base_median_ms, base_mean_ms, base_stderr_ms, base_median_stderr_ms, base_min_ms, "
      "base_host_median_ms, base_samples, base_stop_reason, base_samples_ms, mismatch_json, "
      "compile_log, compile_s, start_s, check_s, time_s, compile_cached, roofline_pct, "
      "library_calls_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
      "?,?,?)");
  s.bind(1, candidate_id)
      .bind(2, outcome_name(r.outcome))
      .bind(3, r.message)
      .bind(4, static_cast<int64_t>(r.flags))
      .bind(5, r.protocol)
      .bind(6, r.speedup);
  bind_timing(s, 7, r.candidate_time);
  bind_timing(s, 16, r.baseline_time);
  if (r.mismatch)
    s.bind(25, json(*r.mismatch).dump());
  else
    s.bind_null(25);
  s.bind(26, r.compile_log)
      .bind(27, r.compile_s)
      .bind(28, r.start_s)
      .bind(29, r.check_s)
      .bind(30, r.time_s)
      .bind(31, r.compile_cached ? 1 : 0)
      .bind(32, r.roofline_pct)
      .bind(33, json(r.library_calls).dump());
  s.run();
  return last_id();
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

Store::Store(const std::string& path, OpenOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->path = path;
  m_impl->open(options);
}
Store::~Store() = default;
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;

const std::string& Store::path() const {
  return m_impl->path;
}
int Store::schema_version() const {
  return m_impl->version;
}

std::string Store::integrity_check() {
  Stmt s(m_impl->db, m_impl->path, "PRAGMA integrity_check");
  std::string out;
  while (s.step()) {
    if (!out.empty())
      out += '\n';
    out += s.text(0);
  }
  return out;
}

Store::Transaction::Transaction(Store& s) : m_store(&s) {
  auto& im = *s.m_impl;
  im.require_writable();
  if (im.tx_depth > 0)
    throw Error(fmt::format("{}: nested transaction", im.path));
  im.exec("BEGIN IMMEDIATE");
  im.tx_depth = 1;
}
Store::Transaction::~Transaction() {
  if (!m_done) {
    sqlite3_exec(m_store->m_impl->db, "ROLLBACK", nullptr, nullptr, nullptr);
    m_store->m_impl->tx_depth = 0;
  }
}
void Store::Transaction::commit() {
  if (m_done)
    throw Error(fmt::format("{}: transaction already finished", m_store->m_impl->path));
  m_store->m_impl->exec("COMMIT");
  m_done = true;
  m_store->m_impl->tx_depth = 0;
}

// --- runs ---

int64_t Store::begin_run(const RunInfo& i) {
  return m_impl->write([&] {
    auto& s = m_impl->stmt(
        "INSERT INTO runs(command, config_json, kbench_version, git_commit, gpu_name, gpu_uuid, "
        "driver_version, cuda_version, cublas_version, cudnn_version, nvcc_version, host, "
        "protocol, shard, uuid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,lower(hex(randomblob(16))))");
    s.bind(1, i.command)
        .bind(2, json_or_empty_object(i.config_json))
        .bind(3, i.kbench_version)
        .bind(4, i.git_commit)
        .bind(5, i.gpu_name)
        .bind(6, i.gpu_uuid)
        .bind(7, i.driver_version)
        .bind(8, i.cuda_version)
        .bind(9, i.cublas_version)
        .bind(10, i.cudnn_version)
        .bind(11, i.nvcc_version)
        .bind(12, i.host)
        .bind(13, i.protocol)
        .bind(14, i.shard);
    s.run();
    return m_impl->last_id();
  });
}

void Store::end_run(int64_t run_id, std::string_view status) {
  m_impl->write([&] {
    auto& s = m_impl->stmt("UPDATE runs SET status = ?, "
                           "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?");
    s.bind(1, status).bind(2, run_id);
    s.run();
    if (sqlite3_changes(m_impl->db) == 0)
      throw Error(fmt::format("{}: no run {}", m_impl->path, run_id));
  });
}

void Store::resume_run(int64_t run_id) {
  m_impl->write([&] {
    auto& s = m_impl->stmt("UPDATE runs SET status = 'running', ended_at = NULL WHERE id = ?");
    s.bind(1, run_id);
    s.run();
    if (sqlite3_changes(m_impl->db) == 0)
      throw Error(fmt::format("{}: no run {}", m_impl->path, run_id));
  });
}

namespace {
constexpr std::string_view k_run_select =
    "SELECT r.id, r.uuid, r.command, r.config_json, r.kbench_version, r.git_commit, r.gpu_name, "
    "r.gpu_uuid, r.driver_version, r.cuda_version, r.cublas_version, r.cudnn_version, "
    "r.nvcc_version, r.host, r.protocol, r.shard, r.started_at, coalesce(r.ended_at, ''), "
    "r.status, r.origin, (SELECT count(*) FROM candidates c WHERE c.run_id = r.id), "
    "(SELECT count(*) FROM evaluations e JOIN candidates c ON c.id = e.candidate_id "
    "WHERE c.run_id = r.id) FROM runs r";

RunRow read_run(const Stmt& s) {
  RunRow r;
  r.id = s.int64(0);
  r.uuid = s.text(1);
  r.info.command = s.text(2);
  r.info.config_json = s.text(3);
  r.info.kbench_version = s.text(4);
  r.info.git_commit = s.text(5);
  r.info.gpu_name = s.text(6);
  r.info.gpu_uuid = s.text(7);
  r.info.driver_version = s.text(8);
  r.info.cuda_version = s.text(9);
  r.info.cublas_version = s.text(10);
  r.info.cudnn_version = s.text(11);
  r.info.nvcc_version = s.text(12);
  r.info.host = s.text(13);
  r.info.protocol = s.text(14);
  r.info.shard = s.text(15);
  r.started_at = s.text(16);
  r.ended_at = s.text(17);
  r.status = s.text(18);
  r.origin = s.text(19);
  r.candidates = s.int64(20);
  r.evaluations = s.int64(21);
  return r;
}
} // namespace

std::vector<RunRow> Store::runs() {
  auto& s = m_impl->stmt(std::string(k_run_select) + " ORDER BY r.id");
  std::vector<RunRow> out;
  while (s.step())
    out.push_back(read_run(s));
  s.reset();
  return out;
}

std::optional<RunRow> Store::run(int64_t run_id) {
  auto& s = m_impl->stmt(std::string(k_run_select) + " WHERE r.id = ?");
  s.bind(1, run_id);
  std::optional<RunRow> out;
  if (s.step())
    out = read_run(s);
  s.reset();
  return out;
}

// --- problems and models ---

void Store::upsert_problem(const Problem& p) {
  m_impl->write([&] {
    auto& s = m_impl->stmt(
        "INSERT INTO problems(id, level, name, content_hash, provenance_source, "
        "provenance_version, provenance_ref, flops, min_bytes) VALUES (?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET level = excluded.level, name = excluded.name, "
        "content_hash = excluded.content_hash, provenance_source = excluded.provenance_source, "
        "provenance_version = excluded.provenance_version, provenance_ref = "
        "excluded.provenance_ref, flops = excluded.flops, min_bytes = excluded.min_bytes, "
        "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')");
    s.bind(1, p.id)
        .bind(2, p.level)
        .bind(3, p.name)
        .bind(4, p.content_hash)
        .bind(5, p.provenance.source)
        .bind(6, p.provenance.version)
        .bind(7, p.provenance.ref)
        .bind(8, p.flops)
        .bind(9, p.min_bytes);
    s.run();
  });
}

std::vector<ProblemRow> Store::problems() {
  auto& s = m_impl->stmt("SELECT id, level, name, content_hash, provenance_source, "
                         "provenance_version, provenance_ref, flops, min_bytes FROM problems "
                         "ORDER BY level, id");
  std::vector<ProblemRow> out;
  while (s.step()) {
    ProblemRow p;
    p.id = s.text(0);
    p.level = static_cast<int>(s.int64(1));
    p.name = s.text(2);
    p.content_hash = s.text(3);
    p.provenance_source = s.text(4);
    p.provenance_version = s.text(5);
    p.provenance_ref = s.text(6);
    p.flops = s.real(7);
    p.min_bytes = s.real(8);
    out.push_back(std::move(p));
  }
  s.reset();
  return out;
}

int64_t Store::upsert_model(const ModelInfo& m) {
  return upsert_model(m.provider, m.model_id, m.settings_json);
}

int64_t Store::upsert_model(std::string_view provider, std::string_view model_id,
                            std::string_view settings_json) {
  std::string settings = json_or_empty_object(settings_json);
  return m_impl->write([&] {
    auto& ins = m_impl->stmt(
        "INSERT OR IGNORE INTO models(provider, model_id, settings_json) VALUES (?,?,?)");
    ins.bind(1, provider).bind(2, model_id).bind(3, settings);
    ins.run();
    auto& sel = m_impl->stmt(
        "SELECT id FROM models WHERE provider = ? AND model_id = ? AND settings_json = ?");
    sel.bind(1, provider).bind(2, model_id).bind(3, settings);
    if (!sel.step())
      throw Error(fmt::format("{}: model row vanished", m_impl->path));
    int64_t id = sel.int64(0);
    sel.reset();
    return id;
  });
}

std::vector<ModelRow> Store::models() {
  auto& s = m_impl->stmt("SELECT id, provider, model_id, settings_json, (SELECT count(*) FROM "
                         "models m2 WHERE m2.provider = m.provider AND m2.model_id = m.model_id) "
                         "FROM models m ORDER BY id");
  std::vector<ModelRow> out;
  while (s.step()) {
    ModelRow m;
    m.id = s.int64(0);
    m.info = {s.text(1), s.text(2), s.text(3)};
    m.label = m.info.provider + "/" + m.info.model_id;
    if (s.int64(4) > 1)
      m.label += fmt::format("#{}", m.id);
    out.push_back(std::move(m));
  }
  s.reset();
  return out;
}

// --- LLM calls ---

int64_t Store::record_llm_call(const LlmCall& c) {
  return m_impl->write([&] { return m_impl->insert_llm_call(c); });
}

std::optional<CachedResponse> Store::find_cached_response(std::string_view request_hash) {
  auto& s = m_impl->stmt("SELECT id, response_text, tokens_in, tokens_out, cost_usd FROM "
                         "llm_calls WHERE request_hash = ? AND status = 'ok' ORDER BY id DESC "
                         "LIMIT 1");
  s.bind(1, request_hash);
  std::optional<CachedResponse> out;
  if (s.step())
    out = CachedResponse{s.int64(0), s.text(1), s.int64(2), s.int64(3), s.real(4)};
  s.reset();
  return out;
}

std::vector<LlmCallRow> Store::llm_calls(int64_t run_id) {
  auto& s = m_impl->stmt("SELECT id, run_id, model_id, problem_id, request_hash, tokens_in, "
                         "tokens_out, latency_s, status, error_class, cost_usd, seed, "
                         "response_bytes FROM llm_calls WHERE run_id = ? ORDER BY id");
  s.bind(1, run_id);
  std::vector<LlmCallRow> out;
  while (s.step()) {
    LlmCallRow r;
    r.id = s.int64(0);
    r.call.run_id = s.int64(1);
    r.call.model_id = s.int64(2);
    r.call.problem_id = s.text(3);
    r.call.request_hash = s.text(4);
    r.call.tokens_in = s.int64(5);
    r.call.tokens_out = s.int64(6);
    r.call.latency_s = s.real(7);
    r.call.status = s.text(8);
    r.call.error_class = s.text(9);
    r.call.cost_usd = s.real(10);
    r.call.seed = s.opt_int64(11);
    r.call.response_bytes = s.int64(12);
    out.push_back(std::move(r));
  }
  s.reset();
  return out;
}

CallTally Store::call_tally(int64_t run_id) {
  CallTally t;
  {
    auto& s = m_impl->stmt(
        "SELECT coalesce(sum(status = 'ok'), 0), coalesce(sum(CASE WHEN error_class = "
        "'cache_hit' THEN 0 ELSE tokens_in END), 0), coalesce(sum(CASE WHEN error_class = "
        "'cache_hit' THEN 0 ELSE tokens_out END), 0), coalesce(sum(cost_usd), 0) FROM llm_calls "
        "WHERE run_id = ?");
    s.bind(1, run_id);
    if (s.step()) {
      t.answered = s.int64(0);
      t.tokens_in = s.int64(1);
      t.tokens_out = s.int64(2);
      t.cost_usd = s.real(3);
    }
    s.reset();
  }
  auto& s = m_impl->stmt(
      "SELECT f.status, count(DISTINCT f.request_hash) FROM llm_calls f WHERE f.run_id = ? AND "
      "f.status NOT IN ('ok', 'budget') AND f.error_class <> 'replay_not_found' AND "
      "f.request_hash <> '' AND NOT EXISTS (SELECT 1 FROM llm_calls o WHERE o.run_id = f.run_id "
      "AND o.request_hash = f.request_hash AND o.status = 'ok') GROUP BY f.status");
  s.bind(1, run_id);
  while (s.step()) {
    t.failures_by_class[s.text(0)] = s.int64(1);
    t.provider_failures += s.int64(1);
  }
  s.reset();
  return t;
}

namespace {
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "";
  return buf;
}
bool process_alive(int64_t pid) {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}
} // namespace

std::optional<LeaseHolder> Store::acquire_run_lease(int64_t run_id, std::string_view token,
                                                    double stale_after_s) {
  return m_impl->write([&]() -> std::optional<LeaseHolder> {
    const double now = unix_now();
    const std::string host = this_host();
    auto& q =
        m_impl->stmt("SELECT holder, host, pid, heartbeat_at FROM run_leases WHERE run_id = ?");
    q.bind(1, run_id);
    if (q.step()) {
      const std::string holder_token = q.text(0);
      LeaseHolder h{q.text(1), q.int64(2), now - q.real(3)};
      q.reset();
      const bool fresh = h.heartbeat_age_s < stale_after_s;
      const bool alive = h.host == host ? process_alive(h.pid) && fresh : fresh;
      if (holder_token != token && alive)
        return h;
    } else {
      q.reset();
    }
    auto& w = m_impl->stmt("INSERT OR REPLACE INTO run_leases(run_id, holder, host, pid, "
                           "acquired_at, heartbeat_at) VALUES (?,?,?,?,?,?)");
    w.bind(1, run_id)
        .bind(2, token)
        .bind(3, host)
        .bind(4, static_cast<int64_t>(::getpid()))
        .bind(5, now)
        .bind(6, now);
    w.run();
    return std::nullopt;
  });
}

bool Store::renew_run_lease(int64_t run_id, std::string_view token) {
  return m_impl->write([&] {
    auto& s =
        m_impl->stmt("UPDATE run_leases SET heartbeat_at = ? WHERE run_id = ? AND holder = ?");
    s.bind(1, unix_now()).bind(2, run_id).bind(3, token);
    s.run();
    return sqlite3_changes(m_impl->db) > 0;
  });
}

void Store::release_run_lease(int64_t run_id, std::string_view token) {
  m_impl->write([&] {
    auto& s = m_impl->stmt("DELETE FROM run_leases WHERE run_id = ? AND holder = ?");
    s.bind(1, run_id).bind(2, token);
    s.run();
  });
}

// --- candidates and evaluations ---

int64_t Store::add_candidate(const Candidate& c) {
  return m_impl->write([&] { return m_impl->insert_candidate(c); });
}

int64_t Store::record_evaluation(int64_t candidate_id, const EvalResult& r) {
  return m_impl->write([&] { return m_impl->insert_evaluation(candidate_id, r); });
}

AttemptIds Store::record_attempt(const Attempt& a) {
  return m_impl->write([&] {
    AttemptIds ids;
    Candidate c = a.candidate;
    if (a.llm_call) {
      ids.llm_call_id = m_impl->insert_llm_call(*a.llm_call);
      c.llm_call_id = ids.llm_call_id;
    }
    ids.candidate_id = m_impl->insert_candidate(c);
    if (a.evaluation)
      ids.evaluation_id = m_impl->insert_evaluation(ids.candidate_id, *a.evaluation);
    return ids;
  });
}

std::optional<std::string> Store::candidate_source(int64_t candidate_id) {
  auto& s = m_impl->stmt("SELECT source FROM candidates WHERE id = ?");
  s.bind(1, candidate_id);
  std::optional<std::string> out;
  if (s.step())
    out = s.text(0);
  s.reset();
  return out;
}

// --- baselines and calibration ---

int64_t Store::record_baseline_timing(int64_t run_id, std::string_view problem_id,
                                      const TimingStats& t, std::string_view source) {
  return m_impl->write([&] {
    auto& s = m_impl->stmt(
        "INSERT INTO baseline_timings(run_id, problem_id, source, median_ms, mean_ms, "
        "stderr_ms, median_stderr_ms, min_ms, host_median_ms, samples, stop_reason, samples_ms) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(1, run_id).bind(2, problem_id).bind(3, source);
    bind_timing(s, 4, t);
    s.run();
    return m_impl->last_id();
  });
}

std::vector<BaselineRow> Store::baseline_timings(const std::vector<int64_t>& run_ids) {
  auto& s = m_impl->stmt("SELECT run_id, problem_id, source, median_ms, mean_ms, stderr_ms, "
                         "median_stderr_ms, min_ms, host_median_ms, samples, stop_reason, "
                         "samples_ms FROM baseline_timings ORDER BY id");
  std::vector<BaselineRow> out;
  while (s.step()) {
    int64_t run = s.int64(0);
    if (!run_ids.empty() && std::find(run_ids.begin(), run_ids.end(), run) == run_ids.end())
      continue;
    BaselineRow b;
    b.run_id = run;
    b.problem_id = s.text(1);
    b.source = s.text(2);
    b.time = *read_timing(s, 3, true);
    out.push_back(std::move(b));
  }
  s.reset();
  return out;
}

int64_t Store::record_external_baseline(const ExternalBaseline& b) {
  return m_impl->write([&] {
    auto& s = m_impl->stmt(
        "INSERT INTO external_baselines(problem_key, source, hardware, time_ms, std_ms, min_ms, "
        "max_ms, num_trials, file) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(problem_key, source, "
        "hardware) DO UPDATE SET time_ms = excluded.time_ms, std_ms = excluded.std_ms, min_ms = "
        "excluded.min_ms, max_ms = excluded.max_ms, num_trials = excluded.num_trials, file = "
        "excluded.file, imported_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')");
    s.bind(1, lower(b.problem_key))
        .bind(2, b.source)
        .bind(3, b.hardware)
        .bind(4, b.time_ms)
        .bind(5, b.std_ms)
        .bind(6, b.min_ms)
        .bind(7, b.max_ms)
        .bind(8, b.num_trials)
        .bind(9, b.file);
    s.run();
    auto& sel = m_impl->stmt(
        "SELECT id FROM external_baselines WHERE problem_key = ? AND source = ? AND hardware = ?");
    sel.bind(1, lower(b.problem_key)).bind(2, b.source).bind(3, b.hardware);
    sel.step();
    int64_t id = sel.int64(0);
    sel.reset();
    return id;
  });
}

std::vector<ExternalBaselineRow> Store::external_baselines() {
  auto& s = m_impl->stmt("SELECT id, problem_key, source, hardware, time_ms, std_ms, min_ms, "
                         "max_ms, num_trials, file, imported_at FROM external_baselines "
                         "ORDER BY problem_key, source, hardware");
  std::vector<ExternalBaselineRow> out;
  while (s.step()) {
    ExternalBaselineRow r;
    r.id = s.int64(0);
    r.baseline.problem_key = s.text(1);
    r.baseline.source = s.text(2);
    r.baseline.hardware = s.text(3);
    r.baseline.time_ms = s.real(4);
    r.baseline.std_ms = s.real(5);
    r.baseline.min_ms = s.real(6);
    r.baseline.max_ms = s.real(7);
    r.baseline.num_trials = static_cast<int>(s.int64(8));
    r.baseline.file = s.text(9);
    r.imported_at = s.text(10);
    out.push_back(std::move(r));
  }
  s.reset();
  return out;
}

ImportSummary Store::import_kernelbench_timings(const std::string& json_path,
                                                std::string_view source) {
  std::string text = read_file(json_path);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(json_path, 0, "", fmt::format("not valid JSON: {}", e.what()));
  }
  if (!doc.is_object() || doc.empty())
    throw InputError(json_path, 0, "",
                     "expected KernelBench's timing format: an object of \"levelN\" objects");
  ImportSummary sum;
  sum.source = std::string(source);
  std::vector<ExternalBaseline> rows;
  for (const auto& [level_key, entries] : doc.items()) {
    int level = 0;
    if (!level_key.starts_with("level") || std::sscanf(level_key.c_str() + 5, "%d", &level) != 1 ||
        level <= 0)
      throw InputError(json_path, 0, level_key, "expected a key of the form \"levelN\"");
    if (!entries.is_object())
      throw InputError(json_path, 0, level_key, "expected an object of problem entries");
    for (const auto& [file, e] : entries.items()) {
      std::string field = level_key + "." + file;
      if (!e.is_object() || !e.contains("mean") || !e["mean"].is_number())
        throw InputError(json_path, 0, field, "entry without a numeric \"mean\" (ms)");
      auto num = [&](const char* k) {
        if (!e.contains(k))
          return 0.0;
        if (!e[k].is_number())
          throw InputError(json_path, 0, field + "." + k, "expected a number");
        return e[k].get<double>();
      };
      ExternalBaseline b;
      std::string stem = file.ends_with(".py") ? file.substr(0, file.size() - 3) : file;
      b.problem_key = fmt::format("l{}/{}", level, lower(stem));
      b.source = std::string(source);
      b.hardware = e.contains("hardware") && e["hardware"].is_string()
                       ? e["hardware"].get<std::string>()
                       : std::string();
      b.time_ms = num("mean");
      if (!(b.time_ms > 0))
        throw InputError(json_path, 0, field + ".mean", "time must be positive");
      b.std_ms = num("std");
      b.min_ms = num("min");
      b.max_ms = num("max");
      b.num_trials = static_cast<int>(num("num_trials"));
      b.file = json_path;
      if (sum.hardware.empty())
        sum.hardware = b.hardware;
      rows.push_back(std::move(b));
    }
  }
  m_impl->write([&] {
    for (const auto& b : rows)
      record_external_baseline(b);
  });
  sum.imported = static_cast<int64_t>(rows.size());
  return sum;
}

void Store::record_calibration(int64_t run_id, const GpuCeilings& c) {
  m_impl->write([&] {
    auto& s = m_impl->stmt(
        "INSERT OR REPLACE INTO calibrations(run_id, gpu_name, bandwidth_gbs, fp32_tflops, "
        "tf32_tflops, fp16_tflops, bf16_tflops, measured) VALUES (?,?,?,?,?,?,?,?)");
    s.bind(1, run_id)
        .bind(2, c.gpu_name)
        .bind(3, c.bandwidth_gbs)
        .bind(4, c.fp32_tflops)
        .bind(5, c.tf32_tflops)
        .bind(6, c.fp16_tflops)
        .bind(7, c.bf16_tflops)
        .bind(8, c.measured ? 1 : 0);
    s.run();
  });
}

std::optional<GpuCeilings> Store::calibration(int64_t run_id) {
  auto& s = m_impl->stmt("SELECT gpu_name, bandwidth_gbs, fp32_tflops, tf32_tflops, "
                         "fp16_tflops, bf16_tflops, measured FROM calibrations WHERE run_id = ?");
  s.bind(1, run_id);
  std::optional<GpuCeilings> out;
  if (s.step())
    out = GpuCeilings{s.text(0), s.real(1), s.real(2),      s.real(3),
                      s.real(4), s.real(5), s.int64(6) != 0};
  s.reset();
  return out;
}

// --- queries ---

AttemptCounts Store::attempt_counts(int64_t run_id) {
  auto& s = m_impl->stmt("SELECT problem_id, model_id, count(*) FROM candidates WHERE run_id = ? "
                         "GROUP BY problem_id, model_id");
  s.bind(1, run_id);
  AttemptCounts out;
  while (s.step())
    out[{s.text(0), s.int64(1)}] = s.int64(2);
  s.reset();
  return out;
}

int64_t Store::attempts_done(int64_t run_id, std::string_view problem_id, int64_t model_id) {
  auto& s = m_impl->stmt(
      "SELECT count(*) FROM candidates WHERE run_id = ? AND problem_id = ? AND model_id = ?");
  s.bind(1, run_id).bind(2, problem_id).bind(3, model_id);
  s.step();
  int64_t n = s.int64(0);
  s.reset();
  return n;
}

std::vector<AttemptRow> Store::attempts(const AttemptFilter& f) {
  std::string sql = fmt::format(
      "SELECT c.run_id, c.id, c.problem_id, coalesce(p.level, 0), c.model_id, c.strategy, "
      "c.round, c.parent_id, c.idea, c.source_hash, {}, e.id IS NOT NULL, e.outcome, e.message, "
      "e.flags, e.protocol, e.speedup, "
      "e.cand_median_ms, e.cand_mean_ms, e.cand_stderr_ms, e.cand_median_stderr_ms, "
      "e.cand_min_ms, e.cand_host_median_ms, e.cand_samples, e.cand_stop_reason, {}, "
      "e.base_median_ms, e.base_mean_ms, e.base_stderr_ms, e.base_median_stderr_ms, "
      "e.base_min_ms, e.base_host_median_ms, e.base_samples, e.base_stop_reason, {}, "
      "e.mismatch_json, {}, e.compile_s, e.start_s, e.check_s, e.time_s, e.compile_cached, "
      "e.roofline_pct, e.library_calls_json, coalesce(l.tokens_in, 0), "
      "coalesce(l.tokens_out, 0), coalesce(l.cost_usd, 0), coalesce(l.latency_s, 0) "
      "FROM candidates c LEFT JOIN evaluations e ON e.candidate_id = c.id "
      "LEFT JOIN llm_calls l ON l.id = c.llm_call_id LEFT JOIN problems p ON p.id = c.problem_id "
      "WHERE (?1 IS NULL OR c.problem_id = ?1) AND (?2 IS NULL OR c.model_id = ?2) "
      "ORDER BY c.id",
      f.with_source ? "c.source" : "''", f.with_samples ? "e.cand_samples_ms" : "NULL",
      f.with_samples ? "e.base_samples_ms" : "NULL", f.with_source ? "e.compile_log" : "''");
  auto& s = m_impl->stmt(sql);
  if (f.problem_id)
    s.bind(1, *f.problem_id);
  if (f.model_id)
    s.bind(2, *f.model_id);
  std::vector<AttemptRow> out;
  while (s.step()) {
    int64_t run = s.int64(0);
    if (!f.run_ids.empty() && std::find(f.run_ids.begin(), f.run_ids.end(), run) == f.run_ids.end())
      continue;
    AttemptRow a;
    a.run_id = run;
    a.candidate_id = s.int64(1);
    a.problem_id = s.text(2);
    a.level = static_cast<int>(s.int64(3));
    a.model_id = s.int64(4);
    a.strategy = s.text(5);
    a.round = static_cast<int>(s.int64(6));
    a.parent_id = s.opt_int64(7);
    a.idea = s.text(8);
    a.source_hash = s.text(9);
    a.source = s.text(10);
    a.evaluated = s.int64(11) != 0;
    if (a.evaluated) {
      auto& r = a.eval;
      r.outcome = parse_outcome(s.text(12)).value_or(Outcome::runtime_error);
      r.message = s.text(13);
      r.flags = static_cast<uint32_t>(s.int64(14));
      r.protocol = s.text(15);
      r.speedup = s.real(16);
      r.candidate_time = read_timing(s, 17, f.with_samples);
      r.baseline_time = read_timing(s, 26, f.with_samples);
      if (!s.is_null(35))
        r.mismatch = json::parse(s.text(35)).get<MismatchInfo>();
      r.compile_log = s.text(36);
      r.compile_s = s.real(37);
      r.start_s = s.real(38);
      r.check_s = s.real(39);
      r.time_s = s.real(40);
      r.compile_cached = s.int64(41) != 0;
      r.roofline_pct = s.real(42);
      r.library_calls = json::parse(s.text(43)).get<std::vector<std::string>>();
    }
    a.tokens_in = s.int64(44);
    a.tokens_out = s.int64(45);
    a.cost_usd = s.real(46);
    a.llm_latency_s = s.real(47);
    out.push_back(std::move(a));
  }
  s.reset();
  return out;
}

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
