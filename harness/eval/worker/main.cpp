// kbench-worker: the only process kind that touches the GPU. Modes: candidate (runs one
// candidate), reference (judges outputs, times baselines; never loads candidate code), doctor,
// calibrate. Replies go to the result descriptor ($KB_RESULT_FD) as JSON lines; commands come on
// stdin (docs/evaluation.md).
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "worker.hpp"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "candidate")
      return kb::worker::run_candidate();
    if (mode == "reference")
      return kb::worker::run_reference();
    if (mode == "doctor")
      return kb::worker::run_doctor();
    if (mode == "calibrate")
      return kb::worker::run_calibrate();
  } catch (const std::exception& e) {
    kb::worker::emit({{"ok", false}, {"error", e.what()}});
    return 1;
  }
  fmt::print(stderr,
             "usage: kbench-worker candidate|reference|doctor|calibrate\n"
             "Started by kbench; reads JSON lines on stdin, writes replies to $KB_RESULT_FD.\n");
  return 2;
}
