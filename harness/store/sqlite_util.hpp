// Internal: thin RAII over SQLite's C API (connection, prepared statement) with errors that name
// the database file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sqlite3.h>

namespace kb::store::detail {

// Throws kb::Error "<path>: <what>: <sqlite message>".
[[noreturn]] void throw_sqlite(sqlite3* db, const std::string& path, std::string_view what);

class Stmt {
public:
  Stmt() = default;
  Stmt(sqlite3* db, const std::string& path, std::string_view sql, bool persistent = false);
  ~Stmt();
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binding (1-based indices). Empty optionals bind NULL.
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_blob(int i, std::string_view bytes);
  Stmt& bind_null(int i);
  Stmt& bind(int i, const std::optional<int64_t>& v);
  Stmt& bind_value(int i, sqlite3_value* v);

  // Steps once: true when a row is available.
  bool step();
  // Steps to completion (for writes).
  void run();
  void reset();

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  std::string blob(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  sqlite3_value* value(int col) const;
  int columns() const;
  std::string column_name(int col) const;

  sqlite3_stmt* get() const { return m_stmt; }

private:
  sqlite3_stmt* m_stmt = nullptr;
  sqlite3* m_db = nullptr;
  const std::string* m_path = nullptr;
};

// Runs statements without results; throws naming the path.
void exec(sqlite3* db, const std::string& path, std::string_view sql);

} // namespace kb::store::detail
