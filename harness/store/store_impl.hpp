// Internal to kb_store: the connection behind Store (prepared statement cache, write
// transactions, migrations) shared by store.cpp, merge.cpp and import.cpp.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include <fmt/format.h>

#include "sqlite_util.hpp"
#include "store.hpp"

namespace kb::store {

using detail::Stmt;

// Lower-case ASCII.
std::string lower(std::string s);
// "{}" for empty JSON text.
std::string json_or_empty_object(std::string_view text);

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
  // Steps an INSERT ... RETURNING id and returns the id.
  int64_t returning_id(Stmt& s) {
    if (!s.step())
      throw Error(fmt::format("{}: an insert returned no row id", path));
    const int64_t id = s.int64(0);
    s.reset();
    return id;
  }

  int pragma_int(std::string_view name) {
    Stmt s(db, path, fmt::format("PRAGMA {}", name));
    if (!s.step())
      return 0;
    return static_cast<int>(s.int64(0));
  }

  void open(const OpenOptions& o);
  // True when a first read of the schema succeeds on the open connection.
  bool readable();
  void migrate(int target);
  int64_t insert_candidate(const Candidate& c);
  int64_t insert_llm_call(const LlmCall& c);
  int64_t insert_evaluation(int64_t candidate_id, const EvalResult& r);
};

} // namespace kb::store
