// The exit-code contract of the real kbench binary (0 ok, 2 bad input, 3 internal) for CLI
// misuse, with messages that say what was wrong and what was meant, and docs/cli.md equal to
// what the CLI definitions generate.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "kbench_cli.hpp"

namespace {

using Result = kb::test::CliResult;

Result kbench_via(const std::string& prefix, const std::string& args) {
  return kb::test::run_kbench_via(prefix, args);
}

Result kbench(const std::string& args) {
  return kb::test::run_kbench(args);
}

TEST(CliContract, UnknownCommandIsBadInputAndSuggestsTheNearestOne) {
  const auto r = kbench("rnu --level 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'rnu'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'run'"), std::string::npos) << r.err;
  const auto b = kbench("bogus");
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find("unknown command 'bogus'"), std::string::npos) << b.err;
  EXPECT_EQ(b.err.find("A subcommand is required"), std::string::npos) << b.err;
}

TEST(CliContract, MisspelledFlagIsBadInputAndSuggestsTheFlag) {
  const auto r = kbench("run --levle 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("did you mean --level?"), std::string::npos) << r.err;
  const auto c = kbench("compare --treshold 1 a.db b.db");
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.err.find("--threshold"), std::string::npos) << c.err;
}

TEST(CliContract, MalformedValuesAndMissingCommandsAreExitTwoNotCli11Codes) {
  for (const char* args : {"run --jobs abc", "", "eval", "list --level", "report --format"}) {
    const auto r = kbench(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find("kbench: error:"), std::string::npos) << args << ": " << r.err;
  }
}

TEST(CliContract, HelpAndVersionSucceed) {
  EXPECT_EQ(kbench("--help").code, 0);
  EXPECT_EQ(kbench("run --help").code, 0);
  const auto v = kbench("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("commit"), std::string::npos) << v.out;
}

TEST(CliContract, ReadOnlyCommandsWorkOnADatabaseNobodyMayWrite) {
  // A database in a folder this process cannot write (a read-only mount, another user's files):
  // SQLite cannot create the log's shared-memory file there.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kb-ro-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "base.db").string();
  const auto imp =
      kbench("import-baselines " + std::string(KB_SOURCE_DIR) +
             "/data/kernelbench-timings/H100_Modal/baseline_time_torch.json --db " + db);
  ASSERT_EQ(imp.code, 0) << imp.err;
  for (const char* extra : {"-shm", "-wal"})
    fs::remove(db + extra);
  fs::permissions(db, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  std::string as_other;
  if (::geteuid() == 0) { // root ignores permissions: read as nobody
    if (::system("command -v setpriv >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "running as root without setpriv: cannot drop to another user";
    as_other = "--reuid=65534 --regid=65534 --clear-groups ";
  }
  auto run = [&](const std::string& args) {
    return as_other.empty() ? kbench(args) : kbench_via("setpriv " + as_other, args);
  };
  for (const std::string args :
       {"runs --db " + db, "report --db " + db, "compare " + db + " " + db}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("readonly"), std::string::npos) << args << ": " << r.err;
  }
  fs::permissions(dir, fs::perms::owner_all);
  fs::remove_all(dir);
}

TEST(CliContract, MalformedJsonNamesItsLineAndColumn) {
  const std::string bad = ::testing::TempDir() + "kbench-bad.json";
  std::ofstream(bad) << "{\"level1\": {\n  \"a.py\": {\"mean\": 1.0,}\n}}\n";
  const auto r = kbench("import-baselines " + bad + " --db " + ::testing::TempDir() + "kb-bad.db");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("kbench-bad.json:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 2, column"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(":0:"), std::string::npos) << r.err;
}

TEST(CliContract, ShowNamesTheVersionOnce) {
  const std::string db = ::testing::TempDir() + "kb-show-" + std::to_string(::getpid()) + ".db";
  const auto g = kbench("generate --problems relu_4096x393216 --db " + db);
  ASSERT_EQ(g.code, 0) << g.err;
  const auto r = kbench("show 1 --db " + db);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto at = r.out.find("  kbench ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  const auto commit = line.find("(commit ");
  ASSERT_NE(commit, std::string::npos) << line;
  EXPECT_EQ(line.find("(commit ", commit + 1), std::string::npos) << line;
  EXPECT_EQ(line.find(") ("), std::string::npos) << line;
}

TEST(CliContract, DocsCliMdIsWhatTheDefinitionsGenerate) {
  const auto r = kbench("cli-reference");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream f(std::string(KB_SOURCE_DIR) + "/docs/cli.md");
  ASSERT_TRUE(f) << "docs/cli.md is missing";
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), r.out) << "docs/cli.md is out of date: regenerate it with "
                                "`build/bin/kbench cli-reference > docs/cli.md`";
  for (const char* cmd : {"## kbench run", "## kbench eval", "## kbench report",
                          "## kbench compare", "## Exit codes"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
}

} // namespace
