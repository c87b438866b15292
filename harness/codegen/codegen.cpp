// The naive candidate generator: the emitter, the reduction helper and the assembly of the
// candidate file (helpers, kernels, kb_workspace_bytes, kb_forward) from a problem's graph.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "codegen.hpp"
#include "emit.hpp"
#include "op.hpp"

namespace kb::codegen {

namespace {

constexpr int64_t k_block = 256;
// Blocks of one launch at most; the grid-stride loops cover the rest.
constexpr int64_t k_max_grid = int64_t{1} << 16;
// The ABI's workspace limit (docs/abi.md).
constexpr int64_t k_max_workspace = int64_t{64} << 30;
// Wraps every integer constant lit() writes, so that kernels can take their constants as
// arguments (Emitter::map_def); removed from everything else.
constexpr char k_mark = '\x1e';

// Workspace buffers start on this alignment.
constexpr int64_t k_align = 256;

int64_t aligned(int64_t bytes) {
  return checked_mul(checked_add(bytes, k_align - 1) / k_align, k_align);
}

// Whether `text` holds `name` as a whole identifier.
bool mentions(std::string_view text, std::string_view name) {
  const auto ident = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  for (std::size_t pos = text.find(name); pos != std::string_view::npos;
       pos = text.find(name, pos + 1)) {
    const std::size_t end = pos + name.size();
    if ((pos == 0 || !ident(text[pos - 1])) && (end == text.size() || !ident(text[end])))
      return true;
  }
  return false;
}

std::string ctype_of(DType t) {
  switch (t) {
  case DType::f32:
    return "float";
  case DType::f16:
    return "__half";
  case DType::bf16:
    return "__nv_bfloat16";
  case DType::i32:
    return "int32_t";
  case DType::i64:
    return "int64_t";
  case DType::b8:
    return "uint8_t";
  case DType::f64:
    return "double";
  }
  fail("unknown dtype {}", static_cast<int>(t));
}

std::string abi_dtype(DType t) {
  switch (t) {
  case DType::f32:
    return "KB_F32";
  case DType::f16:
    return "KB_F16";
  case DType::bf16:
    return "KB_BF16";
  case DType::i32:
    return "KB_I32";
  case DType::i64:
    return "KB_I64";
  case DType::b8:
    return "KB_BOOL";
  case DType::f64:
    break;
  }
  fail("dtype {} cannot cross the candidate ABI", dtype_name(t));
}

// Text safe inside a // comment and readable: identifiers stay, anything else becomes '?'.
std::string comment_safe(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '/' || c == '-' || c == '.';
    out += ok ? c : '?';
  }
  return out;
}

const char* const k_prelude = R"(#include <math.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kbench/kb_abi.h"

// A launch on the given stream. A host build for testing defines KB_LAUNCH to run the grid.
#ifndef KB_LAUNCH
#define KB_LAUNCH(kernel, grid, block, stream, ...)                                                \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#define KB_HD __host__ __device__ __forceinline__

// Loads as double and stores rounded to the element type (round to nearest even).
KB_HD double kb_ld(const float* p, int64_t i) { return (double)p[i]; }
KB_HD double kb_ld(const __half* p, int64_t i) { return (double)__half2float(p[i]); }
KB_HD double kb_ld(const __nv_bfloat16* p, int64_t i) { return (double)__bfloat162float(p[i]); }
KB_HD double kb_ld(const double* p, int64_t i) { return p[i]; }
KB_HD double kb_ld(const int64_t* p, int64_t i) { return (double)p[i]; }
KB_HD double kb_ld(const int32_t* p, int64_t i) { return (double)p[i]; }
KB_HD double kb_ld(const uint8_t* p, int64_t i) { return p[i] != 0 ? 1.0 : 0.0; }
KB_HD void kb_st(float* p, int64_t i, double v) { p[i] = (float)v; }
KB_HD void kb_st(__half* p, int64_t i, double v) { p[i] = __double2half(v); }
KB_HD void kb_st(__nv_bfloat16* p, int64_t i, double v) { p[i] = __double2bfloat16(v); }
KB_HD void kb_st(double* p, int64_t i, double v) { p[i] = v; }
KB_HD void kb_st(int64_t* p, int64_t i, double v) { p[i] = (int64_t)v; }
KB_HD void kb_st(int32_t* p, int64_t i, double v) { p[i] = (int32_t)v; }
KB_HD void kb_st(uint8_t* p, int64_t i, double v) { p[i] = v != 0.0 ? 1 : 0; }

KB_HD bool kb_isnan(double v) { return v != v; }
KB_HD bool kb_isfinite(double v) { return v - v == 0.0; }
KB_HD double kb_nan() {
  const double inf = HUGE_VAL;
  return inf - inf;
}
)";

const char* const k_helpers =
    R"(// max and min that return NaN when either operand is NaN (torch.amax, torch.maximum).
KB_HD double kb_max(double a, double b) { return kb_isnan(a) ? a : kb_isnan(b) ? b : (a < b ? b : a); }
KB_HD double kb_min(double a, double b) { return kb_isnan(a) ? a : kb_isnan(b) ? b : (b < a ? b : a); }
KB_HD double kb_sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }
)";

} // namespace

// ----- literals and index expressions ---------------------------------------------------------

std::string lit(int64_t v) {
  const bool wide =
      v > std::numeric_limits<int32_t>::max() || v < std::numeric_limits<int32_t>::min() + 1;
  return fmt::format("{0}{1}{2}{0}", k_mark, v, wide ? "LL" : "");
}

std::string unmarked(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (c != k_mark)
      out += c;
  return out;
}

std::string clit(int64_t v) {
  return unmarked(lit(v));
}

std::string dlit(double v) {
  if (std::isnan(v))
    return "kb_nan()";
  if (std::isinf(v))
    return v > 0 ? "HUGE_VAL" : "(-HUGE_VAL)";
  std::string s = fmt::format("{:.17g}", v);
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return v < 0 ? "(" + s + ")" : s;
}

std::string imul(std::string_view e, int64_t n) {
  if (n == 0)
    return "0";
  return n == 1 ? std::string(e) : fmt::format("{} * {}", e, lit(n));
}

std::string idiv(std::string_view e, int64_t n) {
  return n == 1 ? std::string(e) : fmt::format("({} / {})", e, lit(n));
}

std::string imod(std::string_view e, int64_t n) {
  return n == 1 ? std::string("0") : fmt::format("({} % {})", e, lit(n));
}

std::string coord(std::string_view idx, const Shape& shape, std::size_t d) {
  const Shape st = contiguous_strides(shape);
  std::string e = st[d] == 1 ? std::string(idx) : fmt::format("({} / {})", idx, lit(st[d]));
  if (d > 0)
    e = fmt::format("({} % {})", e, lit(shape[d]));
  return e;
}

std::string remap(std::string_view idx, const Shape& shape, const Shape& strides) {
  std::string e;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1 || strides[d] == 0)
      continue;
    const std::string c = coord(idx, shape, d);
    const std::string term = strides[d] == 1 ? c : fmt::format("{} * {}", c, lit(strides[d]));
    e += e.empty() ? term : " + " + term;
  }
  return e.empty() ? "0" : "(" + e + ")";
}

Shape broadcast_strides_of(const Shape& in, const Shape& out) {
  Shape st(out.size(), 0);
  const Shape cs = contiguous_strides(in);
  const std::size_t off = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i)
    st[off + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

Arg in_arg(const std::string& name, const Val& v) {
  return {fmt::format("const {}* __restrict__", v.ctype), name, v.var};
}

Arg out_arg(const std::string& name, const Val& v) {
  return {fmt::format("{}* __restrict__", v.ctype), name, v.var};
}

// ----- the emitter ----------------------------------------------------------------------------

std::string Emitter::name(const std::string& stem) {
  const int n = m_names[stem]++;
  return n == 0 ? stem : fmt::format("{}_{}", stem, n);
}

std::string Emitter::map_def(const std::string& name, int64_t n, const std::vector<Arg>& args,
                             const std::string& body) {
  if (n <= 0)
    return "";
  std::string params = "int64_t kb_n", values = fmt::format(", {}", unmarked(lit(n)));
  for (const Arg& a : args) {
    if (!mentions(body, a.name))
      continue; // a parameter the body never reads would only draw warnings
    params += fmt::format(", {} {}", a.type, a.name);
    values += fmt::format(", {}", unmarked(a.value));
  }
  // The constants of the body (sizes, strides, offsets: every lit()) become arguments q0, q1,
  // ... and the element count kb_n one more, so kernels that differ only in them, the same op on
  // other shapes, are one kernel: a deep network compiles a few dozen kernels, not thousands.
  std::string code;
  int constants = 0;
  for (std::size_t pos = 0; pos < body.size();) {
    const std::size_t open = body.find(k_mark, pos);
    if (open == std::string::npos) {
      code += body.substr(pos);
      break;
    }
    const std::size_t close = body.find(k_mark, open + 1);
    if (close == std::string::npos)
      fail("kernel {}: unbalanced constant marker", name);
    code += body.substr(pos, open - pos) + fmt::format("q{}", constants);
    params += fmt::format(", int64_t q{}", constants++);
    values += fmt::format(", {}", body.substr(open + 1, close - open - 1));
    pos = close + 1;
  }
  const int64_t grid = std::min((n + k_block - 1) / k_block, k_max_grid);
  // A kernel identical to one already defined (a network repeats its blocks) is launched again
  // instead of being defined twice: fewer kernels compile faster.
  const std::string key = fmt::format("{}\n{}", params, code);
  if (auto it = m_defined.find(key); it != m_defined.end())
    return fmt::format("KB_LAUNCH({}, {}, {}, stream{});\n", it->second, grid, k_block, values);
  m_defined.emplace(key, name);
  m_kernels += fmt::format("__global__ void {}({}) {{\n"
                           "  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; "
                           "i < kb_n; i += (int64_t)gridDim.x * blockDim.x) {{\n",
                           name, params);
  // Indent the body by four spaces.
  std::size_t pos = 0;
  while (pos < code.size()) {
    const std::size_t nl = code.find('\n', pos);
    const std::string line =
        code.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty())
      m_kernels += "    " + line + "\n";
    pos = nl == std::string::npos ? code.size() : nl + 1;
  }
  m_kernels += "  }\n}\n\n";
  ++m_kernel_count;
  return fmt::format("KB_LAUNCH({}, {}, {}, stream{});\n", name, grid, k_block, values);
}

void Emitter::map(const std::string& name, int64_t n, const std::vector<Arg>& args,
                  const std::string& body) {
  const std::string launch = map_def(name, n, args, body);
  if (!launch.empty())
    m_forward += "  " + launch;
}

void Emitter::host(const std::string& code) {
  m_forward += code;
}

// The smallest free block that fits (the lowest offset among equals), else new space at the end.
int64_t Emitter::take_workspace(int64_t bytes) {
  auto best = m_free.end();
  for (auto it = m_free.begin(); it != m_free.end(); ++it)
    if (it->second >= bytes && (best == m_free.end() || it->second < best->second))
      best = it;
  if (best != m_free.end()) {
    const int64_t off = best->first, left = best->second - bytes;
    m_free.erase(best);
    if (left > 0)
      m_free[off + bytes] = left;
    return off;
  }
  // A free block at the end grows instead of leaving a hole.
  int64_t off = m_ws_bytes;
  if (!m_free.empty()) {
    auto last = std::prev(m_free.end());
    if (last->first + last->second == m_ws_bytes) {
      off = last->first;
      m_free.erase(last);
    }
  }
  m_ws_bytes = checked_add(off, bytes);
  if (m_ws_bytes > k_max_workspace)
    fail("needs more than the ABI's {} bytes of workspace", k_max_workspace);
  return off;
}

void Emitter::release(const Val& v) {
  if (v.ws_offset < 0)
    return;
  auto [it, inserted] = m_free.emplace(v.ws_offset, v.ws_bytes);
  if (!inserted)
    fail("workspace block at {} released twice", v.ws_offset);
  // Merge with the neighbours.
  if (auto next = std::next(it); next != m_free.end() && it->first + it->second == next->first) {
    it->second += next->second;
    m_free.erase(next);
  }
  if (it != m_free.begin())
    if (auto prev = std::prev(it); prev->first + prev->second == it->first) {
      prev->second += it->second;
      m_free.erase(it);
    }
}

void Emitter::begin_node() {
  m_node_scratch.clear();
}

void Emitter::end_node() {
  for (const Val& v : m_node_scratch)
    release(v);
  m_node_scratch.clear();
}

Val Emitter::scratch(int64_t count) {
  Val v;
  v.var = fmt::format("s{}", m_scratch_count++);
  v.ctype = "double";
  v.shape = {count};
  v.dtype = DType::f64;
  v.ws_bytes = aligned(checked_mul(std::max<int64_t>(count, 1), 8));
  v.ws_offset = take_workspace(v.ws_bytes);
  m_decls += fmt::format("  double* {} = (double*)(ws + {});\n", v.var, lit(v.ws_offset));
  m_node_scratch.push_back(v);
  return v;
}

Val Emitter::workspace_value(DType dtype, const Shape& shape) {
  Val v;
  v.var = fmt::format("w{}", m_value_count++);
  v.ctype = ctype_of(dtype);
  v.shape = shape;
  v.dtype = dtype;
  v.ws_bytes = aligned(
      checked_mul(std::max<int64_t>(numel(shape), 1), static_cast<int64_t>(dtype_size(dtype))));
  v.ws_offset = take_workspace(v.ws_bytes);
  m_decls += fmt::format("  {}* {} = ({}*)(ws + {});\n", v.ctype, v.var, v.ctype, lit(v.ws_offset));
  return v;
}

std::string NodeCtx::kname(std::string_view suffix) const {
  std::string stem = fmt::format("n{}_{}", index, node.op);
  if (!suffix.empty())
    stem += fmt::format("_{}", suffix);
  return e.name(stem);
}

// ----- reductions -----------------------------------------------------------------------------

namespace {

// Rows shorter than this are never split; a split aims at this many threads in all, with chunks
// of at least k_min_chunk elements.
constexpr int64_t k_split_len = 4096;
constexpr int64_t k_target_threads = int64_t{1} << 18;
constexpr int64_t k_min_chunk = 1024;

std::string init_of(Combine c) {
  switch (c) {
  case Combine::sum:
    return "0.0";
  case Combine::prod:
    return "1.0";
  case Combine::max:
    return "(-HUGE_VAL)";
  case Combine::min:
    return "HUGE_VAL";
  }
  return "0.0";
}

std::string combine_of(Combine c, std::string_view a, std::string_view b) {
  switch (c) {
  case Combine::sum:
    return fmt::format("{} + {}", a, b);
  case Combine::prod:
    return fmt::format("{} * {}", a, b);
  case Combine::max:
    return fmt::format("kb_max({}, {})", a, b);
  case Combine::min:
    return fmt::format("kb_min({}, {})", a, b);
  }
  return "";
}

} // namespace

Val reduce(Emitter& e, const Reduction& r) {
  const Val dst = r.into ? *r.into : e.scratch(r.rows);
  int64_t chunks = 1;
  if (r.len > k_split_len && r.rows < k_target_threads) {
    const int64_t want = (k_target_threads + r.rows - 1) / r.rows;
    const int64_t most = (r.len + k_min_chunk - 1) / k_min_chunk;
    chunks = std::max<int64_t>(1, std::min(want, most));
  }
  const std::string init = init_of(r.combine);
  const std::string comb = combine_of(r.combine, "acc", "t");
  const std::string loop = fmt::format("double acc = {};\n"
                                       "for (int64_t k = k0; k < k1; ++k) {{\n"
                                       "{}"
                                       "  acc = {};\n"
                                       "}}\n",
                                       init, r.element, comb);
  if (chunks == 1) {
    std::vector<Arg> args = r.args;
    args.push_back(out_arg("red", dst));
    e.map(r.name, r.rows, args,
          fmt::format("const int64_t r = i;\n{}const int64_t k0 = 0, k1 = {};\n{}"
                      "kb_st(red, r, {});\n",
                      r.setup, lit(r.len), loop, r.finish));
    return dst;
  }
  const int64_t chunk = (r.len + chunks - 1) / chunks;
  chunks = (r.len + chunk - 1) / chunk; // no empty chunk
  const Val part = e.scratch(checked_mul(r.rows, chunks));
  std::vector<Arg> args = r.args;
  args.push_back(out_arg("part", part));
  // Thread i reduces chunk i / rows of row i % rows: neighbouring threads take neighbouring rows.
  const bool uses_row = mentions(r.setup, "r") || mentions(r.element, "r");
  e.map(e.name(r.name + "_part"), r.rows * chunks, args,
        fmt::format("{5}const int64_t c = i / {0};\n{1}"
                    "const int64_t k0 = c * {2};\n"
                    "const int64_t k1 = k0 + {2} < {3} ? k0 + {2} : {3};\n{4}"
                    "part[i] = acc;\n",
                    lit(r.rows), r.setup, lit(chunk), lit(r.len), loop,
                    uses_row ? fmt::format("const int64_t r = i % {};\n", lit(r.rows)) : ""));
  std::vector<Arg> fargs = r.args;
  fargs.push_back(in_arg("part", part));
  fargs.push_back(out_arg("red", dst));
  e.map(e.name(r.name + "_fin"), r.rows, fargs,
        fmt::format("const int64_t r = i;\n"
                    "double acc = {};\n"
                    "for (int64_t c = 0; c < {}; ++c) {{\n"
                    "  const double t = part[c * {} + r];\n"
                    "  acc = {};\n"
                    "}}\n"
                    "kb_st(red, r, {});\n",
                    init, lit(chunks), lit(r.rows), comb, r.finish));
  return dst;
}

// ----- attributes -----------------------------------------------------------------------------

std::vector<int64_t> spatial(const Attrs& a, std::string_view key, std::size_t sd,
                             std::vector<int64_t> fallback) {
  auto it = a.find(key);
  if (it == a.end())
    return fallback;
  if (const auto* l = std::get_if<std::vector<int64_t>>(&it->second)) {
    if (l->size() == 1)
      return std::vector<int64_t>(sd, l->front());
    if (l->empty())
      return fallback;
    if (l->size() != sd)
      fail("attribute '{}' has {} entries for {} spatial dims", key, l->size(), sd);
    return *l;
  }
  return attr_ints(a, key, sd, std::move(fallback));
}

int64_t dim_of(int64_t dim, std::size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  if (dim < -r || dim >= r)
    fail("dim {} is out of range for rank {}", dim, rank);
  return dim < 0 ? dim + r : dim;
}

const std::map<std::string, OpEmitter, std::less<>>& op_emitters() {
  static const std::map<std::string, OpEmitter, std::less<>> m = [] {
    std::map<std::string, OpEmitter, std::less<>> e;
    add_linalg(e);
    add_conv_pool(e);
    add_norm(e);
    add_elementwise(e);
    add_reduce(e);
    add_loss(e);
    add_layout(e);
    add_recurrent(e);
    return e;
  }();
  return m;
}

} // namespace kb::codegen

namespace kb {

using namespace codegen;

bool has_naive_kernel(std::string_view op) {
  return op_emitters().contains(op);
}

std::vector<std::string> naive_kernel_ops() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : op_emitters())
    names.push_back(name);
  return names;
}

NaiveCandidate naive_candidate(const Problem& p) {
  Emitter e;
  std::map<std::string, Val, std::less<>> vals;
  std::string checks;
  std::string graph_comment;

  // Inputs then parameters, in ABI order.
  int pos = 0;
  for (const auto* list : {&p.inputs, &p.params})
    for (const TensorSpec& t : *list) {
      Val v;
      v.var = fmt::format("v{}", pos);
      v.ctype = ctype_of(t.dtype);
      v.shape = t.shape;
      v.dtype = t.dtype;
      checks += fmt::format("  if (in[{0}].dtype != {1} || kb_numel(&in[{0}]) != {2}) return 1;\n",
                            pos, abi_dtype(t.dtype), lit(numel(t.shape)));
      e.declare(fmt::format("  const {0}* {1} = (const {0}*)in[{2}].data; // {3}\n", v.ctype, v.var,
                            pos, comment_safe(t.name)));
      if (!vals.emplace(t.name, v).second)
        fail("problem {}: tensor '{}' is declared twice", p.id, t.name);
      ++pos;
    }
  const int n_in = pos;

  std::map<std::string, int, std::less<>> out_index;
  for (std::size_t j = 0; j < p.outputs.size(); ++j)
    if (!out_index.emplace(p.outputs[j], static_cast<int>(j)).second)
      fail("problem {}: output '{}' is listed twice", p.id, p.outputs[j]);

  // The last node reading each value: its workspace is reused after that node.
  std::map<std::string, std::size_t, std::less<>> last_use;
  for (std::size_t k = 0; k < p.graph.size(); ++k)
    for (const auto& name : p.graph[k].inputs)
      last_use[name] = k;

  for (std::size_t k = 0; k < p.graph.size(); ++k) {
    const OpNode& node = p.graph[k];
    const std::string where = fmt::format("problem {}: node {} ({})", p.id, k, node.op);
    e.begin_node();
    auto it = op_emitters().find(node.op);
    if (it == op_emitters().end())
      fail("{}: op '{}' has no naive kernel yet", where, node.op);
    std::vector<ValueSpec> specs;
    NodeCtx ctx{e, node, static_cast<int>(k), {}, {}};
    for (const auto& name : node.inputs) {
      auto v = vals.find(name);
      if (v == vals.end())
        fail("{}: unknown input '{}'", where, name);
      ctx.in.push_back(v->second);
      specs.push_back({v->second.shape, v->second.dtype});
    }
    if (vals.contains(node.output))
      fail("{}: value '{}' is assigned twice", where, node.output);
    ValueSpec out_spec;
    try {
      out_spec = check_node(node, specs);
    } catch (const Error& err) {
      fail("{}: {}", where, err.what());
    }
    if (auto o = out_index.find(node.output); o != out_index.end()) {
      Val v;
      v.var = fmt::format("o{}", o->second);
      v.ctype = ctype_of(out_spec.dtype);
      v.shape = out_spec.shape;
      v.dtype = out_spec.dtype;
      checks +=
          fmt::format("  if (out[{0}].dtype != {1} || kb_numel(&out[{0}]) != {2}) return 1;\n",
                      o->second, abi_dtype(out_spec.dtype), lit(numel(out_spec.shape)));
      e.declare(fmt::format("  {0}* {1} = ({0}*)out[{2}].data; // {3}\n", v.ctype, v.var, o->second,
                            comment_safe(node.output)));
      ctx.out = v;
    } else {
      try {
        ctx.out = e.workspace_value(out_spec.dtype, out_spec.shape);
      } catch (const Error& err) {
        fail("{}: {}", where, err.what());
      }
    }
    std::string ins;
    for (const auto& n : node.inputs)
      ins += (ins.empty() ? "" : ", ") + comment_safe(n);
    graph_comment += fmt::format("//   n{}: {} = {}({})\n", k, comment_safe(node.output),
                                 comment_safe(node.op), ins);
    e.host(fmt::format("  // n{}: {}\n", k, comment_safe(node.op)));
    try {
      it->second(ctx);
    } catch (const Error& err) {
      fail("{}: {}", where, err.what());
    }
    e.end_node();
    vals.emplace(node.output, ctx.out);
    // A value no later node reads gives its block back (a value read twice by this node once).
    std::set<std::string, std::less<>> done;
    for (const auto& name : node.inputs)
      if (last_use.at(name) == k && done.insert(name).second)
        e.release(vals.at(name));
  }
  for (const auto& o : p.outputs)
    if (!vals.contains(o))
      fail("problem {}: output '{}' is not computed by the graph", p.id, o);

  const int64_t ws = e.workspace_bytes();
  std::string src =
      fmt::format("// Naive candidate for problem {}, generated by kbench naive-candidate.\n"
                  "// One kernel per op, one thread per output element (grid-stride loops); values "
                  "are computed\n"
                  "// in double and rounded once per op to its dtype. Simple and slow on purpose.\n"
                  "// Graph:\n{}",
                  comment_safe(p.id), graph_comment);
  src += k_prelude;
  src += k_helpers;
  src += "\n";
  src += e.kernels();
  src += fmt::format("extern \"C\" size_t kb_workspace_bytes(const kb_tensor*, int, const "
                     "kb_tensor*, int) {{\n  return (size_t){};\n}}\n\n",
                     lit(ws));
  src += "extern \"C\" int kb_forward(const kb_tensor* in, int n_in, kb_tensor* out, int n_out,\n"
         "                          void* workspace, cudaStream_t stream) {\n";
  src += fmt::format("  if (n_in != {} || n_out != {}) return 1;\n", n_in, p.outputs.size());
  src += checks;
  if (ws > 0)
    src += "  if (workspace == NULL) return 1;\n  char* ws = (char*)workspace;\n";
  else
    src += "  (void)workspace;\n";
  src += e.declarations();
  src += e.forward();
  src += "  return cudaGetLastError() != cudaSuccess ? 1 : 0;\n}\n";
  // Constants outside kernels (sizes checked by kb_forward, workspace offsets, host loops) stay
  // literals.
  return {unmarked(src), ws, e.kernel_count()};
}

} // namespace kb
