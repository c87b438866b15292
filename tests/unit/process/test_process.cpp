// Subprocess runner: timeouts kill the whole group, floods are bounded, descendants holding the
// pipes cannot stall the parent, descriptors and limits are as promised.
#include <chrono>
#include <csignal>
#include <thread>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

kb::ProcessSpec sh(const std::string& script, bool channel = false) {
  kb::ProcessSpec s;
  s.argv = {"/bin/sh", "-c", script};
  s.result_channel = channel;
  return s;
}

double secs(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Alive and not a zombie (an orphan's zombie may linger where PID 1 does not reap).
bool pid_alive(pid_t pid) {
  std::string stat;
  try {
    stat = kb::read_file("/proc/" + std::to_string(pid) + "/stat");
  } catch (const kb::Error&) {
    return false;
  }
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

TEST(Process, CapturesOutputAndExitStatus) {
  const auto r = kb::run_process(sh("echo out; echo err >&2; exit 3"), 10.0);
  EXPECT_TRUE(r.status.exited);
  EXPECT_EQ(r.status.exit_code, 3);
  EXPECT_EQ(r.out.text, "out\n");
  EXPECT_EQ(r.err.text, "err\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(Process, StdinIsDelivered) {
  const auto r = kb::run_process(sh("cat"), 10.0, "hello");
  EXPECT_EQ(r.out.text, "hello");
}

TEST(Process, TimeoutKillsTheWholeGroup) {
  const auto t0 = Clock::now();
  // The grandchild records its pid; after the timeout it must be gone too.
  char tmpl[] = "/tmp/kbench-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string pidfile = std::string(tmpl) + "/pid";
  const auto r = kb::run_process(sh("sleep 100 & echo $! > " + pidfile + "; wait"), 0.5);
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(r.status.killed_by_watchdog);
  EXPECT_LT(secs(t0), 5.0);
  const pid_t grandchild = std::stoi(kb::read_file(pidfile));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(pid_alive(grandchild)) << "grandchild " << grandchild << " survived";
}

TEST(Process, OutputFloodIsBoundedAndNeverBlocks) {
  auto spec = sh("head -c 200000000 /dev/zero | tr '\\0' x; echo; echo last-line");
  spec.output_limit_bytes = 64 * 1024;
  const auto t0 = Clock::now();
  const auto r = kb::run_process(spec, 60.0);
  EXPECT_TRUE(r.status.exited);
  EXPECT_EQ(r.out.total_bytes, 200000000u + 1 + 10);
  EXPECT_TRUE(r.out.truncated);
  EXPECT_LT(r.out.text.size(), 70u * 1024);
  EXPECT_NE(r.out.text.find("bytes dropped"), std::string::npos);
  // The tail is kept: how a run ended matters more than its middle.
  EXPECT_NE(r.out.text.find("last-line"), std::string::npos);
  EXPECT_LT(secs(t0), 30.0);
}

TEST(Process, ForkedDescendantHoldingPipesDoesNotStallTheParent) {
  const auto t0 = Clock::now();
  auto spec = sh("(sleep 100 &) ; echo started; exit 0", true);
  kb::ChildProcess c(spec);
  std::string line;
  const auto got = c.receive(line, Clock::now() + std::chrono::seconds(20));
  EXPECT_EQ(got, kb::ChildProcess::Recv::closed);
  const auto st = c.wait(Clock::now() + std::chrono::seconds(5));
  EXPECT_TRUE(st.exited);
  EXPECT_EQ(st.exit_code, 0);
  EXPECT_LT(secs(t0), 5.0);
}

TEST(Process, ResultChannelCarriesLinesAndClosesWithTheChild) {
  kb::ChildProcess c(sh("echo first >&3; echo second >&3; exit 0", true));
  std::string line;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  ASSERT_EQ(c.receive(line, deadline), kb::ChildProcess::Recv::line);
  EXPECT_EQ(line, "first");
  ASSERT_EQ(c.receive(line, deadline), kb::ChildProcess::Recv::line);
  EXPECT_EQ(line, "second");
  EXPECT_EQ(c.receive(line, deadline), kb::ChildProcess::Recv::closed);
}

TEST(Process, ExitZeroWithoutResultIsVisible) {
  kb::ChildProcess c(sh("exit 0", true));
  std::string line;
  EXPECT_EQ(c.receive(line, Clock::now() + std::chrono::seconds(10)),
            kb::ChildProcess::Recv::closed);
  const auto st = c.wait(Clock::now() + std::chrono::seconds(5));
  EXPECT_TRUE(st.exited);
  EXPECT_EQ(st.exit_code, 0);
}

TEST(Process, ReceiveTimesOutOnAHangingChild) {
  kb::ChildProcess c(sh("sleep 100", true));
  std::string line;
  const auto t0 = Clock::now();
  EXPECT_EQ(c.receive(line, Clock::now() + std::chrono::milliseconds(300)),
            kb::ChildProcess::Recv::timeout);
  EXPECT_LT(secs(t0), 2.0);
  c.kill_group();
  const auto st = c.wait(Clock::now() + std::chrono::seconds(5));
  EXPECT_TRUE(st.killed_by_watchdog);
}

TEST(Process, OnlyStandardDescriptorsAndTheChannelAreInherited) {
  const int leaked = ::open("/dev/null", O_RDONLY); // deliberately not close-on-exec
  ASSERT_GE(leaked, 0);
  const int high = ::dup2(leaked, 77);
  ASSERT_EQ(high, 77);
  const auto r = kb::run_process(sh("ls /proc/$$/fd", true), 10.0);
  ::close(leaked);
  ::close(high);
  std::string fds = " " + r.out.text;
  for (auto& ch : fds)
    if (ch == '\n')
      ch = ' ';
  EXPECT_NE(fds.find(" 3 "), std::string::npos) << fds;
  EXPECT_EQ(fds.find(" 77 "), std::string::npos) << fds;
  EXPECT_EQ(fds.find(" " + std::to_string(leaked) + " "), std::string::npos) << fds;
}

TEST(Process, LimitsApply) {
  auto spec = sh("ulimit -c; ulimit -f");
  spec.limits.file_size_bytes = 1024 * 1024;
  const auto r = kb::run_process(spec, 10.0);
  EXPECT_EQ(r.out.text, "0\n2048\n"); // ulimit -f counts 512-byte blocks
}

TEST(Process, CpuLimitEndsABusyLoop) {
  auto spec = sh("while :; do :; done");
  spec.limits.cpu_s = 1;
  const auto t0 = Clock::now();
  const auto r = kb::run_process(spec, 30.0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.status.exited);
  EXPECT_TRUE(r.status.signal == SIGXCPU || r.status.signal == SIGKILL) << r.status.describe();
  EXPECT_LT(secs(t0), 10.0);
}

TEST(Process, EnvironmentAndWorkingDirectory) {
  auto spec = sh("echo $CUDA_VISIBLE_DEVICES; pwd");
  spec.env = {{"CUDA_VISIBLE_DEVICES", "3"}};
  spec.cwd = "/tmp";
  const auto r = kb::run_process(spec, 10.0);
  EXPECT_EQ(r.out.text, "3\n/tmp\n");
}

TEST(Process, MissingProgramThrowsWithItsName) {
  kb::ProcessSpec s;
  s.argv = {"/nonexistent/kbench-no-such-program"};
  try {
    kb::run_process(s, 5.0);
    FAIL() << "expected kb::Error";
  } catch (const kb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("kbench-no-such-program"), std::string::npos);
  }
}

} // namespace
