// Loads code at run time with dlopen (relu_small). Expect rejected.
#include "kbench/kb_abi.h"
#include <dlfcn.h>

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  return dlopen("libcublas.so", RTLD_NOW) == nullptr;
}
