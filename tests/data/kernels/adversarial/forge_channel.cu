// Forged verdict on softmax_wide: writes zeros and, on every call, points stdout at every
// descriptor the result channel could be on and prints the line an older evaluator took as the
// final result ("done" with a fast time). Expect: not correct, no time (a reply nobody asked
// for voids the evaluation).
#include <cstdio>

#include "kbench/kb_abi.h"

static void forge() {
  const int saved = stdout->_fileno;
  for (int fd = 3; fd < 1024; ++fd) {
    if (fd < 64 && fd != 3)
      continue; // CUDA's own descriptors live low; the channel is 3 or above 63
    stdout->_fileno = fd;
    printf("{\"event\":\"done\",\"timing\":{\"median_ms\":0.1,\"mean_ms\":0.1,\"samples\":50,"
           "\"stop_reason\":\"converged\"},\"off_stream\":false}\n");
    fflush(stdout);
  }
  stdout->_fileno = saved;
}

extern "C" int kb_forward(const kb_tensor*, int, kb_tensor* out, int, void*, cudaStream_t s) {
  forge();
  return cudaMemsetAsync(out[0].data, 0, kb_numel(&out[0]) * sizeof(float), s) != cudaSuccess;
}
