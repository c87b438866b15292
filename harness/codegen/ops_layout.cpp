// Naive kernels of the layout ops: one thread per output element reading the element it copies
// (permute, transpose, slice, pad, flip, roll, gather, diag, masks), or one copy kernel per input
// for concat and stack. Elements move unchanged, whatever their dtype.
#include <algorithm>
#include <limits>

#include "emit.hpp"

namespace kb::codegen {
namespace {

void copy(NodeCtx& c) {
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)}, "y[i] = x[i];\n");
}

// out dim d walks x's dim perm[d].
void permuted(NodeCtx& c, const std::vector<int64_t>& perm) {
  const Shape xs = contiguous_strides(c.in[0].shape);
  Shape walk;
  for (int64_t p : perm)
    walk.push_back(xs[static_cast<std::size_t>(p)]);
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("y[i] = x[{}];\n", remap("i", c.out.shape, walk)));
}

void permute(NodeCtx& c) {
  std::vector<int64_t> perm;
  for (int64_t d : attr_ints(c.node.attrs, "dims", 0, {}))
    perm.push_back(dim_of(d, c.in[0].shape.size()));
  permuted(c, perm);
}

void transpose(NodeCtx& c) {
  const std::size_t rank = c.in[0].shape.size();
  std::vector<int64_t> perm;
  for (std::size_t d = 0; d < rank; ++d)
    perm.push_back(static_cast<int64_t>(d));
  std::swap(perm[static_cast<std::size_t>(dim_of(attr_int(c.node.attrs, "dim0"), rank))],
            perm[static_cast<std::size_t>(dim_of(attr_int(c.node.attrs, "dim1"), rank))]);
  permuted(c, perm);
}

void slice(NodeCtx& c) {
  const Shape& xs = c.in[0].shape;
  const auto d = static_cast<std::size_t>(dim_of(attr_int(c.node.attrs, "dim"), xs.size()));
  const int64_t size = xs[d];
  int64_t start = attr_int(c.node.attrs, "start");
  if (start < 0)
    start += size;
  const int64_t step = attr_int(c.node.attrs, "step", 1);
  Shape st = contiguous_strides(xs);
  const int64_t first = start * st[d];
  st[d] *= step;
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("y[i] = x[{} + {}];\n", lit(first), remap("i", c.out.shape, st)));
}

void masked_fill_causal(NodeCtx& c) {
  const Shape& x = c.in[0].shape;
  const int64_t l = x[x.size() - 2], s = x.back();
  const double value = attr_double(c.node.attrs, "value", -std::numeric_limits<double>::infinity());
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("if (i % {0} > (i / {0}) % {1}) kb_st(y, i, {2});\nelse y[i] = x[i];\n",
                      lit(s), lit(l), dlit(value)));
}

// Each input copied into its place of the output (concat: at its offset along dim; stack: at its
// index of the new dim).
void joined(NodeCtx& c, bool stack) {
  const Shape& os = c.out.shape;
  const Shape ost = contiguous_strides(os);
  const std::size_t rank = c.in[0].shape.size();
  const auto d =
      static_cast<std::size_t>(dim_of(attr_int(c.node.attrs, "dim"), stack ? rank + 1 : rank));
  // Input j fills blocks of `blk` elements (its extent along d times the dims after d), one per
  // index of the dims before d, `out_blk` apart in the output, starting `off` into each. The copy
  // kernel takes these as arguments, so one kernel serves every input of every join.
  const int64_t inner = ost[d];
  const int64_t out_blk = os[d] * inner;
  int64_t offset = 0;
  for (std::size_t j = 0; j < c.in.size(); ++j) {
    const int64_t len = stack ? 1 : c.in[j].shape[d];
    c.e.map(c.kname(fmt::format("in{}", j)), c.in[j].numel(),
            {in_arg("x", c.in[j]),
             out_arg("y", c.out),
             {"int64_t", "blk", lit(len * inner)},
             {"int64_t", "out_blk", lit(out_blk)},
             {"int64_t", "off", lit(offset * inner)}},
            "y[(i / blk) * out_blk + off + i % blk] = x[i];\n");
    offset += len;
  }
}

// F.pad's list, last dim first, as (before, after); negative amounts crop.
void pad(NodeCtx& c) {
  const Shape& xs = c.in[0].shape;
  const auto amounts = attr_ints(c.node.attrs, "pad", 0, {});
  std::vector<int64_t> before(xs.size(), 0);
  for (std::size_t k = 0; k < amounts.size() / 2; ++k)
    before[xs.size() - 1 - k] = amounts[2 * k];
  const Shape xst = contiguous_strides(xs);
  std::string inside, src;
  for (std::size_t d = 0; d < xs.size(); ++d) {
    const std::string cd = fmt::format("c{}", d);
    inside += fmt::format("const int64_t {} = {} - {};\n", cd, coord("i", c.out.shape, d),
                          lit(before[d]));
    src += fmt::format(" && {0} >= 0 && {0} < {1}", cd, lit(xs[d]));
  }
  std::string off;
  for (std::size_t d = 0; d < xs.size(); ++d)
    off += fmt::format("{}c{} * {}", d == 0 ? "" : " + ", d, lit(xst[d]));
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("{}if (true{}) y[i] = x[{}];\nelse kb_st(y, i, {});\n", inside, src,
                      off.empty() ? std::string("0") : off,
                      dlit(attr_double(c.node.attrs, "value", 0.0))));
}

void triangle(NodeCtx& c, bool lower) {
  const Shape& x = c.in[0].shape;
  const int64_t rows = x[x.size() - 2], cols = x.back();
  const int64_t k = attr_int(c.node.attrs, "diagonal", 0);
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("const int64_t d = i % {} - (i / {}) % {};\n"
                      "if (d {} {}) y[i] = x[i];\nelse kb_st(y, i, 0.0);\n",
                      lit(cols), lit(cols), lit(rows), lower ? "<=" : ">=", lit(k)));
}

void flip(NodeCtx& c) {
  const Shape& xs = c.in[0].shape;
  std::vector<bool> flipped(xs.size(), false);
  for (int64_t d : attr_ints(c.node.attrs, "dims", 0, {}))
    flipped[static_cast<std::size_t>(dim_of(d, xs.size()))] = true;
  const Shape st = contiguous_strides(xs);
  std::string src;
  for (std::size_t d = 0; d < xs.size(); ++d) {
    const std::string cd = coord("i", xs, d);
    const std::string v = flipped[d] ? fmt::format("({} - {})", lit(xs[d] - 1), cd) : cd;
    src += fmt::format("{}{} * {}", d == 0 ? "" : " + ", v, lit(st[d]));
  }
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("y[i] = x[{}];\n", src.empty() ? "0" : src));
}

// torch.roll: per dim (or flat without dims), the element `shift` places earlier.
void roll(NodeCtx& c) {
  const Shape& xs = c.in[0].shape;
  const auto shifts = attr_ints(c.node.attrs, "shifts", 0, {});
  Shape dims = xs;
  std::vector<int64_t> per_dim(xs.size(), 0);
  if (!c.node.attrs.contains("dims")) {
    dims = {c.in[0].numel()};
    per_dim = {shifts.at(0)};
  } else {
    const auto ds = attr_ints(c.node.attrs, "dims", 0, {});
    for (std::size_t k = 0; k < ds.size() && k < shifts.size(); ++k) {
      const auto d = static_cast<std::size_t>(dim_of(ds[k], xs.size()));
      per_dim[d] += shifts[k] % xs[d];
    }
  }
  const Shape st = contiguous_strides(dims);
  std::string src;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    const int64_t n = dims[d];
    const int64_t sh = ((per_dim[d] % n) + n) % n; // in [0, n)
    const std::string cd = coord("i", dims, d);
    const std::string v = sh == 0 ? cd : fmt::format("(({} + {}) % {})", cd, lit(n - sh), lit(n));
    src += fmt::format("{}{} * {}", d == 0 ? "" : " + ", v, lit(st[d]));
  }
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("y[i] = x[{}];\n", src.empty() ? "0" : src));
}

// An index outside [0, size) of dim gives NaN instead of a read outside x.
void gather(NodeCtx& c) {
  const Shape &xs = c.in[0].shape, &is = c.in[1].shape;
  const auto dim = static_cast<std::size_t>(dim_of(attr_int(c.node.attrs, "dim"), xs.size()));
  const Shape xst = contiguous_strides(xs);
  Shape walk = xst;
  walk[dim] = 0;
  c.e.map(c.kname(), c.out.numel(),
          {in_arg("x", c.in[0]), in_arg("ix", c.in[1]), out_arg("y", c.out)},
          fmt::format("const int64_t t = (int64_t)ix[i];\n"
                      "if (t < 0 || t >= {}) kb_st(y, i, kb_nan());\n"
                      "else y[i] = x[{} + t * {}];\n",
                      lit(xs[dim]), remap("i", is, walk), lit(xst[dim])));
}

void diag(NodeCtx& c) {
  const int64_t k = attr_int(c.node.attrs, "diagonal", 0);
  const int64_t r0 = k >= 0 ? 0 : -k, c0 = k >= 0 ? k : 0;
  if (c.in[0].shape.size() == 1) {
    const int64_t n = c.out.shape[1], len = c.in[0].numel();
    c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
            fmt::format("const int64_t j = i / {0} - {1};\n"
                        "if (j >= 0 && j < {2} && i % {0} - {3} == j) y[i] = x[j];\n"
                        "else kb_st(y, i, 0.0);\n",
                        lit(n), lit(r0), lit(len), lit(c0)));
    return;
  }
  const int64_t cols = c.in[0].shape[1];
  c.e.map(c.kname(), c.out.numel(), {in_arg("x", c.in[0]), out_arg("y", c.out)},
          fmt::format("y[i] = x[({} + i) * {} + {} + i];\n", lit(r0), lit(cols), lit(c0)));
}

} // namespace

void add_layout(std::map<std::string, OpEmitter, std::less<>>& m) {
  m["reshape"] = copy;
  m["permute"] = permute;
  m["transpose"] = transpose;
  m["slice"] = slice;
  m["masked_fill_causal"] = masked_fill_causal;
  m["concat"] = [](NodeCtx& c) { joined(c, false); };
  m["stack"] = [](NodeCtx& c) { joined(c, true); };
  m["pad"] = pad;
  m["tril"] = [](NodeCtx& c) { triangle(c, true); };
  m["triu"] = [](NodeCtx& c) { triangle(c, false); };
  m["flip"] = flip;
  m["roll"] = roll;
  m["gather"] = gather;
  m["diag"] = diag;
}

} // namespace kb::codegen
