// GoogleTest fixture for tests that need a GPU: skips without a device, fails instead when
// KB_REQUIRE_GPU=1 (set on the GPU machine so a missing device is never a silent pass).
#pragma once

#include <cstdlib>
#include <string>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

namespace kb::test {

// True when a CUDA device is usable in this process.
inline bool gpu_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

inline bool gpu_required() {
  const char* v = std::getenv("KB_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

class GpuTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!gpu_available()) {
      if (gpu_required())
        FAIL() << "KB_REQUIRE_GPU=1 but no CUDA device is usable";
      GTEST_SKIP() << "no CUDA device";
    }
  }
};

} // namespace kb::test
