// Runs a static constructor at load time (relu_small). Expect rejected.
#include "kbench/kb_abi.h"
#include <cstdio>

__attribute__((constructor)) static void at_load() {
  puts("running before the harness looks");
}

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  return 0;
}
