// Naive candidates: a standalone CUDA source under the candidate ABI (include/kbench/kb_abi.h)
// for any problem's op graph, with one simple kernel per op in the "one thread per output
// element" style. Values are computed in double and rounded once per op to the op's dtype, as
// PyTorch rounds each op's output. The generator is text only: no CUDA runtime here. The only
// public header of kb_codegen; docs/abi.md ("Naive candidates") describes the guarantees.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core.hpp"

namespace kb {

// What the generator made of a problem, beside the source.
struct NaiveCandidate {
  std::string source;          // the .cu file
  int64_t workspace_bytes = 0; // what its kb_workspace_bytes returns
  int kernels = 0;             // __global__ functions defined
};

// The naive candidate of `p`. Throws kb::Error naming the node and op when the problem holds an
// op without a naive kernel, or needs more than the ABI's 64 GiB of workspace.
NaiveCandidate naive_candidate(const Problem& p);

// Whether op `name` has a naive kernel.
bool has_naive_kernel(std::string_view op);

// Names of every op with a naive kernel, sorted.
std::vector<std::string> naive_kernel_ops();

} // namespace kb
