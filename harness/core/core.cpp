// Implementation of kbench's shared vocabulary: names, shapes, attributes, hashing, files.
#include "core.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <xxhash.h>

#include "version.hpp"

namespace kb {

namespace {
// "file:line: field: message", leaving out a line that is not known (0) and an empty field.
std::string input_error_text(const std::string& file, int line, const std::string& field,
                             const std::string& message) {
  std::string where = line > 0 ? fmt::format("{}:{}", file, line) : file;
  if (!field.empty())
    where += ": " + field;
  return where.empty() ? message : where + ": " + message;
}
} // namespace

InputError::InputError(std::string file, int line, std::string field, const std::string& message)
    : Error(input_error_text(file, line, field, message)), m_file(std::move(file)), m_line(line),
      m_field(std::move(field)), m_message(message) {}

namespace {
struct DTypeInfo {
  DType type;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<DTypeInfo, 7> k_dtypes{{{DType::f32, "f32", 4},
                                             {DType::f16, "f16", 2},
                                             {DType::bf16, "bf16", 2},
                                             {DType::i32, "i32", 4},
                                             {DType::i64, "i64", 8},
                                             {DType::b8, "bool", 1},
                                             {DType::f64, "f64", 8}}};
const DTypeInfo& info(DType t) {
  for (const auto& i : k_dtypes)
    if (i.type == t)
      return i;
  throw Error(fmt::format("unknown dtype code {}", static_cast<int>(t)));
}
} // namespace

std::size_t dtype_size(DType t) {
  return info(t).size;
}
std::string_view dtype_name(DType t) {
  return info(t).name;
}
std::optional<DType> parse_dtype(std::string_view name) {
  if (name == "b8")
    return DType::b8;
  for (const auto& i : k_dtypes)
    if (i.name == name)
      return i.type;
  return std::nullopt;
}
bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f64;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s)
    if (__builtin_mul_overflow(n, d, &n))
      throw Error(
          fmt::format("the element count of shape {} overflows 64-bit integers", shape_str(s)));
  return n;
}
std::string shape_str(const Shape& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i)
    st[i] = st[i + 1] * s[i + 1];
  return st;
}

namespace {
constexpr std::array<std::pair<DistKind, std::string_view>, 5> k_dists{{
    {DistKind::uniform, "uniform"},
    {DistKind::normal, "normal"},
    {DistKind::randint, "randint"},
    {DistKind::ill_conditioned, "ill_conditioned"},
    {DistKind::constant, "constant"},
}};
constexpr std::array<std::pair<Outcome, std::string_view>, 8> k_outcomes{{
    {Outcome::no_code, "no_code"},
    {Outcome::compile_error, "compile_error"},
    {Outcome::rejected, "rejected"},
    {Outcome::load_error, "load_error"},
    {Outcome::runtime_error, "runtime_error"},
    {Outcome::timeout, "timeout"},
    {Outcome::mismatch, "mismatch"},
    {Outcome::correct, "correct"},
}};
template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E e) {
  for (const auto& [k, v] : table)
    if (k == e)
      return v;
  return "unknown";
}
template <class E, std::size_t N>
std::optional<E> parse_name(const std::array<std::pair<E, std::string_view>, N>& table,
                            std::string_view s) {
  for (const auto& [k, v] : table)
    if (v == s)
      return k;
  return std::nullopt;
}
} // namespace

std::string_view dist_kind_name(DistKind k) {
  return name_of(k_dists, k);
}
std::optional<DistKind> parse_dist_kind(std::string_view name) {
  return parse_name(k_dists, name);
}
std::string_view outcome_name(Outcome o) {
  return name_of(k_outcomes, o);
}
std::optional<Outcome> parse_outcome(std::string_view name) {
  return parse_name(k_outcomes, name);
}

namespace {
constexpr std::array<std::pair<Protocol, std::string_view>, 3> k_protocols{{
    {Protocol::kbench, "kbench"},
    {Protocol::kernelbench_v01, "kernelbench-v0.1"},
    {Protocol::kernelbench, "kernelbench"},
}};
} // namespace

std::string_view protocol_name(Protocol p) {
  return name_of(k_protocols, p);
}
std::optional<Protocol> parse_protocol(std::string_view name) {
  return parse_name(k_protocols, name);
}
std::string protocol_names() {
  std::string out;
  for (const auto& [p, name] : k_protocols)
    out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

std::vector<std::string> flag_names(uint32_t flags) {
  static constexpr std::array<std::pair<uint32_t, std::string_view>, 7> k_flags{{
      {flag_above_roofline, "above_roofline"},
      {flag_speedup_threshold, "speedup_above_threshold"},
      {flag_off_stream, "off_stream_work"},
      {flag_nondeterministic, "nondeterministic"},
      {flag_library_calls, "library_calls"},
      {flag_noisy, "noisy_timing"},
      {flag_unverified_time, "unverified_time"},
  }};
  std::vector<std::string> out;
  for (const auto& [bit, name] : k_flags)
    if (flags & bit)
      out.emplace_back(name);
  return out;
}

// ----- attributes -----------------------------------------------------------------------------

namespace {
const AttrValue* find_attr(const Attrs& a, std::string_view key) {
  auto it = a.find(key);
  return it == a.end() ? nullptr : &it->second;
}
[[noreturn]] void attr_type_error(std::string_view key, std::string_view want) {
  throw Error(fmt::format("attribute '{}' must be {}", key, want));
}
} // namespace

int64_t attr_int(const Attrs& a, std::string_view key) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    throw Error(fmt::format("missing attribute '{}'", key));
  if (auto* i = std::get_if<int64_t>(v))
    return *i;
  attr_type_error(key, "an integer");
}
int64_t attr_int(const Attrs& a, std::string_view key, int64_t fallback) {
  return find_attr(a, key) ? attr_int(a, key) : fallback;
}
double attr_double(const Attrs& a, std::string_view key) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    throw Error(fmt::format("missing attribute '{}'", key));
  if (auto* d = std::get_if<double>(v))
    return *d;
  if (auto* i = std::get_if<int64_t>(v))
    return static_cast<double>(*i);
  attr_type_error(key, "a number");
}
double attr_double(const Attrs& a, std::string_view key, double fallback) {
  return find_attr(a, key) ? attr_double(a, key) : fallback;
}
bool attr_bool(const Attrs& a, std::string_view key, bool fallback) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    return fallback;
  if (auto* b = std::get_if<bool>(v))
    return *b;
  attr_type_error(key, "true or false");
}
std::string attr_string(const Attrs& a, std::string_view key, std::string_view fallback) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    return std::string(fallback);
  if (auto* s = std::get_if<std::string>(v))
    return *s;
  attr_type_error(key, "a string");
}
std::vector<int64_t> attr_ints(const Attrs& a, std::string_view key, std::size_t rank,
                               std::vector<int64_t> fallback) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    return fallback;
  if (auto* i = std::get_if<int64_t>(v))
    return std::vector<int64_t>(rank == 0 ? 1 : rank, *i);
  if (auto* l = std::get_if<std::vector<int64_t>>(v)) {
    if (rank > 0 && l->size() != rank)
      throw Error(fmt::format("attribute '{}' must have {} entries, has {}", key, rank, l->size()));
    return *l;
  }
  attr_type_error(key, "an integer or a list of integers");
}
std::vector<double> attr_doubles(const Attrs& a, std::string_view key,
                                 std::vector<double> fallback) {
  const AttrValue* v = find_attr(a, key);
  if (!v)
    return fallback;
  if (auto* d = std::get_if<std::vector<double>>(v))
    return *d;
  if (auto* l = std::get_if<std::vector<int64_t>>(v))
    return std::vector<double>(l->begin(), l->end());
  if (auto* d = std::get_if<double>(v))
    return {*d};
  if (auto* i = std::get_if<int64_t>(v))
    return {static_cast<double>(*i)};
  attr_type_error(key, "a number or a list of numbers");
}

namespace {
std::string py_double(double d) {
  if (std::isnan(d))
    return "float('nan')";
  if (std::isinf(d))
    return d > 0 ? "float('inf')" : "float('-inf')";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".en") == std::string::npos)
    s += ".0";
  return s;
}
} // namespace

std::string attr_to_python(const AttrValue& v) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "True" : "False"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return py_double(d); }
    std::string operator()(const std::string& s) const { return python_string_literal(s); }
    std::string operator()(const std::vector<int64_t>& l) const {
      return fmt::format("[{}]", fmt::join(l, ", "));
    }
    std::string operator()(const std::vector<double>& l) const {
      std::vector<std::string> parts;
      for (double d : l)
        parts.push_back(py_double(d));
      return fmt::format("[{}]", fmt::join(parts, ", "));
    }
  };
  return std::visit(Visitor{}, v);
}

// ----- problems -------------------------------------------------------------------------------

Tolerance default_tolerance(DType t) {
  switch (t) {
  case DType::f16:
  case DType::bf16:
    return {1e-2, 1e-2, ""};
  case DType::i32:
  case DType::i64:
  case DType::b8:
    return {0.0, 0.0, ""};
  default:
    return {1e-4, 1e-4, ""};
  }
}

const ValueSpec& Problem::output_spec(std::string_view name) const {
  auto it = values.find(name);
  if (it == values.end())
    throw Error(fmt::format("problem {}: unknown value '{}'", id, name));
  return it->second;
}

// ----- utilities ------------------------------------------------------------------------------

std::string content_hash(std::string_view bytes) {
  return fmt::format("{:016x}", XXH64(bytes.data(), bytes.size(), 0));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(fmt::format("cannot read {}", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  // The temporary name is unique per writer (process, thread, random suffix) and created with
  // O_EXCL, so writers of the same path in any number of threads and processes never share one;
  // the last rename wins and every reader sees one whole version.
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id())};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = fmt::format("{}.tmp.{}.{:x}.{:016x}", path, ::getpid(), counter++, rng());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt > 16))
      throw Error(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  }
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(fmt::format("cannot write {}: {}", tmp, std::strerror(err)));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write {}: {}", tmp, std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(err)));
  }
}

// ----- untrusted input --------------------------------------------------------------------------

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw Error(fmt::format("integer overflow: {} * {} does not fit in 64 bits", a, b));
  return r;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw Error(fmt::format("integer overflow: {} + {} does not fit in 64 bits", a, b));
  return r;
}

namespace {
// Length of the well-formed UTF-8 sequence at s[i] (Unicode 15, table 3-7), 0 when ill-formed;
// the code point goes to `cp`.
std::size_t utf8_sequence(std::string_view s, std::size_t i, char32_t& cp) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0)
      lo = 0xA0; // overlong
    if (b0 == 0xED)
      hi = 0x9F; // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0)
      lo = 0x90; // overlong
    if (b0 == 0xF4)
      hi = 0x8F; // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size())
    return 0;
  cp = b0 & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
      return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  return len;
}
} // namespace

std::optional<std::size_t> invalid_utf8_at(std::string_view s) {
  char32_t cp = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0)
      return i;
    i += n;
  }
  return std::nullopt;
}

std::string utf8_problem(std::string_view s) {
  const auto at = invalid_utf8_at(s);
  if (!at)
    return "";
  return fmt::format("invalid UTF-8 (byte 0x{:02X} at offset {})",
                     static_cast<unsigned char>(s[*at]), *at);
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char32_t cp = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string python_string_literal(std::string_view s) {
  std::string out = "'";
  char32_t cp = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0)
      throw Error(fmt::format("cannot render as a Python string: {}", utf8_problem(s)));
    i += n;
    if (cp == '\\' || cp == '\'')
      out += fmt::format("\\{}", static_cast<char>(cp));
    else if (cp >= 0x20 && cp < 0x7F)
      out += static_cast<char>(cp);
    else if (cp <= 0xFF)
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
    else if (cp <= 0xFFFF)
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
    else
      out += fmt::format("\\U{:08x}", static_cast<unsigned>(cp));
  }
  return out + "'";
}

std::string git_commit() {
  return KB_GIT_COMMIT_STR;
}
std::string version_string() {
  return fmt::format("{} (commit {})", KB_VERSION_STR, KB_GIT_COMMIT_STR);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

} // namespace kb
