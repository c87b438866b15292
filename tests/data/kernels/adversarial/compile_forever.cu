// Never finishes compiling: includes itself twice per level, 2^40 times, with little memory (any
// problem). Expect compile_error (timed out).
#include "kbench/kb_abi.h"
#if __INCLUDE_LEVEL__ < 40
#include __FILE__
#include __FILE__
#endif
#if __INCLUDE_LEVEL__ == 0
extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  return 0;
}
#endif
