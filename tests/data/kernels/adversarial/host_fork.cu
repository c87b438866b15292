// Forks a child that keeps the worker's pipes open (relu_small). Expect rejected; with screening
// off, the run still ends.
#include "kbench/kb_abi.h"
#include <unistd.h>

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor*, int, void*, cudaStream_t) {
  if (fork() == 0) {
    sleep(1000);
  }
  return 1;
}
