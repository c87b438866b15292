// Bounded, killable subprocesses: own process group, resource limits, captured output that never
// blocks the child, and a line-oriented result channel. Shared by the compiler (nvcc) and the
// evaluator (kbench-worker processes).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core.hpp"

namespace kb {

// ---------------------------------------------------------------------------------------------
// Subprocesses
// ---------------------------------------------------------------------------------------------

// Resource limits applied in the child before exec. 0 means "leave as inherited".
struct ProcessLimits {
  double cpu_s = 0.0;               // RLIMIT_CPU (SIGXCPU, then SIGKILL one second later)
  uint64_t file_size_bytes = 0;     // RLIMIT_FSIZE
  uint64_t address_space_bytes = 0; // RLIMIT_AS (CUDA needs >= 16 GiB; leave 0 for workers)
  uint64_t open_files = 0;          // RLIMIT_NOFILE
  bool no_core = true;              // RLIMIT_CORE = 0
};

// What to run. The child gets its own process group, stdin from a pipe (see ChildProcess::send),
// stdout and stderr captured into bounded buffers, and, when result_channel is set, a pipe on
// descriptor result_fd for machine-readable results. Every other descriptor is closed.
struct ProcessSpec {
  std::vector<std::string> argv;                        // argv[0] is the program (PATH searched)
  std::vector<std::pair<std::string, std::string>> env; // set or overridden in the inherited env
  std::vector<std::string> env_unset;                   // removed from the inherited env
  std::string cwd;                                      // empty: inherited
  ProcessLimits limits;
  std::size_t output_limit_bytes = 64 * 1024; // per stream: head and tail kept, middle counted
  bool result_channel = false;
  int result_fd = 3; // where the child finds the result channel (>= 3)
};

// Captured output of one stream: at most the limit is kept (its first and last parts).
struct CapturedOutput {
  std::string text;         // what was kept; a "[... N bytes dropped ...]" line marks the gap
  uint64_t total_bytes = 0; // everything the child wrote
  bool truncated = false;
};

// How a child ended.
struct ExitStatus {
  bool exited = false; // normal exit (exit_code valid)
  int exit_code = -1;
  int signal = 0; // terminating signal when !exited
  bool killed_by_watchdog = false;
  std::string describe() const; // "exit status 0", "signal 11 (Segmentation fault)", ...
};

// A running child process with a watchdog-friendly interface. Not thread-safe; one owner.
// The destructor kills the whole process group and reaps the child.
class ChildProcess {
public:
  // Starts the child. Throws kb::Error naming the program when it cannot be started (fork/exec
  // failed, program not found).
  explicit ChildProcess(const ProcessSpec& spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  using Clock = std::chrono::steady_clock;
  enum class Recv { line, closed, timeout };

  // Writes bytes to the child's stdin. Returns false when the child no longer reads it.
  bool send(std::string_view bytes);
  // Closes the child's stdin (it sees end of file).
  void close_stdin();
  // Waits for one newline-terminated line on the result channel (newline stripped), draining
  // stdout/stderr meanwhile so a flood never blocks the child. `closed`: the channel reached end
  // of file (every holder of its write end is gone); `timeout`: the deadline passed first.
  // Lines longer than 64 MiB are cut there.
  Recv receive(std::string& line, Clock::time_point deadline);
  // Drains stdout/stderr until both close or the deadline passes; true when both closed.
  bool drain(Clock::time_point deadline);
  // Waits for the child to exit until the deadline; on timeout kills the process group (marking
  // the status killed_by_watchdog) and reaps. Always returns the final status.
  ExitStatus wait(Clock::time_point deadline);
  // Kills the whole process group with SIGKILL now (idempotent). Marks killed_by_watchdog.
  void kill_group();
  // True while the child has not been reaped and has not exited.
  bool running();

  const CapturedOutput& out() const { return m_out; }
  const CapturedOutput& err() const { return m_err; }
  int pid() const { return m_pid; }

private:
  int m_pid = -1;
  int m_stdin = -1, m_stdout = -1, m_stderr = -1, m_result = -1;
  std::size_t m_limit = 0;
  std::string m_result_buf;
  std::string m_out_head, m_out_tail, m_err_head, m_err_tail;
  CapturedOutput m_out, m_err;
  bool m_reaped = false;
  bool m_killed = false;
  ExitStatus m_status;
  void pump(int timeout_ms, bool want_result);
  // One wait of receive()/drain(): pumps the pipes for at most 50 ms (never past the deadline),
  // and kills the group once the child has been gone for 200 ms (`exited_at` tracks when).
  void wait_step(Clock::time_point now, Clock::time_point deadline, Clock::time_point& exited_at);
  void append(int fd, const char* data, std::size_t n);
  void finish_capture();
};

// Result of a run-to-completion subprocess.
struct ProcessResult {
  ExitStatus status;
  bool timed_out = false;
  CapturedOutput out, err;
  double wall_s = 0.0;
};

// Runs a child to completion with a wall-clock timeout (0 = none) after which its whole process
// group is killed. `stdin_data` is written to its stdin, which is then closed. Throws kb::Error
// only when the program cannot be started.
ProcessResult run_process(const ProcessSpec& spec, double timeout_s,
                          std::string_view stdin_data = {});

} // namespace kb
