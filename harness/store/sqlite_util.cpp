// Internal: RAII over SQLite's C API; every failure becomes a kb::Error naming the file.
#include "sqlite_util.hpp"

#include <fmt/format.h>

#include "core.hpp"

namespace kb::store::detail {

void throw_sqlite(sqlite3* db, const std::string& path, std::string_view what) {
  throw Error(fmt::format("{}: {}: {}", path, what, db ? sqlite3_errmsg(db) : "out of memory"));
}

Stmt::Stmt(sqlite3* db, const std::string& path, std::string_view sql, bool persistent)
    : m_db(db), m_path(&path) {
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                         persistent ? SQLITE_PREPARE_PERSISTENT : 0, &m_stmt, nullptr) != SQLITE_OK)
    throw_sqlite(db, path, fmt::format("cannot prepare '{}'", sql.substr(0, 60)));
}
Stmt::~Stmt() {
  if (m_stmt)
    sqlite3_finalize(m_stmt);
}
Stmt::Stmt(Stmt&& o) noexcept : m_stmt(o.m_stmt), m_db(o.m_db), m_path(o.m_path) {
  o.m_stmt = nullptr;
}
Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (m_stmt)
      sqlite3_finalize(m_stmt);
    m_stmt = o.m_stmt;
    m_db = o.m_db;
    m_path = o.m_path;
    o.m_stmt = nullptr;
  }
  return *this;
}

namespace {
void check_bind(int rc, sqlite3* db, const std::string* path) {
  if (rc != SQLITE_OK)
    throw_sqlite(db, *path, "cannot bind a value");
}
} // namespace

Stmt& Stmt::bind(int i, int64_t v) {
  check_bind(sqlite3_bind_int64(m_stmt, i, v), m_db, m_path);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  check_bind(sqlite3_bind_double(m_stmt, i, v), m_db, m_path);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  check_bind(sqlite3_bind_text64(m_stmt, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
             m_db, m_path);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view bytes) {
  check_bind(sqlite3_bind_blob64(m_stmt, i, bytes.data(), bytes.size(), SQLITE_TRANSIENT), m_db,
             m_path);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  check_bind(sqlite3_bind_null(m_stmt, i), m_db, m_path);
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<int64_t>& v) {
  return v ? bind(i, *v) : bind_null(i);
}
Stmt& Stmt::bind_value(int i, sqlite3_value* v) {
  check_bind(sqlite3_bind_value(m_stmt, i, v), m_db, m_path);
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  std::string sql = sqlite3_sql(m_stmt) ? sqlite3_sql(m_stmt) : "";
  sqlite3_reset(m_stmt);
  throw_sqlite(m_db, *m_path, fmt::format("statement failed '{}'", sql.substr(0, 60)));
}
void Stmt::run() {
  while (step()) {
  }
  reset();
}
void Stmt::reset() {
  sqlite3_reset(m_stmt);
  sqlite3_clear_bindings(m_stmt);
}

bool Stmt::is_null(int col) const {
  return sqlite3_column_type(m_stmt, col) == SQLITE_NULL;
}
int64_t Stmt::int64(int col) const {
  return sqlite3_column_int64(m_stmt, col);
}
double Stmt::real(int col) const {
  return sqlite3_column_double(m_stmt, col);
}
std::string Stmt::text(int col) const {
  const auto* p = sqlite3_column_text(m_stmt, col);
  int n = sqlite3_column_bytes(m_stmt, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
           : std::string();
}
std::string Stmt::blob(int col) const {
  const void* p = sqlite3_column_blob(m_stmt, col);
  int n = sqlite3_column_bytes(m_stmt, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}
std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col))
    return std::nullopt;
  return int64(col);
}
sqlite3_value* Stmt::value(int col) const {
  return sqlite3_column_value(m_stmt, col);
}
int Stmt::columns() const {
  return sqlite3_column_count(m_stmt);
}
std::string Stmt::column_name(int col) const {
  return sqlite3_column_name(m_stmt, col);
}

void exec(sqlite3* db, const std::string& path, std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error(fmt::format("{}: {}", path, msg));
  }
}

} // namespace kb::store::detail
