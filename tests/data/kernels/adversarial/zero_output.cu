// All-zero output on softmax_wide, where every element is within atol of zero. Expect mismatch
// constant_output.
#include "kbench/kb_abi.h"

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor* out, int, void*, cudaStream_t s) {
  return cudaMemsetAsync(out[0].data, 0, kb_numel(&out[0]) * sizeof(float), s) != cudaSuccess;
}
