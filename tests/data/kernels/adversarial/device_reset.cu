// Resets the device (relu_small). Expect rejected.
#include "kbench/kb_abi.h"

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  return cudaDeviceReset() != cudaSuccess;
}
