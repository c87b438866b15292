// Problem loading: parses one problem YAML file, validates every field against the schema and
// the op library, and derives values, flops, bytes and the content hash.
#include "catalog.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "op.hpp"

namespace kb {

std::string LoadIssue::str() const {
  return fmt::format("{}:{}: {}: {}", file, line, field, message);
}

const Problem* Catalog::find(std::string_view id) const {
  for (const auto& p : problems)
    if (p.id == id)
      return &p;
  return nullptr;
}

namespace {

namespace fs = std::filesystem;

const std::set<std::string, std::less<>> k_python_keywords = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "self", "torch", "nn", "F", "math",
    // Attributes of nn.Module and names of the rendered script.
    "training", "forward", "cuda", "cpu", "to", "eval", "train", "float", "half", "double",
    "parameters", "buffers", "state_dict", "Model", "get_inputs", "get_init_inputs", "load_params",
    "gen"};

// Text from a file for an error message: quoted, escaped, at most 80 bytes of it.
std::string shown(std::string_view s) {
  constexpr std::size_t k_max = 80;
  std::string head = sanitize_utf8(s.substr(0, k_max));
  if (s.size() > k_max && head.ends_with("\xEF\xBF\xBD"))
    head.resize(head.size() - 3); // a character cut in two
  return python_string_literal(head) + (s.size() > k_max ? "..." : "");
}

// Why `s` holds a control character it must not hold (tab and line feed are allowed where
// `multi_line`); "" when it holds none. `s` is UTF-8.
std::string control_character(std::string_view s, bool multi_line) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool c0 = c < 0x20 || c == 0x7F;
    const bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xA0;
    if ((c0 && !(multi_line && (c == '\n' || c == '\t'))) || c1)
      return fmt::format("control character U+{:04X} at offset {} ({})",
                         c1 ? static_cast<unsigned char>(s[i + 1]) : c, i,
                         multi_line ? "text may hold tabs and line feeds, no other control "
                                      "characters"
                                    : "this field is one line of text");
  }
  return "";
}

// Why a tensor of shape `s` is too large; "" when it is within k_max_elements.
std::string size_problem(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n) || n > k_max_elements)
      return fmt::format("{} has more than {} elements (the limit per tensor is 2^36)",
                         shape_str(s), k_max_elements);
  return "";
}

// Parses one file. Every error names the file, the YAML line and the field path.
class Loader {
public:
  Loader(std::string file, std::string bytes)
      : m_file(std::move(file)), m_bytes(std::move(bytes)) {}

  Problem load(int level, std::string id);

private:
  std::string m_file;
  std::string m_bytes;
  bool m_cancellation_sensitive = false;

  [[noreturn]] void fail(const YAML::Node& n, const std::string& field, const std::string& msg,
                         int fallback_line = 0) const {
    int line = fallback_line;
    if (n.IsDefined()) {
      const YAML::Mark m = n.Mark();
      if (m.line >= 0)
        line = m.line + 1;
    }
    throw InputError(m_file, line, field, msg);
  }

  // Checks that `n` is a map whose keys are all in `allowed` (no duplicates) and that every key
  // in `required` is present.
  void check_map(const YAML::Node& n, const std::string& field,
                 std::initializer_list<std::string_view> allowed,
                 std::initializer_list<std::string_view> required) const {
    if (!n.IsMap())
      fail(n, field, "expected a mapping");
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : n) {
      const std::string key = key_of(kv.first, field);
      if (!seen.insert(key).second)
        fail(kv.first, join(field, key), "duplicate key");
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(kv.first, join(field, key),
             fmt::format("unknown key '{}' (allowed: {})", key, fmt::join(allowed, ", ")));
    }
    for (auto key : required)
      if (!seen.contains(key))
        fail(n, join(field, key), "missing required field");
  }

  // The text of a scalar from the file, refused unless it is UTF-8 without control characters
  // (tabs and line breaks allowed where `multi_line`).
  std::string text(const YAML::Node& n, const std::string& field, bool multi_line = false) const {
    const std::string& s = n.Scalar();
    if (std::string why = utf8_problem(s); !why.empty())
      fail(n, field, why);
    if (std::string why = control_character(s, multi_line); !why.empty())
      fail(n, field, why);
    return s;
  }

  // The key of a mapping entry as text.
  std::string key_of(const YAML::Node& k, const std::string& field) const {
    const std::string key_field = field.empty() ? "(key)" : join(field, "(key)");
    if (!k.IsScalar())
      fail(k, key_field, "keys must be plain names");
    return text(k, key_field);
  }

  static std::string join(const std::string& field, std::string_view key) {
    return field.empty() ? std::string(key) : fmt::format("{}.{}", field, key);
  }
  static std::string index(const std::string& field, std::size_t i) {
    return fmt::format("{}[{}]", field, i);
  }

  std::string get_string(const YAML::Node& n, const std::string& field,
                         bool multi_line = false) const {
    if (!n.IsScalar())
      fail(n, field, "expected a string");
    return text(n, field, multi_line);
  }

  double get_double(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar())
      fail(n, field, "expected a number");
    try {
      return n.as<double>();
    } catch (const YAML::Exception&) {
      fail(n, field, fmt::format("expected a number, got {}", shown(n.Scalar())));
    }
  }

  static bool looks_int(const std::string& s) {
    static const std::regex k_int(R"([-+]?[0-9]+)");
    return std::regex_match(s, k_int);
  }

  int64_t get_int(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar() || !looks_int(n.Scalar()))
      fail(n, field,
           n.IsScalar() ? fmt::format("expected an integer, got {}", shown(n.Scalar()))
                        : std::string("expected an integer"));
    try {
      return n.as<int64_t>();
    } catch (const YAML::Exception&) {
      fail(n, field, fmt::format("integer out of range: {}", shown(n.Scalar())));
    }
  }

  bool get_bool(const YAML::Node& n, const std::string& field) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True")
        return true;
      if (s == "false" || s == "False")
        return false;
    }
    fail(n, field, "expected true or false");
  }

  std::string get_name(const YAML::Node& n, const std::string& field) const {
    static const std::regex k_ident(R"([A-Za-z_][A-Za-z0-9_]*)");
    std::string s = get_string(n, field);
    if (!std::regex_match(s, k_ident))
      fail(n, field, fmt::format("{} is not a valid name (letters, digits, '_')", shown(s)));
    if (k_python_keywords.contains(s))
      fail(n, field, fmt::format("'{}' is reserved (it would clash in the PyTorch rendering)", s));
    return s;
  }

  AttrValue get_attr(const YAML::Node& n, const std::string& field) const;
  Shape get_shape(const YAML::Node& n, const std::string& field) const;
  DType get_dtype(const YAML::Node& n, const std::string& field) const;
  Distribution get_dist(const YAML::Node& n, const std::string& field, DType t) const;
  TensorSpec get_tensor(const YAML::Node& n, const std::string& field, bool is_param) const;
};

AttrValue Loader::get_attr(const YAML::Node& n, const std::string& field) const {
  if (n.IsScalar()) {
    const std::string s = text(n, field);
    if (n.Tag() == "!") // quoted: always a string
      return s;
    if (s == "true" || s == "True")
      return true;
    if (s == "false" || s == "False")
      return false;
    if (looks_int(s))
      return get_int(n, field);
    double d = 0.0;
    if (YAML::convert<double>::decode(n, d)) {
      if (std::isnan(d))
        fail(n, field, "must not be NaN (infinities are allowed: .inf, -.inf)");
      return d;
    }
    return s;
  }
  if (n.IsSequence()) {
    bool all_int = true;
    for (const auto& e : n) {
      if (!e.IsScalar())
        fail(e, field, "attribute lists hold numbers only");
      all_int = all_int && looks_int(e.Scalar());
    }
    if (all_int) {
      std::vector<int64_t> v;
      for (std::size_t i = 0; i < n.size(); ++i)
        v.push_back(get_int(n[i], index(field, i)));
      return v;
    }
    std::vector<double> v;
    for (std::size_t i = 0; i < n.size(); ++i) {
      v.push_back(get_double(n[i], index(field, i)));
      if (std::isnan(v.back()))
        fail(n[i], index(field, i), "must not be NaN (infinities are allowed: .inf, -.inf)");
    }
    return v;
  }
  fail(n, field, "expected a number, string, boolean or list of numbers");
}

Shape Loader::get_shape(const YAML::Node& n, const std::string& field) const {
  if (!n.IsSequence())
    fail(n, field, "expected a list of dimensions, e.g. [4096, 4096]");
  if (n.size() > k_max_rank)
    fail(n, field,
         fmt::format("{} dimensions; a tensor has at most {} (KB_MAX_DIMS of the candidate ABI)",
                     n.size(), k_max_rank));
  Shape s;
  for (std::size_t i = 0; i < n.size(); ++i) {
    int64_t d = get_int(n[i], index(field, i));
    if (d < 1)
      fail(n[i], index(field, i), fmt::format("dimension must be >= 1, got {}", d));
    s.push_back(d);
  }
  if (std::string why = size_problem(s); !why.empty())
    fail(n, field, why);
  return s;
}

DType Loader::get_dtype(const YAML::Node& n, const std::string& field) const {
  std::string s = get_string(n, field);
  auto t = parse_dtype(s);
  if (!t || *t == DType::f64)
    fail(n, field, fmt::format("unknown dtype {} (f32, f16, bf16, i32, i64, bool)", shown(s)));
  return *t;
}

Distribution Loader::get_dist(const YAML::Node& n, const std::string& field, DType t) const {
  if (!n.IsMap())
    fail(n, field, "expected a distribution mapping, e.g. {kind: uniform, low: 0, high: 1}");
  const YAML::Node kind_node = n["kind"];
  if (!kind_node)
    fail(n, join(field, "kind"), "missing required field");
  const std::string kind_name = get_string(kind_node, join(field, "kind"));
  auto kind = parse_dist_kind(kind_name);
  if (!kind)
    fail(kind_node, join(field, "kind"),
         fmt::format("unknown distribution {} (uniform, normal, randint, ill_conditioned, "
                     "constant)",
                     shown(kind_name)));
  Distribution d;
  d.kind = *kind;
  switch (*kind) {
  case DistKind::uniform:
  case DistKind::randint:
    check_map(n, field, {"kind", "low", "high"}, {"kind", "low", "high"});
    if (*kind == DistKind::randint) {
      d.a = static_cast<double>(get_int(n["low"], join(field, "low")));
      d.b = static_cast<double>(get_int(n["high"], join(field, "high")));
    } else {
      d.a = get_double(n["low"], join(field, "low"));
      d.b = get_double(n["high"], join(field, "high"));
    }
    if (!(d.a < d.b))
      fail(n, field, fmt::format("low ({}) must be below high ({})", d.a, d.b));
    break;
  case DistKind::normal:
  case DistKind::ill_conditioned:
    check_map(n, field, {"kind", "mean", "std"}, {"kind", "mean", "std"});
    d.a = get_double(n["mean"], join(field, "mean"));
    d.b = get_double(n["std"], join(field, "std"));
    if (!(d.b > 0.0) || !std::isfinite(d.b))
      fail(n["std"], join(field, "std"), fmt::format("std must be positive, got {}", d.b));
    break;
  case DistKind::constant:
    check_map(n, field, {"kind", "value"}, {"kind", "value"});
    d.a = get_double(n["value"], join(field, "value"));
    d.b = 0.0;
    break;
  }
  if (!std::isfinite(d.a) || !std::isfinite(d.b))
    fail(n, field, "distribution parameters must be finite");
  if (!is_floating(t) && *kind != DistKind::randint && *kind != DistKind::constant)
    fail(kind_node, join(field, "kind"),
         fmt::format("{} tensors take randint or constant, not {}", dtype_name(t), kind_name));
  if (t == DType::b8 && *kind == DistKind::randint && (d.a < 0 || d.b > 2))
    fail(n, field, "bool tensors take randint with 0 <= low < high <= 2");
  return d;
}

TensorSpec Loader::get_tensor(const YAML::Node& n, const std::string& field, bool is_param) const {
  check_map(n, field, {"name", "shape", "dtype", "dist", "check_dists"},
            {"name", "shape", "dtype", "dist"});
  TensorSpec t;
  t.name = get_name(n["name"], join(field, "name"));
  t.shape = get_shape(n["shape"], join(field, "shape"));
  t.dtype = get_dtype(n["dtype"], join(field, "dtype"));
  t.dist = get_dist(n["dist"], join(field, "dist"), t.dtype);
  if (is_param && t.dist.kind == DistKind::constant)
    fail(n["dist"], join(field, "dist"),
         "parameters are drawn from seeds and must not be constant (a constant weight hides "
         "wrong indexing)");
  if (const YAML::Node cd = n["check_dists"]) {
    const std::string cf = join(field, "check_dists");
    if (!cd.IsSequence())
      fail(cd, cf, "expected a list of distributions");
    for (std::size_t i = 0; i < cd.size(); ++i) {
      Distribution d = get_dist(cd[i], index(cf, i), t.dtype);
      if (is_param && d.kind == DistKind::constant)
        fail(cd[i], index(cf, i), "parameters must not be constant");
      t.check_dists.push_back(d);
    }
  } else if (!is_param && is_floating(t.dtype)) {
    // Defaults: a second ordinary distribution, plus an adversarial one for cancellation.
    if (t.dist.kind == DistKind::uniform)
      t.check_dists.push_back({DistKind::normal, 0.0, 1.0});
    else
      t.check_dists.push_back({DistKind::uniform, 0.0, 1.0});
    if (m_cancellation_sensitive)
      t.check_dists.push_back({DistKind::ill_conditioned, 1000.0, 0.1});
  }
  return t;
}

Problem Loader::load(int level, std::string id) {
  YAML::Node root;
  try {
    root = YAML::Load(m_bytes);
  } catch (const YAML::DeepRecursion& e) {
    throw InputError(m_file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "(yaml)",
                     fmt::format("malformed YAML: nested more than {} levels deep (lists or "
                                 "mappings within each other); a problem file needs a handful",
                                 e.depth()));
  } catch (const YAML::Exception& e) {
    throw InputError(m_file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "(yaml)",
                     fmt::format("malformed YAML: {}", e.msg));
  }
  if (!root.IsMap())
    throw InputError(m_file, 1, "(top level)", "expected a mapping of problem fields");
  try {
    check_map(root, "",
              {"name", "description", "provenance", "inputs", "params", "graph", "outputs",
               "tolerance", "precision"},
              {"name", "description", "provenance", "inputs", "graph", "outputs"});

    Problem p;
    p.id = std::move(id);
    p.level = level;
    p.source_path = m_file;
    p.content_hash = content_hash(m_bytes);
    p.name = get_string(root["name"], "name");
    p.description = get_string(root["description"], "description", true);
    if (p.name.empty())
      fail(root["name"], "name", "must not be empty");

    const YAML::Node prov = root["provenance"];
    check_map(prov, "provenance", {"source", "version", "ref"}, {"source", "ref"});
    p.provenance.source = get_string(prov["source"], "provenance.source");
    p.provenance.ref = get_string(prov["ref"], "provenance.ref");
    if (prov["version"])
      p.provenance.version = get_string(prov["version"], "provenance.version");
    if (p.provenance.source.empty())
      fail(prov["source"], "provenance.source", "must not be empty");
    if (p.provenance.source == "kernelbench" && p.provenance.version.empty())
      fail(prov, "provenance.version", "KernelBench mirrors must name the version (shapes differ)");

    // The graph is scanned first for cancellation-sensitive ops: they decide default check_dists.
    const YAML::Node graph = root["graph"];
    if (!graph.IsSequence() || graph.size() == 0)
      fail(graph, "graph", "expected a non-empty list of nodes");
    for (const auto& node : graph)
      if (node.IsMap() && node["op"] && node["op"].IsScalar())
        if (const OpDef* def = find_op(node["op"].Scalar()); def && def->cancellation_sensitive)
          m_cancellation_sensitive = true;

    // Where each value was defined, for duplicate and unused checks.
    struct Def {
      std::string field;
      YAML::Node node;
      bool used = false;
    };
    std::map<std::string, Def, std::less<>> defs;

    auto read_tensors = [&](const char* key, bool is_param, std::vector<TensorSpec>& out) {
      const YAML::Node list = root[key];
      if (!list)
        return;
      if (!list.IsSequence())
        fail(list, key, "expected a list of tensors");
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string field = index(key, i);
        TensorSpec t = get_tensor(list[i], field, is_param);
        if (auto it = defs.find(t.name); it != defs.end())
          fail(list[i]["name"], join(field, "name"),
               fmt::format("duplicate name '{}' (first defined at {})", t.name, it->second.field));
        defs[t.name] = {field, list[i]["name"]};
        p.values[t.name] = {t.shape, t.dtype};
        out.push_back(std::move(t));
      }
    };
    read_tensors("inputs", false, p.inputs);
    read_tensors("params", true, p.params);
    if (p.inputs.empty())
      fail(root["inputs"], "inputs", "a problem needs at least one input");

    for (std::size_t i = 0; i < graph.size(); ++i) {
      const YAML::Node n = graph[i];
      const std::string field = index("graph", i);
      if (!n.IsMap())
        fail(n, field, "expected a node mapping {out: y, op: relu, in: [x]}");
      OpNode node;
      node.line = n.Mark().line + 1;
      for (auto key : {"out", "op", "in"})
        if (!n[key])
          fail(n, join(field, key), "missing required field");
      node.op = get_string(n["op"], join(field, "op"));
      const OpDef* def = find_op(node.op);
      if (!def)
        fail(n["op"], join(field, "op"), fmt::format("unknown op {}", shown(node.op)));
      node.output = get_name(n["out"], join(field, "out"));

      const YAML::Node ins = n["in"];
      if (!ins.IsSequence())
        fail(ins, join(field, "in"), "expected a list of value names");
      const int arity = static_cast<int>(ins.size());
      if (arity < def->min_inputs || arity > def->max_inputs)
        fail(ins, join(field, "in"),
             def->min_inputs == def->max_inputs
                 ? fmt::format("{} takes {} input(s), got {}", node.op, def->min_inputs, arity)
                 : fmt::format("{} takes {} to {} inputs, got {}", node.op, def->min_inputs,
                               def->max_inputs, arity));
      std::vector<ValueSpec> in_specs;
      for (std::size_t j = 0; j < ins.size(); ++j) {
        const std::string in_field = index(join(field, "in"), j);
        std::string name = get_string(ins[j], in_field);
        auto it = defs.find(name);
        if (it == defs.end())
          fail(ins[j], in_field,
               fmt::format("{} is not defined before this node (inputs, params and earlier "
                           "nodes' outputs only)",
                           shown(name)));
        it->second.used = true;
        in_specs.push_back(p.values.at(name));
        node.inputs.push_back(std::move(name));
      }

      std::set<std::string, std::less<>> seen_keys;
      for (const auto& kv : n) {
        const std::string key = key_of(kv.first, field);
        if (!seen_keys.insert(key).second)
          fail(kv.first, join(field, key), "duplicate key");
        if (key == "out" || key == "op" || key == "in")
          continue;
        if (std::find(def->attrs.begin(), def->attrs.end(), key) == def->attrs.end())
          fail(kv.first, join(field, key),
               def->attrs.empty()
                   ? fmt::format("unknown attribute '{}': {} takes no attributes", key, node.op)
                   : fmt::format("unknown attribute '{}' for {} (accepted: {})", key, node.op,
                                 fmt::join(def->attrs, ", ")));
        node.attrs[key] = get_attr(kv.second, join(field, key));
      }
      for (const auto& req : def->required_attrs)
        if (!node.attrs.contains(req))
          fail(n, join(field, req), fmt::format("{} requires attribute '{}'", node.op, req));

      ValueSpec out;
      try {
        out = check_node(node, in_specs);
      } catch (const InputError&) {
        throw;
      } catch (const Error& e) {
        const std::string msg = e.what();
        fail(n, field, msg.starts_with(node.op + ": ") ? msg : node.op + ": " + msg);
      }
      if (out.shape.size() > k_max_rank)
        fail(n, field,
             fmt::format("{}: the output {} has {} dimensions; a tensor has at most {} "
                         "(KB_MAX_DIMS of the candidate ABI)",
                         node.op, shape_str(out.shape), out.shape.size(), k_max_rank));
      if (std::string why = size_problem(out.shape); !why.empty())
        fail(n, field, fmt::format("{}: the output {}", node.op, why));
      if (auto it = defs.find(node.output); it != defs.end())
        fail(n["out"], join(field, "out"),
             fmt::format("'{}' is already defined at {} (each value is assigned once)", node.output,
                         it->second.field));
      const OpCost cost = def->cost(node.attrs, in_specs, out);
      p.flops += cost.flops;
      defs[node.output] = {field, n["out"]};
      p.values[node.output] = out;
      p.graph.push_back(std::move(node));
    }

    const YAML::Node outs = root["outputs"];
    if (!outs.IsSequence() || outs.size() == 0)
      fail(outs, "outputs", "expected a non-empty list of value names");
    for (std::size_t i = 0; i < outs.size(); ++i) {
      const std::string field = index("outputs", i);
      std::string name = get_string(outs[i], field);
      if (std::find(p.outputs.begin(), p.outputs.end(), name) != p.outputs.end())
        fail(outs[i], field, fmt::format("{} is listed twice", shown(name)));
      const bool produced = std::any_of(p.graph.begin(), p.graph.end(),
                                        [&](const OpNode& n) { return n.output == name; });
      if (!produced)
        fail(
            outs[i], field,
            defs.contains(name)
                ? fmt::format("{} is an input or parameter, not produced by the graph", shown(name))
                : fmt::format("output {} is not produced by the graph", shown(name)));
      defs[name].used = true;
      p.outputs.push_back(std::move(name));
    }

    for (const auto& [name, d] : defs)
      if (!d.used)
        fail(d.node, d.field,
             d.field.starts_with("graph")
                 ? fmt::format("value '{}' is computed but never used nor an output", name)
                 : fmt::format("'{}' is never used by the graph", name));

    // Tolerance: the default is the loosest over the output dtypes; any other value needs a reason.
    Tolerance def_tol{0.0, 0.0, ""};
    for (const auto& o : p.outputs) {
      Tolerance t = default_tolerance(p.values.at(o).dtype);
      def_tol.atol = std::max(def_tol.atol, t.atol);
      def_tol.rtol = std::max(def_tol.rtol, t.rtol);
    }
    p.tolerance = def_tol;
    if (const YAML::Node tol = root["tolerance"]) {
      check_map(tol, "tolerance", {"atol", "rtol", "reason"}, {});
      if (tol["atol"])
        p.tolerance.atol = get_double(tol["atol"], "tolerance.atol");
      if (tol["rtol"])
        p.tolerance.rtol = get_double(tol["rtol"], "tolerance.rtol");
      if (tol["reason"])
        p.tolerance.reason = get_string(tol["reason"], "tolerance.reason", true);
      for (auto [v, key] : {std::pair{p.tolerance.atol, "atol"}, {p.tolerance.rtol, "rtol"}})
        if (!(v >= 0.0) || !std::isfinite(v))
          fail(tol[key], join("tolerance", key), "must be a finite number >= 0");
      const bool non_default = p.tolerance.atol != def_tol.atol || p.tolerance.rtol != def_tol.rtol;
      if (non_default && p.tolerance.reason.empty())
        fail(tol, "tolerance.reason",
             fmt::format("atol={} rtol={} differs from the dtype default ({}, {}); say why",
                         p.tolerance.atol, p.tolerance.rtol, def_tol.atol, def_tol.rtol));
    }
    if (const YAML::Node prec = root["precision"]) {
      check_map(prec, "precision", {"allow_tf32", "allow_reduced"}, {});
      if (prec["allow_tf32"])
        p.precision.allow_tf32 = get_bool(prec["allow_tf32"], "precision.allow_tf32");
      if (prec["allow_reduced"])
        p.precision.allow_reduced = get_bool(prec["allow_reduced"], "precision.allow_reduced");
    }

    auto bytes_of = [](const Shape& s, DType t) {
      return static_cast<double>(numel(s)) * static_cast<double>(dtype_size(t));
    };
    for (const auto& t : p.inputs)
      p.min_bytes += bytes_of(t.shape, t.dtype);
    for (const auto& t : p.params)
      p.min_bytes += bytes_of(t.shape, t.dtype);
    for (const auto& o : p.outputs)
      p.min_bytes += bytes_of(p.values.at(o).shape, p.values.at(o).dtype);
    // Bytes outside every field (comments) must be text too: the file is shown and hashed as is.
    if (const auto at = invalid_utf8_at(m_bytes)) {
      const auto line =
          1 + std::count(m_bytes.begin(), m_bytes.begin() + static_cast<long>(*at), '\n');
      throw InputError(m_file, static_cast<int>(line), "(file)",
                       fmt::format("{} outside the fields (in a comment?)", utf8_problem(m_bytes)));
    }
    return p;
  } catch (const YAML::Exception& e) {
    // Conversions the checks above did not anticipate still name the place.
    throw InputError(m_file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "(yaml)", e.msg);
  }
}

// "level12" -> 12; nullopt for anything else.
std::optional<int> level_of_dir(const std::string& name) {
  static const std::regex k_level(R"(level([0-9]{1,3}))");
  std::smatch m;
  if (!std::regex_match(name, m, k_level))
    return std::nullopt;
  return std::stoi(m[1].str());
}

} // namespace

Problem load_problem(const std::string& path, const std::string& levels_dir) {
  // Every text of a loaded problem is UTF-8, its path included (it travels in JSON).
  if (std::string why = utf8_problem(path); !why.empty())
    throw InputError(sanitize_utf8(path), 0, "(path)", "the file's path is not text: " + why);
  const fs::path file(path);
  const std::string dir = file.parent_path().filename().string();
  auto level = level_of_dir(dir);
  if (!level)
    throw InputError(
        path, 0, "(path)",
        fmt::format("problem files live in {}/level<N>/, not in '{}'", levels_dir, dir));
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw InputError(path, 0, "(file)", e.what());
  }
  const std::string id = fmt::format("l{}/{}", *level, file.stem().string());
  if (std::string why = problem_id_error(id); !why.empty())
    throw InputError(path, 0, "(path)", why);
  Loader loader(path, std::move(bytes));
  return loader.load(*level, id);
}

std::string problem_id_error(std::string_view id) {
  static const std::regex k_id(R"(l[0-9]{1,3}/[A-Za-z0-9_][A-Za-z0-9_-]*)");
  if (std::regex_match(id.begin(), id.end(), k_id) &&
      id.size() - id.find('/') - 1 <= k_max_stem_length)
    return "";
  return fmt::format("{} is not a problem id: l<level>/<name>, the name being the file's stem of "
                     "1 to {} letters, digits, '_' and '-' (not starting with '-')",
                     shown(id), k_max_stem_length);
}

Catalog load_catalog(const std::string& levels_dir) {
  Catalog c;
  std::error_code ec;
  if (!fs::is_directory(levels_dir, ec))
    throw Error(
        fmt::format("levels directory '{}' does not exist or is not a directory", levels_dir));
  std::vector<std::pair<int, fs::path>> files;
  try {
    for (const auto& dir : fs::directory_iterator(levels_dir)) {
      if (!dir.is_directory())
        continue;
      auto level = level_of_dir(dir.path().filename().string());
      if (!level)
        continue;
      for (const auto& f : fs::directory_iterator(dir.path())) {
        const auto ext = f.path().extension().string();
        if (f.is_regular_file() && (ext == ".yaml" || ext == ".yml"))
          files.emplace_back(*level, f.path());
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(fmt::format("cannot read levels directory '{}': {}", levels_dir, e.what()));
  }
  std::sort(files.begin(), files.end());
  std::set<std::string, std::less<>> ids;
  for (const auto& [level, path] : files) {
    try {
      Problem p = load_problem(path.string(), levels_dir);
      if (!ids.insert(p.id).second) {
        c.errors.push_back(
            {path.string(), 0, "(path)",
             fmt::format("problem id '{}' is defined twice (.yaml and .yml)", p.id)});
        continue;
      }
      c.problems.push_back(std::move(p));
    } catch (const InputError& e) {
      c.errors.push_back({e.file(), e.line(), e.field(), e.message()});
    } catch (const Error& e) {
      c.errors.push_back({path.string(), 0, "(file)", e.what()});
    }
  }
  std::sort(c.problems.begin(), c.problems.end(), [](const Problem& a, const Problem& b) {
    return std::tie(a.level, a.id) < std::tie(b.level, b.id);
  });
  return c;
}

std::string default_levels_dir() {
  if (const char* env = std::getenv("KB_LEVELS_DIR"); env && *env)
    return env;
  return KB_LEVELS_SOURCE_DIR;
}

} // namespace kb
