// The error check_cuda throws: the CUDA error's code, name and text beside the full message
// (which carries the harness's file and line), so code that runs candidates can name the error
// without naming the harness's sources.
#pragma once

#include <string>

#include <cuda_runtime.h>

#include "core.hpp"

namespace kb::gpu {

struct CudaError : Error {
  CudaError(cudaError_t code_, const std::string& what, std::string expr_)
      : Error(what), code(code_), name(cudaGetErrorName(code_)), text(cudaGetErrorString(code_)),
        expr(std::move(expr_)) {}
  cudaError_t code;
  std::string name; // "cudaErrorIllegalAddress"
  std::string text; // "an illegal memory access was encountered"
  std::string expr; // the failing call, as written in the harness
};

} // namespace kb::gpu
