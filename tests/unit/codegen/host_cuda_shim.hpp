// Host emulation of the CUDA launch model for naive candidates: the generated source compiles as
// host C++ with this header force-included (-include). The real CUDA headers supply dim3, __half,
// __nv_bfloat16 and their host conversions (round to nearest even); this header adds the thread
// coordinates as host globals and a KB_LAUNCH that runs every (block, thread) of the grid in turn.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace kb_host {

// Runs threads last block first and last thread first when set: a kernel whose threads depend on
// each other's writes within one launch gives a different result in the two orders.
inline bool reverse_order = false;
inline int64_t launches = 0;

template <class Kernel> void launch(dim3 grid, dim3 block, Kernel&& kernel) {
  gridDim = grid;
  blockDim = block;
  ++launches;
  for (unsigned b = 0; b < grid.x; ++b)
    for (unsigned t = 0; t < block.x; ++t) {
      blockIdx = make_uint3(reverse_order ? grid.x - 1 - b : b, 0, 0);
      threadIdx = make_uint3(reverse_order ? block.x - 1 - t : t, 0, 0);
      kernel();
    }
}

inline cudaError_t last_error() {
  return cudaSuccess;
}

} // namespace kb_host

#define KB_LAUNCH(kernel, grid, block, stream, ...)                                                \
  ((void)(stream), kb_host::launch(dim3(grid), dim3(block), [&] { kernel(__VA_ARGS__); }))
#define cudaGetLastError() kb_host::last_error()
