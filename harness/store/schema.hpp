// Internal: the ordered list of schema migrations (version N is reached by applying 1..N).
#pragma once

#include <string_view>
#include <vector>

namespace kb::store::detail {

// SQLite application_id stamped into every kbench database ("kbst").
inline constexpr int k_application_id = 0x6b627374;

struct Migration {
  int version;          // the schema version this migration produces
  std::string_view sql; // statements run in one transaction
};

// Migrations in version order; the last one's version equals k_schema_version.
const std::vector<Migration>& migrations();

} // namespace kb::store::detail
