// Subprocesses with their own process group, resource limits, bounded output capture, a result
// pipe on a chosen descriptor and a watchdog: the one way kbench runs nvcc and its workers.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "process.hpp"

extern char** environ;

namespace kb {

namespace {

constexpr std::size_t k_max_line_bytes = 64u << 20;

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A broken pipe must be an error value on write, not a signal that ends the harness.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

// Marks every descriptor >= `from` close-on-exec. Runs between fork and exec: async-signal-safe
// calls only.
void cloexec_from(int from) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(from), ~0u, 4u /*CLOSE_RANGE_CLOEXEC*/) == 0)
    return;
#endif
  long max_fd = ::sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > 65536)
    max_fd = 65536;
  for (int fd = from; fd < max_fd; ++fd)
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void set_limit(int resource, rlim_t value) {
  struct rlimit rl {
    value, value
  };
  ::setrlimit(resource, &rl);
}

} // namespace

std::string ExitStatus::describe() const {
  if (killed_by_watchdog)
    return "killed by the watchdog";
  if (exited)
    return fmt::format("exit status {}", exit_code);
  if (signal != 0) {
    const char* name = ::strsignal(signal);
    return fmt::format("signal {} ({})", signal, name ? name : "unknown");
  }
  return "unknown status";
}

ChildProcess::ChildProcess(const ProcessSpec& spec) : m_limit(spec.output_limit_bytes) {
  if (spec.argv.empty())
    throw Error("cannot start a process: empty command line");
  ignore_sigpipe_once();

  // Everything the child needs is built before fork: after fork only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    const std::string_view key = kv.substr(0, eq);
    const bool overridden =
        std::any_of(spec.env.begin(), spec.env.end(),
                    [&](const auto& p) { return p.first == key; }) ||
        std::find(spec.env_unset.begin(), spec.env_unset.end(), key) != spec.env_unset.end();
    if (!overridden)
      env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv;
  for (auto& s : argv_strings)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, res[2] = {-1, -1},
      exec_err[2] = {-1, -1};
  auto make_pipe = [](int p[2]) {
    if (::pipe2(p, O_CLOEXEC) != 0)
      throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  };
  auto close_all = [&] {
    for (int* p : {in, out, err, res, exec_err}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
  };
  try {
    make_pipe(in);
    make_pipe(out);
    make_pipe(err);
    if (spec.result_channel)
      make_pipe(res);
    make_pipe(exec_err);
  } catch (...) {
    close_all();
    throw;
  }

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    close_all();
    throw Error(fmt::format("cannot start '{}': fork failed: {}", spec.argv[0], std::strerror(e)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // Exactly 0-2 and the result channel survive exec: everything from 3 up is marked
    // close-on-exec first, then dup2 (which clears the flag on its target) places the channel.
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    if (spec.result_channel && res[1] == spec.result_fd) {
      // Already in place: move it aside so the dup2 below clears its close-on-exec flag.
      const int moved = ::fcntl(res[1], F_DUPFD, spec.result_fd + 1);
      res[1] = moved;
    }
    cloexec_from(3);
    if (spec.result_channel)
      ::dup2(res[1], spec.result_fd);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (spec.limits.no_core)
      set_limit(RLIMIT_CORE, 0);
    if (spec.limits.cpu_s > 0) {
      struct rlimit rl {
        static_cast<rlim_t>(spec.limits.cpu_s + 0.999),
            static_cast<rlim_t>(spec.limits.cpu_s + 1.999)
      };
      ::setrlimit(RLIMIT_CPU, &rl);
    }
    if (spec.limits.file_size_bytes > 0)
      set_limit(RLIMIT_FSIZE, spec.limits.file_size_bytes);
    if (spec.limits.address_space_bytes > 0)
      set_limit(RLIMIT_AS, spec.limits.address_space_bytes);
    if (spec.limits.open_files > 0)
      set_limit(RLIMIT_NOFILE, spec.limits.open_files);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      [[maybe_unused]] auto w = ::write(exec_err[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    [[maybe_unused]] auto w = ::write(exec_err[1], &e, sizeof e);
    ::_exit(127);
  }

  ::setpgid(pid, pid); // also from the parent: no window where a kill misses the group
  m_pid = pid;
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(res[1]);
  close_fd(exec_err[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_err[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close_fd(exec_err[0]);
  m_stdin = in[1];
  m_stdout = out[0];
  m_stderr = err[0];
  m_result = res[0];
  if (n > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    m_reaped = true;
    close_fd(m_stdin);
    close_fd(m_stdout);
    close_fd(m_stderr);
    close_fd(m_result);
    throw Error(fmt::format("cannot start '{}'{}: {}", spec.argv[0],
                            spec.cwd.empty() ? "" : fmt::format(" in '{}'", spec.cwd),
                            std::strerror(child_errno)));
  }
  set_nonblocking(m_stdout);
  set_nonblocking(m_stderr);
  if (m_result >= 0)
    set_nonblocking(m_result);
}

ChildProcess::~ChildProcess() {
  if (m_pid > 0) {
    ::kill(-m_pid, SIGKILL);
    if (!m_reaped) {
      int status = 0;
      ::waitpid(m_pid, &status, 0);
    }
  }
  close_fd(m_stdin);
  close_fd(m_stdout);
  close_fd(m_stderr);
  close_fd(m_result);
}

bool ChildProcess::send(std::string_view bytes) {
  while (!bytes.empty()) {
    if (m_stdin < 0)
      return false;
    const ssize_t n = ::write(m_stdin, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      close_fd(m_stdin);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void ChildProcess::close_stdin() {
  close_fd(m_stdin);
}

void ChildProcess::append(int fd, const char* data, std::size_t n) {
  // Head and tail halves: the start says what ran, the end says how it died.
  const bool is_out = fd == m_stdout;
  std::string& head = is_out ? m_out_head : m_err_head;
  std::string& tail = is_out ? m_out_tail : m_err_tail;
  CapturedOutput& cap = is_out ? m_out : m_err;
  cap.total_bytes += n;
  const std::size_t half = m_limit / 2;
  if (head.size() < half) {
    const std::size_t take = std::min(n, half - head.size());
    head.append(data, take);
    data += take;
    n -= take;
  }
  if (n == 0 || half == 0)
    return;
  if (n >= half) {
    tail.assign(data + n - half, half);
  } else {
    tail.append(data, n);
    if (tail.size() > 2 * half)
      tail.erase(0, tail.size() - half);
  }
}

void ChildProcess::pump(int timeout_ms, bool want_result) {
  pollfd fds[3];
  int nfds = 0;
  if (m_stdout >= 0)
    fds[nfds++] = {m_stdout, POLLIN, 0};
  if (m_stderr >= 0)
    fds[nfds++] = {m_stderr, POLLIN, 0};
  if (want_result && m_result >= 0)
    fds[nfds++] = {m_result, POLLIN, 0};
  if (nfds == 0) {
    if (timeout_ms > 0)
      ::poll(nullptr, 0, timeout_ms);
    return;
  }
  const int rc = ::poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
  if (rc <= 0)
    return;
  char buf[65536];
  for (int i = 0; i < nfds; ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    const int fd = fds[i].fd;
    // Bounded work per call so one flooding stream cannot starve the deadline check.
    for (int rounds = 0; rounds < 64; ++rounds) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        if (fd == m_result) {
          if (m_result_buf.size() < k_max_line_bytes)
            m_result_buf.append(buf, static_cast<std::size_t>(n));
        } else {
          append(fd, buf, static_cast<std::size_t>(n));
        }
        continue;
      }
      if (n < 0 && (errno == EINTR))
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      // End of file or a hard error: this stream is done.
      if (fd == m_stdout)
        close_fd(m_stdout);
      else if (fd == m_stderr)
        close_fd(m_stderr);
      else
        close_fd(m_result);
      break;
    }
  }
}

bool ChildProcess::running() {
  if (m_reaped || m_pid <= 0)
    return false;
  int status = 0;
  const pid_t r = ::waitpid(m_pid, &status, WNOHANG);
  if (r == m_pid) {
    m_reaped = true;
    m_status.exited = WIFEXITED(status);
    m_status.exit_code = m_status.exited ? WEXITSTATUS(status) : -1;
    m_status.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    m_status.killed_by_watchdog = m_killed;
    return false;
  }
  return r == 0;
}

ChildProcess::Recv ChildProcess::receive(std::string& line, Clock::time_point deadline) {
  Clock::time_point exited_at{};
  for (;;) {
    if (auto nl = m_result_buf.find('\n'); nl != std::string::npos) {
      line = m_result_buf.substr(0, nl);
      m_result_buf.erase(0, nl + 1);
      return Recv::line;
    }
    if (m_result_buf.size() >= k_max_line_bytes) {
      line = std::move(m_result_buf);
      m_result_buf.clear();
      return Recv::line;
    }
    if (m_result < 0) {
      line = std::move(m_result_buf); // an unterminated last line still counts as text
      m_result_buf.clear();
      return line.empty() ? Recv::closed : Recv::line;
    }
    const auto now = Clock::now();
    if (now >= deadline)
      return Recv::timeout;
    wait_step(now, deadline, exited_at);
  }
}

void ChildProcess::wait_step(Clock::time_point now, Clock::time_point deadline,
                             Clock::time_point& exited_at) {
  // A descendant that outlives the child (fork) may hold the channel open: once the child is
  // gone, its group gets a short grace and is then killed so the channel closes.
  if (!running()) {
    if (exited_at == Clock::time_point{})
      exited_at = now;
    else if (now - exited_at > std::chrono::milliseconds(200))
      ::kill(-m_pid, SIGKILL);
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  // Unread result lines are kept, not lost, while pumping.
  pump(static_cast<int>(std::clamp<long long>(left, 1, 50)), true);
}

bool ChildProcess::drain(Clock::time_point deadline) {
  Clock::time_point exited_at{};
  while (m_stdout >= 0 || m_stderr >= 0 || m_result >= 0) {
    const auto now = Clock::now();
    if (now >= deadline)
      return false;
    wait_step(now, deadline, exited_at);
  }
  finish_capture();
  return true;
}

void ChildProcess::kill_group() {
  if (m_pid <= 0)
    return;
  if (!m_reaped)
    m_killed = true;
  ::kill(-m_pid, SIGKILL);
}

ExitStatus ChildProcess::wait(Clock::time_point deadline) {
  while (running()) {
    if (Clock::now() >= deadline) {
      kill_group();
      int status = 0;
      ::waitpid(m_pid, &status, 0);
      m_reaped = true;
      m_status.exited = false;
      m_status.exit_code = -1;
      m_status.signal = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
      m_status.killed_by_watchdog = true;
      break;
    }
    pump(5, false);
  }
  // Descendants left in the group (a fork that escaped the child's exit) go too.
  ::kill(-m_pid, SIGKILL);
  // Whatever is still buffered in the pipes is collected without waiting on live writers.
  for (int i = 0; i < 64 && (m_stdout >= 0 || m_stderr >= 0); ++i)
    pump(i == 0 ? 0 : 2, false);
  finish_capture();
  return m_status;
}

void ChildProcess::finish_capture() {
  for (auto* s : {&m_out, &m_err}) {
    const bool is_out = s == &m_out;
    const std::string& head = is_out ? m_out_head : m_err_head;
    std::string tail = is_out ? m_out_tail : m_err_tail;
    const std::size_t half = m_limit / 2;
    if (tail.size() > half)
      tail.erase(0, tail.size() - half);
    const uint64_t kept = head.size() + tail.size();
    s->truncated = s->total_bytes > kept;
    s->text = head;
    if (s->truncated)
      s->text += fmt::format("\n[... {} bytes dropped ...]\n", s->total_bytes - kept);
    s->text += tail;
  }
}

ProcessResult run_process(const ProcessSpec& spec, double timeout_s, std::string_view stdin_data) {
  const auto start = ChildProcess::Clock::now();
  const auto deadline =
      timeout_s > 0 ? start + std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6))
                    : ChildProcess::Clock::time_point::max();
  ChildProcess child(spec);
  if (!stdin_data.empty())
    child.send(stdin_data);
  child.close_stdin();
  child.drain(deadline);
  ProcessResult r;
  r.status = child.wait(deadline);
  r.timed_out = r.status.killed_by_watchdog;
  r.out = child.out();
  r.err = child.err();
  r.wall_s = std::chrono::duration<double>(ChildProcess::Clock::now() - start).count();
  return r;
}

} // namespace kb
