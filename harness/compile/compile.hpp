// Candidate compilation: nvcc to a shared object with a content-hash cache and a timeout, symbol
// screening of the result against an allow-list, and the bounded, killable subprocess runner the
// compiler and the evaluation workers share.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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
// stdout and stderr captured into bounded buffers, and, when result_channel is set, a pipe on fd 3
// for machine-readable results. Every other descriptor is closed.
struct ProcessSpec {
  std::vector<std::string> argv;                        // argv[0] is the program (PATH searched)
  std::vector<std::pair<std::string, std::string>> env; // set or overridden in the inherited env
  std::vector<std::string> env_unset;                   // removed from the inherited env
  std::string cwd;                                      // empty: inherited
  ProcessLimits limits;
  std::size_t output_limit_bytes = 64 * 1024; // per stream: head and tail kept, middle counted
  bool result_channel = false;
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

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

struct CompileOptions {
  std::string nvcc; // empty: $KB_NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc
  std::string arch = "sm_90a";
  std::vector<std::string> extra_flags;
  std::string include_dir; // holds kbench/kb_abi.h; empty: $KB_INCLUDE_DIR, else as built
  std::string cache_dir;   // empty: $KB_CACHE_DIR, else $XDG_CACHE_HOME/kbench, ~/.cache/kbench
  bool use_cache = true;
  double timeout_s = 120.0;
  std::size_t log_limit_bytes = 64 * 1024;
  bool allow_library_calls = false; // links cuBLAS/cuBLASLt/cuDNN (and lets screening pass them)
  uint64_t memory_limit_bytes = 16ull << 30; // nvcc's address space
};

// The exact nvcc command line (without input/output paths) for these options; part of the key.
std::vector<std::string> nvcc_flags(const CompileOptions& opts);

struct CompileResult {
  bool ok = false;
  bool cached = false;
  bool timed_out = false;
  std::string so_path;  // the shared object (inside the cache dir, or a temp dir without cache)
  std::string log;      // nvcc's output, bounded by log_limit_bytes
  std::string message;  // one line: why it failed ("nvcc exited with status 2", "timed out ...")
  std::string key;      // cache key (16 hex digits)
  double seconds = 0.0; // wall time of this call
};

// Compiles one candidate source. Failures of the candidate are values (ok=false with message and
// log); throws kb::Error only for harness problems (nvcc missing, cache dir not writable).
CompileResult compile_candidate(std::string_view source, const CompileOptions& opts);

// Compiles many sources with up to `jobs` nvcc processes at once; results in input order.
std::vector<CompileResult> compile_many(const std::vector<std::string>& sources,
                                        const CompileOptions& opts, int jobs);

// `nvcc --version`'s last line ("Build cuda_13.0.r13.0/compiler...") and release ("13.0"), cached
// per nvcc path. Throws kb::Error when nvcc cannot be run.
struct NvccVersion {
  std::string release;
  std::string full;
};
NvccVersion nvcc_version(const std::string& nvcc);
// Resolves the nvcc to use from the options and the environment (see CompileOptions::nvcc).
std::string resolve_nvcc(const CompileOptions& opts);
// Resolves the cache directory (see CompileOptions::cache_dir).
std::string resolve_cache_dir(const CompileOptions& opts);
// Resolves the directory that holds kbench/kb_abi.h.
std::string resolve_include_dir(const CompileOptions& opts);

// ---------------------------------------------------------------------------------------------
// Symbol screening
// ---------------------------------------------------------------------------------------------

struct ScreenPolicy {
  bool allow_library_calls = false; // cuBLAS/cuDNN imports pass (they are recorded either way)
};

// What a shared object imports and runs at load, read from its ELF headers.
struct ElfInfo {
  std::vector<std::string> undefined; // imported symbols (dynamic symbol table, undefined)
  std::vector<std::string> weak_undefined;
  std::vector<std::string> exported; // defined global functions and objects
  std::vector<std::string> needed;   // DT_NEEDED libraries
  int init_array_entries = 0;        // .init_array + .preinit_array function pointers
};

// Reads the ELF information of a 64-bit little-endian shared object. Throws kb::Error naming the
// file and the defect when it is not one.
ElfInfo read_elf(const std::string& path);

struct ScreenReport {
  bool ok = false;
  std::string reason;                     // first violation, one line, for the user
  std::vector<std::string> violations;    // "fork: creates processes", ...
  std::vector<std::string> library_calls; // cuBLAS/cuDNN/... imports (sorted)
  bool has_forward = false;               // kb_forward is exported
  ElfInfo elf;
};

// Judges an object against the allow-list (docs/evaluation.md lists it with reasons). ok=false
// for any import outside it, an unexpected library, or static constructors beyond the two nvcc
// emits (frame_dummy and the fatbin registration). Unreadable objects are violations too.
ScreenReport screen_object(const std::string& so_path, const ScreenPolicy& policy);

// Classifies one imported symbol: empty when allowed, else the reason it is refused.
// `library` is set when the symbol belongs to a vendor library (cuBLAS, cuDNN, ...).
std::string classify_symbol(std::string_view name, const ScreenPolicy& policy, bool* library);

// Maximum .init_array entries a plain nvcc-built object has.
inline constexpr int k_max_init_array_entries = 2;

} // namespace kb
