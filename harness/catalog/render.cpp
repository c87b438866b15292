// Renders a problem as a runnable PyTorch script in KernelBench's layout (Model, get_inputs,
// get_init_inputs) plus load_params() for setting parameters to the harness's own draws.
#include "catalog.hpp"

#include <regex>

#include <fmt/format.h>

#include "op.hpp"

namespace kb {

namespace {

std::string torch_dtype(DType t) {
  switch (t) {
  case DType::f32:
    return "torch.float32";
  case DType::f16:
    return "torch.float16";
  case DType::bf16:
    return "torch.bfloat16";
  case DType::i32:
    return "torch.int32";
  case DType::i64:
    return "torch.int64";
  case DType::b8:
    return "torch.bool";
  case DType::f64:
    return "torch.float64";
  }
  return "torch.float32";
}

std::string py_num(double v) {
  return attr_to_python(AttrValue{v});
}

std::string dims(const Shape& s) {
  if (s.empty())
    return "()";
  return fmt::format("({}{})", fmt::join(s, ", "), s.size() == 1 ? "," : "");
}

// A PyTorch expression drawing `t` from `d` on `device`, with an optional generator.
std::string draw(const TensorSpec& t, const Distribution& d, std::string_view device,
                 std::string_view gen) {
  const std::string g = gen.empty() ? "" : fmt::format(", generator={}", gen);
  const std::string sh = dims(t.shape);
  const std::string dt = torch_dtype(t.dtype);
  switch (d.kind) {
  case DistKind::uniform:
    if (d.a == 0.0 && d.b == 1.0)
      return fmt::format("torch.rand({}, dtype={}, device=\"{}\"{})", sh, dt, device, g);
    return fmt::format("torch.empty({}, dtype={}, device=\"{}\").uniform_({}, {}{})", sh, dt,
                       device, py_num(d.a), py_num(d.b), g);
  case DistKind::normal:
  case DistKind::ill_conditioned:
    return fmt::format("torch.empty({}, dtype={}, device=\"{}\").normal_({}, {}{})", sh, dt, device,
                       py_num(d.a), py_num(d.b), g);
  case DistKind::randint:
    if (t.dtype == DType::b8)
      return fmt::format("torch.randint({}, {}, {}, device=\"{}\"{}).bool()",
                         static_cast<int64_t>(d.a), static_cast<int64_t>(d.b), sh, device, g);
    return fmt::format("torch.randint({}, {}, {}, dtype={}, device=\"{}\"{})",
                       static_cast<int64_t>(d.a), static_cast<int64_t>(d.b), sh, dt, device, g);
  case DistKind::constant:
    return fmt::format("torch.full({}, {}, dtype={}, device=\"{}\")", sh, py_num(d.a), dt, device);
  }
  return "";
}

// Text for a comment line: every character that could end the line or the comment, or that is
// no text at all (ill-formed UTF-8), is written as an escape, so nothing of it becomes code.
std::string comment_text(std::string_view text) {
  const std::string s = sanitize_utf8(text);
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const auto next = [&](std::size_t k) {
      return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
    };
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c == 0xC2 && next(1) >= 0x80 && next(1) <= 0x9F) { // C1 controls, U+0085 included
      out += fmt::format("\\u{:04x}", next(1));
      ++i;
    } else if (c == 0xE2 && next(1) == 0x80 && (next(2) == 0xA8 || next(2) == 0xA9)) {
      out += fmt::format("\\u20{:02x}", next(2) - 0x80); // line and paragraph separators
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Refuses to render a value name that is not a Python identifier: names become code.
void require_identifier(const Problem& p, const std::string& name) {
  static const std::regex k_ident(R"([A-Za-z_][A-Za-z0-9_]*)");
  if (!std::regex_match(name, k_ident))
    throw Error(fmt::format("{}: value name {} is not a Python identifier; not rendered",
                            comment_text(p.id), python_string_literal(sanitize_utf8(name))));
}

std::string dist_comment(const Distribution& d) {
  switch (d.kind) {
  case DistKind::uniform:
  case DistKind::randint:
    return fmt::format("{}[{}, {})", dist_kind_name(d.kind), py_num(d.a), py_num(d.b));
  case DistKind::normal:
  case DistKind::ill_conditioned:
    return fmt::format("{}(mean {}, std {})", dist_kind_name(d.kind), py_num(d.a), py_num(d.b));
  case DistKind::constant:
    return fmt::format("constant {}", py_num(d.a));
  }
  return "";
}

} // namespace

std::string render_pytorch(const Problem& p) {
  // Names become code; everything else becomes a literal or a comment.
  for (const auto* list : {&p.inputs, &p.params})
    for (const auto& t : *list)
      require_identifier(p, t.name);
  for (const auto& node : p.graph) {
    require_identifier(p, node.output);
    for (const auto& in : node.inputs)
      require_identifier(p, in);
  }
  for (const auto& o : p.outputs)
    require_identifier(p, o);
  std::string s;
  auto line = [&s](std::string_view text) {
    s += text;
    s += '\n';
  };
  line(fmt::format("# {}: {}", comment_text(p.id), comment_text(p.name)));
  for (std::size_t start = 0; start < p.description.size();) {
    auto end = p.description.find('\n', start);
    if (end == std::string::npos)
      end = p.description.size();
    line(fmt::format("# {}", comment_text(p.description.substr(start, end - start))));
    start = end + 1;
  }
  line(fmt::format("# Provenance: {} {} {}", comment_text(p.provenance.source),
                   comment_text(p.provenance.version), comment_text(p.provenance.ref)));
  line(fmt::format("# Tolerance: atol={} rtol={}; TF32 {}; reduced precision {}",
                   py_num(p.tolerance.atol), py_num(p.tolerance.rtol),
                   p.precision.allow_tf32 ? "allowed" : "not allowed",
                   p.precision.allow_reduced ? "allowed" : "not allowed"));
  line("import math");
  line("");
  line("import torch");
  line("import torch.nn as nn");
  line("import torch.nn.functional as F");
  line("");
  line("");
  line("class Model(nn.Module):");
  line("    def __init__(self):");
  line("        super().__init__()");
  if (!p.params.empty()) {
    line("        # Parameters as buffers, drawn from their declared distributions; the harness");
    line("        # draws its own from seeds, and load_params() copies those in.");
    line("        gen = torch.Generator().manual_seed(0)");
  }
  for (const auto& t : p.params)
    line(fmt::format("        self.register_buffer(\"{}\", {})  # {}", t.name,
                     draw(t, t.dist, "cpu", "gen"), dist_comment(t.dist)));
  std::vector<std::string> in_names;
  for (const auto& t : p.inputs)
    in_names.push_back(t.name);
  line("");
  line(fmt::format("    def forward(self, {}):", fmt::join(in_names, ", ")));
  auto py_name = [&p](const std::string& v) {
    for (const auto& t : p.params)
      if (t.name == v)
        return "self." + v;
    return v;
  };
  for (const auto& node : p.graph) {
    const OpDef* def = find_op(node.op);
    if (!def)
      throw Error(fmt::format("{}: unknown op '{}' in a loaded problem", p.id, node.op));
    std::vector<std::string> args;
    for (const auto& in : node.inputs)
      args.push_back(py_name(in));
    line(fmt::format("        {} = {}", node.output, def->torch(node.attrs, args)));
  }
  if (p.outputs.size() == 1)
    line(fmt::format("        return {}", p.outputs[0]));
  else
    line(fmt::format("        return {}", fmt::join(p.outputs, ", ")));
  line("");
  line("");
  line("def get_inputs():");
  for (const auto& t : p.inputs)
    line(fmt::format("    {} = {}  # {} {}", t.name, draw(t, t.dist, "cuda", ""),
                     dtype_name(t.dtype), dist_comment(t.dist)));
  line(fmt::format("    return [{}]", fmt::join(in_names, ", ")));
  line("");
  line("");
  line("def get_init_inputs():");
  line("    return []");
  line("");
  line("");
  line("def load_params(model, tensors):");
  line(
      "    \"\"\"Copies tensors (a dict name -> tensor) into the model's parameter buffers.\"\"\"");
  std::vector<std::string> param_names;
  for (const auto& t : p.params)
    param_names.push_back(fmt::format("\"{}\"", t.name));
  line(param_names.empty() ? std::string("    expected = set()")
                           : fmt::format("    expected = {{{}}}", fmt::join(param_names, ", ")));
  line("    if set(tensors) != expected:");
  line("        raise ValueError(f\"parameters {sorted(tensors)} != {sorted(expected)}\")");
  line("    with torch.no_grad():");
  line("        for name, t in tensors.items():");
  line("            buf = getattr(model, name)");
  line("            if tuple(buf.shape) != tuple(t.shape):");
  line("                raise ValueError(f\"{name}: shape {tuple(t.shape)} != "
       "{tuple(buf.shape)}\")");
  line("            buf.copy_(t)");
  return s;
}

} // namespace kb
