// Runs the real kbench binary of the build (KB_BIN_DIR) as a user would and captures its exit
// code, standard output and standard error.
#pragma once

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace kb::test {

struct CliResult {
  int code = -1; // exit status; -1 when kbench did not exit normally
  std::string out, err;
};

// `kbench <args>` through the shell, behind `prefix` (e.g. a command that changes the user).
// Standard error goes to a file of this test process's own: ctest runs tests in parallel.
inline CliResult run_kbench_via(const std::string& prefix, const std::string& args) {
  CliResult r;
  const std::string err_file =
      ::testing::TempDir() + "kbench-cli-stderr-" + std::to_string(::getpid()) + ".txt";
  const std::string cmd = prefix + std::string(KB_BIN_DIR) + "/kbench " + args + " 2>" + err_file;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  std::filesystem::remove(err_file);
  return r;
}

inline CliResult run_kbench(const std::string& args) {
  return run_kbench_via("", args);
}

} // namespace kb::test
