// The results store over SQLite: opening and migrating, transactional writes, row mappers and
// queries, run leases. Merge is in merge.cpp, the KernelBench timing import in import.cpp.
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
#include "store_impl.hpp"

namespace kb::store {

using detail::Stmt;
using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string json_or_empty_object(std::string_view text) {
  return text.empty() ? std::string("{}") : std::string(text);
}

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

namespace {
// A file path as the path part of an SQLite URI: '%', '?' and '#' percent-encoded.
std::string uri_path(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == '%' || c == '?' || c == '#')
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  return out;
}
} // namespace

bool Store::Impl::readable() {
  sqlite3_stmt* st = nullptr;
  const bool ok =
      sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return ok;
}

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
  if (read_only && !readable()) {
    // A WAL database whose folder this process cannot write (a read-only mount, another
    // user's 0444 file) cannot get its shared-memory file: read it as immutable instead. Nobody
    // can be writing it then, and a cleanly closed database has its log checkpointed.
    sqlite3_close_v2(db);
    db = nullptr;
    const std::string uri = "file:" + uri_path(fs::absolute(path, ec).string()) + "?immutable=1";
    if (sqlite3_open_v2(uri.c_str(), &db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      detail::throw_sqlite(db, path, "cannot open database");
    sqlite3_extended_result_codes(db, 1);
  }

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
      .bind(5, protocol_name(r.protocol))
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
        .bind(13, protocol_name(i.protocol))
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
// A protocol as the database holds it: its name, or "" in rows written before protocols had
// versions (kbench's own). A name this kbench does not know is an error, never a guess.
Protocol stored_protocol(const std::string& text, const std::string& what) {
  if (text.empty())
    return Protocol::kbench;
  if (auto p = parse_protocol(text))
    return *p;
  throw Error(fmt::format("{} records protocol '{}', which this kbench does not know ({}); a newer "
                          "kbench wrote it",
                          what, text, protocol_names()));
}

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
  r.info.protocol = stored_protocol(s.text(14), fmt::format("run {}", r.id));
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

// --- row mappers: one per table, over the column order of its SELECT ---

namespace {

// id, level, name, content_hash, provenance_source, provenance_version, provenance_ref, flops,
// min_bytes
ProblemRow read_problem(const Stmt& s) {
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
  return p;
}

// id, provider, model_id, settings_json, rows sharing provider and model id
ModelRow read_model(const Stmt& s) {
  ModelRow m;
  m.id = s.int64(0);
  m.info = {s.text(1), s.text(2), s.text(3)};
  m.label = m.info.provider + "/" + m.info.model_id;
  if (s.int64(4) > 1)
    m.label += fmt::format("#{}", m.id);
  return m;
}

// id, run_id, model_id, problem_id, request_hash, tokens_in, tokens_out, latency_s, status,
// error_class, cost_usd, seed, response_bytes (response_text is left out of listings)
LlmCallRow read_llm_call(const Stmt& s) {
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
  return r;
}

// id, problem_key, source, hardware, time_ms, std_ms, min_ms, max_ms, num_trials, file,
// imported_at
ExternalBaselineRow read_external_baseline(const Stmt& s) {
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
  return r;
}

} // namespace

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
  while (s.step())
    out.push_back(read_problem(s));
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
    // The no-op update makes RETURNING give the existing row's id too.
    auto& ins = m_impl->stmt(
        "INSERT INTO models(provider, model_id, settings_json) VALUES (?,?,?) ON "
        "CONFLICT(provider, model_id, settings_json) DO UPDATE SET provider = excluded.provider "
        "RETURNING id");
    ins.bind(1, provider).bind(2, model_id).bind(3, settings);
    return m_impl->returning_id(ins);
  });
}

std::vector<ModelRow> Store::models() {
  auto& s = m_impl->stmt("SELECT id, provider, model_id, settings_json, (SELECT count(*) FROM "
                         "models m2 WHERE m2.provider = m.provider AND m2.model_id = m.model_id) "
                         "FROM models m ORDER BY id");
  std::vector<ModelRow> out;
  while (s.step())
    out.push_back(read_model(s));
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
  while (s.step())
    out.push_back(read_llm_call(s));
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
  for (const auto& u : unanswered_requests(run_id)) {
    ++t.failures_by_class[u.status];
    ++t.provider_failures;
  }
  return t;
}

std::vector<UnansweredRequest> Store::unanswered_requests(int64_t run_id) {
  // The last failed call of each request hash that no call of the run answered. A replay model
  // without a kernel ("replay_not_found") is an answer with no code, and a budget stop is the
  // run's own decision: neither is a provider failure.
  auto& s = m_impl->stmt(
      "SELECT f.model_id, f.problem_id, f.status, f.request_hash FROM llm_calls f WHERE "
      "f.run_id = ? AND f.status NOT IN ('ok', 'budget') AND f.error_class <> "
      "'replay_not_found' AND f.request_hash <> '' AND NOT EXISTS (SELECT 1 FROM llm_calls o "
      "WHERE o.run_id = f.run_id AND o.request_hash = f.request_hash AND o.status = 'ok') AND "
      "f.id = (SELECT max(l.id) FROM llm_calls l WHERE l.run_id = f.run_id AND l.request_hash = "
      "f.request_hash AND l.status NOT IN ('ok', 'budget') AND l.error_class <> "
      "'replay_not_found') ORDER BY f.id");
  s.bind(1, run_id);
  std::vector<UnansweredRequest> out;
  while (s.step())
    out.push_back({s.int64(0), s.text(1), s.text(2), s.text(3)});
  s.reset();
  return out;
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
        "excluded.file, imported_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') RETURNING id");
    s.bind(1, lower(b.problem_key))
        .bind(2, b.source)
        .bind(3, b.hardware)
        .bind(4, b.time_ms)
        .bind(5, b.std_ms)
        .bind(6, b.min_ms)
        .bind(7, b.max_ms)
        .bind(8, b.num_trials)
        .bind(9, b.file);
    return m_impl->returning_id(s);
  });
}

std::vector<ExternalBaselineRow> Store::external_baselines() {
  auto& s = m_impl->stmt("SELECT id, problem_key, source, hardware, time_ms, std_ms, min_ms, "
                         "max_ms, num_trials, file, imported_at FROM external_baselines "
                         "ORDER BY problem_key, source, hardware");
  std::vector<ExternalBaselineRow> out;
  while (s.step())
    out.push_back(read_external_baseline(s));
  s.reset();
  return out;
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
      r.protocol = stored_protocol(s.text(15), fmt::format("candidate {}", a.candidate_id));
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

} // namespace kb::store
