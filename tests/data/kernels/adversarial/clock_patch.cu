// Reads clock_gettime to shape its own timing (relu_small). Expect rejected.
#include "kbench/kb_abi.h"
#include <time.h>

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int)(t.tv_nsec & 0);
}
