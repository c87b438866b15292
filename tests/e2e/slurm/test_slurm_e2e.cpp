// End-to-end tests of `kbench slurm`: the scripts it would submit (no Slurm needed), and a real
// single-node Slurm cluster started inside the test from the distribution's packages (munged,
// slurmctld, slurmd as root, private ports, state and spool under a temporary folder) running a
// 4-task `kbench generate` array over kbench-mock-llm and the merge job; the merged database
// holds the same candidates as the suite run unsharded, and a resubmitted shard asks nothing
// again. Skips with the reason where Slurm cannot start (not root, packages missing).
#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <random>
#include <set>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <tuple>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mock_process.hpp"
#include "store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string k_key = "sk-e2e-slurm-5c1d2e3f4a5b6c7dSECRET";
const std::vector<std::string> k_problems{"relu_4096x393216", "softmax_4096x65536",
                                          "sum_dim1_128x4096x4095", "layer_norm_16x64x256x256"};

struct Result {
  int code = -1;
  std::string output;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Starts argv[0] (searched on PATH) with `env` added, stdout and stderr into `log`. A daemon
// (`tied`) is killed by the kernel when this process dies, even by SIGKILL (a test that runs out
// of time), so no daemon outlives the test.
pid_t spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::pair<std::string, std::string>>& env = {}, bool tied = false) {
  std::vector<std::string> env_strings;
  std::set<std::string> overridden;
  for (const auto& [k, v] : env) {
    env_strings.push_back(k + "=" + v);
    overridden.insert(k);
  }
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    if (!overridden.count(s.substr(0, s.find('='))))
      env_strings.push_back(s);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> all = args;
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  if (tied) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (in < 0 || out < 0)
        ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    return pid;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0)
    pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits for `pid` until `timeout`; kills it on expiry. Returns the exit code (128 + signal).
int wait_for(pid_t pid, std::chrono::seconds timeout) {
  if (pid <= 0)
    return -1;
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0)
      return -1;
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return 124;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result run(const std::vector<std::string>& args, const fs::path& log,
           const std::vector<std::pair<std::string, std::string>>& env = {},
           std::chrono::seconds timeout = std::chrono::seconds(60)) {
  fs::remove(log);
  Result r;
  r.code = wait_for(spawn(args, log.string(), env), timeout);
  r.output = read_text(log);
  return r;
}

// A program on PATH or in the sbin folders (daemons live there); "" when absent.
std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/local/sbin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = path.find(':', start);
    const std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0)
      return p.string();
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return "";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    ::close(fd);
  return port;
}

// A private one-node Slurm cluster (CPUs only) under `dir`: munged, slurmctld and slurmd as
// children of this process, never systemd. The destructor cancels what is left, stops the
// daemons and kills any process that still carries this cluster's configuration.
class Cluster {
public:
  // Empty when the cluster runs; else why it cannot.
  std::string start(const fs::path& dir) {
    m_dir = dir;
    if (::geteuid() != 0)
      return "starting slurmctld and slurmd needs root";
    for (const char* p : {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel"})
      if ((m_bin[p] = find_program(p)).empty())
        return std::string("no ") + p + " (the slurm-wlm and munge packages)";
    fs::create_directories(dir / "state");
    fs::create_directories(dir / "spool");
    fs::create_directories(dir / "log");
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string short_host = host;
    short_host = short_host.substr(0, short_host.find('.'));
    if (short_host.empty())
      return "this machine has no host name";
    {
      std::random_device rd;
      std::string key(1024, '\0');
      for (auto& c : key)
        c = static_cast<char>(rd() & 0xff);
      std::ofstream(dir / "munge.key", std::ios::binary) << key;
      ::chmod((dir / "munge.key").c_str(), 0400);
    }
    const int ctl_port = free_port(), node_port = free_port();
    if (ctl_port <= 0 || node_port <= 0 || ctl_port == node_port)
      return "no free TCP port on 127.0.0.1";
    const int cpus = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
    const std::string d = dir.string();
    std::ofstream(dir / "slurm.conf")
        << "ClusterName=kbe2e\n"
        << "SlurmctldHost=" << short_host << "(127.0.0.1)\n"
        << "SlurmctldPort=" << ctl_port << "\nSlurmdPort=" << node_port << "\n"
        << "SlurmUser=root\nSlurmdUser=root\n"
        << "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" << d << "/munge.sock\n"
        << "StateSaveLocation=" << d << "/state\nSlurmdSpoolDir=" << d << "/spool\n"
        << "SlurmctldPidFile=" << d << "/slurmctld.pid\nSlurmdPidFile=" << d << "/slurmd.pid\n"
        << "SlurmctldLogFile=" << d << "/log/slurmctld.log\nSlurmdLogFile=" << d
        << "/log/slurmd.log\n"
        << "ProctrackType=proctrack/pgid\nTaskPlugin=task/none\n"
        << "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        << "JobCompType=jobcomp/none\nMpiDefault=none\nMailProg=/bin/true\n"
        << "ReturnToService=2\nSlurmdParameters=config_overrides\nKillWait=5\n"
        << "SchedulerType=sched/builtin\nSelectType=select/cons_tres\n"
        << "SelectTypeParameters=CR_CPU\nTmpFS=" << d << "\n"
        << "NodeName=kbnode NodeHostname=" << short_host << " NodeAddr=127.0.0.1 CPUs=" << cpus
        << " State=UNKNOWN\n"
        << "PartitionName=kbq Nodes=kbnode Default=YES MaxTime=INFINITE State=UP\n";
    m_conf = (dir / "slurm.conf").string();
    m_env = {{"SLURM_CONF", m_conf}};
    m_munged = spawn({m_bin["munged"], "-F", "--force", "--socket=" + d + "/munge.sock",
                      "--key-file=" + d + "/munge.key", "--pid-file=" + d + "/munged.pid",
                      "--log-file=" + d + "/log/munged.log", "--seed-file=" + d + "/munged.seed"},
                     d + "/log/munged.out", {}, true);
    if (!wait_until([&] { return fs::exists(dir / "munge.sock"); }, std::chrono::seconds(10)))
      return "munged did not start: " + read_text(dir / "log/munged.out");
    m_ctld = spawn({m_bin["slurmctld"], "-D", "-i", "-f", m_conf}, d + "/log/slurmctld.out", m_env,
                   true);
    m_slurmd = spawn({m_bin["slurmd"], "-D", "-f", m_conf, "-N", "kbnode"}, d + "/log/slurmd.out",
                     m_env, true);
    if (m_ctld <= 0 || m_slurmd <= 0)
      return "cannot start slurmctld or slurmd";
    const bool idle = wait_until(
        [&] {
          const Result r = run({m_bin["sinfo"], "-h", "-o", "%T"}, dir / "log/sinfo.out", m_env,
                               std::chrono::seconds(10));
          return r.code == 0 && r.output.find("idle") != std::string::npos;
        },
        std::chrono::seconds(45));
    if (!idle)
      return "the node did not come up: " + read_text(dir / "log/slurmctld.log").substr(0, 2000) +
             read_text(dir / "log/slurmd.log").substr(0, 2000);
    return "";
  }

  ~Cluster() {
    if (!m_conf.empty() && m_ctld > 0) {
      run({m_bin["scancel"], "--full", "--partition=kbq"}, m_dir / "log/scancel.out", m_env,
          std::chrono::seconds(10));
      wait_until([&] { return jobs_left() == 0; }, std::chrono::seconds(15));
    }
    for (pid_t pid : {m_slurmd, m_ctld, m_munged})
      stop(pid);
    kill_strays();
  }

  // Jobs pending or running, or -1 when squeue fails.
  int jobs_left() {
    const Result r = run({m_bin["squeue"], "-h", "-o", "%i"}, m_dir / "log/squeue.out", m_env,
                         std::chrono::seconds(10));
    if (r.code != 0)
      return -1;
    int n = 0;
    for (char c : r.output)
      n += c == '\n';
    return n;
  }

  const std::vector<std::pair<std::string, std::string>>& env() const { return m_env; }
  std::string bin(const std::string& name) { return m_bin[name]; }

  template <class F> static bool wait_until(F&& done, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (done())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return done();
  }

private:
  static void stop(pid_t pid) {
    if (pid <= 0)
      return;
    ::kill(pid, SIGTERM);
    if (wait_for(pid, std::chrono::seconds(10)) == 124)
      ::kill(pid, SIGKILL); // wait_for killed and reaped it already
  }
  // Processes that still carry this cluster's configuration in their environment (slurmstepd
  // and job steps outlive slurmd) or its folder in their command line: only ours.
  void kill_strays() {
    if (m_conf.empty())
      return;
    const std::string mark = "SLURM_CONF=" + m_conf;
    for (int round = 0; round < 3; ++round) {
      std::vector<pid_t> found;
      for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos)
          continue;
        const pid_t pid = std::stoi(name);
        if (pid == ::getpid())
          continue;
        const std::string environ_text = read_text(e.path() / "environ");
        const std::string cmdline = read_text(e.path() / "cmdline");
        if (environ_text.find(mark + '\0') != std::string::npos ||
            environ_text.find(mark) == environ_text.size() - mark.size() ||
            cmdline.find(m_dir.string()) != std::string::npos)
          found.push_back(pid);
      }
      if (found.empty())
        return;
      for (pid_t pid : found)
        ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  fs::path m_dir;
  std::string m_conf;
  std::map<std::string, std::string> m_bin;
  std::vector<std::pair<std::string, std::string>> m_env;
  pid_t m_munged = -1, m_ctld = -1, m_slurmd = -1;
};

class SlurmE2E : public ::testing::Test {
protected:
  void SetUp() override {
    // Short: munged's socket path must fit in a sockaddr_un.
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("kbsl" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000));
    fs::remove_all(dir);
    fs::create_directories(dir);
    ::setenv("KB_E2E_SLURM_KEY", k_key.c_str(), 1);
  }
  void TearDown() override {
    cluster.reset(); // daemons stopped before their folder goes
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  void write_models(const std::string& url) {
    std::ofstream out(dir / "models.yaml");
    out << "models:\n";
    for (const char* name : {"mock-a", "mock-b"})
      out << "  " << name << ":\n    provider: openai\n    base_url: " << url
          << "/v1\n    model: " << name << "\n    api_key_env: KB_E2E_SLURM_KEY\n"
          << "    max_output_tokens: 100\n    max_retries: 1\n    retry_base_delay_s: 0.01\n"
          << "    read_timeout_s: 10\n    connect_timeout_s: 2\n";
  }
  // One distinct kernel per problem, so candidates differ by source.
  json mock_script() const {
    json answers = json::array();
    for (const auto& p : k_problems)
      answers.push_back({{"match", p},
                         {"repeat", -1},
                         {"code", "#include <kbench/kb_abi.h>\n// kernel for " + p +
                                      "\nextern \"C\" int kb_forward(const kb_tensor*, int, "
                                      "kb_tensor*, int, void*, cudaStream_t) { return 0; }\n"}});
    return json{{"answers", answers}, {"fallback", json::object()}, {"require_key", k_key}};
  }
  std::vector<std::string> suite_flags() const {
    std::string problems;
    for (const auto& p : k_problems)
      problems += (problems.empty() ? "" : ",") + p;
    return {"--models",      "mock-a,mock-b",
            "--models-file", (dir / "models.yaml").string(),
            "--problems",    problems,
            "--level",       "1",
            "--levels-dir",  std::string(KB_SOURCE_DIR) + "/levels"};
  }
  std::string kbench() const { return std::string(KB_BIN_DIR) + "/kbench"; }
  // At most `cap`, and never past the test's own deadline (well inside CTest's 300 s), so a
  // stuck cluster fails the test and its cleanup still runs.
  std::chrono::seconds left(int cap) const {
    const auto rest =
        std::chrono::duration_cast<std::chrono::seconds>(m_deadline - Clock::now()).count();
    return std::chrono::seconds(std::clamp<long>(rest, 1, cap));
  }

  fs::path dir;
  Clock::time_point m_deadline = Clock::now() + std::chrono::seconds(220);
  std::unique_ptr<Cluster> cluster;
};

using Row = std::tuple<std::string, std::string, std::string, int, std::string, bool>;
std::multiset<Row> rows_of(const std::string& path) {
  kb::store::Store s(path, {.read_only = true});
  std::map<int64_t, std::string> label;
  for (const auto& m : s.models())
    label[m.id] = m.label;
  std::multiset<Row> out;
  for (const auto& a : s.attempts({}))
    out.emplace(a.problem_id, label[a.model_id], a.strategy, a.round, a.source_hash, a.evaluated);
  return out;
}

TEST_F(SlurmE2E, DryRunPrintsTheScriptsAndSubmitsNothing) {
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", mock_script());
  write_models(mock.url());
  std::vector<std::string> args{kbench(),
                                "slurm",
                                "--shards",
                                "4",
                                "--mode",
                                "split",
                                "--partition",
                                "gpu",
                                "--cpu-partition",
                                "cpu",
                                "--gpus-per-task",
                                "2",
                                "--results",
                                (dir / "r").string(),
                                "--suite",
                                "dry",
                                "--sbatch-option=--account=abc",
                                "--evaluate-option=--timeout=60",
                                "--dry-run",
                                "--"};
  const auto flags = suite_flags();
  args.insert(args.end(), flags.begin(), flags.end());
  const Result r = run(args, dir / "dry.log");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir / "r")) << "a dry run wrote files";
  const std::string& o = r.output;
  for (const char* expected :
       {"8 (problem, model) searches in 4 shards", "slurm/generate.sbatch =====",
        "slurm/evaluate.sbatch =====", "slurm/merge.sbatch =====", "#SBATCH --array=1-4",
        "#SBATCH --partition=cpu", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:2",
        "#SBATCH --account=abc", "#SBATCH --signal=B:TERM@120", "--shard \"$k/4\" --suite dry",
        "evaluate --timeout=60 --levels-dir=", "/levels --suite dry --shard \"$k/4\"",
        "slurm copy \"$db\" \"$shared\"", "slurm merge --results",
        "--dependency=aftercorr:<generate job>", "--kill-on-invalid-dep=yes",
        "--dependency=afterany:<evaluate job>"})
    EXPECT_NE(o.find(expected), std::string::npos) << "missing '" << expected << "' in\n" << o;
  // The generate tasks ask for no GPU: the only --gres line is the evaluate script's.
  EXPECT_EQ(o.find("#SBATCH --gres"), o.rfind("#SBATCH --gres"));
  EXPECT_EQ(o.find(k_key), std::string::npos) << "a key reached a script";

  // Refused before anything is written: flags kbench slurm sets, more shards than searches.
  ASSERT_EQ(args[3], "4");
  args[3] = "9";
  const Result many = run(args, dir / "refused.log");
  EXPECT_EQ(many.code, 2);
  EXPECT_NE(many.output.find("9 shards for 8 (problem, model) searches"), std::string::npos)
      << many.output;
  args[3] = "4";
  args.push_back("--db");
  args.push_back("x.db");
  const Result db = run(args, dir / "refused.log");
  EXPECT_EQ(db.code, 2);
  EXPECT_NE(db.output.find("--db is set by kbench slurm"), std::string::npos) << db.output;
}

TEST_F(SlurmE2E, ShardsByHandMergeIntoTheUnshardedRun) {
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", mock_script());
  write_models(mock.url());
  const auto flags = suite_flags();
  auto generate = [&](const std::string& db, std::vector<std::string> extra) {
    std::vector<std::string> args{kbench(), "generate", "--db", (dir / db).string()};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, dir / (db + ".log"));
  };
  ASSERT_EQ(generate("whole.db", {}).code, 0);
  for (const char* k : {"1", "2"}) {
    const Result r = generate(std::string("s") + k + ".db", {"--shard", std::string(k) + "/2"});
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("shard " + std::string(k) + "/2 of suite fp-"), std::string::npos)
        << r.output;
  }
  // Again: the shard is in its database already, completed; nothing is asked.
  const int64_t asked = mock.stats().value("requests", int64_t{0});
  const Result again = generate("s1.db", {"--shard", "1/2"});
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("already completed"), std::string::npos) << again.output;
  EXPECT_EQ(mock.stats().value("requests", int64_t{0}), asked);

  const Result m = run({kbench(), "merge", (dir / "s1.db").string(), (dir / "s2.db").string(), "-o",
                        (dir / "merged.db").string()},
                       dir / "merge.log");
  ASSERT_EQ(m.code, 0) << m.output;
  EXPECT_NE(m.output.find("holds 2 of 2 shards"), std::string::npos) << m.output;
  EXPECT_EQ(rows_of((dir / "merged.db").string()), rows_of((dir / "whole.db").string()));

  // The run of a shard is found by suite and shard; a shard that is not there is named.
  kb::store::Store s1((dir / "s1.db").string(), {.read_only = true});
  const std::string suite =
      json::parse(s1.runs().at(0).info.config_json)["suite"]["id"].get<std::string>();
  const Result none = run(
      {kbench(), "evaluate", "--db", (dir / "s1.db").string(), "--suite", suite, "--shard", "2/2"},
      dir / "evaluate.log");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.output.find("no run is shard 2/2 of suite " + suite), std::string::npos)
      << none.output;
}

TEST_F(SlurmE2E, ShardFlagsAreCheckedBeforeAnythingIsWritten) {
  const std::string db = (dir / "never.db").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"generate", "--suite", "x", "--db", db}, "give --shard K/N too"},
      {{"generate", "--shard", "3/2", "--db", db}, "--shard"},
      {{"generate", "--shard", "1/2", "--suite", "a b", "--db", db}, "is not a suite id"},
      {{"run", "--resume", "1", "--shard", "1/2", "--db", db}, "--shard"},
      {{"evaluate", "--suite", "x", "--db", db}, "give either --run ID, or --suite ID"},
      {{"evaluate", "--run", "1", "--slice", "0/2", "--db", db}, "--slice"},
      {{"slurm", "--dry-run", "--", "--level", "1"}, "--shards"},
  };
  for (const auto& [args, expected] : cases) {
    std::vector<std::string> all{kbench()};
    all.insert(all.end(), args.begin(), args.end());
    const Result r = run(all, dir / "flags.log");
    EXPECT_EQ(r.code, 2) << args[0] << " " << args[1] << ": " << r.output;
    EXPECT_NE(r.output.find(expected), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(db));
}

TEST_F(SlurmE2E, ArrayOfShardsAndTheMergeJobEqualTheUnshardedRun) {
  cluster = std::make_unique<Cluster>();
  if (const std::string why = cluster->start(dir / "cluster"); !why.empty())
    GTEST_SKIP() << "no Slurm cluster: " << why;
  kb::test::MockLlmServer mock(std::string(KB_BIN_DIR) + "/kbench-mock-llm", mock_script());
  write_models(mock.url());
  const auto flags = suite_flags();

  // The suite unsharded, for comparison.
  std::vector<std::string> whole{kbench(), "generate", "--db", (dir / "whole.db").string()};
  whole.insert(whole.end(), flags.begin(), flags.end());
  const Result w = run(whole, dir / "whole.log");
  ASSERT_EQ(w.code, 0) << w.output;
  const int64_t asked_unsharded = mock.stats().value("requests", int64_t{0});

  // Four array tasks and the merge job on the cluster.
  const fs::path results = dir / "results";
  std::vector<std::string> submit{kbench(),
                                  "slurm",
                                  "--shards",
                                  "4",
                                  "--mode",
                                  "generate",
                                  "--results",
                                  results.string(),
                                  "--suite",
                                  "e2e",
                                  "--local-dir",
                                  (dir / "local").string(),
                                  "--snapshot-minutes",
                                  "0",
                                  "--"};
  submit.insert(submit.end(), flags.begin(), flags.end());
  const auto env = cluster->env();
  const Result s = run(submit, dir / "submit.log", env);
  ASSERT_EQ(s.code, 0) << s.output;
  EXPECT_NE(s.output.find("submitted"), std::string::npos) << s.output;
  const bool done = Cluster::wait_until([&] { return cluster->jobs_left() == 0; }, left(120));
  std::string logs;
  if (fs::exists(results / "slurm/logs"))
    for (const auto& e : fs::directory_iterator(results / "slurm/logs"))
      logs += "--- " + e.path().filename().string() + "\n" + read_text(e.path());
  ASSERT_TRUE(done) << "jobs still queued after 120 s\n" << logs;
  ASSERT_TRUE(fs::exists(results / "suite.db")) << logs;
  EXPECT_NE(logs.find("every shard is in"), std::string::npos) << logs;
  for (int k = 1; k <= 4; ++k)
    EXPECT_TRUE(fs::exists(results / "shards" / ("shard-" + std::to_string(k) + ".db"))) << k;
  EXPECT_FALSE(fs::exists(dir / "local") && !fs::is_empty(dir / "local"))
      << "a task left its local folder behind";

  {
    kb::store::Store m((results / "suite.db").string(), {.read_only = true});
    const auto runs = m.runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].status, "completed");
    EXPECT_EQ(runs[0].info.shard, "");
    const json cfg = json::parse(runs[0].info.config_json);
    EXPECT_EQ(cfg["suite"]["id"], "e2e");
    ASSERT_EQ(cfg["suite"]["shards"].size(), 4u);
    for (const auto& sh : cfg["suite"]["shards"])
      EXPECT_TRUE(sh["environment"].contains("SLURM_ARRAY_TASK_ID")) << sh.dump();
    kb::store::Store u((dir / "whole.db").string(), {.read_only = true});
    EXPECT_EQ(m.call_tally(runs[0].id).answered, u.call_tally(u.runs()[0].id).answered);
  }
  const auto rows = rows_of((dir / "whole.db").string());
  EXPECT_EQ(rows.size(), 8u); // 4 problems x 2 models
  EXPECT_EQ(rows_of((results / "suite.db").string()), rows);
  EXPECT_EQ(mock.stats().value("requests", int64_t{0}), 2 * asked_unsharded);

  // A resubmitted task resumes its shard from the copy in the results folder: nothing is asked
  // again. A shard whose copy is gone is named by the merge, and runs anew when resubmitted.
  const int64_t asked_before = mock.stats().value("requests", int64_t{0});
  const Result again = run(
      {cluster->bin("sbatch"), "--wait", "--array=2", (results / "slurm/generate.sbatch").string()},
      dir / "again.log", env, left(60));
  ASSERT_EQ(again.code, 0) << again.output << logs;
  EXPECT_EQ(mock.stats().value("requests", int64_t{0}), asked_before);
  fs::remove(results / "shards/shard-3.db");
  const Result partial =
      run({kbench(), "slurm", "merge", "--results", results.string()}, dir / "partial.log");
  EXPECT_EQ(partial.code, 1) << partial.output;
  EXPECT_NE(partial.output.find("shard 3: no database"), std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find("sbatch --array=3"), std::string::npos) << partial.output;
  const Result redo = run(
      {cluster->bin("sbatch"), "--wait", "--array=3", (results / "slurm/generate.sbatch").string()},
      dir / "redo.log", env, left(60));
  ASSERT_EQ(redo.code, 0) << redo.output;
  const Result merged =
      run({cluster->bin("sbatch"), "--wait", (results / "slurm/merge.sbatch").string()},
          dir / "merge.log", env, left(60));
  EXPECT_EQ(merged.code, 0) << merged.output;
  EXPECT_EQ(rows_of((results / "suite.db").string()), rows);
}

} // namespace
