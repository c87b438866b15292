// Shared vocabulary of kbench: dtypes, tensor specs, op graphs, problems, outcomes and errors.
// Depends on nothing but the standard library and nlohmann-json (for (de)serialisation).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kb {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// Thrown for exceptional conditions (bad configuration, unreadable database). Caught once in main.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A user-input error that knows where it happened: "file:line: field: message".
class InputError : public Error {
public:
  InputError(std::string file, int line, std::string field, const std::string& message);
  const std::string& file() const { return m_file; }
  int line() const { return m_line; }
  const std::string& field() const { return m_field; }
  const std::string& message() const { return m_message; }

private:
  std::string m_file;
  int m_line;
  std::string m_field;
  std::string m_message;
};

// ---------------------------------------------------------------------------------------------
// Data types and shapes
// ---------------------------------------------------------------------------------------------

// Element types a problem may use. f64 exists only inside the harness (references), never in a
// problem's declared inputs or outputs.
enum class DType : int32_t { f32 = 0, f16 = 1, bf16 = 2, i32 = 3, i64 = 4, b8 = 5, f64 = 6 };

// Bytes per element.
std::size_t dtype_size(DType t);
// Canonical short name ("f32", "bf16", ...).
std::string_view dtype_name(DType t);
// Parses a short name; also accepts "bool" for b8. Returns nullopt for an unknown name.
std::optional<DType> parse_dtype(std::string_view name);
bool is_floating(DType t);

using Shape = std::vector<int64_t>;

// Number of elements (1 for a scalar shape {}); throws kb::Error when the product does not fit in
// 64 bits.
int64_t numel(const Shape& s);
// "[4096, 4096]".
std::string shape_str(const Shape& s);
// Row-major contiguous strides in elements.
Shape contiguous_strides(const Shape& s);

// ---------------------------------------------------------------------------------------------
// Input distributions
// ---------------------------------------------------------------------------------------------

// How an input or parameter is drawn from a seed.
//  uniform:   U[a, b)
//  normal:    N(a = mean, b = std)
//  randint:   integers in [a, b)
//  ill_conditioned: N(a = mean, b = std) with |mean| >> std (e.g. 1000, 0.1); separate kind so
//                   the checker knows the inputs are adversarial for cancellation.
//  constant:  every element equals a (only for buffers like masks; never for weights).
enum class DistKind { uniform, normal, randint, ill_conditioned, constant };

struct Distribution {
  DistKind kind = DistKind::uniform;
  double a = 0.0;
  double b = 1.0;

  bool operator==(const Distribution&) const = default;
};

std::string_view dist_kind_name(DistKind k);
std::optional<DistKind> parse_dist_kind(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Op graph
// ---------------------------------------------------------------------------------------------

// An attribute value of an op (stride=4, dims=[1,2], approximate="tanh", causal=true, eps=1e-5).
using AttrValue =
    std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
using Attrs = std::map<std::string, AttrValue, std::less<>>;

// Typed accessors; throw kb::Error naming the attribute when it is missing or of the wrong type.
// An int attribute is accepted where a double is asked for; a single int where a list is asked for
// (broadcast to `rank` entries when rank > 0).
int64_t attr_int(const Attrs& a, std::string_view key);
int64_t attr_int(const Attrs& a, std::string_view key, int64_t fallback);
double attr_double(const Attrs& a, std::string_view key);
double attr_double(const Attrs& a, std::string_view key, double fallback);
bool attr_bool(const Attrs& a, std::string_view key, bool fallback);
std::string attr_string(const Attrs& a, std::string_view key, std::string_view fallback);
std::vector<int64_t> attr_ints(const Attrs& a, std::string_view key, std::size_t rank,
                               std::vector<int64_t> fallback);
std::vector<double> attr_doubles(const Attrs& a, std::string_view key,
                                 std::vector<double> fallback);
// Python-literal rendering of a value: 4, 1e-05, True, 'tanh', [1, 2].
std::string attr_to_python(const AttrValue& v);

// One node of a problem's graph: out = op(inputs..., attrs...). Every op has exactly one output.
struct OpNode {
  std::string op;
  std::vector<std::string> inputs;
  std::string output;
  Attrs attrs;
  int line = 0; // source line in the problem file, for messages
};

// A named tensor with its element type, shape and the distribution it is drawn from.
struct TensorSpec {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  Distribution dist;                     // the problem's own distribution (timing, first checks)
  std::vector<Distribution> check_dists; // further distributions the correctness checks draw
};

// Shape and dtype of a value flowing through the graph.
struct ValueSpec {
  Shape shape;
  DType dtype = DType::f32;
  bool operator==(const ValueSpec&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

struct Tolerance {
  double atol = 1e-4;
  double rtol = 1e-4;
  std::string reason; // required when it differs from the dtype default
};

// Default tolerance for an output dtype: fp32 1e-4, fp16/bf16 1e-2, integers exact.
Tolerance default_tolerance(DType t);

// What arithmetic the candidate may use. The baseline follows the same contract.
struct PrecisionContract {
  bool allow_tf32 = false;    // fp32 GEMM/conv may use TF32 tensor cores
  bool allow_reduced = false; // fp32 problem may compute in fp16/bf16 inside
};

struct Provenance {
  std::string source;  // "kernelbench", "crfm-2025-05-28", "kbench"
  std::string version; // "v0.1", ...
  std::string ref;     // e.g. "L1/1 1_Square_matrix_multiplication_"
};

struct Problem {
  std::string id; // stable id, e.g. "l1/matmul_square_4096" (level folder + file stem)
  int level = 1;
  std::string name; // human title
  std::string description;
  std::vector<TensorSpec> inputs; // runtime inputs, in ABI order
  std::vector<TensorSpec> params; // weights, drawn from seeds, passed after inputs in ABI order
  std::vector<OpNode> graph;      // evaluation order
  std::vector<std::string> outputs;
  std::map<std::string, ValueSpec, std::less<>> values; // every value's inferred spec (catalog)
  Tolerance tolerance;
  PrecisionContract precision;
  Provenance provenance;
  double flops = 0.0;       // derived from the graph
  double min_bytes = 0.0;   // inputs + params read once, outputs written once
  std::string source_path;  // the YAML file
  std::string content_hash; // xxh64 of the file bytes, hex

  // Spec of a named output (from values); throws kb::Error when unknown.
  const ValueSpec& output_spec(std::string_view name) const;
};

// ---------------------------------------------------------------------------------------------
// Outcomes of an attempt
// ---------------------------------------------------------------------------------------------

enum class Outcome {
  no_code,       // the LLM answer contained no code
  compile_error, // nvcc failed or timed out
  rejected,      // symbol screening refused the object
  load_error,    // dlopen / ABI lookup failed
  runtime_error, // CUDA error, crash, abort, exit without result
  timeout,       // watchdog killed the worker
  mismatch,      // ran but the output is wrong
  correct,
};

std::string_view outcome_name(Outcome o);
std::optional<Outcome> parse_outcome(std::string_view name);

// The evaluation protocol (docs/evaluation.md): kbench's own, or KernelBench's as one of its
// versions published it (v0.1: tolerance 1e-2 everywhere; the current main: dtype defaults).
enum class Protocol { kbench, kernelbench_v01, kernelbench };
std::string_view protocol_name(Protocol p); // "kbench", "kernelbench-v0.1", "kernelbench"
std::optional<Protocol> parse_protocol(std::string_view name);
// Every name parse_protocol accepts, for messages: "kbench, kernelbench-v0.1, kernelbench".
std::string protocol_names();
// True for the KernelBench protocols (fixed inputs, mean of a fixed number of trials, ...).
inline bool is_kernelbench(Protocol p) {
  return p != Protocol::kbench;
}

// Review flags attached to an evaluation (bit set).
enum Flag : uint32_t {
  flag_none = 0,
  flag_above_roofline = 1u << 0,    // faster than the physical floor
  flag_speedup_threshold = 1u << 1, // speedup above the configured review ratio
  flag_off_stream = 1u << 2,        // work outside the given stream (host span beyond events)
  flag_nondeterministic = 1u << 3,  // two runs on the same inputs differ
  flag_library_calls = 1u << 4,     // calls cuBLAS/cuDNN
  flag_noisy = 1u << 5,             // timing stopped at the cap, not on the error target
  flag_unverified_time = 1u << 6,   // the parent's clock does not corroborate the claimed time
};
std::vector<std::string> flag_names(uint32_t flags);

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

// Physical ceilings of one GPU, measured by `kbench doctor --calibrate` (or datasheet defaults).
struct GpuCeilings {
  std::string gpu_name;
  double bandwidth_gbs = 0.0; // device memory, counting read + write bytes
  double fp32_tflops = 0.0;   // plain FP32 (no tensor cores)
  double tf32_tflops = 0.0;
  double fp16_tflops = 0.0;
  double bf16_tflops = 0.0;
  bool measured = false; // false: datasheet figures
};

// Summary of a timing series (milliseconds).
struct TimingStats {
  double median_ms = 0.0;
  double mean_ms = 0.0;
  double stderr_ms = 0.0; // standard error of the mean
  double median_stderr_ms = 0.0;
  double min_ms = 0.0;
  double host_median_ms = 0.0; // host clock around the same spans
  int samples = 0;
  std::string stop_reason; // "converged", "time_cap", "sample_cap", "fixed"
  std::vector<double> samples_ms;
};

// Where and how a candidate's output was wrong.
struct MismatchInfo {
  std::string output; // output name
  int seed_index = 0;
  std::string distribution; // distribution name of that check
  double max_abs_err = 0.0;
  double max_rel_err = 0.0;
  int64_t mismatch_count = 0;
  int64_t first_bad_index = -1;
  int64_t nan_count = 0; // NaNs in the candidate where the reference has none
  int64_t inf_count = 0;
  std::string reason; // "values", "nan_parity", "constant_output", "input_mutated", ...
};

// The full verdict on one candidate for one problem.
struct EvalResult {
  Outcome outcome = Outcome::runtime_error;
  std::string message; // human-readable reason for any non-correct outcome
  uint32_t flags = flag_none;
  Protocol protocol = Protocol::kbench;
  std::optional<MismatchInfo> mismatch;
  std::optional<TimingStats> candidate_time;
  std::optional<TimingStats> baseline_time;
  double speedup = 0.0;                   // baseline median / candidate median
  double roofline_pct = 0.0;              // floor time / candidate median * 100
  std::string compile_log;                // bounded
  std::vector<std::string> library_calls; // cuBLAS/cuDNN symbols the object imports
  double compile_s = 0.0, start_s = 0.0, check_s = 0.0, time_s = 0.0; // phases, seconds
  bool compile_cached = false;
};

void to_json(nlohmann::json& j, const GpuCeilings& c);
void from_json(const nlohmann::json& j, GpuCeilings& c);
void to_json(nlohmann::json& j, const TimingStats& t);
void from_json(const nlohmann::json& j, TimingStats& t);
void to_json(nlohmann::json& j, const MismatchInfo& m);
void from_json(const nlohmann::json& j, MismatchInfo& m);
void to_json(nlohmann::json& j, const EvalResult& r);
// A protocol travels as its name; an unknown name is an error naming it.
void to_json(nlohmann::json& j, Protocol p);
void from_json(const nlohmann::json& j, Protocol& p);
void from_json(const nlohmann::json& j, EvalResult& r);

// ---------------------------------------------------------------------------------------------
// Utilities
// ---------------------------------------------------------------------------------------------

// Levenshtein distance between two strings (for "did you mean" hints).
std::size_t edit_distance(std::string_view a, std::string_view b);

// xxh64 of bytes as 16 lowercase hex digits.
std::string content_hash(std::string_view bytes);
// Reads a whole file; throws kb::Error naming the path.
std::string read_file(const std::string& path);
// Writes a file atomically (temp + rename); throws kb::Error naming the path.
void write_file_atomic(const std::string& path, std::string_view bytes);

// ----- untrusted input --------------------------------------------------------------------------

// 64-bit arithmetic that throws kb::Error ("integer overflow: a * b") instead of wrapping.
int64_t checked_mul(int64_t a, int64_t b);
int64_t checked_add(int64_t a, int64_t b);

// Byte offset of the first byte of `s` that is not well-formed UTF-8 (a stray continuation byte, a
// truncated or overlong sequence, a surrogate, a code point beyond U+10FFFF); nullopt when every
// byte is.
std::optional<std::size_t> invalid_utf8_at(std::string_view s);
// Why `s` is not UTF-8, for messages: "invalid UTF-8 (byte 0xFF at offset 1)"; empty when it is.
std::string utf8_problem(std::string_view s);
// `s` with every ill-formed byte replaced by U+FFFD: for text that must be stored or printed
// whatever it holds (LLM replies, messages that echo input).
std::string sanitize_utf8(std::string_view s);
// A Python string literal holding exactly the UTF-8 text `s` (quotes, backslashes and every
// character that is not printable ASCII escaped): one token on one line, never code. Throws
// kb::Error when `s` is not UTF-8.
std::string python_string_literal(std::string_view s);
// JSON text of `j` in which any string that is not UTF-8 has its ill-formed bytes replaced by
// U+FFFD (nlohmann's error_handler_t::replace) instead of throwing; indent < 0 is compact.
std::string dump_json(const nlohmann::json& j, int indent = -1);
// Parses JSON text; a syntax error becomes kb::InputError(origin, line, "(json)", "not valid JSON:
// ... at line L, column C") with the line and column of the offending byte.
nlohmann::json parse_json(std::string_view text, const std::string& origin);

// The harness version string "0.1.0 (commit abcdef)".
std::string version_string();
std::string git_commit();

// JSON conversions for the types above (defined in core/json.cpp).
void to_json(nlohmann::json& j, const Distribution& d);
void from_json(const nlohmann::json& j, Distribution& d);
void to_json(nlohmann::json& j, const TensorSpec& t);
void from_json(const nlohmann::json& j, TensorSpec& t);
void to_json(nlohmann::json& j, const ValueSpec& v);
void from_json(const nlohmann::json& j, ValueSpec& v);
void to_json(nlohmann::json& j, const OpNode& n);
void from_json(const nlohmann::json& j, OpNode& n);
void to_json(nlohmann::json& j, const Problem& p);
void from_json(const nlohmann::json& j, Problem& p);

} // namespace kb
