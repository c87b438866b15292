// Calls cuBLAS (relu_small). Expect rejected unless library calls are allowed; always recorded.
#include "kbench/kb_abi.h"
#include <cublas_v2.h>

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  cublasHandle_t h;
  return cublasCreate(&h) != CUBLAS_STATUS_SUCCESS;
}
